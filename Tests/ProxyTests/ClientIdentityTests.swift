import HTTP1
import HTTP2
import Reactor
import RouteModel
import Routing
import TLS
import Telemetry
import Testing

@testable import Proxy

/// The client-address phase and the forwarding-header policy, with no
/// sockets: one table of cases, each run through the HTTP/1.1 framing and
/// the HTTP/2 framing (to an HTTP/1.1 upstream, and to an HTTP/2 upstream
/// as gRPC and h2c get it). What the upstream receives must be the same.
@Suite struct ClientIdentityTests {
    /// One client-address configuration.
    struct Setup {
        var useForwardedHeaders = false
        var enableRealIP = false
        var computeFull = false
        var useProxyProtocol = false
        var trusted: [String]? = nil
        var forwardedForHeader = "X-Forwarded-For"

        var settings: ClientAddressSettings {
            var settings = ClientAddressSettings()
            settings.useForwardedHeaders = useForwardedHeaders
            settings.enableRealIP = enableRealIP
            settings.computeFullForwardedFor = computeFull
            settings.useProxyProtocol = useProxyProtocol
            if let trusted { settings.trustedRanges = trusted.compactMap { IPRange(parsing: $0) } }
            settings.forwardedForHeader = forwardedForHeader
            return settings
        }
    }

    struct Case {
        var name: String
        var setup: Setup
        /// The TCP peer.
        var peer: String
        /// The PROXY header the connection began with (v1 text), if any.
        var proxyHeader: String? = nil
        /// The client's fields (besides Host: app.test).
        var fields: [(String, String)] = []
        var isTLS = false
        /// The route's decision: `forward` or `403` (the allowlist is 203.0.113.0/24).
        var decision: String
        /// What the upstream receives, lower-case names; absent names: not sent.
        var expected: [String: String]
    }

    /// Forwarding fields compared (X-Request-ID is checked on its own: random when not sent).
    static let compared = [
        "x-real-ip", "x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-scheme",
        "x-original-forwarded-for", "proxy", "x-custom", "cf-connecting-ip",
    ]

    static func sent(_ client: String, xff: String? = nil, host: String = "app.test", port: String = "80", proto: String = "http",
                     original: String? = nil) -> [String: String] {
        var fields = [
            "x-real-ip": client, "x-forwarded-for": xff ?? client, "x-forwarded-host": host, "x-forwarded-port": port,
            "x-forwarded-proto": proto, "x-scheme": proto,
        ]
        if let original { fields["x-original-forwarded-for"] = original }
        return fields
    }

