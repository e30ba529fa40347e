import Foundation
import Testing

/// A certificate authority and leaf certificates made with the `openssl`
/// command line, in a temporary folder.
final class TestPKI: @unchecked Sendable {
    let folder: String
    var caPath: String { folder + "/ca.crt" }

    init() throws {
        folder = NSTemporaryDirectory() + "postern-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", "/CN=Postern Test CA", "-keyout", folder + "/ca.key", "-out", caPath,
        ])
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    @discardableResult
    func openssl(_ arguments: [String]) throws -> String {
        let result = try runCommand("/usr/bin/openssl", arguments)
        guard result.status == 0 else { throw HarnessError("openssl \(arguments.first ?? ""): \(result.stderr)") }
        return result.stdout
    }

    /// A leaf for `names` signed by the CA: (certificate PEM, key PEM).
    /// `days: 0` gives a certificate that has already expired.
    func leaf(_ names: [String], days: Int = 30, keyType: String = "ec") throws -> (certificate: String, key: String) {
        let base = folder + "/" + UUID().uuidString
        let keyArguments = keyType == "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        try openssl(["req"] + keyArguments + ["-nodes", "-subj", "/CN=\(names[0])", "-keyout", base + ".key", "-out", base + ".csr"])
        try "subjectAltName=\(names.map { "DNS:\($0)" }.joined(separator: ","))\n".write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try openssl([
            "x509", "-req", "-in", base + ".csr", "-CA", caPath, "-CAkey", folder + "/ca.key", "-CAcreateserial",
            "-days", "\(days)", "-extfile", base + ".ext", "-out", base + ".crt",
        ])
        return (try String(contentsOfFile: base + ".crt", encoding: .utf8), try String(contentsOfFile: base + ".key", encoding: .utf8))
    }

    /// A `kubernetes.io/tls` Secret manifest.
    static func secret(_ name: String, certificate: String, key: String) -> String {
        func block(_ text: String) -> String {
            text.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        }
        return """
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: \(name), namespace: default}
            type: kubernetes.io/tls
            stringData:
              tls.crt: |
            \(block(certificate))
              tls.key: |
            \(block(key))

            """
    }
}

/// An Ingress with TLS for `tlsHosts` (one entry per secret) and rules to `service`.
func tlsIngress(_ name: String, tls: [(hosts: [String], secret: String)], hosts: [String], service: String, annotations: [String: String] = [:]) -> String {
    var text = """
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: \(name)
          namespace: default
          annotations: {\(annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", "))}
        spec:
          ingressClassName: postern
          tls:

        """
    for entry in tls {
        text += "  - hosts: [\(entry.hosts.map { "\"\($0)\"" }.joined(separator: ", "))]\n    secretName: \(entry.secret)\n"
    }
    text += "  rules:\n"
    for host in hosts {
        text += """
              - host: "\(host)"
                http:
                  paths:
                  - {path: /, pathType: Prefix, backend: {service: {name: \(service), port: {number: 80}}}}

            """
    }
    return text
}

extension EndToEndTests {
    @Suite struct TLSTermination {
        /// Postern with certificates for a.example.com, *.wild.example.com, an
        /// expired one for old.example.com and a broken Secret for bad.example.com.
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init(settings: String = "") throws {
                pki = try TestPKI()
                backend = try EchoBackend(name: "secure")
                manifests = try ManifestFolder()
                let exact = try pki.leaf(["a.example.com"])
                let wildcard = try pki.leaf(["*.wild.example.com"], keyType: "rsa")
                let expired = try pki.leaf(["old.example.com"], days: 0)
                let other = try pki.leaf(["bad.example.com"])
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                try manifests.write(
                    "secrets.yaml",
                    TestPKI.secret("exact", certificate: exact.certificate, key: exact.key)
                        + TestPKI.secret("wild", certificate: wildcard.certificate, key: wildcard.key)
                        + TestPKI.secret("old", certificate: expired.certificate, key: expired.key)
                        + TestPKI.secret("bad", certificate: other.certificate, key: exact.key))
                try manifests.write(
                    "ingress.yaml",
                    tlsIngress(
                        "secure",
                        tls: [
                            (["a.example.com"], "exact"), (["*.wild.example.com"], "wild"), (["old.example.com"], "old"),
                            (["bad.example.com"], "bad"), (["missing.example.com"], "does-not-exist"),
                        ],
                        hosts: ["a.example.com", "*.wild.example.com", "old.example.com", "bad.example.com", "missing.example.com"],
                        service: "app")
                        + Manifests.ingress("plain", rules: [("plain.example.com", "/", "Prefix", "app")]))
                postern = try PosternProcess(manifests: manifests, settings: settings)
            }

