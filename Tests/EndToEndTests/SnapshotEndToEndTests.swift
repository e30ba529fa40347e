import Foundation
import Testing

extension EndToEndTests {
    /// The routing table and the certificates (redirects, client-certificate
    /// hosts) are one snapshot: a host that moves between plain HTTP on a
    /// public backend and TLS with required client certificates on a
    /// protected one, in one change, never has its protected backend
    /// answer a client without a certificate, whatever moment a request
    /// arrives at.
    @Suite struct PublishedSnapshot {
        final class Observations: @unchecked Sendable {
            private let lock = NSLock()
            private var seen: [String: Int] = [:]
            private var running = true
            func record(_ outcome: String) { lock.withLock { seen[outcome, default: 0] += 1 } }
            func stop() { lock.withLock { running = false } }
            var isRunning: Bool { lock.withLock { running } }
            var counts: [String: Int] { lock.withLock { seen } }
        }

        @Test func aHostMovingBetweenPlainAndClientCertificatesNeverReachesItsProtectedBackendWithoutOne() throws {
            let pki = try TestPKI()
            let clients = try TestPKI()
            let server = try pki.leaf(["m.test"])
            let protected = try EchoBackend(name: "protected")
            let open = try EchoBackend(name: "public")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            let clientCA = try String(contentsOfFile: clients.caPath, encoding: .utf8)
            try manifests.write(
                "backends.yaml",
                Manifests.service("protected", ports: [protected.port]) + Manifests.service("public", ports: [open.port])
                    + TestPKI.secret("m-tls", certificate: server.certificate, key: server.key)
                    + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: client-ca, namespace: default}\nstringData:\n  ca.crt: |\n"
                    + clientCA.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n")
            let secured = tlsIngress(
                "m", tls: [(["m.test"], "m-tls")], hosts: ["m.test"], service: "protected",
                annotations: [
                    "nginx.ingress.kubernetes.io/auth-tls-secret": "default/client-ca",
                    "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on",
                ])
            let plain = Manifests.ingress("m", rules: [("m.test", "/", "Prefix", "public")])
            try manifests.write("ingress.yaml", secured)
            let postern = try PosternProcess(manifests: manifests)

            // Plain HTTP and HTTPS without a client certificate, as fast as they go.
            let observations = Observations()
            let plainClient = Thread {
                var sent = 0
                while observations.isRunning && sent < 20_000 {
                    sent += 1
                    guard let response = try? HTTPClient.request(port: postern.port, path: "/", host: "m.test") else {
                        observations.record("http error")
                        continue
                    }
                    let name = response.status == 200 ? ((try? response.json())?["name"] as? String ?? "?") : "-"
                    observations.record("http \(response.status) \(name)")
                }
            }
            let tlsClient = Thread {
                var sent = 0
                while observations.isRunning && sent < 2_000 {
                    sent += 1
                    let result = try? runCommand(
                        "/usr/bin/curl",
                        ["-s", "-k", "--max-time", "5", "--resolve", "m.test:\(postern.httpsPort):127.0.0.1", "https://m.test:\(postern.httpsPort)/"])
                    let body = result?.stdout ?? ""
                    observations.record(body.contains("\"protected\"") ? "https protected" : body.contains("\"public\"") ? "https public" : "https refused")
                }
            }
            plainClient.start()
            tlsClient.start()
            defer { observations.stop() }
            for round in 0..<6 {
                try manifests.write("ingress.yaml", round % 2 == 0 ? plain : secured)
                let expected = round % 2 == 0 ? "http 200 public" : "http 308 -"
                let switched = secondsUntil(timeout: 10) {
                    (try? HTTPClient.request(port: postern.port, path: "/", host: "m.test")).map {
                        "http \($0.status) \($0.status == 200 ? ((try? $0.json())?["name"] as? String ?? "?") : "-")"
                    } == expected
                }
                #expect(switched != nil, "round \(round): \(expected)")
                Thread.sleep(forTimeInterval: 0.2)
            }
            observations.stop()
            Thread.sleep(forTimeInterval: 0.5)
            let counts = observations.counts
            print("published snapshot: requests seen during 6 switches: \(counts.sorted { $0.key < $1.key })")
            #expect(counts["http 200 protected", default: 0] == 0, "the protected backend answered plain HTTP: \(counts)")
            #expect(counts["https protected", default: 0] == 0, "the protected backend answered without a client certificate: \(counts)")
            #expect(counts["http 200 public", default: 0] > 0 && counts["http 308 -", default: 0] > 0, "both states were seen: \(counts)")
            #expect(Set(counts.keys).isSubset(of: ["http 200 public", "http 308 -", "https public", "https refused"]), "\(counts)")
        }
    }
}
