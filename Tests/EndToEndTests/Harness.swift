import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Failures of the test harness itself (a process that would not start, a
/// socket that would not connect), reported with what was attempted.
struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Paths of the package and its built products.
enum Paths {
    /// The package root (two levels above this file's folder).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The folder holding the built executables: the same one as the test bundle.
    static var productsFolder: URL {
        if let override = ProcessInfo.processInfo.environment["POSTERN_PRODUCTS"] {
            return URL(fileURLWithPath: override)
        }
        let candidates = [
            Bundle.main.executableURL?.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
        ].compactMap { $0 }
        for candidate in candidates {
            var folder = candidate
            for _ in 0..<4 {
                if FileManager.default.isExecutableFile(atPath: folder.appendingPathComponent("postern").path) {
                    return folder
                }
                folder = folder.deletingLastPathComponent()
            }
        }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    static func product(_ name: String) -> String {
        productsFolder.appendingPathComponent(name).path
    }
}

/// A child process started by a test and stopped by PID when the test ends.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    let stdoutPipe = Pipe()
    let stderrPath: String
    private var stdoutLines: [String] = []
    private var pendingStdout = Data()

    init(executable: String, arguments: [String], label: String) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = stdoutPipe
        stderrPath = NSTemporaryDirectory() + "postern-test-\(label)-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: stderrPath)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var pid: pid_t { process.processIdentifier }

    /// Reads stdout until a line starts with `prefix`; returns that line.
    func waitForLine(prefix: String, timeout: TimeInterval = 30) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        let handle = stdoutPipe.fileHandleForReading
        while Date() < deadline {
            if let line = stdoutLines.first(where: { $0.hasPrefix(prefix) }) { return line }
            guard process.isRunning else { break }
            var poller = pollfd(fd: handle.fileDescriptor, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 200) > 0 {
                let data = handle.availableData
                if data.isEmpty { break }
                pendingStdout.append(data)
                while let newline = pendingStdout.firstIndex(of: UInt8(ascii: "\n")) {
                    stdoutLines.append(String(decoding: pendingStdout[pendingStdout.startIndex..<newline], as: UTF8.self))
                    pendingStdout.removeSubrange(pendingStdout.startIndex...newline)
                }
            }
        }
        if let line = stdoutLines.first(where: { $0.hasPrefix(prefix) }) { return line }
        throw HarnessError("no '\(prefix)' line from \(process.executableURL?.lastPathComponent ?? "?"); stderr: \(stderrText.suffix(2000))")
    }

    /// The port in a `listening on HOST:PORT` line.
    func waitForListeningPort(prefix: String = "listening on ") throws -> UInt16 {
        let line = try waitForLine(prefix: prefix)
        guard let port = line.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            throw HarnessError("cannot read a port from '\(line)'")
        }
        return port
    }

    var stderrText: String {
        (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
    }

    /// Sends `signal` to the process.
    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for exit (bounded); returns the exit status, or nil on timeout.
    func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Peak and current resident memory in KiB, from /proc.
    func memoryKiB() -> (current: Int, peak: Int) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops the process (SIGKILL) if it still runs.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: stderrPath)
    }

    deinit { stop() }
}

/// A `postern-echo` backend on a free loopback port.
final class EchoBackend: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let name: String

    init(name: String) throws {
        self.name = name
        child = try ChildProcess(
            executable: Paths.product("postern-echo"),
            arguments: ["--listen", "127.0.0.1:0", "--name", name], label: "echo-\(name)")
        port = try child.waitForListeningPort()
    }

    /// Connections and requests the backend has seen.
    func stats() throws -> (connections: Int, requests: Int) {
        let response = try HTTPClient.request(port: port, path: "/stats")
        let json = try response.json()
        return (json["connections"] as? Int ?? -1, json["requests"] as? Int ?? -1)
    }
}

/// A manifest directory written by a test.
final class ManifestFolder: @unchecked Sendable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "postern-manifests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes (atomically: temp file then rename) one manifest file.
    func write(_ name: String, _ contents: String) throws {
        let temporary = path + "/.\(name).tmp"
        try contents.write(toFile: temporary, atomically: false, encoding: .utf8)
        if rename(temporary, path + "/" + name) != 0 { throw HarnessError("rename \(name) failed") }
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: path + "/" + name)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Manifests for the tests: one IngressClass plus Ingress/Service/EndpointSlice sets.
enum Manifests {
    static let ingressClass = """
        apiVersion: networking.k8s.io/v1
        kind: IngressClass
        metadata: {name: postern}
        spec: {controller: postern.dev/ingress-controller}

        """

