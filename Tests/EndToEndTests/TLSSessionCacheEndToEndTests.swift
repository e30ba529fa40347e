import Foundation
import Testing

/// `openssl s_client` once, reading and writing a session file: sends one
/// request for `/` with `Connection: close` and reads until Postern closes,
/// so a TLS 1.3 ticket (sent after the handshake) has arrived by then however
/// slow the machine is. Returns s_client's stdout (session summary and response).
func sessionClient(
    port: UInt16, serverName: String, version: String, sessionIn: String? = nil, sessionOut: String? = nil, extra: String = ""
) throws -> String {
    var command = "openssl s_client -ign_eof -connect 127.0.0.1:\(port) -servername \(serverName) \(version) \(extra)"
    if let sessionIn { command += " -sess_in \(sessionIn)" }
    if let sessionOut { command += " -sess_out \(sessionOut)" }
    let request = "GET / HTTP/1.1\\r\\nHost: \(serverName)\\r\\nConnection: close\\r\\n\\r\\n"
    return try runCommand("/bin/bash", ["-c", "printf '\(request)' | timeout 20 \(command) 2>/dev/null"]).stdout
}

extension EndToEndTests {
    @Suite struct TLSSessionCache {
        /// Postern with one certificate for a.example.com and `settings`.
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init(settings: String) throws {
                pki = try TestPKI()
                backend = try EchoBackend(name: "cached")
                manifests = try ManifestFolder()
                let leaf = try pki.leaf(["a.example.com"], keyType: "rsa")
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                try manifests.write("secrets.yaml", TestPKI.secret("a", certificate: leaf.certificate, key: leaf.key))
                try manifests.write(
                    "ingress.yaml", tlsIngress("a", tls: [(["a.example.com"], "a")], hosts: ["a.example.com"], service: "app"))
                postern = try PosternProcess(manifests: manifests, settings: settings, workers: 2)
            }
        }

