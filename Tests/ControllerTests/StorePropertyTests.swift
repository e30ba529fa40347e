import Controller
import Kube
import Testing

/// SplitMix64: a small seeded generator, so a failing sequence can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The store against a plain reference (one dictionary per resource) under
/// random add / update / delete / bulk delete / relist / unwatch sequences.
@Suite struct StorePropertyTests {
    static let ingresses = WatchedResource(kind: .ingress)
    static let services = WatchedResource(kind: .service)
    static let namespaces = ["apps", "default", "kube-system", "zeta"]

    static func object(_ resource: WatchedResource, namespace: String, name: String, version: Int) -> KubeObject {
        let metadata = ObjectMeta(name: name, namespace: namespace, resourceVersion: "\(version)")
        switch resource.kind {
        case .ingress:
            return .ingress(Ingress(metadata: metadata, spec: IngressSpec(rules: [IngressRule(host: "h\(version).example.com")])))
        default:
            return .service(Service(metadata: metadata))
        }
    }

    /// A consumer that keeps its own copy of the store from one cursor's reads.
    struct Consumer {
        let cursor: KubeObjectStore.ChangeCursor
        var view: [ObjectKey: KubeObject] = [:]
        /// Keys changed in the reference since this consumer's last read.
        var due: Set<ObjectKey> = []
        var hasRead = false

        mutating func read(_ store: KubeObjectStore, reference: [ObjectKey: KubeObject]) {
            let changes = store.changes(since: cursor)
            #expect(changes.isComplete == !hasRead, "only the first read is complete")
            if changes.isComplete {
                view = [:]
                for object in changes.objects { view[object.key] = object }
                #expect(view.count == changes.objects.count, "a complete read lists each object once")
            } else {
                let keys = changes.objects.map(\.key) + changes.removed
                #expect(Set(keys).count == keys.count, "a change is reported once per read")
                #expect(Set(keys) == due, "a read reports exactly the keys changed since the last one")
                for object in changes.objects { view[object.key] = object }
                for key in changes.removed {
                    #expect(view[key] != nil || reference[key] == nil)
                    view[key] = nil
                }
            }
            #expect(view == reference, "the consumer's copy equals the store after a read")
            due = []
            hasRead = true
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func storeMatchesAReferenceAndCursorsSeeEveryChangeExactlyOnce(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let resources = [Self.ingresses, Self.services]
        let store = KubeObjectStore(expected: resources)
        var reference: [WatchedResource: [ObjectKey: KubeObject]] = [:]
        var consumers = [Consumer(cursor: store.makeCursor()), Consumer(cursor: store.makeCursor())]
        var version = 0
        func merged() -> [ObjectKey: KubeObject] {
            reference.values.reduce(into: [:]) { $0.merge($1) { first, _ in first } }
        }
        func touch<Keys: Sequence>(_ keys: Keys) where Keys.Element == ObjectKey {
            for index in consumers.indices where consumers[index].hasRead { consumers[index].due.formUnion(keys) }
        }
        func randomObject(_ resource: WatchedResource) -> KubeObject {
            version += 1
            let namespace = Self.namespaces.randomElement(using: &random)!
            return Self.object(resource, namespace: namespace, name: "o\(Int.random(in: 0..<40, using: &random))", version: version)
        }
        for resource in resources {
            store.apply(.replaced([]), from: resource)
            reference[resource] = [:]
        }
        for _ in 0..<600 {
            let resource = resources.randomElement(using: &random)!
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<45:
                let object = randomObject(resource)
                store.apply(.upserted(object), from: resource)
                reference[resource, default: [:]][object.key] = object
                touch([object.key])
            case 45..<75:
                // An existing object, or one never seen (the store must cope).
                let existing = reference[resource]?.values.randomElement(using: &random)
                let object = existing ?? randomObject(resource)
                store.apply(.deleted(object), from: resource)
                reference[resource]?[object.key] = nil
                touch([object.key])
            case 75..<82:
                // A bulk delete in the API server's order (namespace, name).
                let doomed = (reference[resource] ?? [:]).values.sorted { $0.key < $1.key }
                    .prefix(Int.random(in: 0...30, using: &random))
                for object in doomed {
                    store.apply(.deleted(object), from: resource)
                    reference[resource]?[object.key] = nil
                }
                touch(doomed.map(\.key))
            case 82..<92:
                // A relist: some objects kept, some changed, some gone, some new.
                var list: [ObjectKey: KubeObject] = [:]
                for (key, object) in reference[resource] ?? [:] {
                    switch Int.random(in: 0..<4, using: &random) {
                    case 0: continue
                    case 1: list[key] = Self.object(resource, namespace: key.namespace, name: key.name, version: { version += 1; return version }())
                    default: list[key] = object
                    }
                }
                for _ in 0..<Int.random(in: 0...5, using: &random) {
                    let object = randomObject(resource)
                    list[object.key] = object
                }
                let old = reference[resource] ?? [:]
                store.apply(.replaced(Array(list.values).shuffled(using: &random)), from: resource)
                reference[resource] = list
                touch(list.keys.filter { old[$0] != list[$0] })
                touch(old.keys.filter { list[$0] == nil })
            case 92..<94:
                // The resource is no longer watched: its objects leave.
                store.remove(resource)
                touch(reference[resource]?.keys.map { $0 } ?? [])
                reference[resource] = nil
            default:
                let index = Int.random(in: 0..<consumers.count, using: &random)
                consumers[index].read(store, reference: merged())
            }
            #expect(store.count == merged().count)
            for consumer in consumers {
                for kind in ["Ingress", "Service"] {
                    let expected = !consumer.hasRead || consumer.due.contains { $0.kind == kind }
                    #expect(store.hasPendingChanges(since: consumer.cursor, ofKinds: [kind]) == expected,
                            "pending \(kind) changes are known without reading them")
                }
            }
        }
        for index in consumers.indices { consumers[index].read(store, reference: merged()) }

