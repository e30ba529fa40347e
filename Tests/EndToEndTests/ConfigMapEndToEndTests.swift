import FakeKubeAPI
import Foundation
import Testing

/// The settings ConfigMap (`--configmap NAMESPACE/NAME`) through the real
/// binary, from the manifest directory and from the (fake) API server:
/// policy keys take effect without a restart over HTTP/1.1 and HTTP/2, a
/// bad version keeps the last good settings, and the 1m body limit is the
/// default.
extension EndToEndTests {
    @Suite(.serialized) struct SettingsConfigMap {
        /// Where the ConfigMap and the Ingresses come from.
        enum Source: String, CaseIterable, CustomStringConvertible {
            case directory
            case api
            var description: String { rawValue }
        }

        /// A running Postern with `--configmap ingress/postern`, serving
        /// `open.cm.test` (plain) and `tls.cm.test` (a `spec.tls` host)
        /// from one echo backend.
        final class Setup: @unchecked Sendable {
            let backend: EchoBackend
            let source: Source
            private var manifests: ManifestFolder?
            private var api: FakeKubeAPIServer?
            private var kubeconfig: KubeconfigFile?
            private var directoryPostern: PosternProcess?
            private var apiPostern: KubePosternProcess?
            let upload: String

            var port: UInt16 { directoryPostern?.port ?? apiPostern?.port ?? 0 }
            var httpsPort: UInt16 { directoryPostern?.httpsPort ?? apiPostern?.httpsPort ?? 0 }
            var adminPort: UInt16 { directoryPostern?.adminPort ?? apiPostern?.adminPort ?? 0 }
            var log: String { (directoryPostern?.child ?? apiPostern?.child)?.stderrText ?? "" }

            init(
                _ source: Source, data: [String: String] = [:], extraIngresses: [(name: String, annotations: [String: String])] = [],
                settings: String = ""
            ) throws {
                self.source = source
                backend = try EchoBackend(name: "app")
                upload = NSTemporaryDirectory() + "postern-upload-\(UUID().uuidString)"
                // 2 MiB: over ingress-nginx's default 1m.
                try Data(repeating: UInt8(ascii: "x"), count: 2 * 1024 * 1024).write(to: URL(fileURLWithPath: upload))
                let ingresses = [("open", "open.cm.test", [String: String](), false), ("secure", "tls.cm.test", [:], true)]
                    + extraIngresses.map { ($0.name, "\($0.name).cm.test", $0.annotations, false) }
                switch source {
                case .directory:
                    let folder = try ManifestFolder()
                    try folder.write("class.yaml", Manifests.ingressClass)
                    try folder.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                    try folder.write("ingress.yaml", ingresses.map { Setup.ingressYAML($0.0, host: $0.1, annotations: $0.2, tls: $0.3) }.joined())
                    try folder.write("configmap.yaml", Setup.configMapYAML(data))
                    manifests = folder
                    directoryPostern = try PosternProcess(manifests: folder, settings: settings, extraArguments: ["--configmap", "ingress/postern"])
                case .api:
                    let server = FakeKubeAPIServer()
                    try server.start()
                    server.acceptedTokens = ["token-1"]
                    try server.apply(KubeObjects.ingressClass())
                    try server.apply(KubeObjects.service("app"))
                    try server.apply(KubeObjects.endpointSlice("app", port: backend.port))
                    for (name, host, annotations, tls) in ingresses {
                        try server.apply(Setup.ingressJSON(name, host: host, annotations: annotations, tls: tls))
                    }
                    try server.apply(Setup.configMapJSON(data))
                    api = server
                    let file = try KubeconfigFile(port: server.port)
                    kubeconfig = file
                    apiPostern = try KubePosternProcess(kubeconfig: file, extraArguments: ["--configmap", "ingress/postern"], https: true)
                    _ = secondsUntil(timeout: 10) { self.apiPostern?.readiness() == 200 }
                }
            }

            deinit {
                directoryPostern = nil
                apiPostern = nil
                api?.stop()
                try? FileManager.default.removeItem(atPath: upload)
            }

            /// Replaces the ConfigMap's data.
            func setConfigMap(_ data: [String: String]) throws {
                switch source {
                case .directory: try manifests?.write("configmap.yaml", Setup.configMapYAML(data))
                case .api: try api?.apply(Setup.configMapJSON(data))
                }
            }

            /// Warning Events about the ConfigMap (API source).
            func configMapWarnings() -> [[String: Any]] {
                (api?.objects(resource: "events") ?? []).filter {
                    ($0["regarding"] as? [String: Any])?["kind"] as? String == "ConfigMap" && $0["type"] as? String == "Warning"
                }
            }

