import Foundation
import Testing
import Yams

/// The real `helm` binary (installed by scripts/install-helm) run on
/// charts/postern, and the rendered objects parsed back.
enum Helm {
    static let chart = ChartTests.chart.path

    /// `$HELM`, else `helm` on `PATH`, else /usr/local/bin/helm.
    static var executable: String? {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["HELM"], FileManager.default.isExecutableFile(atPath: path) { return path }
        let folders = (environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/local/bin"]
        return folders.map { $0 + "/helm" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs helm with `arguments`; stdout and stderr apart.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        guard let executable else {
            throw HelmMissing()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        // stderr goes to a file so that neither pipe can fill up and block helm.
        let errorPath = NSTemporaryDirectory() + "postern-helm-\(UUID().uuidString).err"
        _ = FileManager.default.createFile(atPath: errorPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        try process.run()
        let outputData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errorData = FileManager.default.contents(atPath: errorPath) ?? Data()
        return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
    }

    /// Writes `values` (YAML) to a temporary file and returns its path.
    static func valuesFile(_ values: String) throws -> String {
        let path = NSTemporaryDirectory() + "postern-values-\(UUID().uuidString).yaml"
        try values.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `helm lint --strict` with `values`.
    static func lint(_ values: String) throws -> (status: Int32, output: String) {
        let file = try valuesFile(values)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try run(["lint", "--strict", chart, "--namespace", "ingress", "-f", file])
        return (result.status, result.output + result.errors)
    }

    /// `helm template` with `values`: the objects, or the error text.
    static func template(_ values: String, release: String = "postern", namespace: String = "ingress") throws -> Result<Rendered, TemplateFailure> {
        let file = try valuesFile(values)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try run(["template", release, chart, "--namespace", namespace, "-f", file])
        guard result.status == 0 else { return .failure(TemplateFailure(message: result.errors + result.output)) }
        var objects: [[String: Any]] = []
        for document in try Yams.load_all(yaml: result.output) {
            if let object = document as? [String: Any] { objects.append(object) }
        }
        return .success(Rendered(objects: objects))
    }

    /// Renders `values`, recording a test issue when Helm refuses them.
    static func render(_ values: String, release: String = "postern", namespace: String = "ingress", sourceLocation: SourceLocation = #_sourceLocation) throws -> Rendered {
        switch try template(values, release: release, namespace: namespace) {
        case let .success(rendered): return rendered
        case let .failure(failure):
            Issue.record("helm template failed: \(failure.message)", sourceLocation: sourceLocation)
            return Rendered(objects: [])
        }
    }

    struct TemplateFailure: Error { var message: String }

    struct HelmMissing: Error, CustomStringConvertible {
        var description: String { "helm not found: run scripts/install-deps (it installs the pinned helm v4.3.1)" }
    }
}

/// Objects rendered by `helm template`.
struct Rendered {
    var objects: [[String: Any]]

    func all(_ kind: String) -> [[String: Any]] { objects.filter { $0["kind"] as? String == kind } }
    func one(_ kind: String, named name: String? = nil) -> [String: Any]? {
        all(kind).first { name == nil || ($0["metadata"] as? [String: Any])?["name"] as? String == name }
    }
    var kinds: [String] { objects.compactMap { $0["kind"] as? String }.sorted() }

    /// The Deployment or DaemonSet.
    var workload: [String: Any]? { one("Deployment") ?? one("DaemonSet") }
    var podSpec: [String: Any] { workload?[path: "spec", "template", "spec"] as? [String: Any] ?? [:] }
    var container: [String: Any] { (podSpec["containers"] as? [[String: Any]])?.first ?? [:] }
    var arguments: [String] { container["args"] as? [String] ?? [] }
    /// The postern.yaml the mounted ConfigMap carries (the settings the chart fixes).
    var settingsText: String {
        all("ConfigMap").compactMap { $0[path: "data", "postern.yaml"] as? String }.first ?? ""
    }
    /// The settings ConfigMap the chart passes with `--configmap` (controller.config).
    var settingsConfigMap: [String: Any]? {
        guard let index = arguments.firstIndex(of: "--configmap"), index + 1 < arguments.count else { return nil }
        let name = arguments[index + 1].split(separator: "/").last.map(String.init)
        return one("ConfigMap", named: name)
    }
    /// That ConfigMap's data.
    var settingsData: [String: String] { settingsConfigMap?["data"] as? [String: String] ?? [:] }
    /// The value of `flag` in the container's arguments.
    func argument(_ flag: String) -> String? {
        arguments.firstIndex(of: flag).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
    }
}

extension Dictionary where Key == String, Value == Any {
    /// The value at a path of keys.
    subscript(path keys: String...) -> Any? {
        var node: Any? = self
        for key in keys { node = (node as? [String: Any])?[key] }
        return node
    }
}
