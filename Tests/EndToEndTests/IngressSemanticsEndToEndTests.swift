import Foundation
import Testing

/// Ingress semantics through the running proxy: a manifest directory with
/// several Ingresses, classes and backends, and requests that must reach the
/// right echo backend (or 404/503).
final class IngressFixture: @unchecked Sendable {
    let a: EchoBackend
    let b: EchoBackend
    let c: EchoBackend
    let manifests: ManifestFolder
    let postern: PosternProcess

    /// A Service `name` (port `http` 80 → named target port) whose slice lists
    /// `ready` (on `port`) and not-ready / terminating endpoints on a dead port.
    static func service(_ name: String, port: UInt16, deadPort: UInt16) -> String {
        """
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: \(name), namespace: default}
        spec: {ports: [{name: http, port: 80, targetPort: web}, {name: metrics, port: 9090, targetPort: 9090}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: \(name)-0, namespace: default, labels: {kubernetes.io/service-name: \(name)}}
        addressType: IPv4
        ports: [{name: http, port: \(port)}, {name: metrics, port: \(deadPort)}]
        endpoints:
          - addresses: ["127.0.0.1"]
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: \(name)-1, namespace: default, labels: {kubernetes.io/service-name: \(name)}}
        addressType: IPv4
        ports: [{name: http, port: \(deadPort)}]
        endpoints:
          - addresses: ["127.0.0.2"]
            conditions: {ready: false}
          - addresses: ["127.0.0.3"]
            conditions: {ready: true, terminating: true}

        """
    }

    /// One Ingress; `paths` are (host, path, pathType, service), the port named `http`.
    static func ingress(
        _ name: String, created: String, header: String = "ingressClassName: postern", annotations: [String] = [],
        defaultBackend: String? = nil, paths: [(String?, String, String, String)]
    ) -> String {
        var text = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: \(name)\n  namespace: default\n  creationTimestamp: \"\(created)\"\n"
        if !annotations.isEmpty {
            text += "  annotations:\n" + annotations.map { "    \($0)\n" }.joined()
        }
        text += "spec:\n"
        if !header.isEmpty { text += "  \(header)\n" }
        if let defaultBackend {
            text += "  defaultBackend: {service: {name: \(defaultBackend), port: {name: http}}}\n"
        }
        text += "  rules:\n"
        for (host, path, type, service) in paths {
            text += host.map { "  - host: \"\($0)\"\n    http:\n" } ?? "  - http:\n"
            text += "      paths:\n      - path: \(path)\n        pathType: \(type)\n        backend: {service: {name: \(service), port: {name: http}}}\n"
        }
        return text
    }

