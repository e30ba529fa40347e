import Kube
import RouteModel
import Routing
import Testing
import Translate

// The global policy keys (postern.yaml / the settings ConfigMap) merged
// into each route under its Ingress's annotations, as ingress-nginx reads
// the global value as the annotation's default.

private let nginx = "nginx.ingress.kubernetes.io/"

private let globalBackends = documents(service("a"), slice("a-0", service: "a", addresses: ["10.0.0.1"]))

/// An Ingress `name` for `host`, path `/` on `a`, with nginx annotations
/// (short names), and a `spec.tls` entry when `tls`.
private func globalIngress(_ name: String, host: String, annotations: [String: String] = [:], tls: Bool = false) -> String {
    var text = ingress(name, rules: [(host, "/", "Prefix", "a")], extraSpec: tls ? "\n  tls:\n    - hosts: [\"\(host)\"]\n      secretName: \(name)-tls" : "")
    if !annotations.isEmpty {
        let lines = annotations.sorted { $0.key < $1.key }.map { "\n    \(nginx)\($0.key): \"\($0.value)\"" }.joined()
        text = text.replacingOccurrences(of: "\n  namespace: default", with: "\n  namespace: default\n  annotations:\(lines)")
    }
    return text
}

private func ranges(_ texts: String...) -> [IPRange] { texts.compactMap(IPRange.init(parsing:)).sorted() }

private func policy(_ result: TranslationResult, of name: String) -> RoutePolicy? {
    result.model.virtualHosts.flatMap(\.routes).first { $0.source == "default/\(name)" }?.policy
}

/// Whether a plain-HTTP request is redirected by `table`: nil for no,
/// else whether the Location names the port.
private func redirect(_ table: RoutingTable, _ host: String, _ path: String) -> Bool? {
    var host = host
    var path = path
    var scratch = [UInt8](repeating: 0, count: 256)
    return host.withUTF8 { host in
        path.withUTF8 { path in
            scratch.withUnsafeMutableBytes { rewrite in
                let routed = table.route(host: UnsafeRawBufferPointer(host), path: UnsafeRawBufferPointer(path), rewriteInto: rewrite)
                return table.httpsRedirect(routed.httpsRedirect, canonicalHost: UnsafeRawBufferPointer(host))
            }
        }
    }
}

/// Which of `hosts` redirect a plain-HTTP request for `/`.
private func redirectedHosts(_ model: RouteModel, of hosts: [String]) -> [String] {
    let table = RoutingTable(model: model, generation: 1)
    return hosts.filter { redirect(table, $0, "/") != nil }
}

private func options(_ global: GlobalPolicy) -> TranslateOptions {
    var options = TranslateOptions()
    options.global = global
    return options
}

@Suite struct GlobalPolicyTests {
    static let global = GlobalPolicy(
        maximumBodySize: 1 << 20, allowedSourceRanges: ranges("10.0.0.0/8"), deniedSourceRanges: ranges("192.168.0.0/16"))

