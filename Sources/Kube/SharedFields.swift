/// The fields of one Kubernetes object kept in one heap block that every
/// copy of the object shares, copied only when a copy is changed (copy on
/// write, as `Array` does).
///
/// Why: an object is held by the store, by the translator and by
/// snapshots at the same time, each in a hash table. A struct of its
/// fields is copied whole into every holder's table slot (230 bytes for an
/// Ingress, and every empty slot of a hash table is that size too); with
/// the fields behind one reference a slot is 8 bytes and the fields exist
/// once (at 10,000 Ingresses, Services and EndpointSlices: about 14 MiB of
/// store slots and 10 MiB of translator slots before).
///
/// Thread safety: copies may be read on any thread. A change through
/// `value` first checks that this copy is the only holder of the block
/// and otherwise takes a block of its own, so a change is never seen by
/// another copy.
struct SharedFields<Value: Equatable & Sendable>: Equatable, Sendable {
    /// The block. Its `value` changes only through `SharedFields.value`'s
    /// modify accessor, when this reference is the only one.
    private final class Block: @unchecked Sendable {
        var value: Value

        init(_ value: Value) {
            self.value = value
        }
    }

    private var block: Block

    /// Fields in a block of their own.
    init(_ value: Value) {
        block = Block(value)
    }

    /// The fields. Changing them changes this copy only.
    var value: Value {
        get { block.value }
        // `_modify` rather than `set`: a change of one field of a field
        // (`slice.endpoints[i].hostname = nil`) then happens in place,
        // not on a copy of the whole value written back, which would copy
        // the arrays it holds on every change.
        _modify {
            if !isKnownUniquelyReferenced(&block) {
                block = Block(block.value)
            }
            yield &block.value
        }
    }

    /// Two copies of one object are equal at once; others compare their fields.
    static func == (lhs: SharedFields, rhs: SharedFields) -> Bool {
        lhs.block === rhs.block || lhs.block.value == rhs.block.value
    }
}