    init() throws {
        a = try EchoBackend(name: "a")
        b = try EchoBackend(name: "b")
        c = try EchoBackend(name: "c")
        let dead = try ProxyFixture.closedPort()
        manifests = try ManifestFolder()
        try manifests.write("classes.yaml", """
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata:
              name: postern
              annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
            spec: {controller: postern.dev/ingress-controller}
            ---
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata: {name: nginx}
            spec: {controller: k8s.io/ingress-nginx}

            """)
        try manifests.write("services.yaml",
            IngressFixture.service("svc-a", port: a.port, deadPort: dead) + IngressFixture.service("svc-b", port: b.port, deadPort: dead)
                + IngressFixture.service("svc-c", port: c.port, deadPort: dead))
        let h = "shop.example.com"
        try manifests.write("ingresses.yaml", [
            IngressFixture.ingress("paths", created: "2024-01-01T00:00:00Z", defaultBackend: "svc-c", paths: [
                (h, "/", "Prefix", "svc-a"), (h, "/foo", "Prefix", "svc-a"), (h, "/foo", "Exact", "svc-b"),
                (h, "/aaa/bbb/", "Prefix", "svc-b"), (h, "/Case", "Exact", "svc-b"),
                (h, "/admin", "Prefix", "svc-b"), (h, "/public", "Prefix", "svc-c"),
                (h, "/missing", "Prefix", "svc-missing"),
                ("*.example.com", "/", "Prefix", "svc-c"), ("api.example.com", "/", "Prefix", "svc-b"),
                (nil, "/fallback", "Prefix", "svc-b"),
            ]),
            // Younger: loses /conflict to "paths-2"... which is older still.
            IngressFixture.ingress("young", created: "2024-03-01T00:00:00Z", paths: [("conflict.example.com", "/", "Prefix", "svc-b")]),
            IngressFixture.ingress("old", created: "2023-01-01T00:00:00Z", paths: [("conflict.example.com", "/", "Prefix", "svc-a")]),
            IngressFixture.ingress("classless", created: "2024-01-01T00:00:00Z", header: "", paths: [("classless.example.com", "/", "Prefix", "svc-a")]),
            IngressFixture.ingress("legacy", created: "2024-01-01T00:00:00Z", header: "", annotations: ["kubernetes.io/ingress.class: postern"],
                paths: [("legacy.example.com", "/", "Prefix", "svc-b")]),
            IngressFixture.ingress("legacy-other", created: "2024-01-01T00:00:00Z", header: "", annotations: ["kubernetes.io/ingress.class: nginx"],
                paths: [("legacy-other.example.com", "/", "Prefix", "svc-b")]),
            IngressFixture.ingress("other-class", created: "2024-01-01T00:00:00Z", header: "ingressClassName: nginx",
                paths: [("nginx.example.com", "/", "Prefix", "svc-b")]),
            IngressFixture.ingress("regex", created: "2024-01-01T00:00:00Z", annotations: ["nginx.ingress.kubernetes.io/use-regex: \"true\""],
                paths: [("regex.example.com", "/v[0-9]+/items", "ImplementationSpecific", "svc-b"), ("regex.example.com", "/", "Prefix", "svc-a")]),
            IngressFixture.ingress("rewrite", created: "2024-01-01T00:00:00Z", annotations: ["nginx.ingress.kubernetes.io/rewrite-target: /$2"],
                paths: [("rewrite.example.com", "/something(/|$)(.*)", "ImplementationSpecific", "svc-c")]),
        ].joined())
        postern = try PosternProcess(
            manifests: manifests, settings: "", extraArguments: ["--default-backend-service", "default/svc-a"])
    }

    func get(_ path: String, host: String) throws -> HTTPResponse {
        try HTTPClient.request(port: postern.port, path: path, host: host)
    }

    /// The echo backend that answered, or the status code as text.
    func answer(_ path: String, host: String = "shop.example.com") throws -> String {
        let response = try get(path, host: host)
        guard response.status == 200 else { return "\(response.status)" }
        return try response.json()["name"] as? String ?? "?"
    }
}