        // The order Translate relies on: each resource's objects by namespace, then name.
        let snapshot = store.snapshot()
        let expectedIngresses = (reference[Self.ingresses] ?? [:]).keys.sorted()
        #expect(snapshot.ingresses.map { ObjectKey(kind: "Ingress", namespace: $0.metadata.namespace, name: $0.metadata.name) } == expectedIngresses)
        let expectedServices = (reference[Self.services] ?? [:]).keys.sorted()
        #expect(snapshot.services.map { ObjectKey(kind: "Service", namespace: $0.metadata.namespace, name: $0.metadata.name) } == expectedServices)
        let fresh = store.makeCursor()
        let everything = store.changes(since: fresh)
        #expect(everything.objects.map(\.key) == expectedIngresses + expectedServices, "a first read lists kinds in order, each sorted")
    }

    @Test func deletingTenThousandObjectsOneByOneEmptiesTheStoreAndReportsEachOnce() {
        let store = KubeObjectStore(expected: [Self.ingresses])
        let cursor = store.makeCursor()
        let objects = (0..<10_000).map { Self.object(Self.ingresses, namespace: "bulk", name: "ing-\($0)", version: $0) }
        store.apply(.replaced(objects), from: Self.ingresses)
        #expect(store.changes(since: cursor).objects.count == 10_000)
        // The API server deletes a collection in name order: from the front.
        for object in objects.sorted(by: { $0.key < $1.key }) { store.apply(.deleted(object), from: Self.ingresses) }
        let changes = store.changes(since: cursor)
        #expect(store.count == 0)
        #expect(changes.objects.isEmpty && Set(changes.removed) == Set(objects.map(\.key)) && changes.removed.count == 10_000)
        #expect(store.changes(since: cursor).removed.isEmpty)
    }
}
