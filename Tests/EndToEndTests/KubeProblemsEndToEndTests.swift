import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// A missing RBAC permission or a lost leader Lease must not go unseen:
    /// an error log line, a metric, and a line in /readyz's body (readiness
    /// itself stays 200: the replica keeps serving its last good table).
    @Suite struct KubernetesProblems {
        typealias Cluster = Kubernetes.Cluster

        static func metric(_ postern: KubePosternProcess, _ name: String) -> Double? {
            guard let response = try? HTTPClient.request(port: postern.adminPort, path: "/metrics") else { return nil }
            for line in response.bodyText.split(separator: "\n") where line.hasPrefix(name + " ") {
                return Double(line.split(separator: " ").last ?? "")
            }
            return nil
        }

        /// The JSON log lines at `level` whose message or fields mention `text`.
        static func logLines(_ postern: KubePosternProcess, level: String, containing text: String) -> [[String: Any]] {
            postern.child.stderrText.split(separator: "\n").compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
                guard object["level"] as? String == level, line.contains(text) else { return nil }
                return object
            }
        }

        @Test func forbiddenLeaseIsLoggedAsAnErrorCountedAndShownByReadyz() throws {
            let cluster = try Cluster(startPostern: false)
            cluster.api.forbiddenPathPrefixes = ["/apis/coordination.k8s.io/"]
            let postern = try KubePosternProcess(
                kubeconfig: cluster.kubeconfig, extraArguments: ["--log-format", "json", "--leader-election-timing", "3,2,0.5"])
            #expect(secondsUntil(timeout: 10) { (Self.metric(postern, "postern_kube_forbidden_total") ?? 0) >= 1 } != nil)
            // Still serving: the routing table does not depend on the Lease.
            #expect(secondsUntil(timeout: 10) { postern.readiness() == 200 } != nil)
            #expect(postern.probe(host: "a.example.com").backend == "a")
            let readyz = try HTTPClient.request(port: postern.adminPort, path: "/readyz")
            #expect(readyz.bodyText.contains("403 Forbidden"), "\(readyz.bodyText)")
            #expect(readyz.bodyText.contains("leases"), "\(readyz.bodyText)")
            #expect(!Self.logLines(postern, level: "error", containing: "answered 403").isEmpty, "\(postern.child.stderrText.suffix(2000))")
            #expect(Self.logLines(postern, level: "info", containing: "answered 403").isEmpty)
        }

        @Test func lostLeaseIsLoggedAsAnErrorCountedAndShownByReadyz() throws {
            let cluster = try Cluster(startPostern: false)
            let postern = try KubePosternProcess(
                kubeconfig: cluster.kubeconfig, extraArguments: ["--log-format", "json", "--leader-election-timing", "3,2,0.5"])
            #expect(secondsUntil(timeout: 10) { Self.metric(postern, "postern_leader") == 1 } != nil)
            #expect(Self.metric(postern, "postern_leader_lease_losses_total") == 0)
            // The API server stops letting this replica renew: after the renew deadline it steps down.
            cluster.api.forbiddenPathPrefixes = ["/apis/coordination.k8s.io/"]
            #expect(secondsUntil(timeout: 10) { Self.metric(postern, "postern_leader_lease_losses_total") == 1 } != nil)
            #expect(Self.metric(postern, "postern_leader") == 0)
            let readyz = try HTTPClient.request(port: postern.adminPort, path: "/readyz")
            #expect(readyz.status == 200)
            #expect(readyz.bodyText.contains("leader Lease was lost"), "\(readyz.bodyText)")
            #expect(!Self.logLines(postern, level: "error", containing: "lost the leader Lease").isEmpty, "\(postern.child.stderrText.suffix(2000))")
        }
    }
}