    @Test func eachAnnotationWinsOverItsGlobalKeyAndTheRestComesFromTheGlobals() {
        let result = translate(documents(ingressClass, globalBackends,
            globalIngress("plain", host: "plain.example.com"),
            globalIngress("own", host: "own.example.com", annotations: [
                "proxy-body-size": "8m", "whitelist-source-range": "172.16.0.0/12", "denylist-source-range": "1.2.3.4",
            ]),
            globalIngress("size-only", host: "size.example.com", annotations: ["proxy-body-size": "2k"])),
            options: options(Self.global))
        #expect(result.diagnostics.isEmpty)
        #expect(policy(result, of: "plain") == RoutePolicy(
            allowedSourceRanges: ranges("10.0.0.0/8"), deniedSourceRanges: ranges("192.168.0.0/16"), maximumBodySize: 1 << 20))
        #expect(policy(result, of: "own") == RoutePolicy(
            allowedSourceRanges: ranges("172.16.0.0/12"), deniedSourceRanges: ranges("1.2.3.4"), maximumBodySize: 8 << 20))
        #expect(policy(result, of: "size-only") == RoutePolicy(
            allowedSourceRanges: ranges("10.0.0.0/8"), deniedSourceRanges: ranges("192.168.0.0/16"), maximumBodySize: 2048),
            "only the body size is the Ingress's own")
    }

    @Test func aZeroBodySizeAnnotationLiftsTheGlobalLimit() {
        let result = translate(documents(ingressClass, globalBackends,
            globalIngress("uploads", host: "up.example.com", annotations: ["proxy-body-size": "0"])),
            options: options(GlobalPolicy(maximumBodySize: 1 << 20)))
        #expect(policy(result, of: "uploads")?.maximumBodySize == nil)
    }

    @Test func aGlobalZeroBodySizeIsNoLimit() {
        #expect(GlobalPolicy.bodySize("0") == .some(nil))
        #expect(GlobalPolicy.bodySize("1m") == .some(1 << 20))
        #expect(GlobalPolicy.bodySize("lots") == .none)
        #expect(GlobalPolicy.ingressNginxDefaults.maximumBodySize == 1 << 20, "ingress-nginx's default proxy-body-size is 1m")
    }

    @Test func blockCIDRsAreDeniedOnEveryRouteEvenWithItsOwnLists() {
        var global = Self.global
        global.blockedSourceRanges = ranges("203.0.113.0/24", "2001:db8::/32")
        let result = translate(documents(ingressClass, globalBackends,
            globalIngress("plain", host: "plain.example.com"),
            globalIngress("own", host: "own.example.com", annotations: ["denylist-source-range": "1.2.3.4", "whitelist-source-range": "0.0.0.0/0"])),
            options: options(global))
        #expect(policy(result, of: "plain")?.deniedSourceRanges == ranges("192.168.0.0/16", "203.0.113.0/24", "2001:db8::/32"))
        #expect(policy(result, of: "own")?.deniedSourceRanges == ranges("1.2.3.4", "203.0.113.0/24", "2001:db8::/32"))
        #expect(result.model.defaultPolicy.deniedSourceRanges == ranges("192.168.0.0/16", "203.0.113.0/24", "2001:db8::/32"))
    }

    @Test func aDefaultBackendAnswersUnderTheGlobalPolicy() {
        var withDefault = options(Self.global)
        withDefault.defaultBackendService = "default/a"
        let result = translate(documents(ingressClass, globalBackends, globalIngress("plain", host: "plain.example.com")), options: withDefault)
        let table = RoutingTable(model: result.model, generation: 1)
        let host = Array("unknown.example.com".utf8)
        let path = Array("/".utf8)
        var scratch = [UInt8](repeating: 0, count: 64)
        let routed = host.withUnsafeBytes { host in
            path.withUnsafeBytes { path in
                scratch.withUnsafeMutableBytes { table.route(host: host, path: path, rewriteInto: $0) }
            }
        }
        #expect(routed.policy?.maximumBodySize == 1 << 20, "the default backend gets the global proxy-body-size")
        #expect(routed.policy?.admits(ClientAddress(bytes: [127, 0, 0, 1])) == false, "and the global allow list")
        #expect(routed.policy?.admits(ClientAddress(bytes: [10, 1, 2, 3])) == true)
    }

    @Test func withoutGlobalsARouteWithoutAnnotationsAsksNothing() {
        let result = translate(documents(ingressClass, globalBackends, globalIngress("plain", host: "plain.example.com")))
        #expect(policy(result, of: "plain") == RoutePolicy())
        #expect(result.model.defaultPolicy == RoutePolicy())
    }

    @Test func sslRedirectAndForceSSLRedirectAreTheAnnotationsDefaults() throws {
        let manifests = documents(ingressClass, globalBackends,
            globalIngress("secure", host: "secure.example.com", tls: true),
            globalIngress("opted-in", host: "opted.example.com", annotations: ["ssl-redirect": "true"], tls: true),
            globalIngress("plain", host: "plain.example.com"),
            globalIngress("opted-out", host: "out.example.com", annotations: ["force-ssl-redirect": "false"]))
        let snapshot = ObjectSnapshot(objects: objects(manifests))
        let hosts = ["opted.example.com", "out.example.com", "plain.example.com", "secure.example.com"]
        let byDefault = redirectedHosts(translate(snapshot, options: TranslateOptions()).model, of: hosts)
        #expect(byDefault == ["opted.example.com", "secure.example.com"])
        let off = redirectedHosts(translate(snapshot, options: options(GlobalPolicy(sslRedirect: false))).model, of: hosts)
        #expect(off == ["opted.example.com"], "ssl-redirect: false globally; the annotation still opts in")
        let forced = redirectedHosts(translate(snapshot, options: options(GlobalPolicy(forceSSLRedirect: true))).model, of: hosts)
        #expect(forced == ["opted.example.com", "plain.example.com", "secure.example.com"],
                "force-ssl-redirect globally redirects hosts without TLS; the annotation opts out")
    }

    /// ingress-nginx applies `ssl-redirect` per location: two Ingresses on
    /// one host, one with TLS, the other opting out for its own path.
    @Test func sslRedirectIsDecidedPerRouteByTheRoutesOwnIngress() throws {
        let shop = globalIngress("shop", host: "shop.example.com", tls: true)
        var hooks = ingress("hooks", rules: [("shop.example.com", "/hooks", "Prefix", "a")])
        hooks = hooks.replacingOccurrences(
            of: "\n  namespace: default", with: "\n  namespace: default\n  annotations:\n    \(nginx)ssl-redirect: \"false\"")
        var legacy = ingress("legacy", rules: [("shop.example.com", "/legacy", "Prefix", "a")])
        legacy = legacy.replacingOccurrences(
            of: "\n  namespace: default", with: "\n  namespace: default\n  annotations:\n    \(nginx)use-port-in-redirects: \"true\"")
        let forced = globalIngress("forced", host: "plain.example.com", annotations: ["force-ssl-redirect": "true"])
        let open = ingress("open", rules: [("plain.example.com", "/open", "Prefix", "a")])
        let all = objects(documents(ingressClass, globalBackends, shop, hooks, legacy, forced, open))
        let model = translate(ObjectSnapshot(objects: all), options: TranslateOptions()).model
        #expect(model.httpsHosts == ["shop.example.com"])
        let table = RoutingTable(model: model, generation: 1)
        #expect(redirect(table, "shop.example.com", "/cart") == false, "the TLS Ingress's path redirects")
        #expect(redirect(table, "shop.example.com", "/hooks/github") == nil, "ssl-redirect: false on the other Ingress's path")
        #expect(redirect(table, "shop.example.com", "/legacy") == true,
                "an Ingress without TLS of its own on a host with TLS redirects, naming the port as it asks")
        #expect(redirect(table, "plain.example.com", "/") == false, "force-ssl-redirect without TLS")
        #expect(redirect(table, "plain.example.com", "/open") == nil, "force-ssl-redirect is the forcing Ingress's paths only")
        #expect(redirect(table, "unknown.example.com", "/") == nil)
        let translator = IncrementalTranslator(options: TranslateOptions())
        translator.replaceAll(with: all)
        #expect(translator.translate().routes.model == model, "the incremental translator decides alike")
    }
    @Test func theIncrementalTranslatorCarriesTheGlobalsLikeAFullTranslation() {
        var global = Self.global
        global.blockedSourceRanges = ranges("203.0.113.0/24")
        let all = objects(documents(ingressClass, globalBackends, globalIngress("plain", host: "plain.example.com"),
            globalIngress("own", host: "own.example.com", annotations: ["proxy-body-size": "0"])))
        let translator = IncrementalTranslator(options: options(global))
        translator.replaceAll(with: all)
        let incremental = translator.translate()
        let full = translate(ObjectSnapshot(objects: all), options: options(global))
        #expect(incremental.routes.model == full.model)
        #expect(incremental.routes.model.defaultPolicy.maximumBodySize == 1 << 20)
    }
}
