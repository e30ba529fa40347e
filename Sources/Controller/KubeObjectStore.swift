import Foundation
import Kube

/// The objects the informers have seen, per watched resource, plus which
/// resources finished their initial list. Thread-safe: informers write from
/// their threads, the controller loop reads snapshots from its own.
///
/// A `.replaced` update swaps one resource's objects in one step, so a
/// relist never shows a half-empty store.
public final class KubeObjectStore: @unchecked Sendable {
    private let lock = NSLock()
    private var objects: [WatchedResource: [ObjectKey: KubeObject]] = [:]
    private var synced: Set<WatchedResource> = []
    private let expected: Set<WatchedResource>
    private var sequence: UInt64 = 0
    private var changeHandlers: [@Sendable () -> Void] = []

    /// A store that is synced once every resource in `expected` listed once.
    public init(expected: [WatchedResource]) {
        self.expected = Set(expected)
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
                var table: [ObjectKey: KubeObject] = [:]
                table.reserveCapacity(list.count)
                for object in list { table[object.key] = object }
                objects[resource] = table
                synced.insert(resource)
            case let .upserted(object):
                objects[resource, default: [:]][object.key] = object
            case let .deleted(object):
                objects[resource]?[object.key] = nil
            case .problem:
                return []
            }
            sequence &+= 1
            return changeHandlers
        }
        for handler in handlers { handler() }
    }

    /// Every object, sorted by key (so translation sees a stable order).
    public func snapshot() -> ObjectSnapshot {
        let all: [KubeObject] = lock.withLock {
            var merged: [ObjectKey: KubeObject] = [:]
            for table in objects.values { merged.merge(table) { first, _ in first } }
            return merged.keys.sorted().compactMap { merged[$0] }
        }
        return ObjectSnapshot(objects: all)
    }

    /// One object by identity.
    public func object(_ key: ObjectKey) -> KubeObject? {
        lock.withLock {
            for table in objects.values {
                if let object = table[key] { return object }
            }
            return nil
        }
    }

    /// Number of objects held.
    public var count: Int { lock.withLock { objects.values.reduce(0) { $0 + $1.count } } }
}
