import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// What a rolling update needs from the process: after SIGTERM it leaves
    /// the Service's endpoints (/readyz 503) while still serving the
    /// connections that kube-proxy and load balancers keep sending for a
    /// while, then drains; and it sizes its workers to the Pod's CPU quota.
    @Suite struct Rollout {
        static func proxy(extraArguments: [String], workers: Int? = 1) throws -> (PosternProcess, EchoBackend, ManifestFolder) {
            let backend = try EchoBackend(name: "a")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write("ing.yaml", Manifests.ingress("app", rules: [("app.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests, workers: workers ?? 1, extraArguments: extraArguments)
            return (postern, backend, manifests)
        }

        static func backendName(_ port: UInt16) -> String? {
            guard let response = try? HTTPClient.request(port: port, path: "/", host: "app.example.com"), response.status == 200 else { return nil }
            return (try? response.json())?["name"] as? String
        }

        @Test func afterSIGTERMReadinessFailsWhileNewConnectionsAreStillServedForTheGracePeriod() throws {
            let (postern, backend, manifests) = try Self.proxy(extraArguments: ["--shutdown-grace-period", "2"])
            defer { withExtendedLifetime((backend, manifests)) {} }
            #expect(try HTTPClient.request(port: postern.adminPort, path: "/readyz").status == 200)
            #expect(Self.backendName(postern.port) == "a")
            let signalled = Date()
            postern.child.signal(SIGTERM)
            // Out of the endpoints at once...
            let unready = secondsUntil(timeout: 1) { (try? HTTPClient.request(port: postern.adminPort, path: "/readyz").status) == 503 }
            #expect(unready != nil)
            let readyz = try HTTPClient.request(port: postern.adminPort, path: "/readyz")
            #expect(readyz.bodyText.contains("shutting down"), "\(readyz.bodyText)")
            // ...while new connections are still accepted and served.
            var served = 0
            while Date().timeIntervalSince(signalled) < 1.5 {
                if Self.backendName(postern.port) == "a" { served += 1 }
                usleep(100_000)
            }
            #expect(served >= 10, "new connections during the grace period: \(served) served")
            // After the grace period: listeners closed, the process exits 0.
            #expect(postern.child.waitForExit(timeout: 10) == 0)
            let elapsed = Date().timeIntervalSince(signalled)
            #expect(elapsed >= 2, "exited \(elapsed) s after SIGTERM, before the 2 s grace period ended")
            #expect((try? HTTPClient.request(port: postern.port, path: "/", host: "app.example.com")) == nil)
        }

        @Test func gracePeriodComesFromTheConfigFileAndASecondSignalEndsItEarly() throws {
            let backend = try EchoBackend(name: "a")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write("ing.yaml", Manifests.ingress("app", rules: [("app.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests, settings: "shutdown-grace-period: 30s\n", workers: 1)
            postern.child.signal(SIGTERM)
            #expect(secondsUntil(timeout: 1) { (try? HTTPClient.request(port: postern.adminPort, path: "/readyz").status) == 503 } != nil)
            #expect(Self.backendName(postern.port) == "a")
            let second = Date()
            postern.child.signal(SIGTERM)
            #expect(postern.child.waitForExit(timeout: 10) == 0)
            #expect(Date().timeIntervalSince(second) < 5, "a second SIGTERM did not cut the 30 s grace period short")
        }

        @Test func workersFollowTheCgroupCPUQuota() throws {
            let folder = NSTemporaryDirectory() + "postern-cgroup-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let cpuMax = folder + "/cpu.max"
            let cores = ProcessInfo.processInfo.activeProcessorCount
            // (cpu.max contents, workers expected)
            let cases: [(String, Int)] = [
                ("50000 100000\n", 1),  // half a CPU: rounded up to one worker
                ("1000 100000\n", 1),  // at least one
                ("max 100000\n", cores),  // no quota: one per CPU
                ("\(cores * 100000 + 1) 100000\n", cores),  // above the CPUs there are: one per CPU
            ]
            for (contents, expected) in cases {
                try contents.write(toFile: cpuMax, atomically: true, encoding: .utf8)
                let (postern, backend, manifests) = try Self.proxy(extraArguments: ["--cgroup-cpu-max", cpuMax, "--workers", "0"])
                defer { withExtendedLifetime((backend, manifests)) {} }
                #expect(try postern.metric("postern_worker_threads") == Double(expected), "cpu.max \(contents)")
                #expect(Self.backendName(postern.port) == "a")
            }
        }
    }
}
