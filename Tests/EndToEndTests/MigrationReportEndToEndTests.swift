import Foundation
import Testing

/// Ingresses as teams write them for ingress-nginx: name, annotations (keys
/// under `nginx.ingress.kubernetes.io/` unless they hold a `/`), and what
/// `postern check` must call the Ingress.
enum MigrationFixtures {
    struct Case {
        var name: String
        var annotations: [(String, String)]
        var status: String
    }

    static let cases: [Case] = [
        Case(name: "web-frontend", annotations: [("rewrite-target", "/$2"), ("use-regex", "true"), ("ssl-redirect", "true"),
            ("proxy-body-size", "8m")], status: "served"),
        Case(name: "api-gateway", annotations: [("proxy-read-timeout", "300"), ("proxy-send-timeout", "300"),
            ("proxy-connect-timeout", "10")], status: "served-with-warnings"),
        Case(name: "uploads", annotations: [("proxy-body-size", "0"), ("proxy-request-buffering", "off"),
            ("proxy-buffering", "off")], status: "served"),
        Case(name: "admin-panel", annotations: [("whitelist-source-range", "10.0.0.0/8,192.168.0.0/16")], status: "served"),
        Case(name: "oauth-dashboard", annotations: [("auth-url", "https://oauth2-proxy.auth.svc/oauth2/auth"),
            ("auth-signin", "https://login.example.com/oauth2/start?rd=$escaped_request_uri"),
            ("auth-response-headers", "X-Auth-Request-User,X-Auth-Request-Email")], status: "refused"),
        Case(name: "basic-auth-docs", annotations: [("auth-type", "basic"), ("auth-secret", "docs-htpasswd"),
            ("auth-realm", "Authentication Required")], status: "refused"),
        Case(name: "legacy-headers", annotations: [("configuration-snippet", "more_set_headers \"X-Frame-Options: DENY\";")],
            status: "refused"),
        Case(name: "payments-waf", annotations: [("enable-modsecurity", "true"), ("enable-owasp-core-rules", "true")],
            status: "refused"),
        Case(name: "public-api-limited", annotations: [("limit-rps", "20"), ("limit-burst-multiplier", "3")], status: "refused"),
        Case(name: "grpc-orders", annotations: [("backend-protocol", "GRPC")], status: "served"),
        Case(name: "secure-backend", annotations: [("backend-protocol", "HTTPS"), ("proxy-ssl-verify", "off"),
            ("proxy-ssl-name", "backend.internal")], status: "served"),
        Case(name: "sticky-cart", annotations: [("affinity", "cookie"), ("session-cookie-name", "route"),
            ("session-cookie-max-age", "172800")], status: "served-with-warnings"),
        Case(name: "cors-api", annotations: [("enable-cors", "true"), ("cors-allow-origin", "https://app.example.com")],
            status: "served-with-warnings"),
        Case(name: "checkout-canary", annotations: [("canary", "true"), ("canary-weight", "20")], status: "not-served"),
        Case(name: "blocked-ranges", annotations: [("denylist-source-range", "203.0.113.0/24, 2001:db8::/32")], status: "served"),
        Case(name: "typo-allowlist", annotations: [("whitelist-source-rnage", "10.0.0.0/8")], status: "served-with-warnings"),
        Case(name: "bad-range", annotations: [("whitelist-source-range", "10.0.0.0/33")], status: "refused"),
        Case(name: "bad-size", annotations: [("proxy-body-size", "10mb")], status: "refused"),
        Case(name: "old-domain", annotations: [("permanent-redirect", "https://new.example.com")], status: "served-with-warnings"),
        Case(name: "www-redirect", annotations: [("from-to-www-redirect", "true"), ("force-ssl-redirect", "true")],
            status: "served-with-warnings"),
        Case(name: "shadow-traffic", annotations: [("mirror-target", "http://shadow.default.svc$request_uri")], status: "refused"),
        Case(name: "plain-site", annotations: [], status: "served"),
        Case(name: "traced", annotations: [("enable-opentelemetry", "true"), ("enable-access-log", "false"),
            ("proxy-http-version", "1.1")], status: "served-with-warnings"),
        Case(name: "custom-server", annotations: [("server-snippet", "location /metrics { deny all; }")], status: "refused"),
        Case(name: "tomcat-ajp", annotations: [("backend-protocol", "AJP")], status: "refused"),
        Case(name: "own-prefix", annotations: [("postern.dev/retry", "3")], status: "served-with-warnings"),
    ]

    /// One YAML file: the class, a Service with a ready endpoint, and one
    /// Ingress per case (host NAME.example.com, path /).
    static func manifests() -> String {
        var text = Manifests.ingressClass + Manifests.service("web", ports: [9])
        for entry in cases {
            text += "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: \(entry.name)\n  namespace: default\n"
            if !entry.annotations.isEmpty {
                text += "  annotations:\n"
                for (key, value) in entry.annotations {
                    let full = key.contains("/") ? key : "nginx.ingress.kubernetes.io/" + key
                    let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    text += "    \(full): \"\(escaped)\"\n"
                }
            }
            text += """
                spec:
                  ingressClassName: postern
                  rules:
                  - host: \(entry.name).example.com
                    http:
                      paths:
                      - path: /
                        pathType: Prefix
                        backend: {service: {name: web, port: {number: 80}}}

                """
        }
        return text
    }
}

