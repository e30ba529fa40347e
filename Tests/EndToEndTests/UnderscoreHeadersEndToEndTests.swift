import Foundation
import Testing

extension EndToEndTests {
    /// `enable-underscores-in-headers` (issue 21): header names with `_` are
    /// dropped by default over HTTP/1.1 and HTTP/2; allowed, they pass, except
    /// those that read as a field the proxy sets.
    @Suite struct UnderscoreHeaders {
        /// The header names (lower case) the backend received, over HTTP/1.1 or h2c.
        private static func received(_ postern: PosternProcess, http2: Bool) throws -> [String: String] {
            let result = try runCommand(
                "/usr/bin/curl",
                ["-sS", "--resolve", "u.test:\(postern.port):127.0.0.1"] + (http2 ? ["--http2-prior-knowledge"] : [])
                    + [
                        "-H", "X_Forwarded_For: 6.6.6.6", "-H", "SSL_Client_Verify: SUCCESS", "-H", "Foo_Bar: 1",
                        "-H", "X-Normal: ok", "http://u.test:\(postern.port)/",
                    ])
            #expect(result.status == 0, "\(result.stderr)")
            let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
            #expect(json != nil, "not the backend's answer: \(result.stdout.prefix(200))")
            let headers = json?["headers"] as? [String: String] ?? [:]
            return Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        }

        private static func start(settings: String) throws -> (EchoBackend, ManifestFolder, PosternProcess) {
            let backend = try EchoBackend(name: "u")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("u", ports: [backend.port]))
            try manifests.write("ingress.yaml", Manifests.ingress("u", rules: [("u.test", "/", "Prefix", "u")]))
            return (backend, manifests, try PosternProcess(manifests: manifests, settings: settings))
        }

        @Test func namesWithUnderscoresAreDroppedByDefaultInBothProtocols() throws {
            let (backend, manifests, postern) = try Self.start(settings: "")
            defer { withExtendedLifetime((backend, manifests)) {} }
            for http2 in [false, true] {
                let headers = try Self.received(postern, http2: http2)
                #expect(headers["x-normal"] == "ok", "http2: \(http2)")
                #expect(headers["foo_bar"] == nil && headers["x_forwarded_for"] == nil && headers["ssl_client_verify"] == nil, "\(headers)")
                #expect(headers["x-forwarded-for"] == "127.0.0.1", "the client cannot add to the proxy's field")
            }
            #expect(try postern.metric("postern_underscore_fields_dropped_total") == 6)
        }

        @Test func allowedTheyPassExceptThoseThatReadAsTheProxysFields() throws {
            let (backend, manifests, postern) = try Self.start(settings: "enable-underscores-in-headers: true\n")
            defer { withExtendedLifetime((backend, manifests)) {} }
            for http2 in [false, true] {
                let headers = try Self.received(postern, http2: http2)
                #expect(headers["foo_bar"] == "1", "http2: \(http2): \(headers)")
                #expect(headers["x_forwarded_for"] == nil && headers["ssl_client_verify"] == nil, "\(headers)")
            }
            #expect(try postern.metric("postern_underscore_fields_dropped_total") == 4)
        }
    }
}
