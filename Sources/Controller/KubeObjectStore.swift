import FoundationEssentials
import Kube
import Support

/// The objects the informers have seen, per watched resource, plus which
/// resources finished their initial list. Thread-safe: informers write from
/// their threads, the controller loop reads snapshots from its own.
///
/// Every write costs O(1) in the number of objects held (a hash-table
/// insert or removal plus one set insert per change cursor), so a bulk
/// delete of n objects costs O(n) in all. The deterministic order Translate
/// and status readers rely on (kind, namespace, name) is produced where it
/// is read, by `snapshot` and a cursor's first read, outside the lock.
///
/// A `.replaced` update swaps one resource's objects in one step, so a
/// relist never shows a half-empty store; the objects it drops are freed
/// outside the lock.
public final class KubeObjectStore: @unchecked Sendable {
    /// One resource's objects by key.
    private typealias Table = [ObjectKey: KubeObject]

    /// What one consumer has not read yet: the keys of objects added,
    /// changed or deleted since its last `changes(since:)` (everything, before
    /// the first). Made by `makeCursor()`; only the store touches its state.
    public final class ChangeCursor: @unchecked Sendable {
        /// The kinds (`ObjectKey.kind`) this cursor follows; nil: every kind.
        public let kinds: Set<String>?
        fileprivate var keys: Set<ObjectKey> = []
        /// How many of `keys` are of each kind (`ObjectKey.kind`).
        fileprivate var kindCounts: [String: Int] = [:]
        fileprivate var everything = true

        fileprivate init(kinds: Set<String>?) {
            self.kinds = kinds
        }

        fileprivate func follows(_ kind: String) -> Bool {
            kinds?.contains(kind) ?? true
        }

        fileprivate func insert(_ key: ObjectKey) {
            if keys.insert(key).inserted { kindCounts[key.kind, default: 0] += 1 }
        }

        fileprivate func clear(keepingCapacity: Bool) {
            keys.removeAll(keepingCapacity: keepingCapacity)
            kindCounts.removeAll(keepingCapacity: true)
        }
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

    private let lock = Lock()
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

    /// Applies one informer update: O(1) for an upsert or a delete; a
    /// relist builds its table and compares it with the old one outside the lock.
    public func apply(_ update: InformerUpdate, from resource: WatchedResource) {
        let handlers: [@Sendable () -> Void]
        switch update {
        case let .replaced(list):
            var table = Table(minimumCapacity: list.count)
            for object in list { table[object.key] = object }
            let (old, compare) = lock.withLock { () -> (Table?, Bool) in
                let old = tables.updateValue(table, forKey: resource)
                synced.insert(resource)
                return (old, cursors.contains { !$0.everything })
            }
            // Compared outside the lock: readers meanwhile see the new table,
            // and the keys that differ reach the cursors just below, before
            // the change handlers run, so no consumer misses one.
            let keys = compare ? Self.changedKeys(from: old ?? [:], to: table) : []
            // `old` (the objects the relist dropped) is freed after this, outside the lock.
            handlers = lock.withLock {
                record(keys)
                sequence &+= 1
                return changeHandlers
            }
        case let .upserted(object):
            let key = object.key
            handlers = lock.withLock {
                tables[resource, default: [:]][key] = object
                record(key)
                sequence &+= 1
                return changeHandlers
            }
        case let .deleted(object):
            let key = object.key
            handlers = lock.withLock {
                tables[resource]?.removeValue(forKey: key)
                shrinkIfSparse(resource)
                record(key)
                sequence &+= 1
                return changeHandlers
            }
        case .problem:
            return
        }
        for handler in handlers { handler() }
    }

    /// A dictionary never gives back its capacity: after a bulk delete,
    /// rebuild a table that uses less than an eighth of it. Costs O(count),
    /// at most once per 7/8 of the table removed: O(1) per delete amortised. Lock held.
    private func shrinkIfSparse(_ resource: WatchedResource) {
        guard let table = tables[resource], table.capacity >= 1024, table.count * 8 < table.capacity else { return }
        var smaller = Table(minimumCapacity: table.count)
        for (key, object) in table { smaller[key] = object }
        tables[resource] = smaller
    }

    /// Forgets a resource that is no longer watched (its objects leave the store).
    public func remove(_ resource: WatchedResource) {
        // The table comes out of the lock so that freeing it happens outside.
        let (handlers, retired): ([@Sendable () -> Void], Table?) = lock.withLock {
            guard let table = tables.removeValue(forKey: resource) else { return ([], nil) }
            record(table.keys)
            synced.remove(resource)
            sequence &+= 1
            return (changeHandlers, table)
        }
        _ = retired
        for handler in handlers { handler() }
    }

    // MARK: Change cursors

    /// A new consumer of changes; its first `changes(since:)` returns every
    /// object. With `kinds` (`ObjectKey.kind` spellings), it sees only
    /// objects of those kinds: two consumers can then take different kinds
    /// at their own pace (the controller's routes and endpoint paths).
    public func makeCursor(kinds: Set<String>? = nil) -> ChangeCursor {
        let cursor = ChangeCursor(kinds: kinds)
        lock.withLock { cursors.append(cursor) }
        return cursor
    }

