import Foundation
import Testing

extension EndToEndTests {
    /// Issue 22: redirects and X-Forwarded-Port name the ports clients use
    /// (the Service's), not the ports the listeners bind.
    @Suite struct PublicPorts {
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init(settings: String = "") throws {
                pki = try TestPKI()
                backend = try EchoBackend(name: "shop")
                manifests = try ManifestFolder()
                let leaf = try pki.leaf(["shop.test", "ported.test"])
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("shop", ports: [backend.port]))
                try manifests.write("secret.yaml", TestPKI.secret("shop", certificate: leaf.certificate, key: leaf.key))
                try manifests.write(
                    "ingress.yaml",
                    tlsIngress("shop", tls: [(["shop.test"], "shop")], hosts: ["shop.test"], service: "shop")
                        + tlsIngress(
                            "ported", tls: [(["ported.test"], "shop")], hosts: ["ported.test"], service: "shop",
                            annotations: ["nginx.ingress.kubernetes.io/use-port-in-redirects": "true"])
                        + Manifests.ingress("open", rules: [("open.test", "/", "Prefix", "shop")]))
                postern = try PosternProcess(manifests: manifests, settings: settings)
            }

            /// The Location of a plain-HTTP GET, over HTTP/1.1 or h2c.
            func location(_ host: String, http2: Bool) throws -> String {
                let result = try runCommand(
                    "/usr/bin/curl",
                    ["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", "\(host):\(postern.port):127.0.0.1"]
                        + (http2 ? ["--http2-prior-knowledge"] : []) + ["http://\(host):\(postern.port)/cart?item=1"])
                return result.stdout
            }

            /// The X-Forwarded-Port the backend received over HTTP/1.1, h2c, HTTPS and h2.
            func forwardedPorts() throws -> [String] {
                var ports: [String] = []
                for (scheme, port, http2) in [("http", postern.port, false), ("http", postern.port, true), ("https", postern.httpsPort, false), ("https", postern.httpsPort, true)] {
                    // Plain HTTP to a host without TLS (TLS hosts are redirected).
                    let host = scheme == "http" ? "open.test" : "shop.test"
                    let result = try runCommand(
                        "/usr/bin/curl",
                        ["-s", "--cacert", pki.caPath, "--resolve", "\(host):\(port):127.0.0.1"]
                            + (http2 ? (scheme == "http" ? ["--http2-prior-knowledge"] : ["--http2"]) : ["--http1.1"])
                            + ["\(scheme)://\(host):\(port)/"])
                    let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
                    ports.append((json?["headers"] as? [String: String])?["x-forwarded-port"] ?? "none: \(result.stdout.prefix(80))")
                }
                return ports
            }
        }

        @Test func defaultPublicPortsGiveRedirectsWithoutAPortAnd80Or443Upstream() throws {
            let f = try Fixture()
            for http2 in [false, true] {
                #expect(try f.location("shop.test", http2: http2) == "308 https://shop.test/cart?item=1", "http2: \(http2)")
                #expect(try f.location("ported.test", http2: http2) == "308 https://ported.test:443/cart?item=1", "use-port-in-redirects")
            }
            #expect(try f.forwardedPorts() == ["80", "80", "443", "443"])
            #expect(try f.postern.child.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 80, https 443 (redirects, X-Forwarded-Port)")
        }

        @Test func configuredPublicPortsAppearInRedirectsAndUpstream() throws {
            let f = try Fixture(settings: "public-http-port: 8080\npublic-https-port: 8443\n")
            for http2 in [false, true] {
                #expect(try f.location("shop.test", http2: http2) == "308 https://shop.test:8443/cart?item=1", "http2: \(http2)")
            }
            #expect(try f.forwardedPorts() == ["8080", "8080", "8443", "8443"])
        }

        @Test func aBadPublicPortIsRefusedAtStart() throws {
            let manifests = try ManifestFolder()
            let result = try runCommand(
                Paths.product("postern"), ["run", "--manifests", manifests.path, "--public-https-port", "70000"], timeout: 20)
            #expect(result.status == 2)
            #expect(result.stderr.contains("--public-https-port 70000"))
        }
    }
}
