import Foundation
import Testing

/// An OCSP responder on 127.0.0.1: a small HTTP server (Python's standard
/// library) that hands each POSTed request to `openssl ocsp` with the
/// test's index file and signer, or, in `expired` mode, answers with a
/// response whose nextUpdate has passed (made with Python's `cryptography`,
/// since `openssl ocsp` only dates responses from now).
final class OCSPResponder: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)/" }

    static let script = """
        import datetime, http.server, os, subprocess, sys, tempfile, time
        mode, arguments = sys.argv[1], sys.argv[2:]

        def expired(body):
            from cryptography import x509
            from cryptography.x509 import ocsp
            from cryptography.hazmat.primitives import hashes, serialization
            ca_path, ca_key_path, leaf_path = arguments
            ca = x509.load_pem_x509_certificate(open(ca_path, 'rb').read())
            leaf = x509.load_pem_x509_certificate(open(leaf_path, 'rb').read())
            key = serialization.load_pem_private_key(open(ca_key_path, 'rb').read(), None)
            now = datetime.datetime.now(datetime.timezone.utc)
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=leaf, issuer=ca, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now - datetime.timedelta(days=2), next_update=now - datetime.timedelta(days=1),
                revocation_time=None, revocation_reason=None).responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
            return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

        def by_openssl(body):
            with tempfile.TemporaryDirectory() as folder:
                request, response = os.path.join(folder, 'request'), os.path.join(folder, 'response')
                open(request, 'wb').write(body)
                subprocess.run(['openssl', 'ocsp', '-reqin', request, '-respout', response] + arguments,
                               check=True, capture_output=True, timeout=20)
                return open(response, 'rb').read()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
                print('request', flush=True)
                if mode == 'slow':
                    time.sleep(1.5)
                answer = expired(body) if mode == 'expired' else by_openssl(body)
                self.send_response(200)
                self.send_header('Content-Type', 'application/ocsp-response')
                self.send_header('Content-Length', str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            def log_message(self, *ignored):
                pass

        server = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        print('listening on 127.0.0.1:%d' % server.server_port, flush=True)
        server.serve_forever()
        """

    /// `mode` is `openssl` (arguments for `openssl ocsp`), `slow` (the same,
    /// answering after 1.5 s) or `expired`
    /// (CA certificate, CA key, leaf certificate paths).
    init(mode: String, arguments: [String]) throws {
        child = try ChildProcess(
            executable: "/usr/bin/env", arguments: ["python3", "-c", OCSPResponder.script, mode] + arguments, label: "ocsp")
        port = try child.waitForListeningPort()
    }

    /// A responder answering from `pki`'s index, signed by its delegated
    /// responder certificate (or by `signer`/`key` given).
    convenience init(pki: TestPKI, signer: String? = nil, key: String? = nil, slow: Bool = false) throws {
        try self.init(
            mode: slow ? "slow" : "openssl",
            arguments: [
                "-index", pki.folder + "/index.txt", "-CA", pki.caPath, "-rsigner", signer ?? pki.folder + "/responder.crt",
                "-rkey", key ?? pki.folder + "/responder.key", "-ndays", "1",
            ])
    }
}

extension TestPKI {
    /// The delegated OCSP responder certificate (id-kp-OCSPSigning) and an empty index.
    func addOCSPResponderCertificate() throws {
        try Data().write(to: URL(fileURLWithPath: folder + "/index.txt"))
        try signCertificate("responder", subject: "/CN=Postern Test OCSP Responder", extensions: "extendedKeyUsage=OCSPSigning\n")
    }

