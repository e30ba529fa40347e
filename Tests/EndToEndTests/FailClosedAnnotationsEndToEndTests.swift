import Foundation
import Testing

/// Ingresses that ask for protection Postern does not implement, next to one
/// that asks for nothing, behind the real binary.
final class FailClosedFixture: @unchecked Sendable {
    /// (Ingress name, annotation key, value): each must be refused.
    static let refused: [(name: String, key: String, value: String)] = [
        ("guarded-auth", "nginx.ingress.kubernetes.io/auth-url", "http://127.0.0.1:9/verify"),
        ("guarded-snippet", "nginx.ingress.kubernetes.io/configuration-snippet", "deny all;"),
        ("guarded-waf", "nginx.ingress.kubernetes.io/enable-modsecurity", "true"),
    ]

    let backend: EchoBackend
    let manifests: ManifestFolder
    let postern: PosternProcess

    init() throws {
        backend = try EchoBackend(name: "app")
        manifests = try ManifestFolder()
        var text = Manifests.ingressClass + Manifests.service("svc-app", ports: [backend.port])
            + Manifests.ingress("neighbour", rules: [("neighbour.example.com", "/", "Prefix", "svc-app")])
        for (name, key, value) in FailClosedFixture.refused {
            text += Manifests.ingress(name, rules: [("\(name).example.com", "/", "Prefix", "svc-app")])
                .replacingOccurrences(
                    of: "metadata: {name: \(name), namespace: default}",
                    with: "metadata: {name: \(name), namespace: default, annotations: {\"\(key)\": \"\(value)\"}}")
        }
        try manifests.write("ingresses.yaml", text)
        postern = try PosternProcess(manifests: manifests)
    }
}

extension EndToEndTests {
    @Suite struct FailClosedAnnotations {
        @Test func refusalIsLoggedAndCountedWhileTheNeighbourServes() throws {
            let fixture = try FailClosedFixture()
            let neighbour = try HTTPClient.request(port: fixture.postern.port, path: "/", host: "neighbour.example.com")
            #expect(neighbour.status == 200)
            #expect(try neighbour.json()["name"] as? String == "app")
            #expect(try fixture.postern.metric("postern_ingresses_refused") == 3)
            let log = fixture.postern.child.stderrText
            for (name, key, _) in FailClosedFixture.refused {
                #expect(log.contains("annotation \(key): not supported"), "\(name): the refusal is logged")
                #expect(log.contains("default/\(name)"), "\(name): the log names the Ingress")
            }
            #expect(log.contains("UnsupportedAnnotation"))
        }

        @Test func refusedIngressInAClusterGetsOneWarningEventAndTheOthersServe() throws {
            let cluster = try Kubernetes.Cluster()
            let postern = try #require(cluster.postern)
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            let guarded = KubeObjects.ingress("guarded", rules: [("g.example.com", "/", "svc-a")]).replacingOccurrences(
                of: #""metadata":{"name":"guarded","namespace":"default"}"#,
                with: #""metadata":{"name":"guarded","namespace":"default","annotations":{"nginx.ingress.kubernetes.io/auth-url":"http://auth.example/verify"}}"#)
            try cluster.api.apply(guarded)
            func warnings() -> [[String: Any]] {
                cluster.api.objects(resource: "events").filter {
                    ($0["regarding"] as? [String: Any])?["name"] as? String == "guarded" && $0["type"] as? String == "Warning"
                }
            }
            #expect(secondsUntil(timeout: 5) { !warnings().isEmpty } != nil)
            let event = try #require(warnings().first)
            #expect(event["reason"] as? String == "UnsupportedAnnotation")
            #expect((event["note"] as? String)?.contains("nginx.ingress.kubernetes.io/auth-url") == true)
            #expect((event["note"] as? String)?.contains("answer 503") == true)
            #expect(postern.probe(host: "a.example.com").backend == "a")
            Thread.sleep(forTimeInterval: 0.5)
            #expect(warnings().count == 1)
            #expect(secondsUntil(timeout: 5) {
                ((try? HTTPClient.request(port: postern.adminPort, path: "/metrics").bodyText) ?? "").contains("postern_ingresses_refused 1\n")
            } != nil)
        }