extension EndToEndTests {
    @Suite struct IngressSemantics {
        @Test func everyMatchingRuleReachesItsBackendThroughTheProxy() throws {
            let f = try IngressFixture()
            // Path types, precedence, trailing slashes, case, segment boundaries.
            #expect(try f.answer("/foo") == "b", "Exact beats Prefix for the same path")
            #expect(try f.answer("/foo/") == "a")
            #expect(try f.answer("/foo/x?q=/foo") == "a")
            #expect(try f.answer("/aaa/bbb") == "b", "a trailing slash in the rule is ignored")
            #expect(try f.answer("/aaa/bbb/ccc") == "b")
            #expect(try f.answer("/aaa/bbbxyz") == "a", "/aaa/bbb is not a string prefix of /aaa/bbbxyz")
            #expect(try f.answer("/Case") == "b")
            #expect(try f.answer("/case") == "a", "paths are case-sensitive")
            // Hosts.
            #expect(try f.answer("/", host: "x.example.com") == "c", "wildcard, one label")
            #expect(try f.answer("/", host: "y.x.example.com") == "c", "two labels: no wildcard match; host-less rules and their Ingress's default")
            #expect(try f.answer("/", host: "API.Example.com:8080") == "b", "exact host beats wildcard; case and port ignored")
            #expect(try f.answer("/fallback/1", host: "unknown.org") == "b", "host-less rules")
            #expect(try f.answer("/fallback/1") == "a", "a chosen host never falls through to host-less rules")
            #expect(try f.answer("/", host: "conflict.example.com") == "a", "oldest Ingress wins a conflict")
            // Named ports, endpoint readiness (not-ready and terminating endpoints point at a dead port).
            for _ in 0..<6 { #expect(try f.answer("/admin/x") == "b") }
            // Missing service.
            #expect(try f.answer("/missing") == "503")
            // Dot-segments and %2F.
            let climbed = try f.get("/public/../admin", host: "shop.example.com")
            #expect(climbed.status == 200)
            #expect(try climbed.json()["name"] as? String == "b", "/public/../admin is matched as /admin")
            #expect(try climbed.json()["path"] as? String == "/public/../admin", "the client's path is sent unchanged")
            #expect(try f.answer("/public/%2e%2e/admin") == "b")
            #expect(try f.answer("/admin%2Fx") == "400", "an encoded slash in the path is refused (RequestTargetPolicy)")
            // IngressClass selection.
            #expect(try f.answer("/", host: "classless.example.com") == "a", "class-less Ingress, our class is the default")
            #expect(try f.answer("/", host: "legacy.example.com") == "b", "legacy annotation of our class")
            #expect(try f.answer("/", host: "legacy-other.example.com") == "c", "legacy annotation of another class: ignored")
            #expect(try f.answer("/", host: "nginx.example.com") == "c", "other class: ignored")
            // use-regex.
            #expect(try f.answer("/v12/items/3", host: "regex.example.com") == "b")
            #expect(try f.answer("/vx/items", host: "regex.example.com") == "a")
        }

        @Test func defaultBackendsAnswerInOrderIngressThenGlobal() throws {
            let f = try IngressFixture()
            // "paths" names the host-less rules too, so its default backend (c) answers unknown hosts.
            #expect(try f.answer("/nothing", host: "unknown.org") == "c", "the Ingress's default backend")
            #expect(try f.answer("/other", host: "rewrite.example.com") == "a", "no default on that Ingress: the global one")
        }

        @Test func checkPrintsDiagnosticsAndFailsOnAnErrorAndRouteExplainsTheChoice() throws {
            let folder = try ManifestFolder()
            try folder.write("all.yaml", Manifests.ingressClass + Manifests.service("svc-a", ports: [9])
                + IngressFixture.ingress("old", created: "2024-01-01T00:00:00Z", paths: [("h.example", "/", "Prefix", "svc-a"), ("h.example", "/api", "Prefix", "svc-a")])
                + IngressFixture.ingress("new", created: "2024-02-01T00:00:00Z", annotations: ["nginx.ingress.kubernetes.io/use-regex: \"true\""],
                    paths: [("h.example", "/", "Prefix", "svc-a"), ("h.example", "/a(", "ImplementationSpecific", "svc-a")]))
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path])
            #expect(check.status == 1)
            #expect(check.stdout.contains("all.yaml) spec.rules[1].http.paths[0].path: InvalidRegex"))
            #expect(check.stdout.contains("all.yaml) spec.rules[0].http.paths[0].path: PathConflict"))
            #expect(check.stdout.contains("1 hosts, 2 routes, 1 backends"))
            let route = try runCommand(Paths.product("postern"), ["route", "--manifests", folder.path, "http://H.example:8080/x/../api/v1?q=1"])
            #expect(route.status == 0)
            #expect(route.stdout.contains("matched as: /api/v1"))
            #expect(route.stdout.contains("chosen:    Prefix /api -> default/svc-a:http"))
            #expect(route.stdout.contains("outranked: Prefix / -> default/svc-a:http"))
            #expect(route.stdout.contains("ignored:   Ingress default/new"))
            #expect(route.stdout.contains("result: Ingress default/old spec.rules[1].http.paths[0], Prefix /api"))
        }

        @Test
        func rewriteTargetChangesThePathSentUpstream() throws {
            let f = try IngressFixture()
            let response = try f.get("/something/new/item?x=1", host: "rewrite.example.com")
            #expect(response.status == 200)
            #expect(try response.json()["name"] as? String == "c")
            #expect(try response.json()["path"] as? String == "/new/item?x=1")
        }
    }
}
