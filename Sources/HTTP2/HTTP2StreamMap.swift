/// Stream ID → object, for the per-connection stream tables on the hot path.
///
/// A `Dictionary<Int32, Value>` hashes every key with SipHash (about a tenth
/// of a proxied HTTP/2 request's instructions went to it, at a dozen lookups
/// per stream). Stream IDs are positive and mostly consecutive odd numbers,
/// so a multiplicative hash into an open-addressed table (linear probing,
/// backward-shift deletion, at most half full) finds them in one or two
/// probes. Peers choose IDs: each map mixes a random seed into the hash, so a
/// peer cannot pick IDs that share a slot, and a connection holds at most its
/// `maxConcurrentStreams` entries, which bounds any probe sequence anyway.
public struct HTTP2StreamMap<Value: AnyObject> {
    /// 0 marks a free slot (stream 0 is the connection, never a key).
    @usableFromInline var keys: [Int32]
    @usableFromInline var values: [Value?]
    @usableFromInline var shift: UInt32
    @usableFromInline let seed: UInt32
    /// Number of entries.
    @inlinable public var count: Int { storedCount }
    @usableFromInline var storedCount = 0

    /// An empty map with room for `capacity` entries before it grows.
    public init(capacity: Int = 8) {
        var bits: UInt32 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        keys = Array(repeating: 0, count: 1 << bits)
        values = Array(repeating: nil, count: 1 << bits)
        shift = 32 - bits
        seed = UInt32.random(in: 0...UInt32.max)
    }

    @inlinable public var isEmpty: Bool { storedCount == 0 }

    @inlinable @inline(__always)
    var mask: Int { keys.count - 1 }

    @inlinable @inline(__always)
    func home(_ key: Int32) -> Int {
        // Fibonacci hashing of the ID without its parity bit, seeded.
        Int(truncatingIfNeeded: ((UInt32(bitPattern: key) >> 1 ^ seed) &* 0x9E37_79B1) >> shift)
    }

    @inlinable @inline(__always)
    func find(_ key: Int32) -> Int? {
        // 0 marks free slots: it is never a key (a not-yet-opened stream is 0).
        guard key != 0 else { return nil }
        var slot = home(key)
        while true {
            let present = keys[slot]
            if present == key { return slot }
            if present == 0 { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// The object for `key`; assigning nil removes it.
    @inlinable
    public subscript(key: Int32) -> Value? {
        get {
            guard let slot = find(key) else { return nil }
            return values[slot]
        }
        set {
            precondition(key != 0, "stream 0 is the connection")
            if let newValue {
                insert(key, newValue)
            } else {
                _ = removeValue(forKey: key)
            }
        }
    }

    @inlinable
    mutating func insert(_ key: Int32, _ value: Value) {
        if let slot = find(key) {
            values[slot] = value
            return
        }
        if (storedCount + 1) * 2 > keys.count { grow() }
        var slot = home(key)
        while keys[slot] != 0 { slot = (slot + 1) & mask }
        keys[slot] = key
        values[slot] = value
        storedCount += 1
    }

    /// Removes and returns the object for `key`.
    @inlinable @discardableResult
    public mutating func removeValue(forKey key: Int32) -> Value? {
        guard let slot = find(key) else { return nil }
        let removed = values[slot]
        remove(at: slot)
        return removed
    }

    @inlinable
    mutating func remove(at slot: Int) {
        // Backward shift: move later entries of the run into the hole when
        // the hole lies between their home slot and where they sit.
        var hole = slot
        var next = (slot + 1) & mask
        while keys[next] != 0 {
            let wanted = home(keys[next])
            let distanceToNext = (next - wanted) & mask
            let distanceToHole = (hole - wanted) & mask
            if distanceToHole < distanceToNext {
                keys[hole] = keys[next]
                values[hole] = values[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        keys[hole] = 0
        values[hole] = nil
        storedCount -= 1
    }

    @inlinable
    mutating func grow() {
        let oldKeys = keys
        let oldValues = values
        let size = keys.count * 2
        keys = Array(repeating: 0, count: size)
        values = Array(repeating: nil, count: size)
        shift -= 1
        storedCount = 0
        for index in oldKeys.indices where oldKeys[index] != 0 {
            insert(oldKeys[index], oldValues[index]!)
        }
    }

    /// Every object, in no particular order.
    public var allValues: [Value] { values.compactMap { $0 } }

    /// Every stream ID, in no particular order.
    public var allKeys: [Int32] { keys.filter { $0 != 0 } }

    /// Removes every entry, keeping the table's size.
    public mutating func removeAll() {
        guard storedCount > 0 else { return }
        for index in keys.indices {
            keys[index] = 0
            values[index] = nil
        }
        storedCount = 0
    }
}
