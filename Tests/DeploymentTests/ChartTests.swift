import Foundation
import Testing
import Yams

/// The Helm chart in charts/postern as files: valid YAML, and every value a
/// template reads exists. Rendering with Helm is in ChartRenderTests, RBAC
/// replayed against Postern's requests in ChartRBACTests; the helpers below
/// run the built `postern` on what they render.
@Suite struct ChartTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let chart = root.appendingPathComponent("charts/postern")

    static func text(_ relative: String) throws -> String {
        try String(contentsOf: chart.appendingPathComponent(relative), encoding: .utf8)
    }

    static var templates: [String: String] {
        let folder = chart.appendingPathComponent("templates")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var result: [String: String] = [:]
        for name in names { result[name] = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8) }
        return result
    }

    /// The built `postern` next to the test bundle.
    static var postern: String {
        var folder = Bundle.main.executableURL?.deletingLastPathComponent() ?? root.appendingPathComponent(".build/debug")
        for _ in 0..<4 {
            if FileManager.default.isExecutableFile(atPath: folder.appendingPathComponent("postern").path) { break }
            folder = folder.deletingLastPathComponent()
        }
        return folder.appendingPathComponent("postern").path
    }

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: postern)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func chartAndValuesAreValidYAML() throws {
        let chart = try #require(try Yams.load(yaml: Self.text("Chart.yaml")) as? [String: Any])
        #expect(chart["apiVersion"] as? String == "v2")
        #expect(chart["name"] as? String == "postern")
        #expect(chart["version"] as? String != nil)
        #expect(try Yams.load(yaml: Self.text("values.yaml")) is [String: Any])
    }

    @Test func everyValueTheTemplatesReadIsDefined() throws {
        let values = try #require(try Yams.load(yaml: Self.text("values.yaml")) as? [String: Any])
        let pattern = try Regex(#"\.Values((?:\.[A-Za-z0-9_]+)+)"#)
        var missing: [String] = []
        for (name, text) in Self.templates {
            for match in text.matches(of: pattern) {
                let path = String(text[match.range]).dropFirst(".Values.".count).split(separator: ".")
                var node: Any? = values
                for key in path { node = (node as? [String: Any])?[String(key)] }
                if node == nil { missing.append("\(name): .Values.\(path.joined(separator: "."))") }
            }
        }
        #expect(missing.isEmpty, "undefined values: \(missing)")
    }

    static func temporaryFolder() throws -> String {
        let folder = NSTemporaryDirectory() + "postern-chart-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Metric names Postern exports (read from the sources that render them).
    static var exportedMetricNames: Set<String> {
        var names: Set<String> = []
        let pattern = try! Regex(#"postern_[a-z_]+"#)
        for folder in ["Sources/Telemetry", "Sources/postern"] {
            let url = root.appendingPathComponent(folder)
            for file in (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] {
                let text = (try? String(contentsOf: url.appendingPathComponent(file), encoding: .utf8)) ?? ""
                for match in text.matches(of: pattern) { names.insert(String(text[match.range])) }
            }
        }
        return names
    }

    /// Every `--flag` in `arguments` is one `postern run` has.
    static func expectPosternRunAccepts(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let help = try run(["run", "--help"]).output
        #expect(arguments.first == "run", sourceLocation: sourceLocation)
        for argument in arguments where argument.hasPrefix("--") {
            let flag = String(argument.split(separator: "=", maxSplits: 1)[0])
            #expect(
                help.contains(flag + " ") || help.contains(flag + "\n") || help.contains(flag + ">"), "postern run has no \(flag)",
                sourceLocation: sourceLocation)
        }
    }

    /// The rendered postern.yaml and settings ConfigMap, loaded by
    /// `postern check --config ... --configmap FILE` next to an Ingress of
    /// the rendered class (and the rendered Service, named by
    /// `--publish-service` as the chart does): the settings are accepted,
    /// the class settings select that Ingress, and the public ports are
    /// those clients use. Returns check's output.
    @discardableResult
    static func expectPosternCheckAccepts(_ rendered: Rendered, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let folder = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let settingsPath = folder + "/postern.yaml"
        try rendered.settingsText.write(toFile: settingsPath, atomically: true, encoding: .utf8)
        let settings = try Yams.load(yaml: rendered.settingsText) as? [String: Any] ?? [:]
        let className = rendered.one("IngressClass")?[path: "metadata", "name"] as? String ?? "postern"
        let controller = settings["controller-class"] as? String ?? "?"
        let manifests = folder + "/manifests"
        try FileManager.default.createDirectory(atPath: manifests, withIntermediateDirectories: true)
        try """
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata: {name: \(className)}
            spec: {controller: \(controller)}
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: shop, namespace: apps}
            spec:
              ingressClassName: \(className)
              rules:
                - host: shop.example.com
                  http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: apps}
            spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
            """.write(toFile: manifests + "/shop.yaml", atomically: true, encoding: .utf8)
        var arguments = ["check", "--config", settingsPath, "--manifests", manifests]
        #expect(rendered.settingsConfigMap != nil, "no --configmap naming a rendered ConfigMap", sourceLocation: sourceLocation)
        if let configMap = rendered.settingsConfigMap {
            let path = folder + "/settings-configmap.json"
            try JSONSerialization.data(withJSONObject: configMap).write(to: URL(fileURLWithPath: path))
            arguments += ["--configmap", path]
        }
        // The published Service as the API server would hand it to Postern.
        let publishService = rendered.argument("--publish-service")
        if let publishService {
            arguments += ["--publish-service", publishService]
            let name = publishService.split(separator: "/").last.map(String.init)
            if var service = rendered.one("Service", named: name) {
                service["metadata"] = ["name": name ?? "", "namespace": publishService.split(separator: "/").first.map(String.init) ?? ""]
                try JSONSerialization.data(withJSONObject: service).write(to: URL(fileURLWithPath: manifests + "/published-service.json.yaml"))
            }
        }
        let check = try run(arguments)
        if let certificate = settings["default-ssl-certificate"] as? String {
            // Exit 1 only for the default certificate's Secret, absent here.
            #expect(check.status != 2, "the chart's settings are refused: \(check.output)", sourceLocation: sourceLocation)
            #expect(check.output.contains(certificate), "\(check.output)", sourceLocation: sourceLocation)
        } else {
            #expect(check.status == 0, "postern check on the chart's settings: \(check.output)", sourceLocation: sourceLocation)
        }
        #expect(check.output.contains("1 hosts"), "the chart's class settings do not select its class: \(check.output)", sourceLocation: sourceLocation)
        // The public ports: the settings ConfigMap, then postern.yaml, then
        // the published Service's port targeting each listener, then 80/443.
        let data = rendered.settingsData
        let servicePorts = (rendered.one("Service", named: publishService?.split(separator: "/").last.map(String.init))?[path: "spec", "ports"]
            as? [[String: Any]]) ?? []
        func expected(_ key: String, _ listenerName: String, _ fallback: Int) -> Int {
            if let value = data[key].flatMap({ Int($0) }) { return value }
            if let value = settings[key] as? Int { return value }
            if publishService != nil, let port = servicePorts.first(where: { $0["targetPort"] as? String == listenerName })?["port"] as? Int { return port }
            return fallback
        }
        let http = expected("public-http-port", "http", 80)
        let https = expected("public-https-port", "https", 443)
        #expect(check.output.contains("public ports: http \(http), https \(https)"), "\(check.output)", sourceLocation: sourceLocation)
        #expect(!check.output.contains("warning: --publish-service"), "\(check.output)", sourceLocation: sourceLocation)
        return check.output
    }
}