            /// curl over HTTPS to `host` (resolved to loopback), trusting the test CA.
            func curl(_ host: String, path: String = "/", extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
                try runCommand(
                    "/usr/bin/curl",
                    [
                        "-sS", "--cacert", pki.caPath, "--resolve", "\(host):\(postern.httpsPort):127.0.0.1",
                        "-w", "\n%{http_code}", "https://\(host):\(postern.httpsPort)\(path)",
                    ] + extra)
            }

            /// Subject CN and serial of the certificate served for `serverName`.
            func servedCertificate(serverName: String) throws -> String {
                let script = "openssl s_client -connect 127.0.0.1:\(postern.httpsPort) -servername \(serverName) </dev/null 2>/dev/null"
                    + " | openssl x509 -noout -subject -serial"
                return try runCommand("/bin/bash", ["-c", script]).stdout
            }
        }

        @Test func selectsCertificatesBySNIExactWildcardAndDefault() throws {
            let fixture = try Fixture()
            let exact = try fixture.curl("a.example.com", path: "/hello")
            #expect(exact.status == 0, "\(exact.stderr)")
            #expect(exact.stdout.hasSuffix("\n200"))
            #expect(exact.stdout.contains("\"name\":\"secure\""))
            let wildcard = try fixture.curl("x.wild.example.com")
            #expect(wildcard.status == 0 && wildcard.stdout.hasSuffix("\n200"), "\(wildcard.stderr)")
            #expect(try fixture.servedCertificate(serverName: "x.wild.example.com").contains("CN = *.wild.example.com"))
            // One label only: a deeper name gets the default (self-signed) certificate.
            #expect(try fixture.servedCertificate(serverName: "y.x.wild.example.com").contains("Postern Self-Signed Certificate"))
            #expect(try fixture.servedCertificate(serverName: "unknown.example.org").contains("Postern Self-Signed Certificate"))
            // A client that does not trust the default certificate refuses it.
            #expect(try fixture.curl("plain.example.com").status == 60)
        }

        @Test func brokenMissingAndExpiredSecretsFallBackOrWarnWhileOthersServe() throws {
            let fixture = try Fixture()
            #expect(try fixture.servedCertificate(serverName: "bad.example.com").contains("Postern Self-Signed Certificate"))
            #expect(try fixture.servedCertificate(serverName: "missing.example.com").contains("Postern Self-Signed Certificate"))
            // The expired certificate is still served, and clients reject it.
            #expect(try fixture.servedCertificate(serverName: "old.example.com").contains("CN = old.example.com"))
            #expect(try fixture.curl("old.example.com").status == 60)
            let log = fixture.postern.child.stderrText
            #expect(log.contains("tls.key does not match the certificate"))
            #expect(log.contains("MissingSecret"))
            #expect(log.contains("has expired"))
            #expect(try fixture.curl("a.example.com").stdout.hasSuffix("\n200"))
        }

        @Test func setsForwardedProtoAndPortAndHSTSOnHTTPS() throws {
            let fixture = try Fixture()
            let result = try fixture.curl("a.example.com", extra: ["--http1.1", "-D", "-"])
            #expect(result.stdout.contains("Strict-Transport-Security: max-age=31536000; includeSubDomains"))
            let overHTTP2 = try fixture.curl("a.example.com", extra: ["--http2", "-D", "-"])
            #expect(overHTTP2.stdout.contains("strict-transport-security: max-age=31536000; includeSubDomains"))
            #expect(result.stdout.contains("\"x-forwarded-proto\":\"https\""))
            #expect(result.stdout.contains("\"x-forwarded-port\":\"443\""), "the public HTTPS port, not the listener's")
        }

