import Foundation
import Testing

extension EndToEndTests {
    @Suite struct Routing {
        @Test func routesByHostAndLongestPathPrefix() throws {
            let fixture = try ProxyFixture()
            #expect(try fixture.backendName("/", host: "a.example.com") == "a")
            #expect(try fixture.backendName("/anything/else?x=1", host: "a.example.com") == "a")
            #expect(try fixture.backendName("/b", host: "a.example.com") == "b")
            #expect(try fixture.backendName("/b/deeper", host: "a.example.com") == "b")
            // Prefix matching is per path element: /bee is not under /b.
            #expect(try fixture.backendName("/bee", host: "a.example.com") == "a")
            #expect(try fixture.backendName("/exact", host: "a.example.com") == "b")
        }

        @Test func hostMatchingIgnoresCaseAndPortAndSupportsOneLabelWildcards() throws {
            let fixture = try ProxyFixture()
            #expect(try fixture.backendName("/b", host: "A.Example.COM:8080") == "b")
            #expect(try fixture.backendName("/", host: "x.wild.example.com") == "b")
            #expect(try fixture.get("/", host: "y.x.wild.example.com").status == 404)
            #expect(try fixture.get("/", host: "wild.example.com").status == 404)
        }

        @Test func unknownHostUsesHostlessRulesElse404() throws {
            let fixture = try ProxyFixture()
            #expect(try fixture.backendName("/fallback/x", host: "unknown.example.org") == "a")
            let notFound = try fixture.get("/nothing", host: "unknown.example.org")
            #expect(notFound.status == 404)
            #expect(notFound.bodyText.contains("no Ingress rule"))
            #expect(try fixture.postern.metric("postern_downstream_errors_total{reason=\"no_route\"}") == 1)
        }

        @Test func forwardsHostAndAddsForwardingHeaders() throws {
            let fixture = try ProxyFixture()
            let response = try fixture.get(
                "/path?q=1", host: "a.example.com",
                headers: [
                    ("X-Forwarded-For", "203.0.113.9"), ("X-Real-IP", "198.51.100.1"),
                    ("Connection", "close, X-Secret-Hop"), ("X-Secret-Hop", "1"), ("Keep-Alive", "timeout=5"),
                    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ])
            #expect(response.status == 200)
            let json = try response.json()
            #expect(json["path"] as? String == "/path?q=1")
            let headers = try response.echoedHeaders()
            #expect(headers["host"] == "a.example.com")
            // ingress-nginx's default (no use-forwarded-headers): the client's list is
            // replaced by the address the proxy sees, and kept as X-Original-Forwarded-For.
            #expect(headers["x-forwarded-for"] == "127.0.0.1")
            #expect(headers["x-original-forwarded-for"] == "203.0.113.9")
            #expect(headers["x-real-ip"] == "127.0.0.1")
            #expect(headers["x-forwarded-proto"] == "http")
            #expect(headers["x-forwarded-host"] == "a.example.com")
            #expect(headers["x-forwarded-port"] == "80", "the public HTTP port, not the listener's")
            #expect(headers["x-request-id"]?.count == 32)
            #expect(headers["x-secret-hop"] == nil)
            #expect(headers["keep-alive"] == nil)
            #expect(headers["proxy-authorization"] == nil)
            #expect(headers["connection"] == nil)
        }

        @Test func debugRoutesShowsTheRoutingConfigurationInService() throws {
            let fixture = try ProxyFixture()
            let response = try HTTPClient.request(port: fixture.postern.adminPort, path: "/debug/routes")
            #expect(response.status == 200)
            let json = try response.json()
            let hosts = (json["virtualHosts"] as? [[String: Any]] ?? []).compactMap { $0["host"] as? String }
            #expect(hosts.contains("a.example.com") && hosts.contains("*.wild.example.com"))
            let clusters = json["clusters"] as? [[String: Any]] ?? []
            let serviceA = clusters.first { $0["name"] as? String == "default/svc-a:80" }
            #expect(serviceA?["endpoints"] as? [String] == ["127.0.0.1:\(fixture.backendA.port)"])
            let empty = clusters.first { $0["name"] as? String == "default/svc-empty:80" }
            #expect(empty?["unavailable"] as? String != nil)
        }

        @Test func keepsAClientRequestIDAndGeneratesDistinctOnesOtherwise() throws {
            let fixture = try ProxyFixture()
            let kept = try fixture.get("/", host: "a.example.com", headers: [("X-Request-ID", "abc-123")])
            #expect(try kept.echoedHeaders()["x-request-id"] == "abc-123")
            let first = try fixture.get("/", host: "a.example.com").echoedHeaders()["x-request-id"]
            let second = try fixture.get("/", host: "a.example.com").echoedHeaders()["x-request-id"]
            #expect(first != nil && first != second)
        }
    }
}
