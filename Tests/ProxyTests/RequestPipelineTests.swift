import Foundation
import RouteModel
import Routing
import SeededRandom
import TLS
import Telemetry
import Testing

@testable import Proxy

/// What a test says about a client's TLS session.
private struct TLSFacts: ClientTLSFacts {
    var serverName: [UInt8]
    var selectedContext: TLSServerContext?
    var hasVerifiedClientCertificate: Bool
}

/// Certificates made with the `openssl` command line.
private final class Certificates: @unchecked Sendable {
    let folder = NSTemporaryDirectory() + "postern-pipeline-\(UUID().uuidString)"

    init() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    /// A self-signed certificate for `names`: (certificate PEM, key PEM).
    func make(_ names: [String]) throws -> (certificate: [UInt8], key: [UInt8]) {
        let base = folder + "/" + UUID().uuidString
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
            "-subj", "/CN=\(names[0])", "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ","),
            "-keyout", base + ".key", "-out", base + ".crt",
        ]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return (
            Array(try Data(contentsOf: URL(fileURLWithPath: base + ".crt"))),
            Array(try Data(contentsOf: URL(fileURLWithPath: base + ".key")))
        )
    }
}

/// One proxy configuration: `tls.test` (HTTPS, redirected), `mtls.test`
/// (same certificate, client certificate required, redirected),
/// `optional.test` (same certificate, client certificate optional, not
/// redirected), `strict.test` (client certificate required, not redirected),
/// `other.test` (its own certificate), `plain.test` (no TLS).
private final class Configuration: @unchecked Sendable {
    let table: RoutingTable
    let secure: SecurePolicy
    let store: TLSCertificateStore
    let pipeline = RequestPipeline()
    let metrics = WorkerMetrics()
    let rewrite = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)

    static let hosts = ["tls.test", "mtls.test", "optional.test", "strict.test", "other.test", "plain.test"]

    init() throws {
        let certificates = try Certificates()
        let shared = try certificates.make(["tls.test", "mtls.test", "optional.test", "strict.test"])
        let other = try certificates.make(["other.test"])
        let clientCA = try certificates.make(["client CA"])
        func authentication(_ mode: ClientAuthentication.Mode) -> ClientAuthentication {
            ClientAuthentication(
                mode: mode, certificateAuthoritiesPEM: clientCA.certificate, verifyDepth: 1, passCertificateToUpstream: true,
                secret: "default/client-ca")
        }
        let model = TLSModel(
            certificates: [
                TLSCertificate(secret: "default/shared", hosts: ["tls.test"], certificateChainPEM: shared.certificate, privateKeyPEM: shared.key, ingresses: []),
                TLSCertificate(
                    secret: "default/shared", hosts: ["mtls.test", "strict.test"], certificateChainPEM: shared.certificate,
                    privateKeyPEM: shared.key, ingresses: [], clientAuthentication: authentication(.required)),
                TLSCertificate(
                    secret: "default/shared", hosts: ["optional.test"], certificateChainPEM: shared.certificate,
                    privateKeyPEM: shared.key, ingresses: [], clientAuthentication: authentication(.optional)),
                TLSCertificate(secret: "default/other", hosts: ["other.test"], certificateChainPEM: other.certificate, privateKeyPEM: other.key, ingresses: []),
            ])
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        let (store, problems) = builder.build(model.certificates.map(TLSCertificateInput.init))
        #expect(problems.filter { $0.severity == .error } == [])
        self.store = store
        secure = SecurePolicy(certificates: store, model: model)
        // ssl-redirect on tls.test and mtls.test (hosts with TLS) and on
        // plain.test (no TLS: not redirected); not on the others.
        let redirected: Set<String> = ["tls.test", "mtls.test", "plain.test"]
        let virtualHosts = Self.hosts.map {
            VirtualHost(host: .exact($0), routes: [
                Route(
                    path: "/", match: .prefix, cluster: $0, source: "default/test",
                    httpsRedirect: HTTPSRedirect(sslRedirect: redirected.contains($0)))
            ])
        }
        let clusters = Self.hosts.map { Cluster(name: $0, endpoints: [Endpoint(address: .v4(127, 0, 0, 1), port: 8080)]) }
        table = RoutingTable(
            model: RouteModel(
                virtualHosts: virtualHosts, clusters: clusters, httpsHosts: model.certificates.flatMap(\.hosts).sorted()),
            generation: 1)
    }

    deinit { rewrite.deallocate() }

    /// The client's session: nil for plain HTTP; `serverName` "" for no SNI.
    func session(serverName: String?, certificate: Bool) -> TLSFacts? {
        guard let serverName else { return nil }
        let context = serverName.isEmpty ? store.defaultContext : store.context(forServerName: serverName)
        return TLSFacts(
            serverName: Array(serverName.utf8), selectedContext: context,
            hasVerifiedClientCertificate: certificate && context.clientVerification != nil)
    }

    /// The pipeline's decision as text: `redirect 308`, `respond 421`, `forward tls.test pass`.
    func decide(
        host: String, path: String = "/x", tls: TLSFacts?, client: String? = nil, declaredBody: UInt64? = 0,
        table: RoutingTable? = nil, secure: SecurePolicy? = nil
    ) -> String {
        var host = host
        var path = path
        let outcome = host.withUTF8 { hostBytes in
            path.withUTF8 { pathBytes in
                pipeline.decide(
                    RequestFacts(
                        authority: UnsafeRawBufferPointer(hostBytes), target: UnsafeRawBufferPointer(pathBytes),
                        pathLength: pathBytes.firstIndex(of: UInt8(ascii: "?")) ?? pathBytes.count,
                        peer: ConnectionPeer(
                            address: client.flatMap { IPAddress(parsing: $0) }.flatMap { ClientAddress(bytes: $0.bytes) },
                            text: Array((client ?? "unknown").utf8), policy: .disabled),
                        declaredBodyLength: declaredBody),
                    fields: NoFields(), tls: tls, table: table ?? self.table, secure: secure ?? self.secure, rewriteInto: rewrite, metrics: metrics,
                    redirectStatus: 308)
            }
        }
        switch outcome {
        case let .respond(response): return "respond \(response.status)"
        case let .redirect(status, namePort):
            return "redirect \(status) \(String(decoding: pipeline.canonicalHost, as: UTF8.self))" + (namePort ? " port" : "")
        case let .forward(cluster, _, pass, limit):
            return "forward \(cluster.name)" + (pass ? " pass" : "") + (limit == .max ? "" : " limit \(limit)")
        }
    }
}

