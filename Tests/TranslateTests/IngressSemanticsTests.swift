import Kube
import RouteModel
import Routing
import Testing
import Translate

// The Ingress specification's matching rules, case by case: manifests in,
// the backend a request reaches out (through Translate and the compiled table).

/// Services `a` to `f` (named port `http`), each with one ready endpoint.
private let backends = (["a", "b", "c", "d", "e", "f"].flatMap { name in
    [service(name), slice("\(name)-0", service: name, addresses: ["10.0.0.\(name.utf8.first! - 96)"])]
}).joined(separator: "\n---\n")

/// An Ingress of class postern with optional annotations and default backend.
private func ingressYAML(
    _ name: String, namespace: String = "default", created: String? = nil, annotations: [String: String] = [:],
    defaultBackend: String? = nil, rules: [(host: String?, path: String, type: String, service: String)]
) -> String {
    var extra = ""
    if let defaultBackend {
        extra = "\n  defaultBackend:\n    service:\n      name: \(defaultBackend)\n      port:\n        name: http"
    }
    var text = ingress(name, namespace: namespace, created: created, rules: rules, extraSpec: extra)
    if !annotations.isEmpty {
        let lines = annotations.sorted { $0.key < $1.key }.map { "\n    \($0.key): \"\($0.value)\"" }.joined()
        text = text.replacingFirst("\n  namespace: \(namespace)", with: "\n  namespace: \(namespace)\n  annotations:\(lines)")
    }
    return text
}

extension String {
    fileprivate func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}

/// One row: Ingresses, a request, and the service that must answer it
/// (`404` for not found, `503:` plus a reason fragment for unavailable).
struct RoutingCase: CustomTestStringConvertible, Sendable {
    var name: String
    var ingresses: [String]
    var host: String
    var path: String
    var expected: String
    var rewrittenPath: String? = nil
    var defaultBackendService: String? = nil

    var testDescription: String { name }

    func run() {
        let result = translate(
            documents(ingressClass, backends, ingresses.joined(separator: "\n---\n")),
            options: TranslateOptions(defaultBackendService: defaultBackendService))
        let table = RoutingTable(model: result.model, generation: 1)
        let (decision, rewritten) = table.routeWithRewrite(host: host, path: path)
        var answered = "404"
        if case let .cluster(cluster) = decision {
            answered = cluster.endpoints.isEmpty ? "503: \(cluster.unavailableReason ?? "")" : cluster.name
        }
        if expected.hasPrefix("503") {
            #expect(answered.hasPrefix("503") && answered.contains(expected.dropFirst(5)), "\(name): got \(answered)")
        } else {
            // Cluster names are `namespace/service:port` (the port as the reference wrote it).
            let want = expected == "404" ? "404" : "default/\(expected):"
            #expect(answered == want || (want != "404" && answered.hasPrefix(want)),
                "\(name): \(host)\(path) went to \(answered), want \(want)")
        }
        #expect(rewritten == rewrittenPath, "\(name): upstream path")
        // `postern route` must tell the same story.
        let explanation = table.explain(host: host, path: path)
        #expect(explanation.cluster?.name == { if case let .cluster(c) = decision { return c.name } else { return nil } }())
    }
}

private func rules(_ list: (String?, String, String, String)...) -> [(host: String?, path: String, type: String, service: String)] {
    list.map { (host: $0.0, path: $0.1, type: $0.2, service: $0.3) }
}

private func one(_ list: (String?, String, String, String)...) -> [String] {
    [ingressYAML("one", rules: list.map { (host: $0.0, path: $0.1, type: $0.2, service: $0.3) })]
}

private let h = "example.com"