    /// A self-signed signer unrelated to the CA (same name, other key).
    func addRogueSigner() throws {
        try openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", "/CN=Postern Test CA", "-keyout", folder + "/rogue.key", "-out", folder + "/rogue.crt",
        ])
    }

    /// NAME.key and NAME.crt signed by the CA with `extensions`.
    func signCertificate(_ name: String, subject: String, extensions: String) throws {
        let base = folder + "/" + name
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject, "-keyout", base + ".key", "-out", base + ".csr"])
        try extensions.write(toFile: base + ".ext", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", base + ".csr", "-CA", caPath, "-CAkey", folder + "/ca.key", "-CAcreateserial", "-days", "30", "-extfile", base + ".ext", "-out", base + ".crt"])
    }

    /// A Secret `name` for `host` whose certificate names `responder` (AIA)
    /// and is recorded in the index as valid or `revoked`; tls.crt holds the
    /// leaf and then the CA (the issuer OCSP responses are verified against).
    func ocspSecret(_ name: String, host: String, responder: String, revoked: Bool = false, mustStaple: Bool = false) throws -> String {
        var extensions = "subjectAltName=DNS:\(host)\nauthorityInfoAccess=OCSP;URI:\(responder)\n"
        if mustStaple { extensions += "tlsfeature=status_request\n" }
        try signCertificate(name, subject: "/CN=\(host)", extensions: extensions)
        var serial = try openssl(["x509", "-in", folder + "/\(name).crt", "-noout", "-serial"])
            .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
        while serial.hasPrefix("00"), serial.count > 2 { serial.removeFirst(2) }
        let line = "\(revoked ? "R" : "V")\t301231235959Z\t\(revoked ? "240101000000Z" : "")\t\(serial)\tunknown\t/CN=\(host)\n"
        let index = try FileHandle(forWritingTo: URL(fileURLWithPath: folder + "/index.txt"))
        try index.seekToEnd()
        try index.write(contentsOf: Data(line.utf8))
        try index.close()
        let chain = try String(contentsOfFile: folder + "/\(name).crt", encoding: .utf8) + String(contentsOfFile: caPath, encoding: .utf8)
        return TestPKI.secret(name, certificate: chain, key: try String(contentsOfFile: folder + "/\(name).key", encoding: .utf8))
    }
}

/// `openssl s_client -status` to `host`: the stapled status it reports
/// ("good", "revoked"), or nil when no response was stapled.
func stapledStatus(port: UInt16, host: String, version: String = "-tls1_3") throws -> String? {
    let output = try runCommand(
        "/bin/bash", ["-c", "echo | timeout 10 openssl s_client -connect 127.0.0.1:\(port) -servername \(host) -status \(version) 2>&1"]
    ).stdout
    guard output.contains("OCSP Response Status: successful") else { return nil }
    for line in output.split(separator: "\n") where line.contains("Cert Status:") {
        return line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces)
    }
    return "?"
}

/// Waits (bounded) until `condition` holds; returns whether it did.
func eventually(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
        if try condition() { return true }
        usleep(250_000)
    } while Date() < deadline
    return try condition()
}

extension EndToEndTests {
    @Suite struct OCSPStapling {
        static let settings = "enable-ocsp: true\nocsp-refresh-interval: 2s\nocsp-retry-interval: 1s\nocsp-timeout: 5s\n"

        /// Postern serving the Secrets in `secrets` (name, host) with `settings`.
        static func postern(_ manifests: ManifestFolder, secrets: String, hosts: [(String, String)], settings: String = settings) throws -> (EchoBackend, PosternProcess) {
            let backend = try EchoBackend(name: "ocsp")
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write("secrets.yaml", secrets)
            try manifests.write(
                "ingress.yaml",
                tlsIngress("ocsp", tls: hosts.map { ([$0.1], $0.0) }, hosts: hosts.map(\.1), service: "app"))
            return (backend, try PosternProcess(manifests: manifests, settings: settings, workers: 2))
        }