@Suite struct RequestPipelineDecisions {
    @Test func eachHTTPSPropertyOfAHostIsCheckedPerRequest() throws {
        let c = try Configuration()
        let plain: TLSFacts? = nil
        // Plain HTTP.
        #expect(c.decide(host: "tls.test", tls: plain) == "redirect 308 tls.test")
        #expect(c.decide(host: "mtls.test", tls: plain) == "redirect 308 mtls.test")
        #expect(c.decide(host: "strict.test", tls: plain) == "respond 400", "client certificate required, never over plain HTTP")
        #expect(c.decide(host: "optional.test", tls: plain) == "forward optional.test")
        #expect(c.decide(host: "plain.test", tls: plain) == "forward plain.test")
        // No SNI: the default certificate asked for no client certificate.
        let noSNI = c.session(serverName: "", certificate: false)
        #expect(c.decide(host: "mtls.test", tls: noSNI) == "respond 400")
        #expect(c.decide(host: "strict.test", tls: noSNI) == "respond 400")
        #expect(c.decide(host: "tls.test", tls: noSNI) == "forward tls.test", "no SNI is never misdirected")
        // SNI of a host that shares the certificate but asks for no client certificate.
        let viaTLS = c.session(serverName: "tls.test", certificate: false)
        #expect(c.decide(host: "mtls.test", tls: viaTLS) == "respond 421")
        #expect(c.decide(host: "optional.test", tls: viaTLS) == "respond 421")
        #expect(c.decide(host: "other.test", tls: viaTLS) == "respond 421", "another certificate")
        #expect(c.decide(host: "plain.test", tls: viaTLS) == "respond 421", "plain.test is served by the default certificate")
        // The mTLS host's own handshake.
        let verified = c.session(serverName: "mtls.test", certificate: true)
        #expect(c.decide(host: "mtls.test", tls: verified) == "forward mtls.test pass")
        #expect(c.decide(host: "strict.test", tls: verified) == "forward strict.test pass", "same settings")
        #expect(c.decide(host: "tls.test", tls: verified) == "forward tls.test", "the certificate is not passed to a host that did not ask")
        #expect(c.decide(host: "optional.test", tls: verified) == "respond 421", "optional is verified differently")
        #expect(c.decide(host: "mtls.test", tls: c.session(serverName: "mtls.test", certificate: false)) == "respond 400")
        #expect(c.decide(host: "optional.test", tls: c.session(serverName: "optional.test", certificate: false)) == "forward optional.test")
        // Target and authority policy.
        #expect(c.decide(host: "plain.test", path: "/public/..%2Fadmin", tls: plain) == "respond 400")
        #expect(c.decide(host: "plain.test", path: "/public#/../admin", tls: plain) == "respond 400")
        #expect(c.decide(host: "plain.test@tls.test", tls: plain) == "respond 400")
        #expect(c.decide(host: "tls.test,plain.test", tls: plain) == "respond 400")
    }

