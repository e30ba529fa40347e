import Controller
import Foundation
import Kube
import RouteModel
import Routing
import Testing
import Translate

/// Records every table the loop publishes, in order.
final class PublishedTables: @unchecked Sendable {
    private let lock = NSLock()
    private var tables: [RoutingTable] = []
    func add(_ table: RoutingTable) { lock.withLock { tables.append(table) } }
    var all: [RoutingTable] { lock.withLock { tables } }
}

/// The store source's endpoint path: EndpointSlice changes are patched into
/// the table in service on their own thread, not queued behind Ingress rounds.
@Suite(.serialized) struct EndpointPathTests {
    let ingresses = WatchedResource(kind: .ingress)
    let services = WatchedResource(kind: .service)
    let slices = WatchedResource(kind: .endpointSlice)

    func ingress(_ name: String, host: String, service: String = "svc", path: String = "/") -> KubeObject {
        .ingress(Ingress(
            metadata: ObjectMeta(name: name, annotations: ["kubernetes.io/ingress.class": "postern"]),
            spec: IngressSpec(rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [
                HTTPIngressPath(path: path, pathType: "Prefix", backend: IngressBackend(service: IngressServiceBackend(name: service, port: ServiceBackendPort(number: 80))))
            ]))])))
    }

    func service(_ name: String = "svc", targetPort: Int = 8080) -> KubeObject {
        .service(Service(metadata: ObjectMeta(name: name), spec: ServiceSpec(ports: [ServicePort(name: "http", port: 80, targetPort: .int(targetPort))])))
    }

    func slice(_ addresses: [String], service: String = "svc", port: Int? = 8080) -> KubeObject {
        .endpointSlice(EndpointSlice(
            metadata: ObjectMeta(name: "\(service)-0", labels: [EndpointSlice.serviceNameLabel: service]), addressType: "IPv4",
            endpoints: addresses.map { EndpointSliceEndpoint(addresses: [$0], conditions: EndpointConditions(ready: true)) },
            ports: port.map { [EndpointSlicePort(name: "http", port: $0)] } ?? []))
    }

    /// A synced store and a running loop that records each published table.
    func start(window: Duration, objects: [KubeObject]) -> (KubeObjectStore, ControllerLoop, PublishedTables) {
        let store = KubeObjectStore(expected: [ingresses, services, slices])
        let published = PublishedTables()
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: window, configMap: nil,
            publishSnapshot: { publication in
                if let table = publication.table { published.add(table) }
            }, report: { _ in })
        loop.start()
        store.apply(.replaced(objects.filter { $0.kind == "Ingress" }), from: ingresses)
        store.apply(.replaced(objects.filter { $0.kind == "Service" }), from: services)
        store.apply(.replaced(objects.filter { $0.kind == "EndpointSlice" }), from: slices)
        return (store, loop, published)
    }

    /// The addresses a request for `host` is sent to.
    func addresses(_ table: RoutingTable?, host: String) -> [String] {
        guard let table, case let .cluster(cluster) = table.route(host: host, path: "/") else { return [] }
        return cluster.endpoints.map { "\($0.address)" }
    }

    /// A full translation of everything in the store.
    func translated(_ store: KubeObjectStore) -> RouteModel {
        translate(store.snapshot(), options: TranslateOptions()).model
    }

    @Test func anEndpointChangeDuringAnIngressBurstIsPublishedBeforeTheBurstAndNeverUndone() throws {
        let background = (0..<2000).map { ingress("bg-\($0)", host: "bg-\($0).example.com") }
        let (store, loop, published) = start(
            window: .milliseconds(50),
            objects: background + [ingress("web", host: "web.example.com"), service(), slice(["10.0.0.1"])])
        defer { loop.stop() }
        #expect(waitUntil(30) { addresses(published.all.last, host: "web.example.com") == ["10.0.0.1"] })
        let before = published.all.count
        // A burst of 3,000 Ingresses (rounds of at most 64), then endpoint moves while it is translated.
        for index in 0..<3000 {
            store.apply(.upserted(ingress("burst-\(index)", host: "burst-\(index).example.com")), from: ingresses)
        }
        for step in 2...6 {
            store.apply(.upserted(slice(["10.0.0.\(step)"])), from: slices)
            Thread.sleep(forTimeInterval: 0.005)
        }
        #expect(waitUntil(60) { published.all.last?.model.virtualHosts.count == 5001 })
        let tables = Array(published.all.dropFirst(before))
        // The last move went out before the burst's last table.
        let moved = tables.firstIndex { addresses($0, host: "web.example.com") == ["10.0.0.6"] }
        #expect(moved != nil)
        if let moved { #expect(tables[moved].model.virtualHosts.count < 5001, "the endpoint change waited for the whole burst") }
        #expect(loop.endpointPublications >= 1)
        // No table after a move goes back to older endpoints (every host of svc shares them).
        let seen = tables.map { addresses($0, host: "bg-7.example.com").first.map { Int($0.split(separator: ".").last ?? "") ?? 0 } ?? 0 }
        #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 <= $1 }, "\(seen)")
        #expect(published.all.last?.model == translated(store))
        #expect(published.all.last.map { RoutingTable(model: $0.model, generation: 0).clusters.map(\.endpoints) } == published.all.last?.clusters.map(\.endpoints))
    }

    @Test(arguments: 0..<12)
    func randomChangesOfEveryKindEndInTheFullTranslation(seed: Int) throws {
        var random = Dice(seed: UInt64(seed) &* 104_729 &+ 11)
        let serviceNames = ["s0", "s1", "s2", "s3"]
        var objects: [KubeObject] = []
        for (index, name) in serviceNames.enumerated() {
            objects.append(service(name))
            objects.append(slice(["10.1.\(index).1"], service: name))
        }
        for index in 0..<300 { objects.append(ingress("bg-\(index)", host: "bg-\(index).example.com", service: serviceNames[index % 4])) }
        let (store, loop, published) = start(window: .milliseconds(20), objects: objects)
        defer { loop.stop() }
        #expect(waitUntil(20) { published.all.last?.model.virtualHosts.count == 300 })
        for step in 0..<150 {
            let name = random.pick(serviceNames)
            switch random.next() % 10 {
            case 0...4:
                // Endpoints move, appear or go.
                let count = random.upTo(3)
                store.apply(.upserted(slice((0..<count).map { "10.2.\(step % 200).\($0 + 1)" }, service: name, port: random.chance(80) ? 8080 : 9090)), from: slices)
            case 5:
                store.apply(.deleted(slice([], service: name)), from: slices)
            case 6:
                // The Service's target port changes (its clusters' endpoints with it), or the Service goes.
                if random.chance(80) {
                    store.apply(.upserted(service(name, targetPort: random.pick([8080, 9090]))), from: services)
                } else {
                    store.apply(.deleted(service(name)), from: services)
                }
            default:
                // Ingresses come and go, now and then moving to another Service.
                let index = random.upTo(400)
                if random.chance(30) {
                    store.apply(.deleted(ingress("bg-\(index)", host: "x")), from: ingresses)
                } else {
                    store.apply(.upserted(ingress("bg-\(index)", host: "bg-\(index).example.com", service: name)), from: ingresses)
                }
            }
            if random.chance(20) { Thread.sleep(forTimeInterval: 0.002) }
        }
        let expected = translated(store)
        #expect(waitUntil(20) { published.all.last?.model == expected }, "seed \(seed): the last table is not the full translation")
        // Every table published is the compilation of its own model.
        for table in published.all.suffix(40) {
            let fresh = RoutingTable(model: table.model, generation: 0)
            for vhost in table.model.virtualHosts {
                guard case let .exact(host) = vhost.host else { continue }
                #expect(addresses(table, host: host) == addresses(fresh, host: host), "seed \(seed): \(host) in generation \(table.generation)")
            }
        }
    }
}

/// Seeded pseudo-random choices (SplitMix64), so a failing seed replays.
private struct Dice {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    /// A number in `0...count`.
    mutating func upTo(_ count: Int) -> Int { Int(next() % UInt64(count + 1)) }
    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(next() % UInt64(choices.count))] }
    mutating func chance(_ percent: UInt64) -> Bool { next() % 100 < percent }
}