        /// ingress-nginx's defaults: tickets off, shared cache on. Twenty
        /// reconnections per version from new source ports, which
        /// SO_REUSEPORT spreads over both workers (all twenty on one worker:
        /// about one chance in 500,000), each resuming the session of the
        /// connection before it.
        @Test func resumesTLS12AndTLS13FromTheSharedCacheWithTicketsOff() throws {
            let fixture = try Fixture(settings: "ssl-session-tickets: false\n")
            for version in ["-tls1_2", "-tls1_3"] {
                let session = fixture.pki.folder + "/session\(version)"
                let first = try sessionClient(
                    port: fixture.postern.httpsPort, serverName: "a.example.com", version: version, sessionOut: session)
                #expect(first.contains("New, TLSv1."), "\(version): \(first.suffix(300))")
                var resumed = 0
                for _ in 0..<20 {
                    let again = try sessionClient(
                        port: fixture.postern.httpsPort, serverName: "a.example.com", version: version, sessionIn: session,
                        sessionOut: session)
                    if again.contains("Reused, TLSv1."), again.contains("HTTP/1.1 200") { resumed += 1 }
                }
                #expect(resumed == 20, "\(version): \(resumed) of 20 reconnections resumed")
            }
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"resumed\"}") == 40)
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"full\"}") == 2)
        }

        @Test func cachedSessionsExpireAfterTheSessionTimeout() throws {
            let fixture = try Fixture(settings: "ssl-session-tickets: false\nssl-session-timeout: 2s\n")
            for version in ["-tls1_2", "-tls1_3"] {
                let session = fixture.pki.folder + "/session\(version)"
                _ = try sessionClient(port: fixture.postern.httpsPort, serverName: "a.example.com", version: version, sessionOut: session)
                let soon = try sessionClient(port: fixture.postern.httpsPort, serverName: "a.example.com", version: version, sessionIn: session)
                #expect(soon.contains("Reused, TLSv1."), "\(version): not resumed within the timeout")
                Thread.sleep(forTimeInterval: 3)
                let late = try sessionClient(port: fixture.postern.httpsPort, serverName: "a.example.com", version: version, sessionIn: session)
                #expect(late.contains("New, TLSv1."), "\(version): resumed after the timeout: \(late.suffix(300))")
            }
        }

        @Test func theCacheCanBeTurnedOff() throws {
            let fixture = try Fixture(settings: "ssl-session-tickets: false\nssl-session-cache: false\n")
            let session = fixture.pki.folder + "/session"
            _ = try sessionClient(port: fixture.postern.httpsPort, serverName: "a.example.com", version: "-tls1_2", sessionOut: session)
            let again = try sessionClient(port: fixture.postern.httpsPort, serverName: "a.example.com", version: "-tls1_2", sessionIn: session)
            #expect(!again.contains("Reused"))
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"resumed\"}") == 0)
        }

        @Test func badCacheSizesAndTimeoutsStopStartUpNamingTheKey() throws {
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            for (line, key) in [
                ("ssl-session-cache-size: 10g", "ssl-session-cache-size"), ("ssl-session-cache-size: 1k", "ssl-session-cache-size"),
                ("ssl-session-timeout: 0", "ssl-session-timeout"), ("ssl-session-timeout: 10x", "ssl-session-timeout"),
                ("ssl-session-timeout: 8d", "ssl-session-timeout"), ("ssl-session-cache: maybe", "ssl-session-cache"),
            ] {
                let result = try TLSCiphers.start(settings: line + "\n", manifests: manifests)
                #expect(result.status == 2, "\(line): \(result.stderr)")
                #expect(result.stderr.contains(": \(key): expected"), "\(line): \(result.stderr)")
            }
        }

        /// A session made where a client certificate was verified against
        /// one CA must not skip the check of a host with other settings
        /// (another CA, or none), by cache or by ticket, in TLS 1.2 and 1.3;
        /// it still resumes on its own host.
        @Test func sessionsResumeOnlyWhereClientCertificatesAreVerifiedAlike() throws {
            let serverPKI = try TestPKI()
            let firstCA = try TestPKI()
            let secondCA = try TestPKI()
            let backend = try EchoBackend(name: "mtls")
            let server = try serverPKI.leaf(["first.example.com", "second.example.com", "open.example.com"])
            let client = try firstCA.leaf(["client-1"])
            let folder = firstCA.folder
            try client.certificate.write(toFile: folder + "/client.crt", atomically: true, encoding: .utf8)
            try client.key.write(toFile: folder + "/client.key", atomically: true, encoding: .utf8)
            func caSecret(_ name: String, _ pki: TestPKI) throws -> String {
                "---\napiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: default}\nstringData:\n  ca.crt: |\n"
                    + (try String(contentsOfFile: pki.caPath, encoding: .utf8)).split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
                    + "\n"
            }
            func verifying(_ secret: String) -> [String: String] {
                [
                    "nginx.ingress.kubernetes.io/auth-tls-secret": "default/\(secret)",
                    "nginx.ingress.kubernetes.io/auth-tls-verify-client": "optional",
                ]
            }
            for settings in ["ssl-session-tickets: false\n", "ssl-session-tickets: true\n"] {
                let manifests = try ManifestFolder()
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                try manifests.write(
                    "secrets.yaml",
                    TestPKI.secret("server", certificate: server.certificate, key: server.key) + (try caSecret("first-ca", firstCA))
                        + (try caSecret("second-ca", secondCA)))
                try manifests.write(
                    "ingress.yaml",
                    tlsIngress(
                        "first", tls: [(["first.example.com"], "server")], hosts: ["first.example.com"], service: "app",
                        annotations: verifying("first-ca"))
                        + tlsIngress(
                            "second", tls: [(["second.example.com"], "server")], hosts: ["second.example.com"], service: "app",
                            annotations: verifying("second-ca"))
                        + tlsIngress("open", tls: [(["open.example.com"], "server")], hosts: ["open.example.com"], service: "app"))
                let postern = try PosternProcess(manifests: manifests, settings: settings, workers: 2)
                let withCertificate = "-cert \(folder)/client.crt -key \(folder)/client.key"
                for version in ["-tls1_2", "-tls1_3"] {
                    let session = folder + "/first\(version)-\(settings.contains("true") ? "tickets" : "cache")"
                    let first = try sessionClient(
                        port: postern.httpsPort, serverName: "first.example.com", version: version, sessionOut: session, extra: withCertificate)
                    #expect(first.contains("New, TLSv1."), "\(settings) \(version): \(first.suffix(200))")
                    let home = try sessionClient(
                        port: postern.httpsPort, serverName: "first.example.com", version: version, sessionIn: session, extra: withCertificate)
                    #expect(home.contains("Reused, TLSv1."), "\(settings) \(version): no resumption on its own host")
                    for elsewhere in ["second.example.com", "open.example.com"] {
                        let other = try sessionClient(
                            port: postern.httpsPort, serverName: elsewhere, version: version, sessionIn: session, extra: withCertificate)
                        #expect(
                            !other.contains("Reused"),
                            "\(settings) \(version): a session verified for first.example.com resumed on \(elsewhere)")
                    }
                }
            }
        }
    }
}