        @Test func redirectsPlainHTTPForTLSHostsWith308() throws {
            let fixture = try Fixture()
            let redirected = try fixture.postern.get("/path?q=1", host: "a.example.com")
            #expect(redirected.status == 308)
            #expect(redirected.header("location") == "https://a.example.com/path?q=1", "the public HTTPS port, 443, is never written")
            // Hosts without TLS are served over plain HTTP.
            #expect(try fixture.postern.get("/", host: "plain.example.com").status == 200)
            #expect(try fixture.postern.metric("postern_https_redirects_total") == 1)
        }

        @Test func misdirectedRequestGets421() throws {
            let fixture = try Fixture()
            // Over HTTP/1.1 (Host) and HTTP/2 (:authority, curl's default with ALPN h2).
            for version in ["--http1.1", "--http2"] {
                let result = try fixture.curl("a.example.com", extra: [version, "-H", "Host: x.wild.example.com"])
                #expect(result.stdout.hasSuffix("\n421"), "\(version): \(result.stdout)")
                let sameCertificate = try fixture.curl("a.example.com", extra: [version, "-H", "Host: a.example.com:443"])
                #expect(sameCertificate.stdout.hasSuffix("\n200"), "\(version)")
            }
        }

        @Test func clientsWithoutSNIAreNeverMisdirected() throws {
            // The default certificate is the same Secret as a.example.com's.
            let fixture = try Fixture(settings: "default-ssl-certificate: default/exact\n")
            for version in ["--http1.1", "--http2"] {
                // An IP address in the URL: curl sends no SNI.
                let result = try runCommand(
                    "/usr/bin/curl",
                    ["-sS", "-k", version, "-H", "Host: a.example.com", "-w", "\n%{http_code}", "https://127.0.0.1:\(fixture.postern.httpsPort)/"])
                #expect(result.stdout.hasSuffix("\n200"), "\(version): \(result.stdout.suffix(80))")
            }
        }