extension EndToEndTests {
    @Suite struct MigrationReport {
        @Test func checkReportsEveryAnnotationPerIngressAsText() throws {
            let folder = try ManifestFolder()
            try folder.write("ingresses.yaml", MigrationFixtures.manifests())
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path])
            #expect(check.status == 1, "refused Ingresses are errors")
            // Files are named by their full path; the folder is a temporary one.
            let out = check.stdout.replacingOccurrences(of: folder.path + "/", with: "")
            #expect(out.contains("Ingress default/oauth-dashboard (ingresses.yaml): REFUSED: its rules answer 503\n"))
            #expect(out.contains("  refused    nginx.ingress.kubernetes.io/auth-url: not supported, and serving without it would leave the routes less protected: external authentication"))
            #expect(out.contains("Ingress default/web-frontend (ingresses.yaml): served\n"))
            #expect(out.contains("  honoured   nginx.ingress.kubernetes.io/rewrite-target: "))
            #expect(out.contains("  no-effect  nginx.ingress.kubernetes.io/proxy-buffering: Postern streams bodies"))
            #expect(out.contains("Ingress default/api-gateway (ingresses.yaml): served, some annotations ignored\n"))
            #expect(out.contains("  ignored    nginx.ingress.kubernetes.io/proxy-read-timeout: not supported: per-Ingress timeouts"))
            #expect(out.contains("  ignored    nginx.ingress.kubernetes.io/whitelist-source-rnage: unknown: not an annotation ingress-nginx documents (did you mean nginx.ingress.kubernetes.io/whitelist-source-range?)"))
            #expect(out.contains("  refused    nginx.ingress.kubernetes.io/proxy-body-size: invalid value: \"10mb\" is not a size"))
            #expect(out.contains("Ingress default/checkout-canary (ingresses.yaml): not served (canary)\n"))
            #expect(!out.contains("Ingress default/plain-site (ingresses.yaml)"), "Ingresses without annotations get no block")
            let statuses = MigrationFixtures.cases.map(\.status)
            let expectedCount = { (status: String) in statuses.filter { $0 == status }.count }
            #expect(out.contains(
                "\(statuses.count) Ingresses: \(expectedCount("served")) served as written, \(expectedCount("served-with-warnings")) served with ignored annotations, \(expectedCount("refused")) refused (503), \(expectedCount("not-served")) not served (1 without ingress-nginx annotations)\n"))
            // The diagnostics are still printed, with the annotation as the field.
            #expect(out.contains("error Ingress default/oauth-dashboard (ingresses.yaml) metadata.annotations[nginx.ingress.kubernetes.io/auth-url]: UnsupportedAnnotation: "))
            #expect(out.contains("warning Ingress default/sticky-cart (ingresses.yaml) metadata.annotations[nginx.ingress.kubernetes.io/affinity]: UnsupportedAnnotation: "))
        }

        @Test func checkOutputJSONGivesTheSameReportForScripts() throws {
            let folder = try ManifestFolder()
            try folder.write("ingresses.yaml", MigrationFixtures.manifests())
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path, "--output", "json"])
            #expect(check.status == 1)
            let document = try #require(
                try JSONSerialization.jsonObject(with: Data(check.stdout.utf8)) as? [String: Any], "stdout is one JSON object")
            let ingresses = try #require(document["ingresses"] as? [[String: Any]])
            #expect(ingresses.count == MigrationFixtures.cases.count)
            var byName: [String: [String: Any]] = [:]
            for entry in ingresses { byName[entry["name"] as? String ?? ""] = entry }
            for fixture in MigrationFixtures.cases {
                #expect(byName[fixture.name]?["status"] as? String == fixture.status, "\(fixture.name)")
                #expect(byName[fixture.name]?["file"] as? String == folder.path + "/ingresses.yaml")
            }
            let oauth = try #require(byName["oauth-dashboard"])
            #expect((oauth["refusal"] as? String)?.contains("annotation nginx.ingress.kubernetes.io/auth-url is not supported") == true)
            let verdicts = try #require(oauth["annotations"] as? [[String: Any]])
            #expect(verdicts.map { $0["key"] as? String ?? "" } == [
                "nginx.ingress.kubernetes.io/auth-response-headers", "nginx.ingress.kubernetes.io/auth-signin",
                "nginx.ingress.kubernetes.io/auth-url",
            ])
            #expect(verdicts.allSatisfy { $0["outcome"] as? String == "refused" })
            let uploads = try #require(byName["uploads"]?["annotations"] as? [[String: Any]])
            #expect(uploads.map { $0["outcome"] as? String ?? "" } == ["honoured", "no-effect", "no-effect"])
            #expect(uploads.first?["value"] as? String == "0")
            let summary = try #require(document["summary"] as? [String: Any])
            #expect(summary["refused"] as? Int == MigrationFixtures.cases.filter { $0.status == "refused" }.count)
            #expect(summary["notServed"] as? Int == 1)
            let diagnostics = try #require(document["diagnostics"] as? [[String: Any]])
            #expect(diagnostics.contains {
                $0["name"] as? String == "payments-waf" && $0["reason"] as? String == "UnsupportedAnnotation" && $0["severity"] as? String == "error"
                    && $0["field"] as? String == "metadata.annotations[nginx.ingress.kubernetes.io/enable-modsecurity]"
            })
            #expect(diagnostics.contains { $0["name"] as? String == "tomcat-ajp" && $0["reason"] as? String == "InvalidAnnotation" })
        }
    }
}