        /// Good status stapled in TLS 1.2 and 1.3; a must-staple
        /// certificate has its staple from the very first handshake, its
        /// responder slow as it may be (start-up waits for it, bounded); a
        /// revoked status is never stapled and is logged as an error.
        @Test func goodStatusIsStapledMustStapleFromTheStartRevokedNever() throws {
            let pki = try TestPKI()
            try pki.addOCSPResponderCertificate()
            let responder = try OCSPResponder(pki: pki)
            // Slower than start-up: without the wait, the first handshake would have no staple.
            let slowResponder = try OCSPResponder(pki: pki, slow: true)
            let secrets =
                try pki.ocspSecret("good", host: "good.example.com", responder: responder.url)
                + pki.ocspSecret("must", host: "must.example.com", responder: slowResponder.url, mustStaple: true)
                + pki.ocspSecret("revoked", host: "revoked.example.com", responder: responder.url, revoked: true)
            let manifests = try ManifestFolder()
            let (backend, postern) = try Self.postern(
                manifests, secrets: secrets,
                hosts: [("good", "good.example.com"), ("must", "must.example.com"), ("revoked", "revoked.example.com")])

            // No retry: the store was published only after the first fetch.
            #expect(try stapledStatus(port: postern.httpsPort, host: "must.example.com") == "good", "\(postern.child.stderrText)")
            #expect(try eventually(seconds: 10) { try stapledStatus(port: postern.httpsPort, host: "good.example.com") == "good" })
            #expect(try stapledStatus(port: postern.httpsPort, host: "good.example.com", version: "-tls1_2") == "good")
            #expect(try stapledStatus(port: postern.httpsPort, host: "must.example.com", version: "-tls1_2") == "good")

            #expect(eventually(seconds: 10) { postern.child.stderrText.contains("REVOKED") }, "\(postern.child.stderrText.suffix(2000))")
            #expect(try stapledStatus(port: postern.httpsPort, host: "revoked.example.com") == nil)
            #expect(try stapledStatus(port: postern.httpsPort, host: "revoked.example.com", version: "-tls1_2") == nil)
            let revokedLine = postern.child.stderrText.split(separator: "\n").first { $0.contains("REVOKED") } ?? ""
            #expect(revokedLine.lowercased().contains("error"), "logged as an error: \(revokedLine)")
            // A request still goes through: stapling changes nothing else.
            let page = try sessionClient(port: postern.httpsPort, serverName: "good.example.com", version: "-tls1_3")
            #expect(page.contains("HTTP/1.1 200"))
            // The OCSP collector is registered by `postern run` (PosternCommand):
            // where it is, the metrics must agree with what clients saw.
            if try postern.metric("postern_ocsp_fetches_total") != nil {
                #expect(try postern.metric("postern_ocsp_staple_age_seconds{certificate=\"default/good\"}") != nil)
                #expect(try postern.metric("postern_ocsp_staple_age_seconds{certificate=\"default/revoked\"}") == nil)
                #expect(try postern.metric("postern_ocsp_fetch_failures_total{reason=\"revoked\"}") ?? 0 >= 1)
                #expect(try postern.metric("postern_ocsp_certificates{stapled=\"true\"}") == 2)
            }
            withExtendedLifetime(backend) {}
        }

        /// A response signed by a key the issuer never delegated to, and a
        /// correctly signed one whose nextUpdate has passed: neither is stapled.
        @Test func badlySignedAndExpiredResponsesAreNotStapled() throws {
            let pki = try TestPKI()
            try pki.addOCSPResponderCertificate()
            try pki.addRogueSigner()
            let rogue = try OCSPResponder(pki: pki, signer: pki.folder + "/rogue.crt", key: pki.folder + "/rogue.key")
            // The expired responder reads the leaf when asked, so it can start first.
            let expired = try OCSPResponder(mode: "expired", arguments: [pki.caPath, pki.folder + "/ca.key", pki.folder + "/stale.crt"])
            let secrets =
                try pki.ocspSecret("forged", host: "forged.example.com", responder: rogue.url)
                + pki.ocspSecret("stale", host: "stale.example.com", responder: expired.url)
            let manifests = try ManifestFolder()
            let (_, postern) = try Self.postern(
                manifests, secrets: secrets, hosts: [("forged", "forged.example.com"), ("stale", "stale.example.com")])

            #expect(
                eventually(seconds: 15) {
                    let log = postern.child.stderrText
                    return log.contains("not used (signature:") && log.contains("not used (expired:")
                }, "\(postern.child.stderrText.suffix(2000))")
            for host in ["forged.example.com", "stale.example.com"] {
                #expect(try stapledStatus(port: postern.httpsPort, host: host) == nil, "\(host)")
                #expect(try stapledStatus(port: postern.httpsPort, host: host, version: "-tls1_2") == nil, "\(host)")
            }
            if try postern.metric("postern_ocsp_fetches_total") != nil {
                #expect(try postern.metric("postern_ocsp_fetch_failures_total{reason=\"signature\"}") ?? 0 >= 1)
                #expect(try postern.metric("postern_ocsp_fetch_failures_total{reason=\"expired\"}") ?? 0 >= 1)
                #expect(try postern.metric("postern_ocsp_certificates{stapled=\"false\"}") == 2)
            }
        }

