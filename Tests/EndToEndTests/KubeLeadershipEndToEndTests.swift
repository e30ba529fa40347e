import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Leader election, Ingress status and Events against the fake API server.
    @Suite struct KubernetesLeadership {
        typealias Cluster = Kubernetes.Cluster

        /// `status.loadBalancer.ingress` of an Ingress in the fake, as "ip" / "hostname" strings.
        static func statusAddresses(_ api: FakeKubeAPIServer, _ name: String, namespace: String = "default") -> [String] {
            let object = api.object(resource: "ingresses", namespace: namespace, name: name)
            let status = object?["status"] as? [String: Any]
            let entries = (status?["loadBalancer"] as? [String: Any])?["ingress"] as? [[String: Any]] ?? []
            return entries.compactMap { ($0["ip"] ?? $0["hostname"]) as? String }
        }

        static func leaseHolder(_ api: FakeKubeAPIServer) -> String? {
            let lease = api.object(resource: "leases", namespace: "ingress-system", name: "postern-leader")
            let holder = (lease?["spec"] as? [String: Any])?["holderIdentity"] as? String
            return holder?.isEmpty == false ? holder : nil
        }

        static func statusWriters(_ api: FakeKubeAPIServer) -> Set<String> {
            Set(api.requests.filter { $0.method == "PATCH" && $0.path.hasSuffix("/status") }.map { $0.headers["user-agent"] ?? "" })
        }

        @Test func twoReplicasElectOneLeaderThatAloneWritesStatusAndKillingItHandsOver() throws {
            let cluster = try Cluster(startPostern: false)
            let arguments = ["--publish-status-address", "203.0.113.10", "--leader-election-timing", "3,2,0.5"]
            let first = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: arguments)
            let second = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: arguments)
            #expect(secondsUntil(timeout: 10) { Self.statusAddresses(cluster.api, "main") == ["203.0.113.10"] } != nil)
            let holder = try #require(Self.leaseHolder(cluster.api))
            let leader = holder.hasSuffix("-\(first.child.pid)") ? first : second
            let follower = leader === first ? second : first
            #expect(holder.hasSuffix("-\(leader.child.pid)"))
            // Both replicas serve traffic; only the leader wrote status.
            #expect(secondsUntil(timeout: 10) { first.probe(host: "a.example.com").backend == "a" } != nil)
            #expect(secondsUntil(timeout: 10) { second.probe(host: "a.example.com").backend == "a" } != nil)
            #expect(Self.statusWriters(cluster.api) == ["postern/0.1 (\(holder))"])
            // /metrics says who leads, and that the lists completed.
            func metrics(_ replica: KubePosternProcess) -> String {
                (try? HTTPClient.request(port: replica.adminPort, path: "/metrics").bodyText) ?? ""
            }
            #expect(metrics(leader).contains("postern_leader 1\n"))
            #expect(metrics(follower).contains("postern_leader 0\n"))
            #expect(metrics(leader).contains("postern_kube_lists_total{resource="))
            #expect(!metrics(leader).contains("postern_ingress_status_writes_total 0\n"))

            leader.child.signal(SIGKILL)
            _ = leader.child.waitForExit(timeout: 5)
            let handover = secondsUntil(timeout: 10) {
                Self.leaseHolder(cluster.api).map { $0.hasSuffix("-\(follower.child.pid)") } == true
            }
            #expect(handover != nil)
            // Lease duration 3 s, retry 0.5 s: the follower takes over once the lease expired.
            #expect((handover ?? 99) < 3 + 0.5 + 1)
            let newHolder = try #require(Self.leaseHolder(cluster.api))
            // The new leader now keeps status: a status wiped by someone else comes back.
            try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a")]))
            #expect(secondsUntil(timeout: 5) { Self.statusAddresses(cluster.api, "main") == ["203.0.113.10"] } != nil)
            #expect(Self.statusWriters(cluster.api) == ["postern/0.1 (\(holder))", "postern/0.1 (\(newHolder))"])
            #expect(follower.probe(host: "a.example.com").backend == "a")
            print("kube leader handover: \(handover ?? -1) s after SIGKILL (lease 3 s, retry 0.5 s)")
        }

        @Test func statusAddressesFollowThePublishServiceAndAreClearedOnShutdown() throws {
            let cluster = try Cluster(startPostern: false)
            try cluster.api.apply(KubeObjects.loadBalancerService("postern", namespace: "ingress-system", ip: "198.51.100.7"))
            // An Ingress of another class that carries our address from before.
            let foreign = KubeObjects.ingress("foreign", rules: [("f.example.com", "/", "svc-a")])
                .replacingOccurrences(of: #""ingressClassName":"postern""#, with: #""ingressClassName":"other""#)
                .replacingOccurrences(of: #""spec":"#, with: #""status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"},{"ip":"192.0.2.1"}]}},"spec":"#)
            try cluster.api.apply(foreign)
            let postern = try KubePosternProcess(
                kubeconfig: cluster.kubeconfig,
                extraArguments: ["--publish-service", "ingress-system/postern", "--update-status-on-shutdown", "--leader-election-timing", "3,2,0.5"])
            #expect(secondsUntil(timeout: 10) { Self.statusAddresses(cluster.api, "main") == ["198.51.100.7"] } != nil)
            // Removed from the Ingress it does not serve; the other controller's address stays.
            #expect(secondsUntil(timeout: 5) { Self.statusAddresses(cluster.api, "foreign") == ["192.0.2.1"] } != nil)
            // The Service's load balancer moves: status follows.
            try cluster.api.apply(KubeObjects.loadBalancerService("postern", namespace: "ingress-system", ip: "198.51.100.8"))
            #expect(secondsUntil(timeout: 5) { Self.statusAddresses(cluster.api, "main") == ["198.51.100.8"] } != nil)
            // A new Ingress gets the address too.
            try cluster.api.apply(KubeObjects.ingress("new", rules: [("n.example.com", "/", "svc-a")]))
            #expect(secondsUntil(timeout: 5) { Self.statusAddresses(cluster.api, "new") == ["198.51.100.8"] } != nil)
            postern.child.signal(SIGTERM)
            #expect(postern.child.waitForExit(timeout: 40) == 0)
            #expect(Self.statusAddresses(cluster.api, "main").isEmpty)
            #expect(Self.statusAddresses(cluster.api, "new").isEmpty)
            // The Lease was released for the next replica.
            #expect(Self.leaseHolder(cluster.api) == nil)
        }

        @Test func problemsPresentAtStartUpBecomeEventsOnceALeaderIsElected() throws {
            let cluster = try Cluster(startPostern: false)
            try cluster.api.apply(KubeObjects.ingress("broken", rules: [("b.example.com", "nope", "svc-a")]))
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig)
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            let found = secondsUntil(timeout: 10) {
                cluster.api.objects(resource: "events").contains { ($0["regarding"] as? [String: Any])?["name"] as? String == "broken" }
            }
            #expect(found != nil)
            Thread.sleep(forTimeInterval: 0.5)
            #expect(cluster.api.objects(resource: "events").count == 1)
        }

        @Test func publishServiceOutsideTheWatchedNamespacesIsWatchedByName() throws {
            let cluster = try Cluster(startPostern: false)
            try cluster.api.apply(KubeObjects.loadBalancerService("postern", namespace: "ingress-system", ip: "198.51.100.9"))
            try cluster.api.apply(KubeObjects.service("unrelated", namespace: "ingress-system"))
            let postern = try KubePosternProcess(
                kubeconfig: cluster.kubeconfig,
                extraArguments: ["--watch-namespace", "default", "--publish-service", "ingress-system/postern", "--leader-election-timing", "3,2,0.5"])
            #expect(secondsUntil(timeout: 10) { Self.statusAddresses(cluster.api, "main") == ["198.51.100.9"] } != nil)
            #expect(postern.probe(host: "a.example.com").backend == "a")
            let servicePaths = Set(cluster.api.requests.filter { $0.path.hasSuffix("/services") }.map { "\($0.path)?\($0.query["fieldSelector"] ?? "")" })
            #expect(servicePaths == ["/api/v1/namespaces/default/services?", "/api/v1/namespaces/ingress-system/services?metadata.name=postern"])
        }

        @Test func invalidIngressProducesOneWarningEventAndLeavesTheOthersServed() throws {
            let cluster = try Cluster()
            let postern = cluster.postern!
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            let broken = KubeObjects.ingress("broken", rules: [("b.example.com", "nope", "svc-a")])
            try cluster.api.apply(broken)
            func warnings() -> [[String: Any]] {
                cluster.api.objects(resource: "events").filter {
                    ($0["regarding"] as? [String: Any])?["name"] as? String == "broken" && $0["type"] as? String == "Warning"
                }
            }
            #expect(secondsUntil(timeout: 5) { !warnings().isEmpty } != nil)
            let event = try #require(warnings().first)
            #expect(event["reason"] as? String == "InvalidPath")
            #expect((event["note"] as? String)?.contains("must start with") == true)
            #expect((event["regarding"] as? [String: Any])?["kind"] as? String == "Ingress")
            #expect((event["regarding"] as? [String: Any])?["uid"] as? String != nil)
            #expect(event["reportingController"] as? String == "postern.dev/ingress-controller")
            // The other Ingress is untouched.
            #expect(postern.probe(host: "a.example.com").backend == "a")
            // The same problem again (a no-op update, other changes around it) is not reported twice.
            for index in 0..<5 {
                try cluster.api.apply(broken)
                try cluster.api.apply(KubeObjects.ingress("main", rules: [("a.example.com", "/", "svc-a"), ("x\(index).example.com", "/", "svc-a")]))
                Thread.sleep(forTimeInterval: 0.2)
            }
            #expect(secondsUntil(timeout: 2) { postern.probe(host: "x4.example.com").backend == "a" } != nil)
            #expect(warnings().count == 1)
        }
    }
}
