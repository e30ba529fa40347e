import FakeKubeAPI
import Foundation
import Testing

extension EndToEndTests {
    /// A namespace's worth of objects deleted at once, through the real
    /// binary and the fake API server's watch path.
    @Suite struct KubernetesBulkDelete {
        static let count = 1500

        /// `count` Ingresses `d-I` (host `dI.doomed.example.com`) in namespace
        /// `doomed`, each with its own Service and EndpointSlice (backend b),
        /// written as kubectl leaves them (last-applied annotation, managedFields).
        static func populate(_ api: FakeKubeAPIServer, port: UInt16) throws {
            for index in 0..<count {
                let service = "svc-\(index)"
                try api.apply(KubeObjects.service(service, namespace: "doomed"))
                try api.apply(KubeObjects.endpointSlice(service, port: port, namespace: "doomed"))
                let ingress = KubeObjects.ingress("d-\(index)", namespace: "doomed", rules: [("d\(index).doomed.example.com", "/", service)])
                let lastApplied = ingress.replacingOccurrences(of: "\"", with: "\\\"")
                try api.apply(ingress.replacingOccurrences(
                    of: #""namespace":"doomed"}"#,
                    with: #""namespace":"doomed","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"\#(lastApplied)"},"managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update"}]}"#))
                if index % 50 == 49 { usleep(1000) }
            }
        }

        @Test func deletingANamespaceOfIngressesStopsRoutingThemAndLeavesTheRestServing() throws {
            let cluster = try EndToEndTests.Kubernetes.Cluster()
            let postern = try #require(cluster.postern)
            #expect(secondsUntil(timeout: 30) { postern.readiness() == 200 } != nil)
            try Self.populate(cluster.api, port: cluster.backendB.port)
            let sampled = ["d0.doomed.example.com", "d\(Self.count / 2).doomed.example.com", "d\(Self.count - 1).doomed.example.com"]
            #expect(secondsUntil(timeout: 60) { sampled.allSatisfy { postern.probe(host: $0).backend == "b" } } != nil)

            let traffic = TrafficProbe(postern: postern, host: "a.example.com", expectBackend: "a")
            // The order of a namespace deletion: every Ingress by name, then the rest.
            let names = (0..<Self.count).map { "\($0)" }.sorted()
            for (position, name) in names.enumerated() {
                cluster.api.delete(resource: "ingresses", namespace: "doomed", name: "d-\(name)")
                if position % 50 == 49 { usleep(1000) }
            }
            #expect(secondsUntil(timeout: 30) { sampled.allSatisfy { postern.probe(host: $0).status == 404 } } != nil,
                    "deleted hosts kept being routed")
            for name in names {
                cluster.api.delete(resource: "services", namespace: "doomed", name: "svc-\(name)")
                cluster.api.delete(resource: "endpointslices", namespace: "doomed", name: "svc-\(name)-0")
            }
            Thread.sleep(forTimeInterval: 1)
            let result = traffic.finish()
            #expect(result.failures.isEmpty, "the Ingress outside the namespace failed: \(result.failures.prefix(3))")
            #expect(result.successes > 0)
            #expect(postern.readiness() == 200)
            #expect(postern.probe(host: "a.example.com").backend == "a")
            #expect(postern.probe(host: sampled[0]).status == 404)
        }
    }
}