    /// Random spellings of each host (case, one trailing dot, a port) give
    /// the decision its canonical spelling gets, for every kind of client
    /// session.
    @Test func everySpellingOfAHostGetsTheDecisionOfItsCanonicalForm() throws {
        let c = try Configuration()
        var random = SplitMix64(seed: 0x5eed_0012)
        let sessions: [(String?, Bool)] = [
            (nil, false), ("", false), ("", true), ("tls.test", false), ("mtls.test", true), ("mtls.test", false),
            ("optional.test", true), ("optional.test", false), ("other.test", false), ("unknown.test", false),
        ]
        var compared = 0
        for _ in 0..<400 {
            let host = random.pick(Configuration.hosts)
            let (serverName, certificate) = random.pick(sessions)
            let session = c.session(serverName: serverName, certificate: certificate)
            var spelling = String(host.map { random.chance(50) ? Character($0.uppercased()) : $0 })
            if random.chance(50) { spelling += "." }
            if random.chance(50) { spelling += ":\(random.below(65535) + 1)" }
            let expected = c.decide(host: host, tls: session)
            #expect(c.decide(host: spelling, tls: session) == expected, "\(spelling) with SNI \(serverName ?? "(plain HTTP)")")
            compared += 1
        }
        // IPv6 literals: case of hex digits and a port.
        for spelling in ["[FE80::A]", "[fe80::a]:443", "[Fe80::A]:8080"] {
            #expect(c.decide(host: spelling, tls: nil) == c.decide(host: "[fe80::a]", tls: nil))
            compared += 1
        }
        #expect(compared == 403)
    }
}

@Suite struct RequestPipelineRedirects {
    /// shop.test has TLS. `/` comes from an Ingress with ssl-redirect,
    /// `/hooks` from one with `ssl-redirect: "false"`, `/legacy` from one
    /// with `use-port-in-redirects`; rules without a host redirect when
    /// the request's host has TLS.
    private static func table() -> RoutingTable {
        let ssl = HTTPSRedirect(sslRedirect: true)
        let shop = VirtualHost(
            host: .exact("shop.test"),
            routes: [
                Route(path: "/", match: .prefix, cluster: "app", source: "default/shop", httpsRedirect: ssl),
                Route(path: "/hooks", match: .prefix, cluster: "app", source: "default/hooks"),
                Route(
                    path: "/legacy", match: .prefix, cluster: "app", source: "default/legacy",
                    httpsRedirect: HTTPSRedirect(sslRedirect: true, usePortInRedirects: true)),
            ])
        let any = VirtualHost(
            host: .any, routes: [Route(path: "/", match: .prefix, cluster: "app", source: "default/any", httpsRedirect: ssl)])
        return RoutingTable(
            model: RouteModel(
                virtualHosts: [shop, any], clusters: [Cluster(name: "app", endpoints: [Endpoint(address: .v4(127, 0, 0, 1), port: 80)])],
                httpsHosts: ["*.wild.test", "shop.test"], defaultHTTPSRedirect: ssl),
            generation: 1)
    }

    @Test func theRedirectIsTheRoutesAndOnlyWithAnHTTPSListener() throws {
        let c = try Configuration()
        let t = Self.table()
        #expect(c.decide(host: "shop.test", path: "/cart", tls: nil, table: t) == "redirect 308 shop.test")
        #expect(c.decide(host: "SHOP.test.:80", path: "/cart", tls: nil, table: t) == "redirect 308 shop.test")
        #expect(c.decide(host: "shop.test", path: "/hooks/github", tls: nil, table: t) == "forward app",
                "its Ingress opted out for its own path")
        #expect(c.decide(host: "shop.test", path: "/legacy", tls: nil, table: t) == "redirect 308 shop.test port")
        #expect(c.decide(host: "a.wild.test", path: "/", tls: nil, table: t) == "redirect 308 a.wild.test",
                "a rule without a host: the request's host has TLS (a wildcard)")
        #expect(c.decide(host: "plain.test", path: "/", tls: nil, table: t) == "forward app", "and here it has not")
        let tls = c.session(serverName: "tls.test", certificate: false)
        #expect(c.decide(host: "tls.test", path: "/x", tls: tls, table: t) == "forward app", "never over TLS")
        let noListener = SecurePolicy(certificates: nil, model: TLSModel())
        #expect(c.decide(host: "shop.test", path: "/cart", tls: nil, table: t, secure: noListener) == "forward app",
                "without an HTTPS listener a redirect would loop")
    }
}