/// The matching table of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples, row by row.
let specificationExamples: [RoutingCase] = [
    RoutingCase(name: "Prefix / matches all paths", ingresses: one((h, "/", "Prefix", "a")), host: h, path: "/any/thing", expected: "a"),
    RoutingCase(name: "Exact /foo matches /foo", ingresses: one((h, "/foo", "Exact", "a")), host: h, path: "/foo", expected: "a"),
    RoutingCase(name: "Exact /foo does not match /bar", ingresses: one((h, "/foo", "Exact", "a")), host: h, path: "/bar", expected: "404"),
    RoutingCase(name: "Exact /foo does not match /foo/", ingresses: one((h, "/foo", "Exact", "a")), host: h, path: "/foo/", expected: "404"),
    RoutingCase(name: "Exact /foo/ does not match /foo", ingresses: one((h, "/foo/", "Exact", "a")), host: h, path: "/foo", expected: "404"),
    RoutingCase(name: "Prefix /foo matches /foo", ingresses: one((h, "/foo", "Prefix", "a")), host: h, path: "/foo", expected: "a"),
    RoutingCase(name: "Prefix /foo matches /foo/", ingresses: one((h, "/foo", "Prefix", "a")), host: h, path: "/foo/", expected: "a"),
    RoutingCase(name: "Prefix /foo/ matches /foo", ingresses: one((h, "/foo/", "Prefix", "a")), host: h, path: "/foo", expected: "a"),
    RoutingCase(name: "Prefix /foo/ matches /foo/", ingresses: one((h, "/foo/", "Prefix", "a")), host: h, path: "/foo/", expected: "a"),
    RoutingCase(name: "Prefix /aaa/bb does not match /aaa/bbb", ingresses: one((h, "/aaa/bb", "Prefix", "a")), host: h, path: "/aaa/bbb", expected: "404"),
    RoutingCase(name: "Prefix /aaa/bbb matches /aaa/bbb", ingresses: one((h, "/aaa/bbb", "Prefix", "a")), host: h, path: "/aaa/bbb", expected: "a"),
    RoutingCase(name: "Prefix /aaa/bbb/ ignores its trailing slash", ingresses: one((h, "/aaa/bbb/", "Prefix", "a")), host: h, path: "/aaa/bbb", expected: "a"),
    RoutingCase(name: "Prefix /aaa/bbb matches the trailing slash of /aaa/bbb/", ingresses: one((h, "/aaa/bbb", "Prefix", "a")), host: h, path: "/aaa/bbb/", expected: "a"),
    RoutingCase(name: "Prefix /aaa/bbb matches the subpath /aaa/bbb/ccc", ingresses: one((h, "/aaa/bbb", "Prefix", "a")), host: h, path: "/aaa/bbb/ccc", expected: "a"),
    RoutingCase(name: "Prefix /aaa/bbb does not match /aaa/bbbxyz", ingresses: one((h, "/aaa/bbb", "Prefix", "a")), host: h, path: "/aaa/bbbxyz", expected: "404"),
    RoutingCase(name: "Prefix /, /aaa: /aaa/ccc takes /aaa", ingresses: one((h, "/", "Prefix", "a"), (h, "/aaa", "Prefix", "b")), host: h, path: "/aaa/ccc", expected: "b"),
    RoutingCase(name: "Prefix /, /aaa, /aaa/bbb: /aaa/bbb takes /aaa/bbb", ingresses: one((h, "/", "Prefix", "a"), (h, "/aaa", "Prefix", "b"), (h, "/aaa/bbb", "Prefix", "c")), host: h, path: "/aaa/bbb", expected: "c"),
    RoutingCase(name: "Prefix /, /aaa, /aaa/bbb: /ccc takes /", ingresses: one((h, "/", "Prefix", "a"), (h, "/aaa", "Prefix", "b"), (h, "/aaa/bbb", "Prefix", "c")), host: h, path: "/ccc", expected: "a"),
    RoutingCase(name: "Prefix /aaa: /ccc uses the default backend", ingresses: [ingressYAML("one", defaultBackend: "f", rules: rules((h, "/aaa", "Prefix", "a")))], host: h, path: "/ccc", expected: "f"),
    RoutingCase(name: "Prefix and Exact /foo: /foo prefers Exact", ingresses: one((h, "/foo", "Prefix", "a"), (h, "/foo", "Exact", "b")), host: h, path: "/foo", expected: "b"),
]

