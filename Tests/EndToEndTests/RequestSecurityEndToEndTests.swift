import Foundation
import Testing

/// A client that sends each case of a table over HTTP/1.1 (raw bytes) or
/// HTTP/2 (the Python h2 package), over TLS (with or without SNI and a
/// client certificate) or in clear text, and prints one line per case:
/// `200 <backend>[ cert]`, `<3xx> <Location>`, another status, or
/// `tls-error`, `reset`, `closed`.
private let tableClient = #"""
import json, socket, ssl, sys
import h2.config, h2.connection, h2.events

port, https_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
cases = json.loads(sys.argv[5])

def connect(case, alpn):
    sock = socket.create_connection(("127.0.0.1", https_port if case["tls"] else port), timeout=5)
    if not case["tls"]:
        return sock
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if case["cert"]:
        context.load_cert_chain(cert, key)
    context.set_alpn_protocols([alpn])
    return context.wrap_socket(sock, server_hostname=case["sni"])

def summary(status, headers, body):
    if status == 200:
        answer = json.loads(body)
        verified = answer.get("headers", {}).get("ssl-client-verify")
        return "200 " + answer["name"] + (" cert" if verified == "SUCCESS" else "")
    if 300 <= status < 400:
        return "%d %s" % (status, headers.get("location", ""))
    return str(status)

def http1(case):
    sock = connect(case, "http/1.1")
    request = case.get("raw") or ("GET %s HTTP/1.1\r\nHost: %s\r\n" % (case["target"], case["host"]))
    sock.sendall((request + "Connection: close\r\n\r\n").encode("latin-1"))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    if not data:
        return "closed"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return summary(int(lines[0].split(" ")[1]), headers, body)

