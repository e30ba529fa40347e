import Kube
import RouteModel
import Testing
import Translate

// ingress-nginx annotations against the catalog: what is honoured, what is
// refused (fail closed, 503 on that Ingress only), what is ignored with a
// warning, and the policy keys parsed into `RoutePolicy`.

private let nginx = "nginx.ingress.kubernetes.io/"

/// Services `a` and `b`, each with one ready endpoint.
private let backends = documents(
    service("a"), slice("a-0", service: "a", addresses: ["10.0.0.1"]),
    service("b"), slice("b-0", service: "b", addresses: ["10.0.0.2"]))

/// An Ingress of class postern for `host`, paths `/` (and `/x`) on `a`;
/// `annotations` are short names under the nginx prefix unless they hold a `/`.
private func annotated(
    _ name: String, host: String = "shop.example.com", annotations: [String: String], defaultBackend: Bool = false
) -> String {
    let extra = defaultBackend ? "\n  defaultBackend:\n    service:\n      name: b\n      port:\n        name: http" : ""
    var text = ingress(name, rules: [(host, "/", "Prefix", "a"), (host, "/x", "Prefix", "a")], extraSpec: extra)
    if !annotations.isEmpty {
        let lines = annotations.sorted { $0.key < $1.key }.map { key, value in
            let full = key.contains("/") ? key : nginx + key
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "\n    \(full): \"\(escaped)\""
        }.joined()
        text = text.replacingOccurrences(of: "\n  namespace: default", with: "\n  namespace: default\n  annotations:\(lines)")
    }
    return text
}

/// The policies of the routes of Ingress `default/name`.
private func policies(_ result: TranslationResult, of name: String) -> [RoutePolicy] {
    result.model.virtualHosts.flatMap(\.routes).filter { $0.source == "default/\(name)" }.map(\.policy)
}

@Suite struct AnnotationPolicyTests {
    // MARK: Fail closed

    @Test(arguments: [
        ("auth-url", "https://auth.example.com/verify"), ("auth-type", "basic"), ("configuration-snippet", "more_set_headers \"X: y\";"),
        ("server-snippet", "location /x { return 200; }"), ("enable-modsecurity", "true"), ("enable-owasp-core-rules", "true"),
        ("limit-rps", "10"), ("limit-connections", "5"), ("satisfy", "any"), ("mirror-target", "http://mirror/"),
        ("global-rate-limit", "100"), ("ssl-passthrough", "true"), ("auth-tls-match-cn", "CN=client"),
    ])
    func unsupportedSecurityAnnotationRefusesEveryRouteOfThatIngressOnly(key: String, value: String) {
        let result = translate(documents(ingressClass, backends,
            annotated("guarded", annotations: [key: value]),
            annotated("neighbour", host: "other.example.com", annotations: [:])))
        let refused = policies(result, of: "guarded")
        #expect(refused.count == 2)
        #expect(refused.allSatisfy { $0.refusal == "annotation \(nginx)\(key) is not supported" })
        #expect(policies(result, of: "neighbour") == [RoutePolicy(), RoutePolicy()])
        let errors = result.diagnostics.filter { $0.severity == .error }
        #expect(errors.count == 1)
        #expect(errors.first?.reason == "UnsupportedAnnotation")
        #expect(errors.first?.name == "guarded")
        #expect(errors.first?.fieldPath == "metadata.annotations[\(nginx)\(key)]")
        #expect(errors.first?.message.contains("answer 503") == true)
    }

    @Test func everyRefusedKeyIsNamedInTheRefusal() {
        let result = translate(documents(ingressClass, backends,
            annotated("guarded", annotations: ["auth-url": "http://auth/", "auth-signin": "https://login/", "limit-rps": "5"])))
        let refusal = policies(result, of: "guarded").first?.refusal ?? ""
        #expect(refusal.contains("\(nginx)auth-url is not supported"))
        #expect(refusal.contains("\(nginx)auth-signin is not supported"))
        #expect(refusal.contains("\(nginx)limit-rps is not supported"))
        #expect(result.diagnostics.filter { $0.severity == .error }.count == 3)
    }

    @Test(arguments: [
        ("use-regex", "yes"), ("backend-protocol", "AJP"), ("ssl-redirect", "maybe"), ("proxy-ssl-verify", "sometimes"),
        ("auth-tls-verify-client", "always"), ("auth-tls-verify-depth", "0"), ("rewrite-target", "/$x"),
        ("whitelist-source-range", "10.0.0.0/33"), ("denylist-source-range", "192.168.1.1, not-an-address"),
        ("allowlist-source-range", ""), ("proxy-body-size", "10mb"), ("proxy-body-size", "-1"),
        ("proxy-body-size", "99999999999999999999"),
    ])
    func invalidValueOfAnHonouredKeyRefusesTheIngress(key: String, value: String) {
        let result = translate(documents(ingressClass, backends, annotated("bad", annotations: [key: value])))
        #expect(policies(result, of: "bad").allSatisfy { $0.refusal == "annotation \(nginx)\(key) has an invalid value" })
        #expect(policies(result, of: "bad").count == 2)
        let errors = result.diagnostics.filter { $0.severity == .error && $0.reason == "InvalidAnnotation" }
        #expect(errors.map(\.fieldPath) == ["metadata.annotations[\(nginx)\(key)]"])
    }