    /// A Service named `name` whose EndpointSlice lists loopback `ports`
    /// (an empty list gives a service with no ready endpoints).
    static func service(_ name: String, ports: [UInt16]) -> String {
        let endpoints = ports.isEmpty ? "[]" : "[{addresses: [\"127.0.0.1\"], conditions: {ready: true}}]"
        var text = """
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: \(name), namespace: default}
            spec: {ports: [{name: http, port: 80, targetPort: 8080}]}

            """
        if ports.isEmpty {
            text += """
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: \(name)-0, namespace: default, labels: {kubernetes.io/service-name: \(name)}}
                addressType: IPv4
                endpoints: []
                ports: [{name: http, port: 8080}]

                """
        }
        for (index, port) in ports.enumerated() {
            text += """
                ---
                apiVersion: discovery.k8s.io/v1
                kind: EndpointSlice
                metadata: {name: \(name)-\(index), namespace: default, labels: {kubernetes.io/service-name: \(name)}}
                addressType: IPv4
                endpoints: \(endpoints)
                ports: [{name: http, port: \(port)}]

                """
        }
        return text
    }

    /// An Ingress with `rules`: (host, path, pathType, service).
    static func ingress(_ name: String, rules: [(host: String?, path: String, pathType: String, service: String)]) -> String {
        var text = """
            ---
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: \(name), namespace: default}
            spec:
              ingressClassName: postern
              rules:

            """
        for rule in rules {
            text += rule.host.map { "  - host: \"\($0)\"\n    http:\n" } ?? "  - http:\n"
            text += """
                      paths:
                      - path: \(rule.path)
                        pathType: \(rule.pathType)
                        backend: {service: {name: \(rule.service), port: {number: 80}}}

                """
        }
        return text
    }
}

/// A running `postern run` on a free loopback port.
final class PosternProcess: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let adminPort: UInt16
    let httpsPort: UInt16
    private let configPath: String

    deinit {
        child.stop()
        try? FileManager.default.removeItem(atPath: configPath)
    }

    init(manifests: ManifestFolder, settings: String = "", workers: Int = 2, extraArguments: [String] = []) throws {
        configPath = manifests.path + "-postern.yaml"
        try settings.write(toFile: configPath, atomically: true, encoding: .utf8)
        child = try ChildProcess(
            executable: Paths.product("postern"),
            arguments: [
                "run", "--manifests", manifests.path, "--config", configPath, "--http-listen", "127.0.0.1:0",
                "--admin-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--workers", "\(workers)",
            ] + extraArguments, label: "postern")
        port = try child.waitForListeningPort()
        httpsPort = try child.waitForListeningPort(prefix: "https listening on ")
        adminPort = try child.waitForListeningPort(prefix: "admin listening on ")
    }

    /// The value of a metric sample line (`name{labels}`) from /metrics.
    func metric(_ sample: String) throws -> Double? {
        let response = try HTTPClient.request(port: adminPort, path: "/metrics")
        for line in response.bodyText.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}

/// Runs an external command (curl) and returns its exit status and output.
@discardableResult
func runCommand(_ executable: String, _ arguments: [String], timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Drain both pipes while waiting so a chatty child cannot block.
    final class Collected: @unchecked Sendable {
        var stdout = Data()
        var stderr = Data()
    }
    let collected = Collected()
    let group = DispatchGroup()
    DispatchQueue.global().async(group: group) { collected.stdout = out.fileHandleForReading.readDataToEndOfFile() }
    DispatchQueue.global().async(group: group) { collected.stderr = err.fileHandleForReading.readDataToEndOfFile() }
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning, Date() < deadline { usleep(10_000) }
    if process.isRunning {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HarnessError("\(executable) \(arguments.joined(separator: " ")) timed out after \(timeout)s")
    }
    group.wait()
    return (process.terminationStatus, String(decoding: collected.stdout, as: UTF8.self), String(decoding: collected.stderr, as: UTF8.self))
}

extension ChildProcess {
    /// CPU seconds the process has used so far (user + system, from
    /// /proc/PID/stat), to tell a busy loop from a paused one.
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return 0 }
        // After the command name: field 3 (state) first; utime is field 14, stime 15.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
