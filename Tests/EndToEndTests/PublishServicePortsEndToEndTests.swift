import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Issue 22: with `--publish-service`, Postern reads that Service once at
    /// start-up and takes as public ports the Service ports whose
    /// `targetPort` is a listener; an explicit setting wins over them, and
    /// a Service it cannot use leaves 80/443 with a warning naming it.
    @Suite(.serialized) struct PublishServicePorts {
        /// Postern on fixed loopback listener ports (so that a numeric
        /// `targetPort` can name them) against a fake cluster holding a TLS
        /// Ingress (`shop.test`), a plain one (`open.test`) and `publishService`.
        final class Fixture: @unchecked Sendable {
            let api = FakeKubeAPIServer()
            let pki: TestPKI
            let backend: EchoBackend
            let kubeconfig: KubeconfigFile
            let httpPort: UInt16
            let httpsPort: UInt16
            let postern: ChildProcess
            let adminPort: UInt16

            /// `publishService`: the Service's `ports` JSON, or nil for no Service.
            /// `ports`: the listener ports, given so that the Service can name them.
            init(ports: (http: UInt16, https: UInt16), publishService: String?, extraArguments: [String] = []) throws {
                try api.start()
                pki = try TestPKI()
                backend = try EchoBackend(name: "shop")
                try api.apply(KubeObjects.ingressClass())
                try api.apply(KubeObjects.service("shop"))
                try api.apply(KubeObjects.endpointSlice("shop", port: backend.port))
                let leaf = try pki.leaf(["shop.test"])
                let data = #"{"tls.crt":"\#(Data(leaf.certificate.utf8).base64EncodedString())","tls.key":"\#(Data(leaf.key.utf8).base64EncodedString())"}"#
                try api.apply(#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"shop-tls","namespace":"default"},"type":"kubernetes.io/tls","data":\#(data)}"#)
                try api.apply(
                    KubeObjects.ingress("shop", rules: [("shop.test", "/", "shop")])
                        .replacingOccurrences(of: #""rules":"#, with: #""tls":[{"hosts":["shop.test"],"secretName":"shop-tls"}],"rules":"#))
                try api.apply(KubeObjects.ingress("open", rules: [("open.test", "/", "shop")]))
                if let publishService {
                    try api.apply(
                        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"postern","namespace":"ingress"},"spec":{"type":"LoadBalancer","ports":\#(publishService)}}"#)
                }
                kubeconfig = try KubeconfigFile(port: api.port)
                (httpPort, httpsPort) = ports
                postern = try ChildProcess(
                    executable: Paths.product("postern"),
                    arguments: [
                        "run", "--kubeconfig", kubeconfig.path, "--http-listen", "127.0.0.1:\(ports.http)",
                        "--https-listen", "127.0.0.1:\(ports.https)", "--admin-listen", "127.0.0.1:0", "--workers", "1",
                        "--publish-service", "ingress/postern",
                    ] + extraArguments, label: "postern-publish-ports")
                _ = try postern.waitForListeningPort()
                adminPort = try postern.waitForListeningPort(prefix: "admin listening on ")
                let ready = secondsUntil(timeout: 10) { (try? HTTPClient.request(port: self.adminPort, path: "/readyz").status) == 200 }
                if ready == nil { throw HarnessError("Postern not ready: \(postern.stderrText.suffix(1500))") }
            }

            deinit {
                postern.stop()
                api.stop()
            }

            /// Status and Location of a plain-HTTP GET to the TLS host, over HTTP/1.1 or h2c.
            func redirect(http2: Bool) throws -> String {
                try runCommand(
                    "/usr/bin/curl",
                    ["-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--resolve", "shop.test:\(httpPort):127.0.0.1"]
                        + (http2 ? ["--http2-prior-knowledge"] : []) + ["http://shop.test:\(httpPort)/cart?item=1"]
                ).stdout
            }

            /// The X-Forwarded-Port the backend received: cleartext (open.test), then HTTPS (shop.test).
            func forwardedPorts() throws -> [String] {
                try [("http", "open.test", httpPort), ("https", "shop.test", httpsPort)].map { scheme, host, port in
                    let result = try runCommand(
                        "/usr/bin/curl", ["-s", "--cacert", pki.caPath, "--resolve", "\(host):\(port):127.0.0.1", "\(scheme)://\(host):\(port)/"])
                    let json = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
                    return (json?["headers"] as? [String: String])?["x-forwarded-port"] ?? "none: \(result.stdout.prefix(80))"
                }
            }
        }

        /// Two loopback ports free right now.
        static func freePorts() throws -> (http: UInt16, https: UInt16) {
            func one() throws -> UInt16 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { throw HarnessError("socket failed") }
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                address.sin_port = 0
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let bound = withUnsafeMutablePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
                }
                guard bound else { throw HarnessError("bind failed") }
                return UInt16(bigEndian: address.sin_port)
            }
            var ports = (try one(), try one())
            while ports.0 == ports.1 { ports.1 = try one() }
            return ports
        }

        @Test func servicePorts443And80TargetingTheListenersGiveRedirectsWithoutAPort() throws {
            let ports = try Self.freePorts()
            let f = try Fixture(
                ports: ports,
                publishService: #"[{"name":"http","port":80,"targetPort":\#(ports.http)},{"name":"https","port":443,"targetPort":\#(ports.https)}]"#)
            #expect(try f.postern.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 80, https 443 (redirects, X-Forwarded-Port)")
            let source = try f.postern.waitForLine(prefix: "public ports source:", timeout: 5)
            #expect(source == "public ports source: http Service ingress/postern port 80 -> targetPort \(ports.http), https Service ingress/postern port 443 -> targetPort \(ports.https)")
            for http2 in [false, true] {
                #expect(try f.redirect(http2: http2) == "308 https://shop.test/cart?item=1", "http2: \(http2)")
            }
            #expect(try f.forwardedPorts() == ["80", "443"])
            // Read once, by name (GET), never listed.
            let reads = f.api.requests.filter { $0.path.hasSuffix("/namespaces/ingress/services/postern") }
            #expect(reads.count == 1)
            #expect(reads.first?.method == "GET")
        }

        @Test func aServicePort8443NamingTheHTTPSListenerAppearsInTheLocation() throws {
            // Named target ports, as the chart's Service writes them (the container ports are named http and https).
            let f = try Fixture(
                ports: try Self.freePorts(),
                publishService: #"[{"name":"web","port":8080,"targetPort":"http"},{"name":"websecure","port":8443,"targetPort":"https"}]"#)
            #expect(try f.postern.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 8080, https 8443 (redirects, X-Forwarded-Port)")
            for http2 in [false, true] {
                #expect(try f.redirect(http2: http2) == "308 https://shop.test:8443/cart?item=1", "http2: \(http2)")
            }
            #expect(try f.forwardedPorts() == ["8080", "8443"])
        }

        @Test func anExplicitPublicPortWinsOverTheService() throws {
            let ports = try Self.freePorts()
            let f = try Fixture(
                ports: ports,
                publishService: #"[{"name":"http","port":80,"targetPort":\#(ports.http)},{"name":"https","port":443,"targetPort":\#(ports.https)}]"#,
                extraArguments: ["--public-https-port", "9443"])
            #expect(try f.postern.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 80, https 9443 (redirects, X-Forwarded-Port)")
            let source = try f.postern.waitForLine(prefix: "public ports source:", timeout: 5)
            #expect(source.hasSuffix("https --public-https-port"), "\(source)")
            #expect(try f.redirect(http2: false) == "308 https://shop.test:9443/cart?item=1")
            #expect(try f.forwardedPorts() == ["80", "9443"])
        }

        @Test func aMissingServiceOrOneWithoutAMatchingPortKeepsTheDefaultsWithAWarning() throws {
            let missing = try Fixture(ports: try Self.freePorts(), publishService: nil)
            #expect(try missing.postern.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 80, https 443 (redirects, X-Forwarded-Port)")
            #expect(try missing.postern.waitForLine(prefix: "public ports source:", timeout: 5) == "public ports source: http default, https default")
            #expect(missing.postern.stderrText.contains("--publish-service ingress/postern: no such Service"), "\(missing.postern.stderrText.suffix(2000))")
            #expect(try missing.redirect(http2: false) == "308 https://shop.test/cart?item=1")

            // A Service that targets neither listener: each port named in a warning.
            let unrelated = try Fixture(ports: try Self.freePorts(), publishService: #"[{"name":"dns","port":53,"targetPort":5353}]"#)
            #expect(try unrelated.postern.waitForLine(prefix: "public ports:", timeout: 5) == "public ports: http 80, https 443 (redirects, X-Forwarded-Port)")
            let log = unrelated.postern.stderrText
            #expect(log.contains("no port of the Service targets the HTTP listener"), "\(log.suffix(2000))")
            #expect(log.contains("no port of the Service targets the HTTPS listener"), "\(log.suffix(2000))")
        }
    }
}