let pathCases: [RoutingCase] = [
    RoutingCase(name: "Prefix /foo still serves /foo/x when Exact /foo exists", ingresses: one((h, "/foo", "Prefix", "a"), (h, "/foo", "Exact", "b")), host: h, path: "/foo/x", expected: "a"),
    RoutingCase(name: "Exact beats a longer Prefix", ingresses: one((h, "/foo/bar", "Exact", "a"), (h, "/foo/bar", "Prefix", "b"), (h, "/foo", "Prefix", "c")), host: h, path: "/foo/bar", expected: "a"),
    RoutingCase(name: "longest prefix wins across Ingresses", ingresses: [ingressYAML("x", rules: rules((h, "/aaa", "Prefix", "a"))), ingressYAML("y", rules: rules((h, "/aaa/bbb", "Prefix", "b")))], host: h, path: "/aaa/bbb/c", expected: "b"),
    RoutingCase(name: "Exact is case-sensitive", ingresses: one((h, "/Foo", "Exact", "a")), host: h, path: "/foo", expected: "404"),
    RoutingCase(name: "Prefix is case-sensitive", ingresses: one((h, "/foo", "Prefix", "a"), (h, "/", "Prefix", "b")), host: h, path: "/FOO/x", expected: "b"),
    RoutingCase(name: "query strings never take part", ingresses: one((h, "/foo", "Exact", "a")), host: h, path: "/foo?x=/bar", expected: "a"),
    RoutingCase(name: "ImplementationSpecific behaves like Prefix", ingresses: one((h, "/foo", "ImplementationSpecific", "a")), host: h, path: "/foo/bar", expected: "a"),
    RoutingCase(name: "ImplementationSpecific is not a string prefix", ingresses: one((h, "/foo", "ImplementationSpecific", "a")), host: h, path: "/foobar", expected: "404"),
    RoutingCase(name: "a double slash is an empty segment, not a separator to skip", ingresses: one((h, "/foo/bar", "Prefix", "a"), (h, "/", "Prefix", "b")), host: h, path: "/foo//bar", expected: "b"),
]

let hostCases: [RoutingCase] = [
    RoutingCase(name: "wildcard matches one label", ingresses: one(("*.example.com", "/", "Prefix", "a")), host: "x.example.com", path: "/", expected: "a"),
    RoutingCase(name: "wildcard misses the apex", ingresses: one(("*.example.com", "/", "Prefix", "a")), host: "example.com", path: "/", expected: "404"),
    RoutingCase(name: "wildcard misses two labels", ingresses: one(("*.example.com", "/", "Prefix", "a")), host: "b.a.example.com", path: "/", expected: "404"),
    RoutingCase(name: "exact host beats wildcard", ingresses: one(("*.example.com", "/", "Prefix", "a"), ("x.example.com", "/", "Prefix", "b")), host: "x.example.com", path: "/", expected: "b"),
    RoutingCase(name: "exact host beats wildcard even with no matching path (no fall-through)", ingresses: one(("*.example.com", "/", "Prefix", "a"), ("x.example.com", "/only", "Prefix", "b")), host: "x.example.com", path: "/", expected: "404"),
    RoutingCase(name: "host is case-insensitive and ignores the port", ingresses: one((h, "/", "Prefix", "a")), host: "EXAMPLE.Com:8443", path: "/", expected: "a"),
    RoutingCase(name: "rule host written in capitals still matches", ingresses: one(("Example.COM", "/", "Prefix", "a")), host: "example.com", path: "/", expected: "a"),
    RoutingCase(name: "wildcard with port and mixed case", ingresses: one(("*.example.com", "/", "Prefix", "a")), host: "Www.EXAMPLE.com:80", path: "/", expected: "a"),
    RoutingCase(name: "host-less rules answer unknown hosts", ingresses: one((h, "/", "Prefix", "a"), (nil, "/", "Prefix", "b")), host: "other.org", path: "/x", expected: "b"),
    RoutingCase(name: "a chosen host never falls through to host-less rules", ingresses: one((h, "/app", "Prefix", "a"), (nil, "/", "Prefix", "b")), host: h, path: "/other", expected: "404"),
    RoutingCase(name: "host-less rules from another Ingress do not catch a known host", ingresses: [ingressYAML("x", rules: rules((h, "/app", "Prefix", "a"))), ingressYAML("y", rules: rules((nil, "/", "Prefix", "b")))], host: h, path: "/other", expected: "404"),
    RoutingCase(name: "same host from Ingresses in two namespaces is merged", ingresses: [ingressYAML("x", rules: rules((h, "/a", "Prefix", "a"))), ingressYAML("y", namespace: "other", rules: rules((h, "/b", "Prefix", "b")))], host: h, path: "/b/1", expected: "503: service other/b not found"),
]