@Suite struct RequestPipelinePolicies {
    /// policy.test: `/refused` (an unsupported annotation), `/allow` (only
    /// 10.0.0.0/8 and fd00::/8, but not 10.9.0.0/16), `/deny` (everyone but
    /// 192.0.2.0/24), `/small` (at most 1,000 body bytes).
    private static func table() -> RoutingTable {
        func route(_ path: String, _ policy: RoutePolicy) -> Route {
            Route(path: path, match: .prefix, cluster: "app", source: "default/policy", policy: policy)
        }
        let ranges = { (texts: [String]) in texts.compactMap { IPRange(parsing: $0) } }
        let host = VirtualHost(
            host: .exact("policy.test"),
            routes: [
                route("/refused", RoutePolicy(refusal: "annotation nginx.ingress.kubernetes.io/auth-url is not supported")),
                route("/allow", RoutePolicy(allowedSourceRanges: ranges(["10.0.0.0/8", "fd00::/8"]), deniedSourceRanges: ranges(["10.9.0.0/16"]))),
                route("/deny", RoutePolicy(deniedSourceRanges: ranges(["192.0.2.0/24"]))),
                route("/small", RoutePolicy(maximumBodySize: 1000)),
                route("/", RoutePolicy()),
            ])
        return RoutingTable(
            model: RouteModel(virtualHosts: [host], clusters: [Cluster(name: "app", endpoints: [Endpoint(address: .v4(127, 0, 0, 1), port: 80)])]),
            generation: 1)
    }

    @Test func refusalSourceRangesAndBodyLimitsAreEnforcedPerRoute() throws {
        let c = try Configuration()
        let t = Self.table()
        func decide(_ path: String, _ client: String?, body: UInt64? = 0) -> String {
            c.decide(host: "policy.test", path: path, tls: nil, client: client, declaredBody: body, table: t)
        }
        #expect(decide("/refused/x", "10.0.0.1") == "respond 503", "never served, whatever the client")
        #expect(decide("/allow/x", "10.1.2.3") == "forward app")
        #expect(decide("/allow/x", "::ffff:10.1.2.3") == "forward app", "an IPv4-mapped address is its IPv4 address")
        #expect(decide("/allow/x", "fd00::7") == "forward app")
        #expect(decide("/allow/x", "10.9.1.1") == "respond 403", "the deny list wins")
        #expect(decide("/allow/x", "11.0.0.1") == "respond 403")
        #expect(decide("/allow/x", "2001:db8::1") == "respond 403")
        #expect(decide("/allow/x", nil) == "respond 403", "an unknown address is not in an allow list")
        #expect(decide("/deny/x", "192.0.2.9") == "respond 403")
        #expect(decide("/deny/x", "198.51.100.1") == "forward app")
        #expect(decide("/small", "10.0.0.1", body: 1000) == "forward app limit 1000")
        #expect(decide("/small", "10.0.0.1", body: 1001) == "respond 413")
        #expect(decide("/small", "10.0.0.1", body: nil) == "forward app limit 1000", "an unknown length is cut while it streams")
        #expect(decide("/other", "203.0.113.1", body: nil) == "forward app")
        #expect(c.metrics.downstreamErrors[DownstreamErrorKind.forbidden.rawValue].current == 5, "each refusal is counted")
    }

    @Test func anAllowListOfAThousandRangesIsOneSearch() throws {
        var ranges: [IPRange] = []
        for index in 0..<1000 {
            ranges.append(try #require(IPRange(parsing: "10.\(index / 250).\(index % 250).0/24")))
        }
        let policy = CompiledRoutePolicy(RoutePolicy(allowedSourceRanges: ranges))
        #expect(policy.admits(ClientAddress(bytes: [10, 3, 249, 7])))
        #expect(policy.admits(ClientAddress(bytes: [10, 0, 0, 1])))
        #expect(!policy.admits(ClientAddress(bytes: [10, 3, 250, 1])))
        #expect(!policy.admits(ClientAddress(bytes: [10, 4, 0, 1])))
    }
}