        /// With the responder gone, the last good response stays stapled
        /// (while it is current); a certificate whose responder never
        /// answered gets no staple, and the handshake still succeeds.
        @Test func responderDownKeepsTheLastGoodResponseAndGivesNoneAtFirst() throws {
            let pki = try TestPKI()
            try pki.addOCSPResponderCertificate()
            let responder = try OCSPResponder(pki: pki)
            let nobody = try ProxyFixture.closedPort()
            let secrets =
                try pki.ocspSecret("kept", host: "kept.example.com", responder: responder.url)
                + pki.ocspSecret("never", host: "never.example.com", responder: "http://127.0.0.1:\(nobody)/")
            let manifests = try ManifestFolder()
            let (backend, postern) = try Self.postern(
                manifests, secrets: secrets, hosts: [("kept", "kept.example.com"), ("never", "never.example.com")])

            #expect(try eventually(seconds: 10) { try stapledStatus(port: postern.httpsPort, host: "kept.example.com") == "good" })
            responder.child.stop()
            // Refreshes come every 2 s: wait for failed ones, then look again.
            #expect(
                eventually(seconds: 15) { postern.child.stderrText.contains("still stapling the last good response") },
                "\(postern.child.stderrText.suffix(2000))")
            #expect(try stapledStatus(port: postern.httpsPort, host: "kept.example.com") == "good")
            #expect(try stapledStatus(port: postern.httpsPort, host: "kept.example.com", version: "-tls1_2") == "good")

            #expect(postern.child.stderrText.contains("127.0.0.1:\(nobody)/ not used (fetch:"))
            #expect(try stapledStatus(port: postern.httpsPort, host: "never.example.com") == nil)
            let page = try sessionClient(port: postern.httpsPort, serverName: "never.example.com", version: "-tls1_3")
            #expect(page.contains("HTTP/1.1 200"))
            if try postern.metric("postern_ocsp_fetches_total") != nil {
                #expect(try postern.metric("postern_ocsp_fetch_failures_total{reason=\"fetch\"}") ?? 0 >= 2)
                #expect(try postern.metric("postern_ocsp_staple_age_seconds{certificate=\"default/kept\"}") != nil)
                #expect(try postern.metric("postern_ocsp_staple_age_seconds{certificate=\"default/never\"}") == nil)
            }
            withExtendedLifetime(backend) {}
        }

        /// ingress-nginx's default: nothing stapled and the responder never asked.
        @Test func offByDefaultNothingIsFetchedOrStapled() throws {
            let pki = try TestPKI()
            try pki.addOCSPResponderCertificate()
            let responder = try OCSPResponder(pki: pki)
            let manifests = try ManifestFolder()
            let (_, postern) = try Self.postern(
                manifests, secrets: try pki.ocspSecret("quiet", host: "quiet.example.com", responder: responder.url),
                hosts: [("quiet", "quiet.example.com")], settings: "")
            Thread.sleep(forTimeInterval: 1)
            #expect(try stapledStatus(port: postern.httpsPort, host: "quiet.example.com") == nil)
            // The responder prints a line per request: wait briefly for one, expecting none.
            #expect(throws: (any Error).self) { try responder.child.waitForLine(prefix: "request", timeout: 1) }
        }

        @Test func badOCSPSettingsStopStartUpNamingTheKey() throws {
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            for (line, key) in [
                ("enable-ocsp: perhaps", "enable-ocsp"), ("ocsp-refresh-interval: 0", "ocsp-refresh-interval"),
                ("ocsp-retry-interval: 1x", "ocsp-retry-interval"), ("ocsp-timeout: 2m", "ocsp-timeout"),
            ] {
                let result = try TLSCiphers.start(settings: line + "\n", manifests: manifests)
                #expect(result.status == 2, "\(line): \(result.stderr)")
                #expect(result.stderr.contains(": \(key): expected"), "\(line): \(result.stderr)")
            }
        }
    }
}