            /// The status of a GET (or a 2 MiB POST) to `host` over HTTP/1.1
            /// (curl) or h2c with prior knowledge (nghttp: curl 7.88 reports an
            /// early 413 followed by RST_STREAM(NO_ERROR), which RFC 9113 §8.1
            /// allows, as a failed transfer).
            func status(host: String, upload: Bool = false, http2: Bool) -> String {
                if http2 {
                    var arguments = ["-nv", "-t", "20", "-H", ":authority: \(host)"]
                    if upload { arguments += ["-d", self.upload] }
                    arguments.append("http://127.0.0.1:\(port)/path")
                    let output = (try? runCommand("/usr/bin/nghttp", arguments, timeout: 30).stdout) ?? ""
                    guard let line = output.split(separator: "\n").first(where: { $0.contains(":status: ") }) else { return "none" }
                    return String(line.split(separator: " ").last ?? "")
                }
                var arguments = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", "--max-time", "20",
                                 "--resolve", "\(host):\(port):127.0.0.1"]
                if upload { arguments += ["--data-binary", "@" + self.upload] }
                arguments.append("http://\(host):\(port)/path")
                return (try? runCommand("/usr/bin/curl", arguments, timeout: 30).stdout) ?? "error"
            }

            /// The value of one `/metrics` sample.
            func metric(_ sample: String) -> Double? {
                guard let text = try? HTTPClient.request(port: adminPort, path: "/metrics").bodyText else { return nil }
                for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
                    return Double(line.split(separator: " ").last ?? "")
                }
                return nil
            }

