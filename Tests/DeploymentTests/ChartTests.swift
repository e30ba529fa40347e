import Foundation
import Testing
import Yams

/// The Helm chart in charts/postern is checked against the program it
/// deploys: every value a template reads exists, every flag it passes is one
/// `postern run` accepts, the settings it writes are ones `postern.yaml`
/// accepts, and its RBAC covers what the controller watches and writes.
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

    @Test func deploymentPassesOnlyFlagsThatPosternRunAccepts() throws {
        let help = try Self.run(["run", "--help"]).output
        let deployment = try Self.text("templates/deployment.yaml")
        let flags = deployment.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("- --") else { return nil }
            return String(trimmed.dropFirst(2))
        }
        #expect(flags.count >= 4)
        for flag in flags {
            #expect(help.contains(flag + " ") || help.contains(flag + "\n") || help.contains(flag + ">"), "postern run has no \(flag)")
        }
    }

    @Test func settingsTheChartWritesArePosternYAMLKeys() throws {
        // The ConfigMap's postern.yaml, with its template expressions given
        // sample values, plus every key of controller.config.
        let configMap = try Self.text("templates/configmap.yaml")
        var lines: [String] = []
        var inside = false
        for line in configMap.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.contains("postern.yaml: |") {
                inside = true
                continue
            }
            guard inside else { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("{{") else { continue }
            guard let colon = trimmed.firstIndex(of: ":") else { continue }
            let key = String(trimmed[..<colon])
            guard !key.contains("{{") else { continue }
            var value = String(trimmed[trimmed.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            if value.contains("{{") {
                switch key {
                case "drain-timeout": value = "30"
                case "log-format": value = "json"
                default: value = "\"sample/value\""
                }
            }
            lines.append("\(key): \(value)")
        }
        let values = try #require(try Yams.load(yaml: Self.text("values.yaml")) as? [String: Any])
        let config = ((values["controller"] as? [String: Any])?["config"] as? [String: Any]) ?? [:]
        for (key, value) in config { lines.append("\(key): \"\(value)\"") }
        #expect(lines.contains { $0.hasPrefix("http-listen:") })
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("postern-chart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let settings = folder.appendingPathComponent("postern.yaml")
        try lines.joined(separator: "\n").write(to: settings, atomically: true, encoding: .utf8)
        let check = try Self.run(["check", "--config", settings.path, "--manifests", folder.path])
        // Exit 2 is a settings error (an unknown key or a bad value); exit 1
        // only reports the sample default-certificate Secret as missing.
        #expect(check.status != 2, "postern.yaml from the chart is rejected: \(check.output)")
        #expect(check.output.contains("0 objects"), "\(check.output)")
    }

    @Test func clusterRoleCoversWhatTheControllerWatchesAndWrites() throws {
        let role = try Self.text("templates/clusterrole.yaml")
        for resource in ["ingresses", "ingressclasses", "ingresses/status", "services", "secrets", "endpointslices", "leases", "events"] {
            #expect(role.contains("\"\(resource)\""), "ClusterRole lacks \(resource)")
        }
    }
}
