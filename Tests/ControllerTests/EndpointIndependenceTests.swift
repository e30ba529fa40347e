@testable import Controller
import Foundation
import Kube
import RouteModel
import Routing
import Testing
import Translate

/// The endpoint path publishes without the translator: it neither waits for
/// a routes round that holds the translation, nor resolves a cluster any
/// differently from a full translation.
@Suite(.serialized) struct EndpointIndependenceTests {
    let ingresses = WatchedResource(kind: .ingress)
    let services = WatchedResource(kind: .service)
    let slices = WatchedResource(kind: .endpointSlice)
    let configMaps = WatchedResource(kind: .configMap)

    func ingress(_ name: String, host: String, service: String = "svc", port: ServiceBackendPort = ServiceBackendPort(number: 80),
                 annotations: [String: String] = [:]) -> KubeObject {
        .ingress(Ingress(
            metadata: ObjectMeta(name: name, annotations: annotations.merging(["kubernetes.io/ingress.class": "postern"]) { $1 }),
            spec: IngressSpec(rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [
                HTTPIngressPath(path: "/", pathType: "Prefix", backend: IngressBackend(service: IngressServiceBackend(name: service, port: port))),
            ]))])))
    }

    func service(_ name: String = "svc", ports: [ServicePort] = [ServicePort(name: "http", port: 80, targetPort: .int(8080))]) -> KubeObject {
        .service(Service(metadata: ObjectMeta(name: name), spec: ServiceSpec(ports: ports)))
    }

    func slice(_ name: String, service: String = "svc", addressType: String = "IPv4", endpoints: [EndpointSliceEndpoint],
               ports: [EndpointSlicePort]? = [EndpointSlicePort(name: "http", port: 8080)]) -> KubeObject {
        .endpointSlice(EndpointSlice(
            metadata: ObjectMeta(name: name, labels: [EndpointSlice.serviceNameLabel: service]), addressType: addressType,
            endpoints: endpoints, ports: ports))
    }

    func ready(_ addresses: [String]) -> [EndpointSliceEndpoint] {
        addresses.map { EndpointSliceEndpoint(addresses: [$0], conditions: EndpointConditions(ready: true)) }
    }

    func addresses(_ table: RoutingTable?, host: String) -> [String] {
        guard let table, case let .cluster(cluster) = table.route(host: host, path: "/") else { return [] }
        return cluster.endpoints.map { "\($0.address)" }
    }

    /// Blocks the routes round that reads a ConfigMap holding `block`, inside
    /// `reloadLock` (the loop asks the follower while it translates).
    final class Gate: @unchecked Sendable {
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var inside = false
        var isInside: Bool { lock.withLock { inside } }
        func pass(_ data: [String: String]?) {
            guard data?["block"] == "yes" else { return }
            lock.withLock { inside = true }
            entered.signal()
            release.wait()
            lock.withLock { inside = false }
        }
    }

    @Test func anEndpointChangeIsPublishedWhileARoutesRoundHoldsTheTranslation() throws {
        let store = KubeObjectStore(expected: [ingresses, services, slices, configMaps])
        let published = PublishedTables()
        let gate = Gate()
        let follower = ConfigMapFollower(namespace: "default", name: "settings") { configMap in
            gate.pass(configMap?.data)
            return ConfigMapFollower.Outcome(options: nil, diagnostics: [])
        }
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: .milliseconds(20), configMap: follower,
            publishSnapshot: { publication in
                if let table = publication.table { published.add(table) }
            }, report: { _ in })
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([ingress("web", host: "web.example.com")]), from: ingresses)
        store.apply(.replaced([service()]), from: services)
        store.apply(.replaced([slice("svc-0", endpoints: ready(["10.0.0.1"]))]), from: slices)
        store.apply(.replaced([]), from: configMaps)
        #expect(waitUntil(10) { addresses(published.all.last, host: "web.example.com") == ["10.0.0.1"] })

        // A routes round starts and stays inside the translation step.
        store.apply(.upserted(.configMap(ConfigMap(metadata: ObjectMeta(name: "settings"), data: ["block": "yes"]))), from: configMaps)
        store.apply(.upserted(ingress("other", host: "other.example.com")), from: ingresses)
        #expect(gate.entered.wait(timeout: .now() + 10) == .success, "the routes round never asked for the ConfigMap")
        // The endpoint change goes out while that round is held.
        store.apply(.upserted(slice("svc-0", endpoints: ready(["10.0.0.2"]))), from: slices)
        let publishedWhileHeld = waitUntil(5) { addresses(published.all.last, host: "web.example.com") == ["10.0.0.2"] }
        #expect(publishedWhileHeld, "the endpoint change waited for the routes round")
        #expect(gate.isInside)
        let heldTables = published.all.count
        gate.release.signal()

        // The held round then publishes its Ingress with the new endpoints, not the ones it translated before.
        #expect(waitUntil(10) { published.all.last?.model.virtualHosts.count == 2 })
        let later = Array(published.all.dropFirst(heldTables - 1))
        #expect(later.allSatisfy { addresses($0, host: "web.example.com") == ["10.0.0.2"] }, "\(later.map { addresses($0, host: "web.example.com") })")
        #expect(addresses(published.all.last, host: "other.example.com") == ["10.0.0.2"])
        #expect(waitUntil(5) { published.all.last?.model == translate(store.snapshot(), options: TranslateOptions()).model })
    }

    /// Ports by number, by name, by a name the slice does not carry, a
    /// missing port; HTTPS and gRPC upstreams (cluster names with a suffix);
    /// endpoints ready, not ready, terminating, not numeric; slices of
    /// another address type; a missing Service.
    @Test(arguments: 0..<16)
    func theEndpointPathResolvesClustersAsAFullTranslationDoes(seed: Int) throws {
        var random = SplitMix64(seed: UInt64(seed) &+ 7)
        let names = ["a", "b", "c"]
        var objects: [KubeObject] = []
        let ports = [
            ServicePort(name: "http", port: 80, targetPort: .int(8080)),
            ServicePort(name: "grpc", port: 81, targetPort: .string("grpc")),
            ServicePort(port: 82),
        ]
        let references = [ServiceBackendPort(number: 80), ServiceBackendPort(name: "http"), ServiceBackendPort(number: 81),
                          ServiceBackendPort(name: "grpc"), ServiceBackendPort(number: 82), ServiceBackendPort(number: 99)]
        let protocols = [nil, "HTTPS", "GRPC", "GRPCS"]
        for (index, name) in names.enumerated() where index < 2 || random.next() % 2 == 0 {
            objects.append(service(name, ports: ports))
        }
        var hosts = 0
        for name in names {
            for reference in references {
                var annotations: [String: String] = [:]
                if let wire = protocols[Int(random.next() % 4)] {
                    annotations["nginx.ingress.kubernetes.io/backend-protocol"] = wire
                }
                objects.append(ingress("i\(hosts)", host: "h\(hosts).example.com", service: name, port: reference, annotations: annotations))
                hosts += 1
            }
        }
        func randomSlices(_ name: String, step: Int) -> [KubeObject] {
            (0..<Int(random.next() % 3)).map { part in
                let endpoints = (0..<Int(random.next() % 3)).map { index -> EndpointSliceEndpoint in
                    let address = random.next() % 8 == 0 ? "pod.example" : "10.\(step).\(part).\(index + 1)"
                    let conditions = [EndpointConditions(ready: true), EndpointConditions(), EndpointConditions(ready: false),
                                      EndpointConditions(ready: true, terminating: true)][Int(random.next() % 4)]
                    return EndpointSliceEndpoint(addresses: [address], conditions: conditions)
                }
                let slicePorts: [EndpointSlicePort]? = random.next() % 4 == 0
                    ? nil : [EndpointSlicePort(name: "http", port: 8080 + step), EndpointSlicePort(name: "grpc", port: 9090)]
                return slice("\(name)-\(part)", service: name, addressType: random.next() % 6 == 0 ? "FQDN" : "IPv4",
                             endpoints: endpoints, ports: slicePorts)
            }
        }
        let before = objects + names.flatMap { randomSlices($0, step: 1) }
        let after = objects + names.flatMap { randomSlices($0, step: 2) }
        let old = translate(ObjectSnapshot(objects: before), options: TranslateOptions()).model
        let new = translate(ObjectSnapshot(objects: after), options: TranslateOptions()).model

        let view = EndpointView(after)
        var patched: [String: Cluster] = [:]
        for name in names {
            var object: Service? = nil
            for case let .service(candidate) in after where candidate.metadata.name == name { object = candidate }
            for cluster in view.changedClusters(of: "default/\(name)", object: object, in: old) { patched[cluster.name] = cluster }
        }
        #expect(old.clusters.count == new.clusters.count)
        let result = old.clusters.map { patched[$0.name] ?? $0 }
        #expect(result == new.clusters, "seed \(seed)")
        // Not vacuous: the endpoints did move.
        #expect(!patched.isEmpty || old.clusters == new.clusters)
        #expect(old.clusters.contains { $0.name.contains(" via ") })
    }

    /// After a bulk delete the view's tables give their room back: a Swift
    /// dictionary keeps its capacity after removals unless rebuilt.
    @Test func theViewShrinksAfterABulkDeleteAndKeepsWhatIsLeft() {
        var view = EndpointView()
        for index in 0..<5_000 {
            _ = view.apply(slice("s\(index)", service: "svc\(index)", endpoints: ready(["10.0.\(index / 250).\(index % 250 + 1)"])))
        }
        let grown = view.slicesByService.capacity
        #expect(grown >= 5_000)
        for index in 10..<5_000 {
            _ = view.remove(ObjectKey(kind: WatchedKind.endpointSlice.rawValue, namespace: "default", name: "s\(index)"))
        }
        #expect(view.slicesByService.capacity == grown)  // removals alone keep the room
        view.compactIfSparse()
        #expect(view.slicesByService.capacity < 100)
        #expect(view.slicesByService.count == 10)
        #expect(view.slicesByService["default/svc3"]?.map(\.metadata.name) == ["s3"])
        // A view that is still full is left as it is.
        var full = EndpointView()
        for index in 0..<2_000 { _ = full.apply(slice("s\(index)", service: "svc\(index)", endpoints: ready(["10.1.0.1"]))) }
        let capacity = full.slicesByService.capacity
        full.compactIfSparse()
        #expect(full.slicesByService.capacity == capacity)
    }
}
