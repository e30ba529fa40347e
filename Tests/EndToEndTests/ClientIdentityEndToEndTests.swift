import Foundation
import Testing

/// Connects to 127.0.0.1:PORT, sends a PROXY header (`v1`, `v2`, `v2-local`,
/// `none`, `partial`), then (unless `partial`) a GET over plain TCP or TLS,
/// in HTTP/1.1 or (with a 7th argument `h2`) HTTP/2 (h2 by ALPN over TLS,
/// h2c with prior knowledge over TCP), and prints `<status> <x-real-ip the
/// backend saw> <x-forwarded-port>`, or `closed` when the proxy closed the
/// connection without an answer.
private let proxyProtocolClient = #"""
import json, socket, ssl, struct, sys, time
port, mode, transport, host, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
http2 = len(sys.argv) > 6 and sys.argv[6] == "h2"
signature = b"\r\n\r\n\x00\r\nQUIT\n"
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
if mode == "v1":
    sock.sendall(b"PROXY TCP4 203.0.113.50 10.0.0.1 40000 443\r\n")
elif mode == "v2":
    payload = socket.inet_aton("203.0.113.60") + socket.inet_aton("10.0.0.1") + struct.pack("!HH", 40000, 443)
    sock.sendall(signature + bytes([0x21, 0x11]) + struct.pack("!H", len(payload)) + payload)
elif mode == "v2-local":
    sock.sendall(signature + bytes([0x20, 0x00, 0, 0]))
elif mode == "partial":
    sock.sendall(b"PROXY TCP4 203.0.113.50")