let defaultBackendCases: [RoutingCase] = [
    RoutingCase(name: "Ingress default backend answers its host's unmatched paths", ingresses: [ingressYAML("one", defaultBackend: "f", rules: rules((h, "/app", "Prefix", "a")))], host: h, path: "/x", expected: "f"),
    RoutingCase(name: "Ingress default backend beats the global one", ingresses: [ingressYAML("one", defaultBackend: "f", rules: rules((h, "/app", "Prefix", "a")))], host: h, path: "/x", expected: "f", defaultBackendService: "default/e"),
    RoutingCase(name: "global default backend answers an unknown host", ingresses: one((h, "/app", "Prefix", "a")), host: "other.org", path: "/", expected: "e", defaultBackendService: "default/e"),
    RoutingCase(name: "global default backend answers a known host's unmatched path", ingresses: one((h, "/app", "Prefix", "a")), host: h, path: "/x", expected: "e", defaultBackendService: "default/e"),
    RoutingCase(name: "no default backend: 404", ingresses: one((h, "/app", "Prefix", "a")), host: h, path: "/x", expected: "404"),
    RoutingCase(name: "an Ingress with only a default backend catches every unknown host", ingresses: [ingressYAML("catch", defaultBackend: "f", rules: []), ingressYAML("one", rules: rules((h, "/", "Prefix", "a")))], host: "other.org", path: "/", expected: "f"),
    RoutingCase(name: "missing service answers 503, not a crash", ingresses: one((h, "/", "Prefix", "nope")), host: h, path: "/", expected: "503: service default/nope not found"),
]

let normalisationCases: [RoutingCase] = [
    RoutingCase(name: "dot-dot resolves before matching", ingresses: one((h, "/public", "Prefix", "a"), (h, "/admin", "Prefix", "b")), host: h, path: "/public/../admin", expected: "b"),
    RoutingCase(name: "dot-dot never selects the rule it climbs out of", ingresses: one((h, "/public", "Prefix", "a")), host: h, path: "/public/../admin", expected: "404"),
    RoutingCase(name: "single dots are removed", ingresses: one((h, "/a/b", "Exact", "a")), host: h, path: "/a/./b", expected: "a"),
    RoutingCase(name: "dot-dot above the root stays at the root", ingresses: one((h, "/admin", "Exact", "a")), host: h, path: "/../../admin", expected: "a"),
    RoutingCase(name: "percent-encoded dots are dot-segments too", ingresses: one((h, "/public", "Prefix", "a"), (h, "/admin", "Prefix", "b")), host: h, path: "/public/%2e%2E/admin", expected: "b"),
    RoutingCase(name: "%2F is not a separator", ingresses: one((h, "/a", "Prefix", "a"), (h, "/", "Prefix", "b")), host: h, path: "/a%2Fb", expected: "b"),
    RoutingCase(name: "%2F stays inside its segment for Exact", ingresses: one((h, "/a%2Fb", "Exact", "a")), host: h, path: "/a%2Fb", expected: "a"),
    RoutingCase(name: "a trailing dot-dot leaves a trailing slash", ingresses: one((h, "/a/", "Exact", "a")), host: h, path: "/a/b/..", expected: "a"),
    RoutingCase(name: "dots inside a name are not dot-segments", ingresses: one((h, "/a..b", "Exact", "a")), host: h, path: "/a..b", expected: "a"),
]