    /// What changed since `cursor` was last read (everything on its first
    /// read), and marks it read. Under the lock, work proportional to the
    /// changes; a first read copies the tables (O(1), shared storage) and
    /// sorts them outside the lock.
    public func changes(since cursor: ChangeCursor) -> Changes {
        let everything: [Table]? = lock.withLock {
            guard cursor.everything else { return nil }
            cursor.everything = false
            cursor.clear(keepingCapacity: false)
            return orderedResources.filter { cursor.follows($0.kind.rawValue) }.compactMap { tables[$0] }
        }
        if let everything {
            var objects: [KubeObject] = []
            objects.reserveCapacity(everything.reduce(0) { $0 + $1.count })
            for table in everything { objects += Self.sorted(table) }
            return Changes(isComplete: true, objects: objects, removed: [])
        }
        return lock.withLock {
            var changes = Changes(isComplete: false, objects: [], removed: [])
            let order = orderedResources
            for key in cursor.keys {
                if let object = currentObject(key, order: order) {
                    changes.objects.append(object)
                } else {
                    changes.removed.append(key)
                }
            }
            // A large batch (a bulk delete) gives its storage back.
            cursor.clear(keepingCapacity: cursor.keys.count < 1024)
            return changes
        }
    }

    /// True when `cursor` has unread changes to objects of one of `kinds`
    /// (`ObjectKey.kind` spellings). O(kinds).
    public func hasPendingChanges(since cursor: ChangeCursor, ofKinds kinds: Set<String>) -> Bool {
        lock.withLock { cursor.everything || kinds.contains { cursor.kindCounts[$0, default: 0] > 0 } }
    }

    /// Adds `key` to every cursor that is not already due for everything. Lock held.
    private func record(_ key: ObjectKey) {
        for cursor in cursors where !cursor.everything && cursor.follows(key.kind) {
            cursor.insert(key)
        }
    }

    /// Adds `keys` to every cursor that is not already due for everything. Lock held.
    private func record<Keys: Sequence>(_ keys: Keys) where Keys.Element == ObjectKey {
        for cursor in cursors where !cursor.everything {
            for key in keys where cursor.follows(key.kind) { cursor.insert(key) }
        }
    }

    /// Keys added, removed or changed between two versions of one resource's objects.
    private static func changedKeys(from old: Table, to new: Table) -> [ObjectKey] {
        var keys: [ObjectKey] = []
        for (key, object) in new where old[key] != object {
            keys.append(key)
        }
        for key in old.keys where new[key] == nil {
            keys.append(key)
        }
        return keys
    }

    /// One table's objects in key order (namespace, then name: the API
    /// server's list order).
    private static func sorted(_ table: Table) -> [KubeObject] {
        table.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Expected resources in their fixed order, then the others. Lock held.
    private var orderedResources: [WatchedResource] {
        resourceOrder + tables.keys.filter { !expected.contains($0) }.sorted { $0.description < $1.description }
    }

    /// The object with `key` in the first resource (in `order`) that holds it. Lock held.
    private func currentObject(_ key: ObjectKey, order: [WatchedResource]) -> KubeObject? {
        for resource in order {
            if let object = tables[resource]?[key] { return object }
        }
        return nil
    }

    // MARK: Reading

    /// Every object, grouped by kind, each resource in key order. Keys never
    /// repeat across resources: each resource of a kind covers a different namespace.
    public func snapshot() -> ObjectSnapshot {
        snapshot(of: Set(WatchedKind.allCases))
    }

    /// The objects of `kinds` only (cheaper than copying every kind). The
    /// tables are copied under the lock (shared storage) and sorted outside it.
    public func snapshot(of kinds: Set<WatchedKind>) -> ObjectSnapshot {
        let selected: [Table] = lock.withLock {
            orderedResources.filter { kinds.contains($0.kind) }.compactMap { tables[$0] }
        }
        var snapshot = ObjectSnapshot()
        for table in selected {
            for object in Self.sorted(table) {
                switch object {
                case let .ingress(o): snapshot.ingresses.append(o)
                case let .ingressClass(o): snapshot.ingressClasses.append(o)
                case let .service(o): snapshot.services.append(o)
                case let .endpointSlice(o): snapshot.endpointSlices.append(o)
                case let .endpoints(o): snapshot.endpoints.append(o)
                case let .secret(o): snapshot.secrets.append(o)
                case let .configMap(o): snapshot.configMaps.append(o)
                case .unsupported: break
                }
            }
        }
        return snapshot
    }

    /// One object by identity.
    public func object(_ key: ObjectKey) -> KubeObject? {
        lock.withLock {
            for table in tables.values {
                if let object = table[key] { return object }
            }
            return nil
        }
    }

    /// Number of objects held.
    public var count: Int { lock.withLock { tables.values.reduce(0) { $0 + $1.count } } }
}
