import Foundation
import Kube

/// The objects the informers have seen, per watched resource, plus which
/// resources finished their initial list. Thread-safe: informers write from
/// their threads, the controller loop reads snapshots from its own.
///
/// A `.replaced` update swaps one resource's objects in one step, so a
/// relist never shows a half-empty store.
public final class KubeObjectStore: @unchecked Sendable {
    /// One resource's objects in list order (the API server lists by
    /// namespace/name), with an index by key. New objects are appended and
    /// deletions keep the order, so the arrays stay nearly sorted: the
    /// snapshot is a plain concatenation, and Translate's own sorts of
    /// nearly sorted input are close to linear.
    private struct Table {
        var ordered: [KubeObject] = []
        var index: [ObjectKey: Int] = [:]

        init(_ objects: [KubeObject]) {
            ordered.reserveCapacity(objects.count)
            for object in objects { upsert(object) }
        }

        mutating func upsert(_ object: KubeObject) {
            let key = object.key
            if let position = index[key] {
                ordered[position] = object
            } else {
                index[key] = ordered.count
                ordered.append(object)
            }
        }

        mutating func remove(_ key: ObjectKey) {
            guard let position = index.removeValue(forKey: key) else { return }
            ordered.remove(at: position)
            for moved in position..<ordered.count { index[ordered[moved].key] = moved }
        }
    }

    /// What one consumer has not read yet: the keys of objects added,
    /// changed or deleted since its last `changes(since:)` (everything, before
    /// the first). Made by `makeCursor()`; only the store touches its state.
    public final class ChangeCursor: @unchecked Sendable {
        fileprivate var keys: Set<ObjectKey> = []
        fileprivate var everything = true
    }

    /// What changed for one cursor.
    public struct Changes: Sendable {
        /// True on a cursor's first read: `objects` is then every object, to
        /// replace (not merge with) what the consumer had.
        public var isComplete: Bool
        /// The current version of each object added or changed.
        public var objects: [KubeObject]
        /// Objects that are gone.
        public var removed: [ObjectKey]
    }

    private let lock = NSLock()
    private var tables: [WatchedResource: Table] = [:]
    private var cursors: [ChangeCursor] = []
    private var synced: Set<WatchedResource> = []
    private let expected: Set<WatchedResource>
    /// Resources in a fixed order, so snapshots list kinds the same way every time.
    private let resourceOrder: [WatchedResource]
    private var sequence: UInt64 = 0
    private var changeHandlers: [@Sendable () -> Void] = []

    /// A store that is synced once every resource in `expected` listed once.
    public init(expected: [WatchedResource]) {
        self.expected = Set(expected)
        resourceOrder = expected
    }

    /// Calls `handler` (on the writer's thread) after every change.
    public func onChange(_ handler: @escaping @Sendable () -> Void) {
        lock.withLock { changeHandlers.append(handler) }
    }

    /// True once every expected resource completed its initial list.
    public var isSynced: Bool { lock.withLock { synced.isSuperset(of: expected) } }

    /// Resources still waiting for their initial list, for logs.
    public var unsyncedResources: [WatchedResource] {
        lock.withLock { expected.subtracting(synced).sorted { $0.description < $1.description } }
    }

    /// Increases on every applied change.
    public var changeSequence: UInt64 { lock.withLock { sequence } }

    /// Applies one informer update.
    public func apply(_ update: InformerUpdate, from resource: WatchedResource) {
        let handlers: [@Sendable () -> Void] = lock.withLock {
            switch update {
            case let .replaced(list):
                let table = Table(list.sorted { $0.key < $1.key })
                if cursors.contains(where: { !$0.everything }) {
                    record(changedKeys(from: tables[resource] ?? Table([]), to: table))
                }
                tables[resource] = table
                synced.insert(resource)
            case let .upserted(object):
                tables[resource, default: Table([])].upsert(object)
                record([object.key])
            case let .deleted(object):
                tables[resource]?.remove(object.key)
                record([object.key])
            case .problem:
                return []
            }
            sequence &+= 1
            return changeHandlers
        }
        for handler in handlers { handler() }
    }