    @Test func unsupportedHarmlessAnnotationIsAWarningAndTheIngressServes() {
        let result = translate(documents(ingressClass, backends,
            annotated("web", annotations: ["affinity": "cookie", "proxy-read-timeout": "120", "enable-cors": "true"])))
        #expect(policies(result, of: "web") == [RoutePolicy(), RoutePolicy()])
        #expect(result.diagnostics.map(\.severity) == [.warning, .warning, .warning])
        #expect(result.diagnostics.allSatisfy { $0.reason == "UnsupportedAnnotation" && $0.message.hasSuffix("ignored") })
    }

    @Test func annotationWithoutEffectIsSilent() {
        let result = translate(documents(ingressClass, backends,
            annotated("web", annotations: ["proxy-buffering": "on", "proxy-buffer-size": "16k", "client-body-buffer-size": "1m"])))
        #expect(result.diagnostics.isEmpty)
        #expect(policies(result, of: "web") == [RoutePolicy(), RoutePolicy()])
    }

    @Test(arguments: [
        ("enable-modsecurity", "false"), ("enable-owasp-core-rules", "false"), ("ssl-passthrough", "false"),
        ("limit-rps", "0"), ("limit-rate", "0"), ("satisfy", "all"), ("auth-url", ""), ("configuration-snippet", "  \n"),
    ])
    func securityKeyThatAsksForNothingDoesNotRefuse(key: String, value: String) {
        let result = translate(documents(ingressClass, backends, annotated("web", annotations: [key: value])))
        #expect(result.diagnostics.isEmpty)
        #expect(policies(result, of: "web") == [RoutePolicy(), RoutePolicy()])
    }

    @Test func misspeltKeyIsAWarningNamingTheClosestKnownKey() {
        let result = translate(documents(ingressClass, backends,
            annotated("web", annotations: ["whitelist-source-rnage": "10.0.0.0/8", "postern.dev/anything": "x"])))
        #expect(result.diagnostics.map(\.reason) == ["UnknownAnnotation", "UnknownAnnotation"])
        #expect(result.diagnostics.contains { $0.message.contains("did you mean \(nginx)whitelist-source-range?") })
        #expect(policies(result, of: "web").allSatisfy { $0.refusal == nil })
    }

    @Test func refusedIngressDefaultBackendIsWithheldNotServedUnprotected() {
        let result = translate(documents(ingressClass, backends,
            annotated("guarded", annotations: ["auth-url": "http://auth/"], defaultBackend: true)))
        #expect(result.model.virtualHosts.allSatisfy { $0.defaultCluster == nil })
    }

    @Test func refusedIngressStillHoldsItsPathsAgainstYoungerIngresses() {
        let older = annotated("guarded", annotations: ["configuration-snippet": "deny all;"])
            .replacingOccurrences(of: "\n  namespace: default", with: "\n  namespace: default\n  creationTimestamp: \"2024-01-01T00:00:00Z\"")
        let younger = ingress("younger", created: "2024-02-01T00:00:00Z", rules: [("shop.example.com", "/", "Prefix", "b")])
        let result = translate(documents(ingressClass, backends, older, younger))
        let root = result.model.virtualHosts.flatMap(\.routes).first { $0.path == "/" }
        #expect(root?.source == "default/guarded")
        #expect(root?.policy.refusal != nil)
    }

    @Test func canaryIngressIsNotServedAndLeavesTheMainIngressAlone() {
        let canary = annotated("canary", annotations: ["canary": "true", "canary-weight": "50"])
            .replacingOccurrences(of: "\n  namespace: default", with: "\n  namespace: default\n  creationTimestamp: \"2023-01-01T00:00:00Z\"")
        let main = ingress("main", created: "2024-01-01T00:00:00Z", rules: [("shop.example.com", "/", "Prefix", "b")])
        let result = translate(documents(ingressClass, backends, canary, main))
        #expect(result.model.virtualHosts.flatMap(\.routes).map(\.source) == ["default/main"])
        #expect(result.diagnostics.map(\.reason) == ["UnsupportedAnnotation"])
    }

    // MARK: Policy keys