        @Test
        func refusedIngressesAnswer503AndNeverReachTheBackend() throws {
            let fixture = try FailClosedFixture()
            let before = try fixture.backend.stats().requests
            for (name, _, _) in FailClosedFixture.refused {
                for path in ["/", "/deeper/path?x=1"] {
                    let response = try HTTPClient.request(port: fixture.postern.port, path: path, host: "\(name).example.com")
                    #expect(response.status == 503, "\(name) \(path)")
                }
            }
            // HTTP/2 (cleartext, prior knowledge) gets the same answer.
            for (name, _, _) in FailClosedFixture.refused {
                let h2 = try runCommand("/usr/bin/curl", [
                    "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                    "-H", "Host: \(name).example.com", "http://127.0.0.1:\(fixture.postern.port)/",
                ])
                #expect(h2.stdout == "2 503", "\(name) over HTTP/2")
            }
            // /stats itself is one request to the backend.
            #expect(try fixture.backend.stats().requests == before + 1, "no refused request reached the backend")
            let neighbour = try HTTPClient.request(port: fixture.postern.port, path: "/", host: "neighbour.example.com")
            #expect(neighbour.status == 200)
        }
    }
}

/// The policy annotations Translate parses, enforced by the real binary on
/// a loopback client (127.0.0.1).
final class PolicyAnnotationsFixture: @unchecked Sendable {
    /// (Ingress name, annotations): one host NAME.example.com each.
    static let ingresses: [(name: String, annotations: [String: String])] = [
        ("inside", ["whitelist-source-range": "10.0.0.0/8, 127.0.0.0/8"]),
        ("outside", ["whitelist-source-range": "10.0.0.0/8, 2001:db8::/32"]),
        ("newer-name", ["allowlist-source-range": "192.0.2.0/24"]),
        ("denied", ["denylist-source-range": "127.0.0.1"]),
        ("small", ["proxy-body-size": "1k"]),
        ("unlimited", ["proxy-body-size": "0"]),
        ("bad-range", ["whitelist-source-range": "127.0.0.0/33"]),
    ]

    let backend: EchoBackend
    let manifests: ManifestFolder
    let postern: PosternProcess

    init() throws {
        backend = try EchoBackend(name: "app")
        manifests = try ManifestFolder()
        var text = Manifests.ingressClass + Manifests.service("svc-app", ports: [backend.port])
        for (name, annotations) in PolicyAnnotationsFixture.ingresses {
            let rendered = annotations.map { "\"nginx.ingress.kubernetes.io/\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
            text += Manifests.ingress(name, rules: [("\(name).example.com", "/", "Prefix", "svc-app")])
                .replacingOccurrences(
                    of: "metadata: {name: \(name), namespace: default}",
                    with: "metadata: {name: \(name), namespace: default, annotations: {\(rendered)}}")
        }
        try manifests.write("ingresses.yaml", text)
        postern = try PosternProcess(manifests: manifests)
    }

    func status(_ name: String, method: String = "GET", bodySize: Int = 0) throws -> Int {
        try HTTPClient.request(
            port: postern.port, method: method, path: "/", host: "\(name).example.com",
            body: Array(repeating: UInt8(ascii: "x"), count: bodySize)
        ).status
    }
}

extension EndToEndTests {
    @Suite struct PolicyAnnotations {
        @Test func sourceRangeAndBodySizeAnnotationsAreEnforced() throws {
            let fixture = try PolicyAnnotationsFixture()
            #expect(try fixture.status("inside") == 200)
            #expect(try fixture.status("outside") == 403)
            #expect(try fixture.status("newer-name") == 403)
            #expect(try fixture.status("denied") == 403)
            #expect(try fixture.status("small", method: "POST", bodySize: 1024) == 200)
            #expect(try fixture.status("small", method: "POST", bodySize: 1025) == 413)
            #expect(try fixture.status("unlimited", method: "POST", bodySize: 256 * 1024) == 200)
            // An invalid range refuses the Ingress instead of serving it to everyone.
            #expect(try fixture.status("bad-range") == 503)
            #expect(try fixture.postern.metric("postern_ingresses_refused") == 1)
        }
    }
}