            static func configMapYAML(_ data: [String: String]) -> String {
                let entries = data.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ")
                return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: postern, namespace: ingress}\ndata: {\(entries)}\n"
            }

            static func configMapJSON(_ data: [String: String]) -> String {
                let entries = data.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
                return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"postern","namespace":"ingress"},"data":{\#(entries)}}"#
            }

            static func ingressYAML(_ name: String, host: String, annotations: [String: String], tls: Bool) -> String {
                """
                ---
                apiVersion: networking.k8s.io/v1
                kind: Ingress
                metadata:
                  name: \(name)
                  namespace: default
                  annotations: {\(annotations.map { "\"nginx.ingress.kubernetes.io/\($0.key)\": \"\($0.value)\"" }.joined(separator: ", "))}
                spec:
                  ingressClassName: postern
                \(tls ? "  tls: [{hosts: [\(host)], secretName: \(name)-tls}]\n" : "")  rules:
                  - host: \(host)
                    http:
                      paths:
                      - {path: /, pathType: Prefix, backend: {service: {name: app, port: {number: 80}}}}

                """
            }

            static func ingressJSON(_ name: String, host: String, annotations: [String: String], tls: Bool) -> String {
                let notes = annotations.map { "\"nginx.ingress.kubernetes.io/\($0.key)\":\"\($0.value)\"" }.joined(separator: ",")
                let tlsPart = tls ? #""tls":[{"hosts":["\#(host)"],"secretName":"\#(name)-tls"}],"# : ""
                return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"default","annotations":{\#(notes)}},"spec":{"ingressClassName":"postern",\#(tlsPart)"rules":[{"host":"\#(host)","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"app","port":{"number":80}}}}]}}]}}"#
            }
        }

        /// One global key changed in the ConfigMap: the request that shows
        /// it, its status before (defaults) and after the change.
        struct Case: CustomStringConvertible, Sendable {
            var key: String
            var value: String
            var host: String
            var upload: Bool
            var before: String
            var after: String
            var description: String { "\(key): \(value)" }
        }

        static let cases: [Case] = [
            Case(key: "proxy-body-size", value: "4m", host: "open.cm.test", upload: true, before: "413", after: "200"),
            Case(key: "whitelist-source-range", value: "10.0.0.0/8, 2001:db8::/32", host: "open.cm.test", upload: false, before: "200", after: "403"),
            Case(key: "block-cidrs", value: "127.0.0.1/32", host: "open.cm.test", upload: false, before: "200", after: "403"),
            Case(key: "ssl-redirect", value: "false", host: "tls.cm.test", upload: false, before: "308", after: "200"),
        ]

        @Test(arguments: Source.allCases)
        func aConfigMapChangeTakesEffectWithoutRestartOnBothProtocols(_ source: Source) throws {
            let setup = try Setup(source)
            for testCase in Self.cases {
                for http2 in [false, true] {
                    #expect(setup.status(host: testCase.host, upload: testCase.upload, http2: http2) == testCase.before,
                            "\(source) \(testCase) before, http2 \(http2)")
                }
                try setup.setConfigMap([testCase.key: testCase.value])
                for http2 in [false, true] {
                    let took = secondsUntil(timeout: 10) {
                        setup.status(host: testCase.host, upload: testCase.upload, http2: http2) == testCase.after
                    }
                    #expect(took != nil, "\(source) \(testCase) after, http2 \(http2)")
                }
                try setup.setConfigMap([:])
                #expect(secondsUntil(timeout: 10) {
                    setup.status(host: testCase.host, upload: testCase.upload, http2: false) == testCase.before
                } != nil, "\(source) \(testCase): removing the key brings the default back")
            }
            #expect(!setup.log.contains("takes effect at restart"), "only live keys changed")
        }

        @Test(arguments: Source.allCases)
        func aBadValueKeepsTheLastGoodSettingsWithADiagnosticAndAWarningEvent(_ source: Source) throws {
            let setup = try Setup(source, data: ["proxy-body-size": "4m"])
            #expect(setup.status(host: "open.cm.test", upload: true, http2: false) == "200", "4m from the ConfigMap at start-up")
            try setup.setConfigMap(["proxy-body-size": "lots", "block-cidrs": "127.0.0.1/32"])
            #expect(secondsUntil(timeout: 10) { setup.metric("postern_configmap_valid") == 0 } != nil)
            // The metric moves before the diagnostic is logged: wait for the line too.
            #expect(secondsUntil(timeout: 10) { setup.log.contains("InvalidConfigMap") } != nil)
            #expect(setup.log.contains("proxy-body-size"), "the diagnostic names the key")
            #expect(setup.metric("postern_configmap_reloads_total{result=\"rejected\"}") == 1)
            for http2 in [false, true] {
                #expect(setup.status(host: "open.cm.test", upload: true, http2: http2) == "200",
                        "the last good settings serve: 4m, and no block-cidrs from the refused version")
            }
            if source == .api {
                #expect(secondsUntil(timeout: 10) { !setup.configMapWarnings().isEmpty } != nil, "a Warning Event on the ConfigMap")
                let event = setup.configMapWarnings().first
                #expect(event?["reason"] as? String == "InvalidConfigMap")
                #expect((event?["note"] as? String)?.contains("proxy-body-size") == true)
            }
            // An unknown key is refused the same way.
            try setup.setConfigMap(["proxy-body-size": "4m", "proxy-bodysize": "1k"])
            #expect(secondsUntil(timeout: 10) { setup.metric("postern_configmap_reloads_total{result=\"rejected\"}") == 2 } != nil)
            #expect(secondsUntil(timeout: 10) { setup.log.contains("did you mean proxy-body-size") } != nil)
            // Fixed: the new version applies.
            try setup.setConfigMap(["proxy-body-size": "1k"])
            #expect(secondsUntil(timeout: 10) { setup.status(host: "open.cm.test", upload: true, http2: true) == "413" } != nil)
            #expect(setup.metric("postern_configmap_valid") == 1)
            // A listener key is noted, not applied.
            try setup.setConfigMap(["proxy-body-size": "1k", "workers": "3"])
            #expect(secondsUntil(timeout: 10) { setup.log.contains("takes effect at restart") } != nil)
        }

        @Test(arguments: Source.allCases)
        func hstsKeysApplyWithoutRestart(_ source: Source) throws {
            let setup = try Setup(source)
            func header() -> String? {
                let result = try? runCommand("/usr/bin/curl", [
                    "-sk", "-o", "/dev/null", "-D", "-", "--resolve", "tls.cm.test:\(setup.httpsPort):127.0.0.1",
                    "https://tls.cm.test:\(setup.httpsPort)/",
                ])
                return result?.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("strict-transport-security:") }
                    .map { String($0.split(separator: ":", maxSplits: 1)[1]).trimmingCharacters(in: .whitespaces) }
            }
            #expect(header() == "max-age=31536000; includeSubDomains")
            try setup.setConfigMap(["hsts-max-age": "600", "hsts-include-subdomains": "false"])
            #expect(secondsUntil(timeout: 10) { header() == "max-age=600" } != nil, "\(source): \(header() ?? "none")")
            try setup.setConfigMap(["hsts": "false"])
            #expect(secondsUntil(timeout: 10) { header() == nil } != nil, "\(source): hsts off")
        }

        @Test func flagsWinOverTheConfigMapWhichWinsOverTheSettingsFile() throws {
            // postern.yaml: 1k and 1 worker; ConfigMap: 4m and 3 workers; flag (PosternProcess): --workers 2.
            let setup = try Setup(.directory, data: ["proxy-body-size": "4m", "workers": "3"], settings: "proxy-body-size: 1k\nworkers: 1\n")
            #expect(setup.status(host: "open.cm.test", upload: true, http2: false) == "200", "the ConfigMap's 4m over the file's 1k")
            #expect(setup.metric("postern_worker_threads") == 2, "the --workers flag over the ConfigMap and the file")
            try setup.setConfigMap([:])
            #expect(secondsUntil(timeout: 10) { setup.status(host: "open.cm.test", upload: true, http2: false) == "413" } != nil,
                    "without the ConfigMap's key, the file's 1k applies again")
            #expect(setup.status(host: "open.cm.test", upload: false, http2: false) == "200", "a GET has no body")
            #expect(secondsUntil(timeout: 10) { setup.log.contains("setting workers changed; it takes effect at restart") } != nil)
            // A restart key that translation also reads (the class served) is noted and not applied.
            try setup.setConfigMap(["controller-class": "example.com/other-controller"])
            #expect(secondsUntil(timeout: 10) { setup.log.contains("setting controller-class changed; it takes effect at restart") } != nil)
            Thread.sleep(forTimeInterval: 0.5)
            #expect(setup.status(host: "open.cm.test", upload: false, http2: false) == "200", "still serving the class it started with")
        }

        @Test func checkValidatesAConfigMapFileOrOneInTheDirectory() throws {
            let folder = try ManifestFolder()
            try folder.write("class.yaml", Manifests.ingressClass)
            try folder.write("configmap.yaml", Setup.configMapYAML(["proxy-body-size": "8m", "block-cidrs": "10.0.0.0/8"]))
            let good = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path, "--configmap", "ingress/postern"])
            #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
            let file = folder.path + "-bad-configmap.yaml"
            defer { try? FileManager.default.removeItem(atPath: file) }
            try Setup.configMapYAML(["whitelist-source-range": "10.0.0.0/33"]).write(toFile: file, atomically: true, encoding: .utf8)
            let bad = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path, "--configmap", file])
            #expect(bad.status == 2)
            #expect(bad.stderr.contains("whitelist-source-range") && bad.stderr.contains("10.0.0.0/33"), "\(bad.stderr)")
            let missing = try runCommand(Paths.product("postern"), ["check", "--manifests", folder.path, "--configmap", "ingress/other"])
            #expect(missing.status == 2 && missing.stderr.contains("ingress/other"), "\(missing.stderr)")
            // `run` with a bad ConfigMap at start-up stops with one line naming the key.
            try folder.write("configmap.yaml", Setup.configMapYAML(["proxy-body-size": "lots"]))
            let run = try runCommand(Paths.product("postern"), [
                "run", "--manifests", folder.path, "--configmap", "ingress/postern", "--http-listen", "127.0.0.1:0",
                "--https-listen", "off", "--admin-listen", "127.0.0.1:0",
            ], timeout: 30)
            #expect(run.status == 2)
            #expect(run.stderr.contains("proxy-body-size"), "\(run.stderr)")
        }

        @Test func theDefaultBodyLimitIs1mAndTheAnnotationOverridesIt() throws {
            let setup = try Setup(.directory, extraIngresses: [("big", ["proxy-body-size": "8m"]), ("unlimited", ["proxy-body-size": "0"])])
            for http2 in [false, true] {
                #expect(setup.status(host: "open.cm.test", upload: true, http2: http2) == "413", "2 MiB over the 1m default, http2 \(http2)")
                #expect(setup.status(host: "big.cm.test", upload: true, http2: http2) == "200", "the annotation's 8m wins, http2 \(http2)")
                #expect(setup.status(host: "unlimited.cm.test", upload: true, http2: http2) == "200", "0: no limit, http2 \(http2)")
            }
            // A global value applies to Ingresses without the annotation only.
            try setup.setConfigMap(["proxy-body-size": "1k"])
            #expect(secondsUntil(timeout: 10) { setup.status(host: "open.cm.test", upload: false, http2: false) == "200" } != nil)
            #expect(secondsUntil(timeout: 10) { setup.status(host: "open.cm.test", upload: true, http2: false) == "413" } != nil)
            #expect(setup.status(host: "big.cm.test", upload: true, http2: false) == "200")
        }
    }
}