started = time.time()
data = b""
try:
    if mode != "partial":
        if transport == "tls":
            context = ssl.create_default_context(cafile=cafile)
            if http2:
                context.set_alpn_protocols(["h2"])
            sock = context.wrap_socket(sock, server_hostname=host)
        if http2:
            import h2.config, h2.connection, h2.events
            connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
            connection.initiate_connection()
            connection.send_headers(1, [(":method", "GET"), (":path", "/x"), (":scheme", "https" if transport == "tls" else "http"),
                                        (":authority", host)], end_stream=True)
            sock.sendall(connection.data_to_send())
            status, body, done = None, b"", False
            while not done:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                for event in connection.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                        connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                        done = True
                sock.sendall(connection.data_to_send())
            if status is not None:
                data = b"HTTP/2 " + status + b" -\r\n\r\n" + body
        else:
            sock.sendall(("GET /x HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
    while not http2:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
except (ssl.SSLError, OSError):
    data = b""
if not data:
    print("closed %.1f" % (time.time() - started))
    sys.exit(0)
status = data.split(b" ", 2)[1].decode()
headers = {}
try:
    headers = {k.lower(): v for k, v in json.loads(data.split(b"\r\n\r\n", 1)[1])["headers"].items()}
except Exception:
    pass
print(status, headers.get("x-real-ip", "-"), headers.get("x-forwarded-port", "-"))
"""#

extension EndToEndTests {
    /// Issue 13 (client address) and issue 22 (a trusted X-Forwarded-Port):
    /// who the client is, through the real binary, for HTTP/1.1 and HTTP/2
    /// clients from one case table; PROXY protocol v1 and v2 on the HTTP
    /// and HTTPS listeners.
    @Suite struct ClientIdentity {
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            /// `app.test` (open), `allow.test` (allowlist 203.0.113.0/24),
            /// `tls.test` (TLS, open).
            init(settings: String) throws {
                pki = try TestPKI()
                backend = try EchoBackend(name: "app")
                manifests = try ManifestFolder()
                let leaf = try pki.leaf(["tls.test"])
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                try manifests.write("secret.yaml", TestPKI.secret("tls", certificate: leaf.certificate, key: leaf.key))
                try manifests.write(
                    "ingress.yaml",
                    Manifests.ingress("open", rules: [("app.test", "/", "Prefix", "app")])
                        + tlsIngress(
                            "allow", tls: [], hosts: ["allow.test"], service: "app",
                            annotations: ["nginx.ingress.kubernetes.io/whitelist-source-range": "203.0.113.0/24"])
                        + tlsIngress("tls", tls: [(["tls.test"], "tls")], hosts: ["tls.test"], service: "app"))
                postern = try PosternProcess(manifests: manifests, settings: settings)
            }

            /// Status and the forwarding fields the backend saw, over
            /// `http1` (HTTP/1.1), `h2c` (prior knowledge) or `h2` (TLS, ALPN).
            func get(_ host: String, protocol kind: String, headers: [(String, String)]) throws -> (status: String, fields: [String: String]) {
                let tls = kind == "h2"
                let port = tls ? postern.httpsPort : postern.port
                let flags: [String] = kind == "http1" ? ["--http1.1"] : kind == "h2c" ? ["--http2-prior-knowledge"] : ["--http2"]
                let result = try runCommand(
                    "/usr/bin/curl",
                    ["-s", "--cacert", pki.caPath, "--resolve", "\(host):\(port):127.0.0.1", "-w", "\n%{http_code}"] + flags
                        + headers.flatMap { ["-H", "\($0.0): \($0.1)"] } + ["\(tls ? "https" : "http")://\(host):\(port)/x"])
                let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                let status = String(lines.last ?? "")
                let body = lines.dropLast().joined(separator: "\n")
                let json = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
                let fields = (json?["headers"] as? [String: String]) ?? [:]
                return (status, Dictionary(fields.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first }))
            }

            /// The PROXY protocol client's line (see `proxyProtocolClient`).
            func raw(_ mode: String, tls: Bool, host: String, http2: Bool = false) throws -> String {
                let result = try runCommand(
                    "/usr/bin/env",
                    ["python3", "-c", proxyProtocolClient, "\(tls ? postern.httpsPort : postern.port)", mode, tls ? "tls" : "tcp", host, pki.caPath,
                     http2 ? "h2" : "h1"],
                    timeout: 30)
                #expect(result.status == 0, "\(result.stderr)")
                return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }

        /// One spoofing case: the settings, the request, what must happen.
        struct Case {
            var name: String
            var host: String
            var headers: [(String, String)]
            var status: String
            /// x-real-ip, x-forwarded-for, x-forwarded-port the backend saw ("" when refused).
            var realIP: String
            var forwardedFor: String
            var forwardedPort: String
        }

        static let spoof: [(String, String)] = [("X-Forwarded-For", "203.0.113.5"), ("X-Real-IP", "203.0.113.5"), ("X-Forwarded-Port", "8443")]

        /// The peer (127.0.0.1) is not in `proxy-real-ip-cidr`: nothing it
        /// says moves the client address; the allowlist holds.
        static let untrusted: [Case] = [
            Case(name: "allowlist not bypassed", host: "allow.test", headers: spoof, status: "403", realIP: "", forwardedFor: "", forwardedPort: ""),
            Case(name: "the backend sees the real peer", host: "app.test", headers: spoof, status: "200", realIP: "127.0.0.1",
                 forwardedFor: "127.0.0.1", forwardedPort: "80"),
        ]

        /// The peer is trusted: its word is taken, X-Forwarded-Port passes (issue 22).
        static let trusted: [Case] = [
            Case(name: "a trusted peer's client is allowed", host: "allow.test", headers: spoof, status: "200", realIP: "203.0.113.5",
                 forwardedFor: "203.0.113.5", forwardedPort: "8443"),
            Case(name: "the backend sees the forwarded client", host: "app.test", headers: spoof, status: "200", realIP: "203.0.113.5",
                 forwardedFor: "203.0.113.5", forwardedPort: "8443"),
            Case(name: "no forwarded headers: the peer", host: "app.test", headers: [], status: "200", realIP: "127.0.0.1",
                 forwardedFor: "127.0.0.1", forwardedPort: "80"),
        ]

        private static func run(_ cases: [Case], settings: String) throws -> Fixture {
            let f = try Fixture(settings: settings)
            for c in cases {
                for kind in ["http1", "h2c"] {
                    let (status, fields) = try f.get(c.host, protocol: kind, headers: c.headers)
                    #expect(status == c.status, "\(kind): \(c.name)")
                    guard c.status == "200" else { continue }
                    #expect(fields["x-real-ip"] == c.realIP, "\(kind): \(c.name)")
                    #expect(fields["x-forwarded-for"] == c.forwardedFor, "\(kind): \(c.name)")
                    #expect(fields["x-forwarded-port"] == c.forwardedPort, "\(kind): \(c.name)")
                }
            }
            // Over TLS with HTTP/2 (ALPN h2): the same, with the HTTPS port's 443 by default.
            let (status, fields) = try f.get("tls.test", protocol: "h2", headers: spoof)
            #expect(status == "200")
            #expect(fields["x-real-ip"] == (settings.contains("127.0.0.1") ? "203.0.113.5" : "127.0.0.1"))
            return f
        }

        @Test func anUntrustedPeerCannotSetTheClientAddress() throws {
            let f = try Self.run(Self.untrusted, settings: "use-forwarded-headers: true\nproxy-real-ip-cidr: 10.0.0.0/8, 2001:db8::/32\n")
            #expect(try f.postern.metric("postern_downstream_errors_total{reason=\"forbidden\"}") == 2)
        }

        @Test func byDefaultForwardedHeadersAreIgnored() throws {
            _ = try Self.run(Self.untrusted, settings: "")
        }

        @Test func aTrustedPeerSetsTheClientAddressAndItsForwardedPortPasses() throws {
            _ = try Self.run(Self.trusted, settings: "use-forwarded-headers: true\nproxy-real-ip-cidr: 10.0.0.0/8,127.0.0.1\n")
        }

        @Test func computeFullForwardedForAppendsThePeer() throws {
            let f = try Fixture(settings: "use-forwarded-headers: true\ncompute-full-forwarded-for: true\nproxy-real-ip-cidr: 127.0.0.0/8\n")
            for kind in ["http1", "h2c"] {
                let (status, fields) = try f.get("app.test", protocol: kind, headers: [("X-Forwarded-For", "198.51.100.1, 203.0.113.5")])
                #expect(status == "200")
                #expect(fields["x-forwarded-for"] == "198.51.100.1, 203.0.113.5, 127.0.0.1", "\(kind)")
                #expect(fields["x-real-ip"] == "203.0.113.5", "\(kind)")
                #expect(fields["x-original-forwarded-for"] == "198.51.100.1, 203.0.113.5", "\(kind)")
            }
        }

        /// `use-proxy-protocol`: both listeners take v1 and v2 (and v2
        /// LOCAL: the TCP peer), and refuse a connection without a header;
        /// each refusal is counted.
        @Test func proxyProtocolIsRequiredOnBothListenersWhenEnabled() throws {
            let f = try Fixture(settings: "use-proxy-protocol: true\nproxy-protocol-header-timeout: 1s\n")
            for tls in [false, true] {
                let host = tls ? "tls.test" : "app.test"
                let port = tls ? "443" : "80"
                #expect(try f.raw("v1", tls: tls, host: host) == "200 203.0.113.50 443", "tls: \(tls)")
                #expect(try f.raw("v2", tls: tls, host: host) == "200 203.0.113.60 443", "tls: \(tls)")
                #expect(try f.raw("v2-local", tls: tls, host: host) == "200 127.0.0.1 \(port)", "tls: \(tls)")
                #expect(try f.raw("none", tls: tls, host: host).hasPrefix("closed"), "tls: \(tls): no header, no answer")
                // HTTP/2 after the header: h2c with prior knowledge, h2 by ALPN.
                #expect(try f.raw("v1", tls: tls, host: host, http2: true) == "200 203.0.113.50 443", "h2, tls: \(tls)")
                #expect(try f.raw("v2", tls: tls, host: host, http2: true) == "200 203.0.113.60 443", "h2, tls: \(tls)")
                #expect(try f.raw("none", tls: tls, host: host, http2: true).hasPrefix("closed"), "h2, tls: \(tls): no header")
            }
            #expect(try f.raw("v1", tls: false, host: "allow.test").hasPrefix("200 "), "the PROXY source passes the allowlist")
            let slow = try f.raw("partial", tls: false, host: "app.test")
            #expect(slow.hasPrefix("closed"), "a header not finished in time is refused: \(slow)")
            if let seconds = Double(slow.split(separator: " ").last ?? "") { #expect(seconds < 5) }
            #expect(try f.postern.metric("postern_downstream_errors_total{reason=\"proxy_protocol\"}") == 5)
        }

        /// Without `use-proxy-protocol`, a PROXY header is not a header:
        /// plain HTTP answers 400, TLS fails its handshake.
        @Test func proxyProtocolIsRefusedWhereNotEnabled() throws {
            let f = try Fixture(settings: "")
            #expect(try f.raw("v1", tls: false, host: "app.test").hasPrefix("400"))
            #expect(try f.raw("v2", tls: false, host: "app.test").hasPrefix("400") || f.raw("v2", tls: false, host: "app.test").hasPrefix("closed"))
            #expect(try f.raw("v1", tls: true, host: "tls.test").hasPrefix("closed"))
            #expect(try f.raw("v2", tls: true, host: "tls.test").hasPrefix("closed"))
            #expect(try f.raw("none", tls: false, host: "app.test") == "200 127.0.0.1 80")
            #expect(try f.raw("none", tls: true, host: "tls.test") == "200 127.0.0.1 443")
        }

        @Test func badClientAddressSettingsStopStartup() throws {
            for (settings, message) in [
                ("proxy-real-ip-cidr: 10.0.0.0/8, nope\n", "'nope' is not an IPv4 or IPv6 address or CIDR"),
                ("forwarded-for-header: \"X Forwarded\"\n", "expected a header field name"),
                ("use-proxy-protocol: maybe\n", "expected true or false"),
                ("proxy-protocol-header-timeout: 0\n", "expected seconds"),
            ] {
                let manifests = try ManifestFolder()
                let config = manifests.path + "-bad.yaml"
                try settings.write(toFile: config, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: config) }
                let result = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path, "--config", config], timeout: 20)
                #expect(result.status != 0, "\(settings)")
                #expect(result.stderr.contains(message) || result.stdout.contains(message), "\(settings): \(result.stderr)")
            }
        }
    }
}