def http2(case):
    sock = connect(case, "h2")
    config = h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
        normalize_outbound_headers=False, validate_inbound_headers=False)
    connection = h2.connection.H2Connection(config=config)
    connection.initiate_connection()
    scheme = "https" if case["tls"] else "http"
    connection.send_headers(1, [(":method", "GET"), (":scheme", scheme), (":authority", case["host"]),
                                (":path", case["target"])], end_stream=True)
    sock.sendall(connection.data_to_send())
    status, headers, body = None, {}, b""
    while True:
        data = sock.recv(65536)
        if not data:
            return "closed"
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
                status = int(headers[":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                sock.close()
                return summary(status, headers, body)
            elif isinstance(event, h2.events.StreamReset):
                sock.close()
                return "reset"
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.close()
                return "closed"
        sock.sendall(connection.data_to_send())

for case in cases:
    try:
        print(http1(case) if case["protocol"] == "h1" else http2(case), flush=True)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        print("tls-error" if case["tls"] else "closed", flush=True)
"""#

/// One request of the table: how it is sent, and what must come back.
private struct SecurityCase {
    enum Transport { case plain, tls(serverName: String?, certificate: Bool) }
    var transport: Transport
    var host: String
    var target = "/x"
    /// HTTP/1.1 only: the request line and fields before `Connection: close`.
    var raw: String? = nil
    var expected: String
    /// What this case shows (the issue's finding it guards).
    var because: String
}

extension EndToEndTests {
    /// Issue 12, findings 1-7: every host spelling and request-target form
    /// gets the decision of the canonical host, over HTTP/1.1 and HTTP/2.
    @Suite struct RequestSecurity {
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let clientPKI: TestPKI
            let backends: [EchoBackend]
            let manifests: ManifestFolder
            let postern: PosternProcess

            init() throws {
                pki = try TestPKI()
                clientPKI = try TestPKI()
                manifests = try ManifestFolder()
                let names = ["plain", "tls", "mtls", "strict", "other", "public", "admin"]
                backends = try names.map { try EchoBackend(name: $0) }
                let shared = try pki.leaf(["tls.test", "mtls.test", "strict.test"])
                let other = try pki.leaf(["other.test"])
                let client = try clientPKI.leaf(["client-1"])
                try client.certificate.write(toFile: clientPKI.folder + "/client.crt", atomically: true, encoding: .utf8)
                try client.key.write(toFile: clientPKI.folder + "/client.key", atomically: true, encoding: .utf8)
                let clientCA = try String(contentsOfFile: clientPKI.caPath, encoding: .utf8)
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", zip(names, backends).map { Manifests.service($0, ports: [$1.port]) }.joined())
                try manifests.write(
                    "secrets.yaml",
                    TestPKI.secret("shared", certificate: shared.certificate, key: shared.key)
                        + TestPKI.secret("other", certificate: other.certificate, key: other.key)
                        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: client-ca, namespace: default}\nstringData:\n  ca.crt: |\n"
                        + clientCA.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n") + "\n")
                let clientCertificates = [
                    "nginx.ingress.kubernetes.io/auth-tls-secret": "default/client-ca",
                    "nginx.ingress.kubernetes.io/auth-tls-verify-client": "on",
                    "nginx.ingress.kubernetes.io/auth-tls-pass-certificate-to-upstream": "true",
                ]
                try manifests.write(
                    "ingress.yaml",
                    Manifests.ingress(
                        "plain",
                        rules: [
                            ("plain.test", "/", "Prefix", "plain"), ("public.test", "/public", "Prefix", "public"),
                            ("split.test", "/public", "Prefix", "public"), ("split.test", "/admin", "Exact", "admin"),
                        ])
                        + tlsIngress("tls", tls: [(["tls.test"], "shared")], hosts: ["tls.test"], service: "tls")
                        + tlsIngress(
                            "mtls", tls: [(["mtls.test"], "shared")], hosts: ["mtls.test"], service: "mtls",
                            annotations: clientCertificates)
                        + tlsIngress(
                            "strict", tls: [(["strict.test"], "shared")], hosts: ["strict.test"], service: "strict",
                            annotations: clientCertificates.merging(["nginx.ingress.kubernetes.io/ssl-redirect": "false"]) { $1 })
                        + tlsIngress("other", tls: [(["other.test"], "other")], hosts: ["other.test"], service: "other")
                        // A second Ingress on the TLS host opts out of the redirect for its own path only.
                        + """
                        ---
                        apiVersion: networking.k8s.io/v1
                        kind: Ingress
                        metadata:
                          name: hooks
                          namespace: default
                          annotations: {"nginx.ingress.kubernetes.io/ssl-redirect": "false"}
                        spec:
                          ingressClassName: postern
                          rules:
                          - host: "tls.test"
                            http:
                              paths:
                              - {path: /hooks, pathType: Prefix, backend: {service: {name: public, port: {number: 80}}}}

                        """)
                postern = try PosternProcess(manifests: manifests)
            }

            /// Runs `cases` over `protocol` ("h1" or "h2"); one answer per case.
            fileprivate func run(_ cases: [SecurityCase], protocol name: String) throws -> [String] {
                let encoded: [[String: Any]] = cases.map { item in
                    var fields: [String: Any] = ["protocol": name, "host": item.host, "target": item.target]
                    switch item.transport {
                    case .plain:
                        fields["tls"] = false
                        fields["cert"] = false
                    case let .tls(serverName, certificate):
                        fields["tls"] = true
                        fields["sni"] = serverName ?? NSNull()
                        fields["cert"] = certificate
                    }
                    if let raw = item.raw { fields["raw"] = raw }
                    return fields
                }
                let json = String(decoding: try JSONSerialization.data(withJSONObject: encoded), as: UTF8.self)
                let result = try runCommand(
                    "/usr/bin/env",
                    [
                        "python3", "-c", tableClient, "\(postern.port)", "\(postern.httpsPort)", clientPKI.folder + "/client.crt",
                        clientPKI.folder + "/client.key", json,
                    ], timeout: 120)
                #expect(result.status == 0, "\(result.stderr)")
                return result.stdout.split(separator: "\n").map(String.init)
            }
        }

        /// Cases that mean the same over HTTP/1.1 and HTTP/2.
        private static let sharedCases: [SecurityCase] = [
            // Controls.
            SecurityCase(transport: .plain, host: "plain.test", expected: "200 plain", because: "a plain host is served"),
            SecurityCase(transport: .plain, host: "split.test", target: "/admin", expected: "200 admin", because: "control"),
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: false), host: "tls.test", expected: "200 tls", because: "control"),
            // Finding 2: the trailing dot, case and port of a TLS host over plain HTTP.
            SecurityCase(transport: .plain, host: "tls.test.", expected: "308 https://tls.test/x", because: "finding 2: trailing dot"),
            SecurityCase(transport: .plain, host: "TLS.Test.", expected: "308 https://tls.test/x", because: "finding 2: case and dot"),
            SecurityCase(transport: .plain, host: "tls.test.:80", expected: "308 https://tls.test/x", because: "finding 2: dot and port"),
            SecurityCase(transport: .plain, host: "mtls.test.", expected: "308 https://mtls.test/x", because: "finding 2: mTLS host, dot"),
            // ssl-redirect per path, as ingress-nginx applies it per location.
            SecurityCase(transport: .plain, host: "tls.test", target: "/hooks/github", expected: "200 public", because: "its Ingress opted out for its path"),
            SecurityCase(transport: .plain, host: "TLS.test.:80", target: "/hooks", expected: "200 public", because: "the opt-out, any spelling"),
            SecurityCase(transport: .plain, host: "tls.test", target: "/hookshot", expected: "308 https://tls.test/hookshot", because: "another path of the host still redirects"),
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: false), host: "tls.test", target: "/hooks/x", expected: "200 public", because: "served over TLS too"),
            SecurityCase(transport: .plain, host: "strict.test", expected: "400", because: "mTLS host without redirect over plain HTTP"),
            SecurityCase(transport: .plain, host: "STRICT.test.:80", expected: "400", because: "finding 2: mTLS host over plain HTTP, any spelling"),
            // Finding 1: no SNI, no client certificate.
            SecurityCase(transport: .tls(serverName: nil, certificate: false), host: "mtls.test", expected: "400", because: "finding 1"),
            SecurityCase(transport: .tls(serverName: nil, certificate: false), host: "MTLS.test", expected: "400", because: "finding 1: case"),
            SecurityCase(transport: .tls(serverName: nil, certificate: false), host: "mtls.test.", expected: "400", because: "finding 1: dot"),
            SecurityCase(transport: .tls(serverName: nil, certificate: true), host: "mtls.test", expected: "400", because: "finding 1: the default certificate never asked for one"),
            SecurityCase(transport: .tls(serverName: nil, certificate: false), host: "tls.test", expected: "200 tls", because: "no SNI is never misdirected"),
            // Same certificate, another host's handshake: the client-certificate check is per request.
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: false), host: "mtls.test", expected: "421", because: "SNI of a host without mTLS"),
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: true), host: "strict.test", expected: "421", because: "SNI of a host without mTLS"),
            SecurityCase(transport: .tls(serverName: "mtls.test", certificate: true), host: "mtls.test.", expected: "200 mtls cert", because: "verified, dot"),
            SecurityCase(transport: .tls(serverName: "mtls.test", certificate: true), host: "MTLS.test:443", expected: "200 mtls cert", because: "verified, case and port"),
            SecurityCase(transport: .tls(serverName: "mtls.test", certificate: true), host: "tls.test", expected: "200 tls", because: "the certificate is passed only to hosts that ask"),
            SecurityCase(transport: .tls(serverName: "mtls.test", certificate: false), host: "mtls.test", expected: "tls-error", because: "handshake refused"),
            // Finding 3: a trailing dot is the same host for SNI and Host.
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: false), host: "tls.test.", expected: "200 tls", because: "finding 3"),
            SecurityCase(transport: .tls(serverName: "tls.test.", certificate: false), host: "tls.test", expected: "200 tls", because: "finding 3, reverse"),
            SecurityCase(transport: .tls(serverName: "tls.test", certificate: false), host: "other.test", expected: "421", because: "another certificate"),
            // Findings 4 and 5: encoded separators and NUL.
            SecurityCase(transport: .plain, host: "public.test", target: "/public/..%2fadmin", expected: "400", because: "finding 4"),
            SecurityCase(transport: .plain, host: "public.test", target: "/public/%2F..%2Fadmin", expected: "400", because: "finding 4"),
            SecurityCase(transport: .plain, host: "public.test", target: "/public/%2e%2e%2fadmin", expected: "400", because: "finding 4"),
            SecurityCase(transport: .plain, host: "public.test", target: "/public/..%5Cadmin", expected: "400", because: "finding 4: backslash"),
            SecurityCase(transport: .plain, host: "public.test", target: "/public/%00/../admin", expected: "400", because: "finding 5"),
            SecurityCase(transport: .plain, host: "public.test", target: "/public/a?next=%2Fadmin", expected: "200 public", because: "encoded data in the query"),
            // Finding 7: one validator for every authority form.
            SecurityCase(transport: .plain, host: "plain.test@tls.test", expected: "400", because: "finding 7: user information"),
            SecurityCase(transport: .plain, host: "tls.test,plain.test", expected: "400", because: "finding 7: a list"),
        ]

        @Test func everyDecisionIsTheSameOverHTTP1AndHTTP2() throws {
            let f = try Fixture()
            for protocolName in ["h1", "h2"] {
                let answers = try f.run(Self.sharedCases, protocol: protocolName)
                #expect(answers.count == Self.sharedCases.count)
                for (item, answer) in zip(Self.sharedCases, answers) {
                    #expect(answer == item.expected, "\(protocolName) \(item.host) \(item.target) \(item.transport): \(item.because)")
                }
            }
        }

        @Test func aFragmentIsRefusedInEveryProtocol() throws {
            // Finding 6: `#` is never part of a request target. HTTP/2
            // implementations may refuse it in :path before the proxy sees it
            // (a stream reset); either way it never reaches a backend.
            let f = try Fixture()
            let fragment = SecurityCase(transport: .plain, host: "split.test", target: "/public#/../admin", expected: "400", because: "finding 6")
            #expect(try f.run([fragment], protocol: "h1") == ["400"])
            let overHTTP2 = try f.run([fragment], protocol: "h2")
            #expect(overHTTP2 == ["400"] || overHTTP2 == ["reset"], "\(overHTTP2)")
            for backend in f.backends where backend.name == "admin" || backend.name == "public" {
                // The one request the backend counted is this `/stats` itself.
                let seen = try backend.stats()
                #expect(seen.requests == 1, "\(backend.name) saw \(seen)")
            }
        }

        @Test func absoluteFormTargetsAreCanonicalisedLikeHost() throws {
            // Findings 2 and 7 for HTTP/1.1's absolute form, whose authority replaces Host.
            let f = try Fixture()
            let cases = [
                SecurityCase(transport: .plain, host: "", raw: "GET http://tls.test./x HTTP/1.1\r\nHost: plain.test\r\n",
                    expected: "308 https://tls.test/x", because: "finding 2: absolute form with a dot"),
                SecurityCase(transport: .plain, host: "", raw: "GET http://TLS.test.:80/x HTTP/1.1\r\nHost: plain.test\r\n",
                    expected: "308 https://tls.test/x", because: "finding 2: case, dot, port"),
                SecurityCase(transport: .plain, host: "", raw: "GET http://plain.test@tls.test/x HTTP/1.1\r\nHost: tls.test\r\n",
                    expected: "400", because: "finding 7: user information in the target"),
                SecurityCase(transport: .plain, host: "", raw: "GET http://strict.test./x HTTP/1.1\r\nHost: plain.test\r\n",
                    expected: "400", because: "mTLS host over plain HTTP"),
                SecurityCase(transport: .plain, host: "", raw: "GET http://plain.test/x HTTP/1.1\r\nHost: tls.test\r\n",
                    expected: "200 plain", because: "the target's authority wins over Host"),
            ]
            let answers = try f.run(cases, protocol: "h1")
            for (item, answer) in zip(cases, answers) {
                #expect(answer == item.expected, "\(item.raw ?? ""): \(item.because)")
            }
            // Refusals are counted by reason.
            #expect(try f.postern.metric("postern_downstream_errors_total{reason=\"client_certificate\"}") == 1)
            #expect(try f.postern.metric("postern_downstream_errors_total{reason=\"bad_request\"}") == 1)
        }
    }
}