private let useRegex = ["nginx.ingress.kubernetes.io/use-regex": "true"]

let annotationCases: [RoutingCase] = [
    RoutingCase(name: "use-regex makes ImplementationSpecific an anchored regex", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/api/v[0-9]+", "ImplementationSpecific", "a"), (h, "/", "Prefix", "b")))], host: h, path: "/api/v12/users", expected: "a"),
    RoutingCase(name: "regex is anchored at the start", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/api/v[0-9]+", "ImplementationSpecific", "a"), (h, "/", "Prefix", "b")))], host: h, path: "/x/api/v1", expected: "b"),
    RoutingCase(name: "regex is a prefix match (not anchored at the end)", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/ab", "ImplementationSpecific", "a")))], host: h, path: "/abc", expected: "a"),
    RoutingCase(name: "longest regex is tried first", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/a.*", "ImplementationSpecific", "a"), (h, "/a/b/.*", "ImplementationSpecific", "b")))], host: h, path: "/a/b/c", expected: "b"),
    RoutingCase(name: "Exact beats a regex", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/a.*", "ImplementationSpecific", "a"), (h, "/abc", "Exact", "b")))], host: h, path: "/abc", expected: "b"),
    RoutingCase(name: "a matching regex beats a longer Prefix", ingresses: [ingressYAML("r", annotations: useRegex, rules: rules((h, "/a.*", "ImplementationSpecific", "a"), (h, "/abc/def", "Prefix", "b")))], host: h, path: "/abc/def", expected: "a"),
    RoutingCase(name: "without use-regex the same path is a plain Prefix", ingresses: one((h, "/api/v[0-9]+", "ImplementationSpecific", "a"), (h, "/", "Prefix", "b")), host: h, path: "/api/v12", expected: "b"),
    RoutingCase(name: "rewrite-target substitutes capture groups", ingresses: [ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$2"], rules: rules((h, "/something(/|$)(.*)", "ImplementationSpecific", "a")))], host: h, path: "/something/new?x=1", expected: "a", rewrittenPath: "/new"),
    RoutingCase(name: "rewrite-target with ${1} and literal text", ingresses: [ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/v2/${1}/items", "nginx.ingress.kubernetes.io/use-regex": "true"], rules: rules((h, "/shop/([a-z]+)", "ImplementationSpecific", "a")))], host: h, path: "/shop/shoes/42", expected: "a", rewrittenPath: "/v2/shoes/items"),
    RoutingCase(name: "rewrite-target on a Prefix path replaces the whole path", ingresses: [ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/"], rules: rules((h, "/app", "Prefix", "a")))], host: h, path: "/app/x", expected: "a", rewrittenPath: "/"),
    RoutingCase(name: "rewrite applies to the dot-segment-free path", ingresses: [ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$1"], rules: rules((h, "/app/(.*)", "ImplementationSpecific", "a")))], host: h, path: "/app/x/../y", expected: "a", rewrittenPath: "/y"),
    RoutingCase(name: "rules of other Ingresses are not rewritten", ingresses: [ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/"], rules: rules((h, "/app", "Prefix", "a"))), ingressYAML("s", rules: rules((h, "/web", "Prefix", "b")))], host: h, path: "/web/x", expected: "b"),
]

@Suite struct IngressMatchingTable {
    @Test(arguments: specificationExamples) func specificationExample(_ row: RoutingCase) { row.run() }
    @Test(arguments: pathCases) func pathPrecedence(_ row: RoutingCase) { row.run() }
    @Test(arguments: hostCases) func hostSelection(_ row: RoutingCase) { row.run() }
    @Test(arguments: defaultBackendCases) func defaultBackend(_ row: RoutingCase) { row.run() }
    @Test(arguments: normalisationCases) func pathNormalisation(_ row: RoutingCase) { row.run() }
    @Test(arguments: annotationCases) func annotation(_ row: RoutingCase) { row.run() }
}

@Suite struct IngressDiagnostics {
    @Test func oldestWinsAcrossNamespacesAndTheLoserIsToldWhereAndWhy() {
        let result = translate(documents(ingressClass, backends, service("b", namespace: "team"),
            ingressYAML("newer", namespace: "team", created: "2024-06-01T00:00:00Z", rules: rules((h, "/shop", "Prefix", "b"))),
            ingressYAML("older", created: "2024-01-01T00:00:00Z", rules: rules((h, "/shop", "Prefix", "a")))))
        let table = RoutingTable(model: result.model, generation: 1)
        guard case let .cluster(cluster) = table.route(host: h, path: "/shop/cart") else {
            Issue.record("not routed")
            return
        }
        #expect(cluster.name == "default/a:http")
        let conflicts = result.diagnostics.filter { $0.reason == "PathConflict" }
        #expect(conflicts.count == 1)
        #expect(conflicts.first?.namespace == "team" && conflicts.first?.name == "newer")
        #expect(conflicts.first?.severity == .warning)
        #expect(conflicts.first?.fieldPath == "spec.rules[0].http.paths[0].path")
        #expect(conflicts.first?.message.contains("Ingress default/older, which is older") == true)
    }

    @Test func malformedRegexIsAnErrorOnThatIngressOnly() {
        let result = translate(documents(ingressClass, backends,
            ingressYAML("bad", annotations: useRegex, rules: rules((h, "/a(b", "ImplementationSpecific", "a"), (h, "/ok.*", "ImplementationSpecific", "b"))),
            ingressYAML("good", rules: rules((h, "/c", "Prefix", "c")))))
        let problems = result.diagnostics.filter { $0.severity == .error }
        #expect(problems.count == 1)
        #expect(problems.first?.name == "bad")
        #expect(problems.first?.reason == "InvalidRegex")
        #expect(problems.first?.fieldPath == "spec.rules[0].http.paths[0].path")
        #expect(problems.first?.message.contains("missing )") == true)
        let table = RoutingTable(model: result.model, generation: 1)
        #expect(table.route(host: h, path: "/okay").clusterName == "default/b:http")
        #expect(table.route(host: h, path: "/c").clusterName == "default/c:http")
    }

    @Test func hostilePatternAndPathStayLinear() {
        // (a+)+$ backtracks exponentially in PCRE-style engines; RE2 does not.
        let result = translate(documents(ingressClass, backends,
            ingressYAML("r", annotations: useRegex, rules: rules((h, "/(a+)+$", "ImplementationSpecific", "a"), (h, "/", "Prefix", "b")))))
        #expect(result.diagnostics.isEmpty)
        let table = RoutingTable(model: result.model, generation: 1)
        let path = "/" + String(repeating: "a", count: 50_000) + "!"
        #expect(table.route(host: h, path: path).clusterName == "default/b:http")
    }

    @Test func invalidUseRegexValueIsReportedAndRefusesTheIngress() {
        let result = translate(documents(ingressClass, backends,
            ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/use-regex": "yes"], rules: rules((h, "/a.*", "ImplementationSpecific", "a")))))
        #expect(result.diagnostics.map(\.reason) == ["InvalidAnnotation"])
        #expect(result.diagnostics.first?.fieldPath == "metadata.annotations[nginx.ingress.kubernetes.io/use-regex]")
        #expect(result.model.virtualHosts.first?.routes.first?.match == .prefix)
        #expect(result.model.virtualHosts.first?.routes.first?.policy.refusal
            == "annotation nginx.ingress.kubernetes.io/use-regex has an invalid value")
    }

    @Test func malformedRewriteTargetKeepsTheIngressOutOfService() {
        let result = translate(documents(ingressClass, backends,
            ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$x"], rules: rules((h, "/a", "Prefix", "a"))),
            ingressYAML("s", rules: rules((h, "/b", "Prefix", "b")))))
        #expect(result.diagnostics.map(\.reason) == ["InvalidAnnotation"])
        #expect(result.diagnostics.first?.name == "r")
        // Fail closed: the path stays claimed by "r", refused (503), and is not rewritten.
        let routes = result.model.virtualHosts.first?.routes ?? []
        #expect(routes.map(\.path) == ["/a", "/b"])
        #expect(routes.map { $0.policy.refusal != nil } == [true, false])
        #expect(routes.first?.rewriteTarget == nil)
    }

    @Test func rewriteNamingAMissingGroupIsAWarning() {
        let result = translate(documents(ingressClass, backends,
            ingressYAML("r", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$3"], rules: rules((h, "/(a)", "ImplementationSpecific", "a")))))
        #expect(result.diagnostics.map(\.reason) == ["RewriteGroupMissing"])
        #expect(result.diagnostics.first?.severity == .warning)
    }

    @Test func namedServicePortReachesTheEndpointSlicePortOfTheSameName() {
        let result = translate(documents(ingressClass,
            service("multi", ports: "  - name: metrics\n    port: 9090\n    targetPort: 9090\n  - name: web\n    port: 80\n    targetPort: http-alt"),
            """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: multi-0, namespace: default, labels: {kubernetes.io/service-name: multi}}
            addressType: IPv4
            ports: [{name: metrics, port: 9090}, {name: web, port: 8181}]
            endpoints:
              - addresses: ["10.1.0.1"]
              - addresses: ["10.1.0.2"]
                conditions: {ready: false}
              - addresses: ["10.1.0.3"]
                conditions: {ready: true, terminating: true}
            """,
            ingress("named", rules: []).replacingFirst("spec:", with: """
            spec:
              rules:
                - host: named.example
                  http:
                    paths:
                      - path: /
                        pathType: Prefix
                        backend: {service: {name: multi, port: {name: web}}}
            """)))
        #expect(result.diagnostics.isEmpty)
        // Only the endpoint with ready unset counts: not-ready and terminating ones never do.
        #expect(result.model.clusters.map(\.name) == ["default/multi:web"])
        #expect(result.model.clusters.first?.endpoints == [Endpoint(address: .v4(10, 1, 0, 1), port: 8181)])
    }

    @Test func sameObjectsInRandomOrdersGiveTheIdenticalModelAndDiagnostics() {
        let all = objects(documents(ingressClass, backends,
            ingressYAML("r", created: "2024-01-03T00:00:00Z", annotations: ["nginx.ingress.kubernetes.io/rewrite-target": "/$1"],
                rules: rules((h, "/x/(.*)", "ImplementationSpecific", "a"), (h, "/y", "Prefix", "b"))),
            ingressYAML("s", namespace: "team", created: "2024-01-01T00:00:00Z", defaultBackend: "c",
                rules: rules((h, "/y", "Prefix", "c"), ("*.example.com", "/", "Prefix", "d"), (nil, "/", "Prefix", "e"))),
            ingressYAML("t", created: "2024-01-02T00:00:00Z", annotations: useRegex, defaultBackend: "f",
                rules: rules((h, "/z[0-9]+", "ImplementationSpecific", "f"), (h, "/y", "Exact", "a"), (h, "/(", "ImplementationSpecific", "a"))),
            ingressYAML("u", rules: rules((h, "/y", "Prefix", "nope")))))
        let expected = translate(ObjectSnapshot(objects: all), options: TranslateOptions(defaultBackendService: "default/e"))
        #expect(!expected.diagnostics.isEmpty)
        var generator = SplitMix(seed: 7)
        for _ in 0..<50 {
            let result = translate(
                ObjectSnapshot(objects: all.shuffled(using: &generator)), options: TranslateOptions(defaultBackendService: "default/e"))
            #expect(result == expected)
        }
    }
}

extension RouteDecision {
    fileprivate var clusterName: String? {
        if case let .cluster(cluster) = self { return cluster.name }
        return nil
    }
}