    @Test func sourceRangesAreParsedIntoThePolicy() {
        let result = translate(documents(ingressClass, backends, annotated("web", annotations: [
            "whitelist-source-range": " 10.0.0.0/8,192.168.1.7 , 2001:db8::/32,",
            "denylist-source-range": "10.1.2.3/16, ::1",
        ])))
        #expect(result.diagnostics.isEmpty)
        let policy = policies(result, of: "web").first
        #expect(policy?.allowedSourceRanges.map(\.description).sorted() == ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"].sorted())
        #expect(policy?.deniedSourceRanges.map(\.description).sorted() == ["10.1.0.0/16", "::1/128"].sorted())
        #expect(policy?.refusal == nil)
    }

    @Test func allowlistIsTheNewerNameOfWhitelist() {
        let result = translate(documents(ingressClass, backends, annotated("web", annotations: ["allowlist-source-range": "203.0.113.0/24"])))
        #expect(policies(result, of: "web").first?.allowedSourceRanges.map(\.description) == ["203.0.113.0/24"])
    }

    @Test func allowlistAndWhitelistThatDisagreeRefuseTheIngress() {
        let differ = translate(documents(ingressClass, backends, annotated("web", annotations: [
            "allowlist-source-range": "203.0.113.0/24", "whitelist-source-range": "10.0.0.0/8",
        ])))
        #expect(policies(differ, of: "web").first?.refusal == "annotation \(nginx)allowlist-source-range has an invalid value")
        let agree = translate(documents(ingressClass, backends, annotated("web", annotations: [
            "allowlist-source-range": "10.0.0.0/8", "whitelist-source-range": "10.0.0.0/8",
        ])))
        #expect(policies(agree, of: "web").first?.refusal == nil)
        #expect(agree.diagnostics.isEmpty)
    }

    @Test(arguments: [
        ("1024", UInt64(1024)), ("8k", 8 << 10), ("8K", 8 << 10), ("1m", 1 << 20), ("10M", 10 << 20), ("2g", 2 << 30),
        ("2G", 2 << 30), ("0", nil), ("0m", nil),
    ] as [(String, UInt64?)])
    func proxyBodySizeUsesNginxSizes(text: String, bytes: UInt64?) {
        let result = translate(documents(ingressClass, backends, annotated("web", annotations: ["proxy-body-size": text])))
        #expect(result.diagnostics.isEmpty)
        #expect(policies(result, of: "web").map(\.maximumBodySize) == [bytes, bytes])
    }

    /// `TranslateOptions()` carries no global `proxy-body-size`; the 1m
    /// default is the settings' (GlobalPolicyTests).
    @Test func unsetBodySizeWithoutAGlobalValueMeansNoLimit() {
        let result = translate(documents(ingressClass, backends, annotated("web", annotations: [:])))
        #expect(policies(result, of: "web").map(\.maximumBodySize) == [nil, nil])
    }

    @Test func policyOnAnIngressWithADefaultBackendWithholdsTheDefaultWithAWarning() {
        let result = translate(documents(ingressClass, backends,
            annotated("web", annotations: ["whitelist-source-range": "10.0.0.0/8"], defaultBackend: true)))
        #expect(result.model.virtualHosts.allSatisfy { $0.defaultCluster == nil })
        #expect(result.diagnostics.map(\.reason) == ["UnsupportedDefaultBackend"])
    }

    // MARK: The catalog

    @Test func catalogClassifiesEveryKeyOnceAndInOrder() {
        let names = AnnotationCatalog.entries.map(\.name)
        #expect(names == names.sorted())
        #expect(Set(names).count == names.count)
        #expect(names.count >= 120)
        for name in ["whitelist-source-range", "allowlist-source-range", "denylist-source-range", "proxy-body-size", "use-regex",
            "rewrite-target", "backend-protocol", "ssl-redirect", "force-ssl-redirect", "auth-tls-secret"] {
            #expect(AnnotationCatalog.entry(forKey: nginx + name)?.support == .honoured, "\(name)")
        }
    }

    @Test func everyAuthLimitSnippetFirewallAndMirrorKeyNotHonouredFailsClosed() {
        for entry in AnnotationCatalog.entries where entry.support != .honoured {
            let name = entry.name
            let securityFamily = (name.hasPrefix("auth-") && name != "auth-tls-error-page") || name.hasPrefix("limit-")
                || name.hasSuffix("-snippet") || name.hasPrefix("modsecurity-") || name.hasPrefix("mirror-")
                || name.hasPrefix("global-rate-limit") || ["satisfy", "enable-modsecurity", "enable-owasp-core-rules"].contains(name)
            if securityFamily {
                #expect(entry.support == .unsupportedSecurity, "\(name) must fail closed")
            }
        }
    }
}