        @Test func sessionTicketsCanBeTurnedOff() throws {
            // The session cache (on by default) would resume without tickets: off too.
            let fixture = try Fixture(settings: "ssl-session-tickets: false\nssl-session-cache: false\n")
            let session = fixture.pki.folder + "/no-ticket"
            let base = "openssl s_client -connect 127.0.0.1:\(fixture.postern.httpsPort) -servername a.example.com -tls1_2"
            _ = try runCommand("/bin/bash", ["-c", "(sleep 0.3) | \(base) -sess_out \(session) 2>/dev/null"])
            let again = try runCommand("/bin/bash", ["-c", "(sleep 0.2) | \(base) -sess_in \(session) 2>/dev/null"])
            // Without a ticket and without the server-side cache there is nothing to
            // resume: s_client either has no session to offer or is refused.
            #expect(!again.stdout.contains("Reused"), "\(again.stdout.suffix(300))")
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"resumed\"}") == 0)
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"full\"}") ?? 0 >= 1)
        }

        /// The tail of a TLS record that did not fit the read buffer stays
        /// inside OpenSSL, where epoll cannot see it: Postern must still read
        /// it once the buffer drains. 13 pipelined requests of 1,268 bytes:
        /// the first 100 bytes go in one record (an incomplete head that
        /// stays in the 16 KiB buffer), the other 16,384 in one full record,
        /// 100 bytes more than the buffer's free room.
        @Test func readsRecordTailsOpenSSLHoldsAfterTheBufferDrains() throws {
            let fixture = try Fixture()
            let script = #"""
            import socket, ssl, sys, time
            port, ca = int(sys.argv[1]), sys.argv[2]
            request = b"GET /bytes/10 HTTP/1.1\r\nHost: a.example.com\r\nX-Pad: " + b"p" * 1212 + b"\r\n\r\n"
            assert len(request) == 1268, len(request)
            stream = request * 13
            assert len(stream) == 100 + 16384
            context = ssl.create_default_context(cafile=ca)
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with context.wrap_socket(raw, server_hostname="a.example.com") as tls:
                    tls.sendall(stream[:100])
                    time.sleep(0.3)
                    tls.sendall(stream[100:])
                    tls.settimeout(10)
                    received = b""
                    try:
                        while received.count(b"HTTP/1.1 200") < 13:
                            chunk = tls.recv(65536)
                            if not chunk:
                                break
                            received += chunk
                    except socket.timeout:
                        pass
                    print(received.count(b"HTTP/1.1 200"))
            """#
            let result = try runCommand(
                "/usr/bin/env", ["python3", "-c", script, "\(fixture.postern.httpsPort)", fixture.pki.caPath], timeout: 60)
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "13", "\(result.stdout) \(result.stderr)")
        }

        @Test func refusesTLS10And11() throws {
            let fixture = try Fixture()
            let old = try fixture.curl("a.example.com", extra: ["--tlsv1.0", "--tls-max", "1.1"])
            #expect(old.status != 0)
            let modern = try fixture.curl("a.example.com", extra: ["--tlsv1.2", "--tls-max", "1.2"])
            #expect(modern.stdout.hasSuffix("\n200"), "\(modern.stderr)")
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"failed\"}") ?? 0 >= 1)
        }

        @Test func resumesSessionsWithTicketsSharedByEveryWorker() throws {
            let fixture = try Fixture()
            for version in ["-tls1_2", "-tls1_3"] {
                let session = fixture.pki.folder + "/session\(version)"
                let base = "openssl s_client -connect 127.0.0.1:\(fixture.postern.httpsPort) -servername a.example.com \(version)"
                // The ticket arrives after the handshake: keep stdin open a moment.
                let first = try runCommand("/bin/bash", ["-c", "(sleep 0.3) | \(base) -sess_out \(session) 2>/dev/null"])
                #expect(first.stdout.contains("New, TLSv1."), "\(version): \(first.stdout.suffix(300))")
                // Four more connections: the two workers share the ticket keys.
                for _ in 0..<4 {
                    let again = try runCommand("/bin/bash", ["-c", "(sleep 0.2) | \(base) -sess_in \(session) 2>/dev/null"])
                    #expect(again.stdout.contains("Reused, TLSv1."), "\(version): not resumed")
                }
            }
            #expect(try fixture.postern.metric("postern_tls_handshakes_total{result=\"resumed\"}") == 8)
        }

        @Test func rotatesACertificateUnderLoadWithoutFailures() throws {
            let fixture = try Fixture()
            let before = try fixture.servedCertificate(serverName: "a.example.com")
            final class Load: @unchecked Sendable {
                let lock = NSLock()
                var failures: [String] = []
                var succeeded = 0
                var stop = false
            }
            let load = Load()
            let threads = (0..<2).map { _ in
                let thread = Thread {
                    let deadline = Date().addingTimeInterval(20)
                    while Date() < deadline, !load.lock.withLock({ load.stop }) {
                        // Each curl is a new connection: a full handshake, then three requests.
                        guard let result = try? fixture.curl("a.example.com", path: "/1", extra: [
                            "https://a.example.com:\(fixture.postern.httpsPort)/2", "https://a.example.com:\(fixture.postern.httpsPort)/3",
                        ])
                        else { continue }
                        load.lock.withLock {
                            if result.status == 0, result.stdout.hasSuffix("\n200") { load.succeeded += 1 } else {
                                load.failures.append("\(result.status) \(result.stderr)")
                            }
                        }
                    }
                }
                thread.start()
                return thread
            }
            usleep(500_000)
            let rotated = try fixture.pki.leaf(["a.example.com"])
            let secrets = try String(contentsOfFile: fixture.manifests.path + "/secrets.yaml", encoding: .utf8)
            let start = secrets.range(of: "---\napiVersion: v1\nkind: Secret\nmetadata: {name: exact")!
            let end = secrets.range(of: "\n---\n", range: start.upperBound..<secrets.endIndex)!
            try fixture.manifests.write(
                "secrets.yaml",
                secrets.replacingCharacters(
                    in: start.lowerBound..<secrets.index(after: end.lowerBound), with: TestPKI.secret("exact", certificate: rotated.certificate, key: rotated.key)))
            let written = Date()
            var after = before
            while after == before, Date().timeIntervalSince(written) < 5 {
                usleep(50_000)
                after = try fixture.servedCertificate(serverName: "a.example.com")
            }
            #expect(after != before, "\(fixture.postern.child.stderrText.suffix(3000))")
            #expect(Date().timeIntervalSince(written) < 1.5, "new certificate served after \(Date().timeIntervalSince(written)) s")
            usleep(500_000)
            load.lock.withLock { load.stop = true }
            while threads.contains(where: { $0.isExecuting }) { usleep(10_000) }
            #expect(load.failures.isEmpty, "\(load.failures.prefix(3))")
            #expect(load.succeeded >= 5)
        }
    }
}

extension EndToEndTests {
    @Suite struct MutualTLS {
        @Test func verifiesClientCertificatesAndPassesThemUpstream() throws {
            let serverPKI = try TestPKI()
            let clientPKI = try TestPKI()
            let foreignPKI = try TestPKI()
            let backend = try EchoBackend(name: "mtls")
            let manifests = try ManifestFolder()
            let server = try serverPKI.leaf(["mtls.example.com", "open.example.com"])
            let client = try clientPKI.leaf(["client-1"])
            let foreign = try foreignPKI.leaf(["intruder"])
            let clientCA = try String(contentsOfFile: clientPKI.caPath, encoding: .utf8)
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write(
                "secrets.yaml",
                TestPKI.secret("server", certificate: server.certificate, key: server.key)
                    + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: client-ca, namespace: default}\nstringData:\n  ca.crt: |\n"
                    + clientCA.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n")
            try manifests.write(
                "ingress.yaml",
                tlsIngress(
                    "mtls", tls: [(["mtls.example.com"], "server")], hosts: ["mtls.example.com"], service: "app",
                    annotations: [
                        "nginx.ingress.kubernetes.io/auth-tls-secret": "default/client-ca",
                        "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on",
                        "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": "true",
                    ])
                    + tlsIngress("open", tls: [(["open.example.com"], "server")], hosts: ["open.example.com"], service: "app"))
            let postern = try PosternProcess(manifests: manifests)
            let folder = clientPKI.folder
            try client.certificate.write(toFile: folder + "/client.crt", atomically: true, encoding: .utf8)
            try client.key.write(toFile: folder + "/client.key", atomically: true, encoding: .utf8)
            try foreign.certificate.write(toFile: folder + "/foreign.crt", atomically: true, encoding: .utf8)
            try foreign.key.write(toFile: folder + "/foreign.key", atomically: true, encoding: .utf8)
            func curl(_ host: String, _ extra: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
                try runCommand(
                    "/usr/bin/curl",
                    ["-sS", "--cacert", serverPKI.caPath, "--resolve", "\(host):\(postern.httpsPort):127.0.0.1", "-w", "\n%{http_code}"]
                        + extra + ["https://\(host):\(postern.httpsPort)/"])
            }
            let accepted = try curl("mtls.example.com", ["--cert", folder + "/client.crt", "--key", folder + "/client.key"])
            #expect(accepted.stdout.hasSuffix("\n200"), "\(accepted.stderr)")
            #expect(accepted.stdout.contains("\"ssl-client-verify\":\"SUCCESS\""))
            #expect(accepted.stdout.contains("\"ssl-client-cert\":\"-----BEGIN%20CERTIFICATE-----%0A"))
            let missing = try curl("mtls.example.com", [])
            #expect(!missing.stdout.hasSuffix("\n200"), "a client without a certificate was served")
            let intruder = try curl("mtls.example.com", ["--cert", folder + "/foreign.crt", "--key", folder + "/foreign.key"])
            #expect(!intruder.stdout.hasSuffix("\n200"), "a certificate from another CA was accepted")
            // A host without mTLS serves anyone, and a client cannot forge the verified-certificate fields.
            let open = try curl("open.example.com", ["-H", "ssl-client-cert: forged", "-H", "SSL-Client-Verify: SUCCESS"])
            #expect(open.stdout.hasSuffix("\n200"), "\(open.stderr)")
            #expect(!open.stdout.contains("forged") && !open.stdout.contains("ssl-client-verify"))
        }
    }
}

extension PosternProcess {
    /// A plain-HTTP GET.
    func get(_ path: String, host: String) throws -> HTTPResponse {
        try HTTPClient.request(port: port, path: path, host: host)
    }
}

/// An HTTPS backend (Python's ssl + http.server) that answers every GET with
/// JSON naming the path and the SNI it was reached with.
final class PythonHTTPSBackend: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16

    init(certificate: String, key: String, folder: String) throws {
        let certificatePath = folder + "/backend-\(UUID().uuidString).crt"
        let keyPath = certificatePath + ".key"
        try certificate.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try key.write(toFile: keyPath, atomically: true, encoding: .utf8)
        let script = """
            import http.server, json, ssl, sys
            seen = {}
            class Handler(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_GET(self):
                    body = json.dumps({"path": self.path, "sni": getattr(self.connection, "sni", None)}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args):
                    pass
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            def remember(sock, name, ctx):
                sock.sni = name
            context.sni_callback = remember
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            print("listening on 127.0.0.1:%d" % server.server_address[1], flush=True)
            server.serve_forever()
            """
        child = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", "-c", script, certificatePath, keyPath], label: "https-backend")
        port = try child.waitForListeningPort()
    }
}

extension EndToEndTests {
    @Suite struct UpstreamTLS {
        @Test func proxiesToHTTPSEndpointsWithAndWithoutVerification() throws {
            let pki = try TestPKI()
            let otherPKI = try TestPKI()
            let leaf = try pki.leaf(["backend.internal"])
            let backend = try PythonHTTPSBackend(certificate: leaf.certificate, key: leaf.key, folder: pki.folder)
            let caBundle = try String(contentsOfFile: pki.caPath, encoding: .utf8)
            let wrongBundle = try String(contentsOfFile: otherPKI.caPath, encoding: .utf8)
            func caSecret(_ name: String, _ bundle: String) -> String {
                "---\napiVersion: v1\nkind: Secret\nmetadata: {name: \(name), namespace: default}\nstringData:\n  ca.crt: |\n"
                    + bundle.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n"
            }
            func ingress(_ name: String, _ annotations: [String: String]) -> String {
                var text = Manifests.ingress(name, rules: [("\(name).example.com", "/", "Prefix", "secure-backend")])
                let pairs = annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
                text = text.replacingOccurrences(of: "metadata: {name: \(name), namespace: default}", with: "metadata: {name: \(name), namespace: default, annotations: {\(pairs)}}")
                return text
            }
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("secure-backend", ports: [backend.port]) + caSecret("right-ca", caBundle) + caSecret("wrong-ca", wrongBundle)
                    + caSecret("unusable-ca", "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----")
                    + ingress("plain", ["nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"])
                    + ingress(
                        "verified",
                        [
                            "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                            "nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/right-ca",
                            "nginx.ingress.kubernetes.io/proxy-ssl-name": "backend.internal",
                        ])
                    + ingress(
                        "unusable",
                        [
                            "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                            "nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/unusable-ca",
                        ])
                    + ingress(
                        "refused",
                        [
                            "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS", "nginx.ingress.kubernetes.io/proxy-ssl-verify": "on",
                            "nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/wrong-ca",
                            "nginx.ingress.kubernetes.io/proxy-ssl-name": "backend.internal",
                        ]))
            let postern = try PosternProcess(manifests: manifests)
            let unverified = try postern.get("/a?b=1", host: "plain.example.com")
            #expect(unverified.status == 200)
            #expect(try unverified.json()["path"] as? String == "/a?b=1")
            #expect(try unverified.json()["sni"] as? String == "secure-backend.default.svc")
            let verified = try postern.get("/v", host: "verified.example.com")
            #expect(verified.status == 200)
            #expect(try verified.json()["sni"] as? String == "backend.internal")
            let refused = try postern.get("/r", host: "refused.example.com")
            #expect(refused.status == 502)
            // A CA bundle no client context can be made from: found when the
            // configuration is published (not by the first request), reported
            // once, and its requests get 502.
            #expect(try postern.metric("postern_upstream_tls_contexts_failed") == 1)
            for _ in 0..<3 { #expect(try postern.get("/u", host: "unusable.example.com").status == 502) }
            #expect(postern.child.stderrText.components(separatedBy: "upstream TLS: no client context").count - 1 == 1)
            #expect(try postern.metric("postern_upstream_errors_total{kind=\"tls_handshake\"}") ?? 0 >= 1)
            // Keep-alive to the HTTPS endpoint: later requests reuse pooled TLS
            // connections (two workers, each with its own pool).
            for _ in 0..<6 { #expect(try postern.get("/again", host: "plain.example.com").status == 200) }
            #expect(try postern.metric("postern_upstream_connection_reuses_total") ?? 0 >= 1)
        }
    }
}
