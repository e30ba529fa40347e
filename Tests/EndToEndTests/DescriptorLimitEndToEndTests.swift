import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Running out of file descriptors is visible (a log line per second, a
    /// metric), never a busy loop, and never silences the admin endpoint.
    @Suite struct DescriptorLimit {
        /// `postern run` under `prlimit --nofile=LIMIT`, with its three ports.
        final class LimitedPostern: @unchecked Sendable {
            let child: ChildProcess
            let port: UInt16
            let adminPort: UInt16

            init(manifests: ManifestFolder, descriptorLimit: Int) throws {
                child = try ChildProcess(
                    executable: "/usr/bin/prlimit",
                    arguments: [
                        "--nofile=\(descriptorLimit):\(descriptorLimit)", Paths.product("postern"), "run", "--manifests", manifests.path,
                        "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0",
                        "--workers", "2",
                    ], label: "postern-nofile")
                port = try child.waitForListeningPort()
                adminPort = try child.waitForListeningPort(prefix: "admin listening on ")
            }

            /// A metric sample from /metrics (the admin endpoint must answer).
            func metric(_ sample: String) throws -> Double? {
                let response = try HTTPClient.request(port: adminPort, path: "/metrics")
                for line in response.bodyText.split(separator: "\n") where line.hasPrefix(sample + " ") {
                    return Double(line.split(separator: " ").last ?? "")
                }
                return nil
            }
        }

        @Test func clientsBeyondTheLimitAreRefusedLoggedAndCountedWhileAdminAnswers() throws {
            let backend = try EchoBackend(name: "nofile")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml", Manifests.service("app", ports: [backend.port]) + Manifests.ingress("any", rules: [(nil, "/", "Prefix", "app")]))
            let postern = try LimitedPostern(manifests: manifests, descriptorLimit: 256)
            #expect(try HTTPClient.request(port: postern.port, path: "/before").status == 200)

            // More connections than the process may hold; the kernel
            // completes them all into the listen backlog.
            var clients: [RawConnection] = []
            for _ in 0..<400 { clients.append(try RawConnection(port: postern.port, timeoutSeconds: 5)) }
            usleep(1_500_000)

            // The admin endpoint answers while the proxy is out of descriptors.
            let health = try HTTPClient.request(port: postern.adminPort, path: "/healthz")
            #expect(health.status == 200)
            let refused = try postern.metric("postern_descriptor_exhaustion_total{side=\"accept\"}") ?? 0
            #expect(refused >= 1, "no refused connection counted")
            let log = postern.child.stderrText
            #expect(log.contains("out of file descriptors"), "\(log.suffix(1500))")
            #expect(log.contains("limit=256"))
            // The directory watch still lists the manifests.
            #expect(!log.contains("cannot list manifest directory"), "\(log.suffix(1500))")
            // Accepting pauses instead of spinning on the pending connections.
            let cpuBefore = postern.child.cpuSeconds()
            usleep(2_000_000)
            let cpuUsed = postern.child.cpuSeconds() - cpuBefore
            #expect(cpuUsed < 1.0, "\(cpuUsed) CPU seconds in 2 s while out of descriptors")
            // At most one line per second per worker.
            let lines = postern.child.stderrText.components(separatedBy: "out of file descriptors").count - 1
            #expect(lines <= 2 * 6, "\(lines) log lines in about 4 s")

            // Once the clients are gone, requests succeed again.
            clients.removeAll()
            var status = 0
            let deadline = Date().addingTimeInterval(10)
            while status != 200, Date() < deadline {
                status = (try? HTTPClient.request(port: postern.port, path: "/after").status) ?? 0
                if status != 200 { usleep(200_000) }
            }
            #expect(status == 200)
        }
    }
}