    static let cases: [Case] = [
        Case(name: "defaults: the peer is the client, a client's XFF is replaced", setup: Setup(), peer: "198.51.100.7",
             fields: [("X-Forwarded-For", "203.0.113.5"), ("X-Real-IP", "203.0.113.5")], decision: "403",
             expected: sent("198.51.100.7", original: "203.0.113.5")),
        Case(name: "defaults: X-Forwarded-Proto/Host/Port are the proxy's", setup: Setup(), peer: "203.0.113.1",
             fields: [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test"), ("X-Forwarded-Port", "443"), ("Proxy", "http://x")],
             decision: "forward", expected: sent("203.0.113.1")),
        Case(name: "over TLS", setup: Setup(), peer: "203.0.113.1", isTLS: true, decision: "forward",
             expected: sent("203.0.113.1", port: "443", proto: "https")),
        Case(name: "forwarded headers from a trusted peer name the client", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.1.2.3", fields: [("X-Forwarded-For", "203.0.113.5")], decision: "forward",
             expected: sent("203.0.113.5", original: "203.0.113.5")),
        Case(name: "an untrusted peer cannot set the client address", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "198.51.100.7", fields: [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Port", "8443"), ("X-Forwarded-Proto", "https")],
             decision: "403", expected: sent("198.51.100.7", original: "203.0.113.5")),
        Case(name: "the walk from the right skips trusted proxies", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.0.0.7"), ("X-Forwarded-For", "10.9.9.9")],
             decision: "forward", expected: sent("203.0.113.9", original: "198.51.100.1, 203.0.113.9, 10.0.0.7, 10.9.9.9")),
        Case(name: "every element trusted: the leftmost", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "10.1.1.1,10.2.2.2")], decision: "403",
             expected: sent("10.1.1.1", original: "10.1.1.1,10.2.2.2")),
        Case(name: "garbage ends the walk with the last address read", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "203.0.113.9, unknown, 10.3.3.3")], decision: "403",
             expected: sent("10.3.3.3", original: "203.0.113.9, unknown, 10.3.3.3")),
        Case(name: "garbage last: the peer stays the client", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "203.0.113.9, _hidden")], decision: "403",
             expected: sent("10.0.0.2", original: "203.0.113.9, _hidden")),
        Case(name: "ports and brackets in elements", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8", "fd00::/8"]),
             peer: "fd00::1", fields: [("X-Forwarded-For", "[2001:db8::7]:5000, 10.0.0.9:80")], decision: "403",
             expected: sent("2001:db8::7", original: "[2001:db8::7]:5000, 10.0.0.9:80")),
        Case(name: "the default proxy-real-ip-cidr trusts every IPv4 peer", setup: Setup(useForwardedHeaders: true),
             peer: "198.51.100.7", fields: [("X-Forwarded-For", "203.0.113.5")], decision: "forward",
             expected: sent("203.0.113.5", original: "203.0.113.5")),
        Case(name: "... and no IPv6 peer (nginx's 0.0.0.0/0)", setup: Setup(useForwardedHeaders: true),
             peer: "2001:db8::1", fields: [("X-Forwarded-For", "203.0.113.5")], decision: "403",
             expected: sent("2001:db8::1", original: "203.0.113.5")),
        Case(name: "trusted X-Forwarded-Proto, -Host and -Port pass through", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "shop.example"), ("X-Forwarded-Port", "443")],
             decision: "403", expected: sent("10.0.0.2", host: "shop.example", port: "443", proto: "https")),
        Case(name: "enable-real-ip alone: the address, not the other headers", setup: Setup(enableRealIP: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Proto", "https")],
             decision: "forward", expected: sent("203.0.113.5", original: "203.0.113.5")),
        Case(name: "compute-full-forwarded-for appends the peer", setup: Setup(useForwardedHeaders: true, computeFull: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "198.51.100.1, 203.0.113.9")], decision: "forward",
             expected: sent("203.0.113.9", xff: "198.51.100.1, 203.0.113.9, 10.0.0.2", original: "198.51.100.1, 203.0.113.9")),
        Case(name: "compute-full-forwarded-for with no list", setup: Setup(useForwardedHeaders: true, computeFull: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", decision: "403", expected: sent("10.0.0.2")),
        Case(name: "compute-full-forwarded-for never keeps an untrusted peer's list",
             setup: Setup(useForwardedHeaders: true, computeFull: true, trusted: ["10.0.0.0/8"]),
             peer: "198.51.100.7", fields: [("X-Forwarded-For", "203.0.113.9")], decision: "403",
             expected: sent("198.51.100.7", original: "203.0.113.9")),
        Case(name: "compute-full-forwarded-for needs use-forwarded-headers", setup: Setup(enableRealIP: true, computeFull: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", fields: [("X-Forwarded-For", "203.0.113.9")], decision: "forward",
             expected: sent("203.0.113.9", original: "203.0.113.9")),
        Case(name: "another forwarded-for-header", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"], forwardedForHeader: "CF-Connecting-IP"),
             peer: "10.0.0.2", fields: [("CF-Connecting-IP", "203.0.113.77"), ("X-Forwarded-For", "192.0.2.1")], decision: "forward",
             expected: sent("203.0.113.77", original: "203.0.113.77").merging(["cf-connecting-ip": "203.0.113.77"]) { $1 }),
        Case(name: "PROXY protocol from a trusted balancer names the client", setup: Setup(useProxyProtocol: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", proxyHeader: "PROXY TCP4 203.0.113.8 10.0.0.1 40000 443\r\n", isTLS: true, decision: "forward",
             expected: sent("203.0.113.8", port: "443", proto: "https")),
        Case(name: "with PROXY protocol, X-Forwarded-For is not the source", setup: Setup(useForwardedHeaders: true, useProxyProtocol: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", proxyHeader: "PROXY TCP4 198.51.100.8 10.0.0.1 40000 80\r\n", fields: [("X-Forwarded-For", "203.0.113.5")],
             decision: "403", expected: sent("198.51.100.8", original: "203.0.113.5")),
        Case(name: "compute-full with PROXY protocol appends the PROXY source",
             setup: Setup(useForwardedHeaders: true, computeFull: true, useProxyProtocol: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2", proxyHeader: "PROXY TCP4 198.51.100.8 10.0.0.1 40000 8080\r\n", fields: [("X-Forwarded-For", "203.0.113.5")],
             decision: "403", expected: sent("198.51.100.8", xff: "203.0.113.5, 198.51.100.8", port: "8080", original: "203.0.113.5")),
        Case(name: "a PROXY header from an untrusted peer does not name the client", setup: Setup(useProxyProtocol: true, trusted: ["10.0.0.0/8"]),
             peer: "198.51.100.9", proxyHeader: "PROXY TCP4 203.0.113.8 10.0.0.1 40000 443\r\n", decision: "403",
             expected: sent("198.51.100.9")),
        Case(name: "PROXY UNKNOWN: the TCP peer", setup: Setup(useProxyProtocol: true), peer: "203.0.113.3",
             proxyHeader: "PROXY UNKNOWN\r\n", decision: "forward", expected: sent("203.0.113.3")),
        Case(name: "proxy-owned and underscore fields never pass", setup: Setup(useForwardedHeaders: true, trusted: ["10.0.0.0/8"]),
             peer: "10.0.0.2",
             fields: [("X_Forwarded_For", "203.0.113.1"), ("X-Scheme", "https"), ("X-Original-Forwarded-For", "1.1.1.1"),
                      ("ssl-client-verify", "SUCCESS"), ("ssl-client-subject-dn", "CN=admin"), ("X-Custom", "kept")],
             decision: "403", expected: sent("10.0.0.2").merging(["x-custom": "kept"]) { $1 }),
    ]

    /// A route on app.test allowing only 203.0.113.0/24.
    static let table: RoutingTable = {
        let route = Route(
            path: "/", match: .prefix, cluster: "app", source: "default/app",
            policy: RoutePolicy(allowedSourceRanges: [IPRange(parsing: "203.0.113.0/24")!]))
        return RoutingTable(
            model: RouteModel(
                virtualHosts: [VirtualHost(host: .exact("app.test"), routes: [route])],
                clusters: [Cluster(name: "app", endpoints: [Endpoint(address: .v4(127, 0, 0, 1), port: 80)])]),
            generation: 1)
    }()

    /// The connection's peer after its PROXY header (if any).
    static func peer(_ c: Case, policy: ClientAddressPolicy) throws -> ConnectionPeer {
        let address = try #require(IPAddress(parsing: c.peer))
        let peer = ConnectionPeer(address: ClientAddress(bytes: address.bytes), text: Array(address.description.utf8), policy: policy)
        if let header = c.proxyHeader {
            guard case let .complete(parsed, _) = Array(header.utf8).withUnsafeBytes({ ProxyProtocol.parse($0) }) else {
                Issue.record("bad PROXY header in \(c.name)")
                return peer
            }
            peer.accept(parsed)
        }
        return peer
    }

    /// `Name: value` lines of an upstream head, lower-case names; repeated names joined.
    static func lines(_ out: ByteBuffer) -> [String: String] {
        var result: [String: String] = [:]
        for line in String(decoding: out.readable, as: UTF8.self).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].drop { $0 == " " }
            result[name] = result[name].map { $0 + ", " + value } ?? String(value)
        }
        return result
    }

    static func decision(_ outcome: RequestOutcome) -> String {
        switch outcome {
        case .forward: return "forward"
        case let .respond(response): return "\(response.status)"
        case .redirect: return "redirect"
        }
    }

    @Test(arguments: 0..<cases.count)
    func oneCaseThroughEveryFraming(_ index: Int) throws {
        let c = Self.cases[index]
        let policy = ClientAddressPolicy(c.setup.settings)
        let pipeline = RequestPipeline()
        let metrics = WorkerMetrics()
        let rewrite = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        defer { rewrite.deallocate() }
        var requestIDs = RequestIDGenerator()
        let forwarding = ForwardingHeaderPolicy(allowsUnderscores: false)
        let noTLS: TLSConnectionFacts? = nil
        var received: [(String, [String: String])] = []

        // HTTP/1.1.
        let peer1 = try Self.peer(c, policy: policy)
        let text = "GET /x HTTP/1.1\r\nHost: app.test\r\n" + c.fields.map { "\($0.0): \($0.1)\r\n" }.joined() + "\r\n"
        let requestBytes = Array(text.utf8)
        try requestBytes.withUnsafeBytes { bytes in
            var head = HTTP1RequestHead()
            guard case .complete = HTTP1Parser.parseRequestHead(bytes, limits: HTTP1Limits(), into: &head) else {
                Issue.record("\(c.name): the request does not parse")
                return
            }
            let host = try #require(head.host)
            let facts = RequestFacts(
                authority: UnsafeRawBufferPointer(rebasing: bytes[host]), target: UnsafeRawBufferPointer(rebasing: bytes[head.target]),
                pathLength: head.target.count, peer: peer1, declaredBodyLength: 0)
            let outcome = pipeline.decide(
                facts, fields: HTTP1RequestFields(fields: head.fields, bytes: bytes), tls: noTLS, table: Self.table, secure: nil,
                rewriteInto: rewrite, metrics: metrics, redirectStatus: 308)
            #expect(Self.decision(outcome) == c.decision, "HTTP/1.1: \(c.name)")
            let out = ByteBuffer(capacity: 1024)
            _ = UpstreamRequestFields.http1(
                head: head, bytes: bytes, host: head.host, hostFromTarget: false,
                context: ForwardingContext(
                    policy: forwarding, peer: peer1, clientText: pipeline.clientText, isTLS: c.isTLS,
                    publicPort: Array((c.isTLS ? "443" : "80").utf8), clientCertificate: []),
                requestIDs: &requestIDs, into: out)
            received.append(("HTTP/1.1", Self.lines(out)))
        }

        // HTTP/2: one decision, then both upstream framings.
        let peer2 = try Self.peer(c, policy: policy)
        var fields = HTTP2Fields()
        for (name, value) in c.fields { fields.append(name: Array(name.lowercased().utf8), value: Array(value.utf8)) }
        let authority = Array("app.test".utf8)[...]
        let path = Array("/x".utf8)
        let outcome = authority.withUnsafeBytes { authorityBytes in
            path.withUnsafeBytes { pathBytes in
                pipeline.decide(
                    RequestFacts(authority: authorityBytes, target: pathBytes, pathLength: 2, peer: peer2, declaredBodyLength: 0),
                    fields: HTTP2RequestFields(fields: fields), tls: noTLS, table: Self.table, secure: nil, rewriteInto: rewrite,
                    metrics: metrics, redirectStatus: 308)
            }
        }
        #expect(Self.decision(outcome) == c.decision, "HTTP/2: \(c.name)")
        let context = ForwardingContext(
            policy: forwarding, peer: peer2, clientText: pipeline.clientText, isTLS: c.isTLS,
            publicPort: Array((c.isTLS ? "443" : "80").utf8), clientCertificate: [])
        let out = ByteBuffer(capacity: 1024)
        _ = UpstreamRequestFields.http2ToHTTP1(fields: fields, authority: authority, context: context, requestIDs: &requestIDs, into: out)
        received.append(("HTTP/2 to HTTP/1.1", Self.lines(out)))
        var upstream = HTTP2Fields()
        _ = UpstreamRequestFields.http2ToHTTP2(fields: fields, authority: authority, context: context, requestIDs: &requestIDs, into: &upstream)
        var h2: [String: String] = [:]
        for index in 0..<upstream.count {
            let name = String(decoding: upstream.name(at: index), as: UTF8.self)
            let value = String(decoding: upstream.value(at: index), as: UTF8.self)
            h2[name] = h2[name].map { $0 + ", " + value } ?? value
        }
        received.append(("HTTP/2 to HTTP/2", h2))

        for (framing, got) in received {
            var shown: [String: String] = [:]
            for name in Self.compared { if let value = got[name] { shown[name] = value } }
            #expect(shown == c.expected, "\(framing): \(c.name)")
            #expect(got["x-request-id"]?.count == 32, "\(framing): a new request id")
            #expect(got["x_forwarded_for"] == nil && got["ssl-client-verify"] == nil && got["ssl-client-subject-dn"] == nil)
        }
    }

    /// The client's lines reach the upstream in order and normalised
    /// (`Name: value`), whatever their spacing, with dropped fields left out
    /// between them: consecutive lines are copied in runs, and a run must
    /// end exactly where a line does.
    @Test func clientFieldsGoUpstreamInOrderWhateverTheirSpacing() throws {
        let text = "GET /x HTTP/1.1\r\nHost: app.test\r\nAccept: */*\r\nA-One: 1\r\nB-Two:2\r\nC-Three:   3   \r\n"
            + "X_Dropped: yes\r\nX-Real-IP: 6.6.6.6\r\nD-Four: 4\r\nE-Five: \r\nConnection: keep-alive\r\nF-Six: 6 6\r\n\r\n"
        let peer = ConnectionPeer(address: ClientAddress(bytes: [192, 0, 2, 1]), text: Array("192.0.2.1".utf8), policy: .disabled)
        let context = ForwardingContext(
            policy: ForwardingHeaderPolicy(allowsUnderscores: false), peer: peer, clientText: UnsafeRawBufferPointer(start: nil, count: 0),
            isTLS: false, publicPort: Array("80".utf8), clientCertificate: nil)
        var ids = RequestIDGenerator()
        let out = ByteBuffer(capacity: 1024)
        let dropped = try Array(text.utf8).withUnsafeBytes { bytes in
            var head = HTTP1RequestHead()
            guard case .complete = HTTP1Parser.parseRequestHead(bytes, limits: HTTP1Limits(), into: &head) else {
                throw ParseFailure()
            }
            return UpstreamRequestFields.http1(
                head: head, bytes: bytes, host: head.host, hostFromTarget: false, context: context, requestIDs: &ids, into: out)
        }
        let lines = String(decoding: out.readable, as: UTF8.self).components(separatedBy: "\r\n")
        #expect(Array(lines.prefix(8)) == [
            "Host: app.test", "Accept: */*", "A-One: 1", "B-Two: 2", "C-Three: 3", "D-Four: 4", "E-Five: ", "F-Six: 6 6",
        ])
        #expect(lines[8].hasPrefix("X-Request-ID: "), "then the proxy's own fields")
        #expect(!lines.contains("X-Real-IP: 6.6.6.6") && lines.contains("X-Real-IP: "))
        #expect(dropped == 1, "the underscore field is counted")
    }

    private struct ParseFailure: Error {}

    /// The pipeline keeps a connection's address text between its requests;
    /// requests of connections taking turns each get their own.
    @Test func connectionsTakingTurnsEachGetTheirOwnAddress() {
        let pipeline = RequestPipeline()
        let first = pipeline.peer(SocketAddress(bytes: [192, 0, 2, 1], port: 40000))
        let second = pipeline.peer(SocketAddress(bytes: [198, 51, 100, 7], port: 40001))
        var seen: [String] = []
        for peer in [first, first, second, first, second, second] {
            pipeline.decideClientAddress(peer: peer, fields: NoFields())
            seen.append(String(decoding: pipeline.clientText, as: UTF8.self))
        }
        #expect(seen == ["192.0.2.1", "192.0.2.1", "198.51.100.7", "192.0.2.1", "198.51.100.7", "198.51.100.7"])
    }

    @Test func aClientRequestIDIsKeptAndTheCertificateIsOnlyTheProxys() throws {
        let peer = ConnectionPeer(address: ClientAddress(bytes: [192, 0, 2, 1]), text: Array("192.0.2.1".utf8), policy: .disabled)
        var fields = HTTP2Fields()
        fields.append(name: Array("x-request-id".utf8), value: Array("abc".utf8))
        fields.append(name: Array("ssl-client-cert".utf8), value: Array("forged".utf8))
        let context = ForwardingContext(
            policy: ForwardingHeaderPolicy(allowsUnderscores: true), peer: peer, clientText: UnsafeRawBufferPointer(start: nil, count: 0),
            isTLS: true, publicPort: Array("443".utf8), clientCertificate: Array("-----BEGIN%20CERTIFICATE-----".utf8))
        var ids = RequestIDGenerator()
        let out = ByteBuffer(capacity: 1024)
        _ = UpstreamRequestFields.http2ToHTTP1(fields: fields, authority: Array("a.test".utf8)[...], context: context, requestIDs: &ids, into: out)
        let got = Self.lines(out)
        #expect(got["x-request-id"] == "abc")
        #expect(got["ssl-client-cert"] == "-----BEGIN%20CERTIFICATE-----")
        #expect(got["ssl-client-verify"] == "SUCCESS")
    }

    /// The allowlist route's decision costs the same whatever the peer's
    /// trust: the trusted ranges are one interval search.
    @Test func aThousandTrustedRangesAreOneSearch() {
        var settings = ClientAddressSettings()
        settings.useForwardedHeaders = true
        settings.trustedRanges = (0..<1000).map { IPRange(parsing: "10.\($0 / 250).\($0 % 250).0/24")! }
        let policy = ClientAddressPolicy(settings)
        #expect(policy.trusted.contains(ClientAddress(bytes: [10, 3, 249, 1])!))
        #expect(!policy.trusted.contains(ClientAddress(bytes: [10, 4, 0, 1])!))
        let peer = ConnectionPeer(address: ClientAddress(bytes: [10, 0, 0, 1]), text: Array("10.0.0.1".utf8), policy: policy)
        #expect(peer.isTrusted && peer.passesForwardedFields)
    }
}

/// No TLS session (the type the pipeline's generic parameter needs).
private struct TLSConnectionFacts: ClientTLSFacts {
    var serverName: [UInt8] { [] }
    var selectedContext: TLSServerContext? { nil }
    var hasVerifiedClientCertificate: Bool { false }
}
