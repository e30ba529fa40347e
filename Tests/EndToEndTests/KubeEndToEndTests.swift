import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// `postern run --kubeconfig` against the fake API server: the real
    /// binary, real echo backends, the real list/watch protocol.
    @Suite struct Kubernetes {
        /// A fake API server holding the IngressClass, `svc-a` → backend a and
        /// an Ingress `main` (a.example.com / → svc-a); Postern watching it.
        final class Cluster: @unchecked Sendable {
            let api = FakeKubeAPIServer(bookmarkInterval: 0.5)
            let backendA: EchoBackend
            let backendB: EchoBackend
            let kubeconfig: KubeconfigFile
            var postern: KubePosternProcess!

            init(startPostern: Bool = true, extraArguments: [String] = []) throws {
                backendA = try EchoBackend(name: "a")
                backendB = try EchoBackend(name: "b")
                try api.start()
                api.acceptedTokens = ["token-1"]
                try api.apply(KubeObjects.ingressClass())
                try api.apply(KubeObjects.service("svc-a"))
                try api.apply(KubeObjects.endpointSlice("svc-a", port: backendA.port))
                try api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a")]))
                kubeconfig = try KubeconfigFile(port: api.port)
                if startPostern { postern = try KubePosternProcess(kubeconfig: kubeconfig, extraArguments: extraArguments) }
            }

            deinit {
                postern = nil
                api.stop()
            }
        }

        @Test func servesTheClusterOnlyAfterEveryInitialListCompleted() throws {
            let cluster = try Cluster(startPostern: false)
            // Secrets are forbidden at first: that list cannot complete.
            cluster.api.forbiddenPathPrefixes = ["/api/v1/secrets"]
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig)
            Thread.sleep(forTimeInterval: 1.5)
            #expect(postern.readiness() == 503)
            #expect(postern.probe(host: "a.example.com").status == 404)
            cluster.api.forbiddenPathPrefixes = []
            #expect(secondsUntil(timeout: 10) { postern.readiness() == 200 } != nil)
            #expect(postern.probe(host: "a.example.com").backend == "a")
            // Every request used the real paths, with the token and the TLS-secret field selector.
            let requests = cluster.api.requests
            #expect(requests.allSatisfy { $0.headers["authorization"] == "Bearer token-1" })
            #expect(requests.contains { $0.path == "/api/v1/secrets" && $0.query["fieldSelector"] == "type=kubernetes.io/tls" })
            for path in ["/apis/networking.k8s.io/v1/ingresses", "/apis/networking.k8s.io/v1/ingressclasses", "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"] {
                #expect(requests.contains { $0.path == path && $0.query["watch"] == "1" && $0.query["allowWatchBookmarks"] == "true" })
            }
        }

        @Test func createUpdateAndDeleteOfEachKindReachRoutingWithinOneSecond() throws {
            let cluster = try Cluster()
            let postern = cluster.postern!
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            var timings: [String: Double] = [:]
            func measure(_ step: String, _ condition: () -> Bool) {
                let seconds = secondsUntil(timeout: 3, condition)
                #expect(seconds != nil, "\(step) never reached routing")
                if let seconds {
                    #expect(seconds < 1, "\(step) took \(seconds) s")
                    timings[step] = seconds
                }
            }
            // Service and EndpointSlice created, then an Ingress update that uses them.
            try cluster.api.apply(KubeObjects.service("svc-b"))
            try cluster.api.apply(KubeObjects.endpointSlice("svc-b", port: cluster.backendB.port))
            try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a"), ("a.example.com", "/b", "svc-b")]))
            measure("Ingress update") { postern.probe(host: "a.example.com", path: "/b").backend == "b" }
            // Ingress created.
            try cluster.api.apply(KubeObjects.ingress("second", rules: [("second.example.com", "/", "svc-b")]))
            measure("Ingress create") { postern.probe(host: "second.example.com").backend == "b" }
            // EndpointSlice update: svc-a now points at backend b.
            try cluster.api.apply(KubeObjects.endpointSlice("svc-a", port: cluster.backendB.port))
            measure("EndpointSlice update") { postern.probe(host: "a.example.com").backend == "b" }
            // EndpointSlice delete: svc-a has no endpoints.
            cluster.api.delete(resource: "endpointslices", namespace: "default", name: "svc-a-0")
            measure("EndpointSlice delete") { postern.probe(host: "a.example.com").status == 503 }
            // Service delete.
            cluster.api.delete(resource: "services", namespace: "default", name: "svc-b")
            measure("Service delete") { postern.probe(host: "second.example.com").status == 503 }
            // Service create again.
            try cluster.api.apply(KubeObjects.service("svc-b"))
            measure("Service create") { postern.probe(host: "second.example.com").backend == "b" }
            // Ingress delete.
            cluster.api.delete(resource: "ingresses", namespace: "default", name: "second")
            measure("Ingress delete") { postern.probe(host: "second.example.com").status == 404 }
            // IngressClass update: the class is no longer Postern's.
            try cluster.api.apply(KubeObjects.ingressClass(controller: "example.com/other"))
            measure("IngressClass update") { postern.probe(host: "a.example.com", path: "/b").status == 404 }
            try cluster.api.apply(KubeObjects.ingressClass())
            measure("IngressClass restore") { postern.probe(host: "a.example.com", path: "/b").backend == "b" }
            print("kube propagation seconds: \(timings.sorted { $0.key < $1.key })")
        }

        @Test func watchExpiryRelistsWithoutAGapInService() throws {
            let cluster = try Cluster()
            let postern = cluster.postern!
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            let listsBefore = cluster.api.requests.filter { $0.query["watch"] == nil && $0.method == "GET" }.count
            let traffic = TrafficProbe(postern: postern, host: "a.example.com", expectBackend: "a")
            for _ in 0..<3 {
                Thread.sleep(forTimeInterval: 0.7)
                cluster.api.compact()
            }
            Thread.sleep(forTimeInterval: 1.5)
            let result = traffic.finish()
            #expect(result.failures.isEmpty, "\(result.failures.prefix(5))")
            #expect(result.successes > 20)
            let listsAfter = cluster.api.requests.filter { $0.query["watch"] == nil && $0.method == "GET" }.count
            // Every one of the five watched resources listed again after each 410.
            #expect(listsAfter - listsBefore >= 15)
            // And changes still arrive after the relists.
            try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a"), ("after.example.com", "/", "svc-a")]))
            #expect(secondsUntil(timeout: 2) { postern.probe(host: "after.example.com").backend == "a" } != nil)
        }

        @Test func apiServerOutageOfThirtySecondsLeavesTrafficUntouchedAndCatchesUp() throws {
            let cluster = try Cluster()
            let postern = cluster.postern!
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            let traffic = TrafficProbe(postern: postern, host: "a.example.com", expectBackend: "a")
            cluster.api.stop()
            // Changes made while Postern cannot see them.
            try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a"), ("later.example.com", "/", "svc-a")]))
            Thread.sleep(forTimeInterval: 30)
            #expect(postern.readiness() == 200)
            try cluster.api.start()
            let caughtUp = secondsUntil(timeout: 20) { postern.probe(host: "later.example.com").backend == "a" }
            let result = traffic.finish()
            #expect(caughtUp != nil)
            #expect(result.failures.isEmpty, "\(result.failures.prefix(5))")
            #expect(result.successes > 300)
            print("kube outage: \(result.successes) requests answered during 30 s without the API server; caught up \(caughtUp ?? -1) s after it returned")
        }

        @Test func rotatedTokenFileIsPickedUp() throws {
            let cluster = try Cluster()
            let postern = cluster.postern!
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            // The API server now accepts only the new token; the file rotates; connections drop.
            cluster.api.acceptedTokens = ["token-2"]
            try cluster.kubeconfig.rotateToken("token-2")
            cluster.api.dropConnections()
            try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a"), ("rotated.example.com", "/", "svc-a")]))
            #expect(secondsUntil(timeout: 15) { postern.probe(host: "rotated.example.com").backend == "a" } != nil)
            #expect(cluster.api.requests.last?.headers["authorization"] == "Bearer token-2")
        }
    }
}