    /// Forgets a resource that is no longer watched (its objects leave the store).
    public func remove(_ resource: WatchedResource) {
        let handlers: [@Sendable () -> Void] = lock.withLock {
            guard let table = tables.removeValue(forKey: resource) else { return [] }
            record(table.ordered.map(\.key))
            synced.remove(resource)
            sequence &+= 1
            return changeHandlers
        }
        for handler in handlers { handler() }
    }

    // MARK: Change cursors

    /// A new consumer of changes; its first `changes(since:)` returns every object.
    public func makeCursor() -> ChangeCursor {
        let cursor = ChangeCursor()
        lock.withLock { cursors.append(cursor) }
        return cursor
    }

    /// What changed since `cursor` was last read (everything on its first
    /// read), and marks it read. Cheap: proportional to the changes.
    public func changes(since cursor: ChangeCursor) -> Changes {
        lock.withLock {
            if cursor.everything {
                cursor.everything = false
                cursor.keys.removeAll()
                var objects: [KubeObject] = []
                for resource in orderedResources {
                    objects += tables[resource]?.ordered ?? []
                }
                return Changes(isComplete: true, objects: objects, removed: [])
            }
            var changes = Changes(isComplete: false, objects: [], removed: [])
            let order = orderedResources
            for key in cursor.keys {
                if let object = currentObject(key, order: order) {
                    changes.objects.append(object)
                } else {
                    changes.removed.append(key)
                }
            }
            cursor.keys.removeAll(keepingCapacity: true)
            return changes
        }
    }

    /// Adds `keys` to every cursor that is not already due for everything. Lock held.
    private func record<Keys: Sequence>(_ keys: Keys) where Keys.Element == ObjectKey {
        for cursor in cursors where !cursor.everything {
            cursor.keys.formUnion(keys)
        }
    }

    /// Keys added, removed or changed between two versions of one resource's objects.
    private func changedKeys(from old: Table, to new: Table) -> [ObjectKey] {
        var keys: [ObjectKey] = []
        for object in new.ordered {
            let key = object.key
            if let position = old.index[key], old.ordered[position] == object { continue }
            keys.append(key)
        }
        for object in old.ordered where new.index[object.key] == nil {
            keys.append(object.key)
        }
        return keys
    }

    /// Expected resources in their fixed order, then the others. Lock held.
    private var orderedResources: [WatchedResource] {
        resourceOrder + tables.keys.filter { !expected.contains($0) }
    }

    /// The object with `key` in the first resource (in `order`) that holds it. Lock held.
    private func currentObject(_ key: ObjectKey, order: [WatchedResource]) -> KubeObject? {
        for resource in order {
            if let table = tables[resource], let position = table.index[key] { return table.ordered[position] }
        }
        return nil
    }

    // MARK: Reading

    /// Every object, grouped by kind, each resource in list order. Keys never
    /// repeat across resources: each resource of a kind covers a different namespace.
    public func snapshot() -> ObjectSnapshot {
        snapshot(of: Set(WatchedKind.allCases))
    }

    /// The objects of `kinds` only (cheaper than copying every kind).
    public func snapshot(of kinds: Set<WatchedKind>) -> ObjectSnapshot {
        lock.withLock {
            var snapshot = ObjectSnapshot()
            for resource in orderedResources where kinds.contains(resource.kind) {
                guard let table = tables[resource] else { continue }
                for object in table.ordered {
                    switch object {
                    case let .ingress(o): snapshot.ingresses.append(o)
                    case let .ingressClass(o): snapshot.ingressClasses.append(o)
                    case let .service(o): snapshot.services.append(o)
                    case let .endpointSlice(o): snapshot.endpointSlices.append(o)
                    case let .endpoints(o): snapshot.endpoints.append(o)
                    case let .secret(o): snapshot.secrets.append(o)
                    case .unsupported: break
                    }
                }
            }
            return snapshot
        }
    }

    /// One object by identity.
    public func object(_ key: ObjectKey) -> KubeObject? {
        lock.withLock {
            for table in tables.values {
                if let position = table.index[key] { return table.ordered[position] }
            }
            return nil
        }
    }

    /// Number of objects held.
    public var count: Int { lock.withLock { tables.values.reduce(0) { $0 + $1.ordered.count } } }
}
