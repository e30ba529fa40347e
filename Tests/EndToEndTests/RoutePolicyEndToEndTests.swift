import Foundation
import Testing

/// Uploads a body to `/small/upload` on `policy.test` and prints
/// `<status or reset/closed> <bytes sent>`: `h1-length` (Content-Length
/// 2048), `h1-chunked` and `h2` (a body of unknown length, up to 2 GiB, sent
/// until the proxy answers or cuts the stream; bounded by 30 s).
private let uploadClient = #"""
import select, socket, sys, time
import h2.config, h2.connection, h2.events

port, mode = int(sys.argv[1]), sys.argv[2]
limit_bytes, deadline = 2 * 1024 ** 3, time.time() + 30
chunk = b"x" * 65536

def status_of(data):
    return data.split(b"\r\n", 1)[0].split(b" ")[1].decode()

def http1(chunked):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if not chunked:
        sock.sendall(b"POST /small/upload HTTP/1.1\r\nHost: policy.test\r\nContent-Length: 2048\r\n\r\n" + b"x" * 2048)
        return status_of(sock.recv(65536)), 2048
    sock.sendall(b"POST /small/upload HTTP/1.1\r\nHost: policy.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0
    while sent < limit_bytes and time.time() < deadline:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(b"10000\r\n" + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        data = b""
    return (status_of(data) if data else "closed"), sent

def http2():
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    connection.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "policy.test"),
                                (":path", "/small/upload")])
    sock.sendall(connection.data_to_send())
    sent, outcome = 0, None
    while outcome is None and sent < limit_bytes and time.time() < deadline:
        room = min(connection.local_flow_control_window(1), connection.max_outbound_frame_size)
        if room > 0:
            connection.send_data(1, chunk[:room])
            sent += room
            sock.sendall(connection.data_to_send())
        readable, _, _ = select.select([sock], [], [], 0 if room > 0 else 1)
        if not readable:
            continue
        data = sock.recv(65536)
        if not data:
            outcome = "closed"
            break
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                outcome = dict(event.headers)[":status"]
            elif isinstance(event, h2.events.StreamReset):
                outcome = outcome or "reset"
        sock.sendall(connection.data_to_send())
    return outcome or "timeout", sent

result = http1(False) if mode == "h1-length" else http1(True) if mode == "h1-chunked" else http2()
print(result[0], result[1])
"""#

extension EndToEndTests {
    /// Per-route policies from ingress-nginx annotations, enforced by the
    /// request pipeline for HTTP/1.1 and HTTP/2 alike.
    @Suite struct RoutePolicies {
        final class Fixture: @unchecked Sendable {
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init() throws {
                backend = try EchoBackend(name: "app")
                manifests = try ManifestFolder()
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                func ingress(_ name: String, path: String, annotations: [String: String]) -> String {
                    """
                    ---
                    apiVersion: networking.k8s.io/v1
                    kind: Ingress
                    metadata:
                      name: \(name)
                      namespace: default
                      annotations: {\(annotations.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", "))}
                    spec:
                      ingressClassName: postern
                      rules:
                      - host: policy.test
                        http:
                          paths:
                          - {path: \(path), pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}

                    """
                }
                let prefix = "nginx.ingress.kubernetes.io/"
                try manifests.write(
                    "ingress.yaml",
                    ingress("open", path: "/open", annotations: [:])
                        + ingress("allowed", path: "/allowed", annotations: [prefix + "whitelist-source-range": "10.0.0.0/8, 127.0.0.1/32"])
                        + ingress("elsewhere", path: "/elsewhere", annotations: [prefix + "allowlist-source-range": "10.0.0.0/8,2001:db8::/32"])
                        + ingress("denied", path: "/denied", annotations: [prefix + "denylist-source-range": "127.0.0.0/8"])
                        + ingress("small", path: "/small", annotations: [prefix + "proxy-body-size": "1k"])
                        + ingress("broken", path: "/broken", annotations: [prefix + "whitelist-source-range": "10.0.0.0/8, not-an-address"]))
                postern = try PosternProcess(manifests: manifests)
            }

            /// Status of a GET over HTTP/1.1 or HTTP/2 (curl, h2c with prior knowledge).
            func status(_ path: String, http2: Bool) throws -> String {
                let result = try runCommand(
                    "/usr/bin/curl",
                    ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--resolve", "policy.test:\(postern.port):127.0.0.1"]
                        + (http2 ? ["--http2-prior-knowledge"] : []) + ["http://policy.test:\(postern.port)\(path)"])
                return result.stdout
            }

            func upload(_ mode: String) throws -> (outcome: String, sent: Int) {
                let result = try runCommand("/usr/bin/env", ["python3", "-c", uploadClient, "\(postern.port)", mode], timeout: 60)
                #expect(result.status == 0, "\(result.stderr)")
                let words = result.stdout.split(separator: " ")
                return (String(words.first ?? ""), Int(words.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? -1)
            }
        }

        @Test func sourceRangesAllowAndDenyTheClientAddressInBothProtocols() throws {
            let f = try Fixture()
            for http2 in [false, true] {
                #expect(try f.status("/open/x", http2: http2) == "200")
                #expect(try f.status("/allowed/x", http2: http2) == "200", "127.0.0.1 is in the allow list")
                #expect(try f.status("/elsewhere/x", http2: http2) == "403", "127.0.0.1 is not in the allow list")
                #expect(try f.status("/denied/x", http2: http2) == "403", "127.0.0.1 is in the deny list")
                #expect(try f.status("/broken/x", http2: http2) == "503", "an invalid range keeps the Ingress out of service")
            }
            #expect(try f.postern.metric("postern_downstream_errors_total{reason=\"forbidden\"}") == 4)
        }

        @Test func aBodyOverTheLimitIsRefusedOrCutWithoutBuffering() throws {
            let f = try Fixture()
            #expect(try f.upload("h1-length").outcome == "413", "a declared length over 1k")
            let chunked = try f.upload("h1-chunked")
            #expect(chunked.outcome == "413", "a chunked body is cut as it crosses the limit")
            #expect(chunked.sent < 64 * 1024 * 1024, "the upload was stopped long before 2 GiB (sent \(chunked.sent))")
            let overHTTP2 = try f.upload("h2")
            #expect(overHTTP2.outcome == "413", "an HTTP/2 body is cut as it crosses the limit \(overHTTP2)")
            #expect(overHTTP2.sent < 64 * 1024 * 1024, "sent \(overHTTP2.sent)")
            #expect(f.postern.child.memoryKiB().peak < 200 * 1024, "memory stays bounded")
        }
    }
}
