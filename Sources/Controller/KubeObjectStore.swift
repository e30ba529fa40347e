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

    private let lock = NSLock()
    private var tables: [WatchedResource: Table] = [:]
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
                tables[resource] = Table(list.sorted { $0.key < $1.key })
                synced.insert(resource)
            case let .upserted(object):
                tables[resource, default: Table([])].upsert(object)
            case let .deleted(object):
                tables[resource]?.remove(object.key)
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
            guard tables.removeValue(forKey: resource) != nil else { return [] }
            synced.remove(resource)
            sequence &+= 1
            return changeHandlers
        }
        for handler in handlers { handler() }
    }

    /// Every object, grouped by kind, each resource in list order. Keys never
    /// repeat across resources: each resource of a kind covers a different namespace.
    public func snapshot() -> ObjectSnapshot {
        lock.withLock {
            var snapshot = ObjectSnapshot()
            let order = resourceOrder + tables.keys.filter { !expected.contains($0) }
            for resource in order {
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
