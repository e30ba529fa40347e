// controller-bench: how fast a Kubernetes change reaches the data path, and
// how much memory a large cluster costs, with the real `postern` binary
// watching the fake API server (the same list/watch protocol as a real one).
//
//   for p in postern postern-echo controller-bench; do swift build -c release --product $p; done
//   .build/release/controller-bench [--changes 200] [--ingresses 10000] [--endpoints-per-service 10]
//       [--background-ingresses 10000] [--products DIR]
//
// (One `swift build` with several `--product` builds only the last one.) The
// programs are taken from the directory controller-bench is in, or `--products`.
//
// Propagation: with wrk keeping the proxy busy, each of N changes (a new
// Ingress with its own host) is written to the fake API server, which sends
// the watch event at once; the time until a request for that host is routed
// is measured (polled every millisecond). Then N EndpointSlice changes (one
// Service's endpoint moved between two echo servers): the time until a
// request is answered by the new one. Memory: Postern's RSS after its
// initial sync of I Ingresses, I Services and I EndpointSlices of E endpoints.
import FakeKubeAPI
import Foundation
import Reactor

#if canImport(Glibc)
    import Glibc
#endif

struct Options {
    var changes = 200
    var ingresses = 10_000
    var endpointsPerService = 10
    /// Ingresses (with Services and EndpointSlices) already in the cluster during the propagation run.
    var backgroundIngresses = 0
    var products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path

    init() {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let name = arguments.next() {
            let value = arguments.next() ?? ""
            switch name {
            case "--changes": changes = Int(value) ?? changes
            case "--ingresses": ingresses = Int(value) ?? ingresses
            case "--endpoints-per-service": endpointsPerService = Int(value) ?? endpointsPerService
            case "--background-ingresses": backgroundIngresses = Int(value) ?? backgroundIngresses
            case "--products": products = value
            default:
                FileHandle.standardError.write(Data("unknown option \(name)\n".utf8))
                exit(2)
            }
        }
    }
}

/// A child process, killed on exit.
final class Child {
    let process = Process()
    let output = Pipe()
    private var buffered = ""

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        // Logs of the last run of each program, for when a number looks wrong.
        let log = NSTemporaryDirectory() + "controller-bench-\(URL(fileURLWithPath: executable).lastPathComponent).log"
        // Without the file, the log goes nowhere (FileHandle falls back to the null device).
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: log) ?? FileHandle.nullDevice
        try process.run()
    }

    func waitForLine(prefix: String) -> String? {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let line = buffered.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) { return String(line) }
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { return nil }
            buffered += String(decoding: data, as: UTF8.self)
        }
        return nil
    }

    func port(prefix: String) -> UInt16 {
        guard let line = waitForLine(prefix: prefix), let port = line.split(separator: ":").last.flatMap({ UInt16($0) }) else {
            fatalError("\(process.executableURL?.lastPathComponent ?? "?") printed no '\(prefix)' line")
        }
        return port
    }

    /// (VmRSS, VmHWM) in KiB.
    func memoryKiB() -> (Int, Int) {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        func field(_ name: String) -> Int {
            for line in status.split(separator: "\n") where line.hasPrefix(name) {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
            }
            return 0
        }
        return (field("VmRSS:"), field("VmHWM:"))
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// GET with `Connection: close`; the status code, or 0 when the connection failed.
func get(port: UInt16, host: String, path: String = "/") -> Int {
    fetch(port: port, host: host, path: path) { $0.count >= 12 }.status
}

/// GET with `Connection: close`: the status code (0 when the connection
/// failed) and the response read until `enough` says so or the server closed.
func fetch(port: UInt16, host: String, path: String = "/", until enough: ([UInt8]) -> Bool) -> (status: Int, response: String) {
    guard let fd = try? BlockingSocket.connect(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000) else { return (0, "") }
    defer { Socket.close(fd) }
    BlockingSocket.setTimeouts(fd, receiveMilliseconds: 2000, sendMilliseconds: 2000)
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ BlockingSocket.writeAll(fd, $0) }) else { return (0, "") }
    var buffer = [UInt8](repeating: 0, count: 4096)
    var received: [UInt8] = []
    while !enough(received) {
        guard let count = buffer.withUnsafeMutableBytes({ BlockingSocket.read(fd, into: $0) }), count > 0 else { break }
        received += buffer[0..<count]
    }
    guard received.count >= 12 else { return (0, "") }
    return (Int(String(decoding: received[9..<12], as: UTF8.self)) ?? 0, String(decoding: received, as: UTF8.self))
}

func kubeconfig(port: UInt16) throws -> String {
    let path = NSTemporaryDirectory() + "controller-bench-\(UUID().uuidString).yaml"
    try """
        apiVersion: v1
        kind: Config
        current-context: bench
        clusters: [{name: fake, cluster: {server: "http://127.0.0.1:\(port)"}}]
        contexts: [{name: bench, context: {cluster: fake, user: bench, namespace: default}}]
        users: [{name: bench, user: {token: bench}}]
        """.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

func ingress(_ name: String, host: String, service: String) -> String {
    #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"default"},"spec":{"ingressClassName":"postern","rules":[{"host":"\#(host)","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"\#(service)","port":{"number":80}}}}]}}]}}"#
}

func service(_ name: String) -> String {
    #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","namespace":"default"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}}"#
}

func slice(_ service: String, addresses: [String], port: UInt16) -> String {
    let endpoints = addresses.map { #"{"addresses":["\#($0)"],"conditions":{"ready":true}}"# }.joined(separator: ",")
    return #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"\#(service)-0","namespace":"default","labels":{"kubernetes.io/service-name":"\#(service)"}},"addressType":"IPv4","endpoints":[\#(endpoints)],"ports":[{"name":"http","port":\#(port)}]}"#
}

/// `count` Ingresses `ing-I` (host `hI.example.com`), each with its own Service
/// and an EndpointSlice of `endpointsPerService` loopback addresses on a
/// closed port: a routed request gets 502, and nothing leaves the machine.
func populate(_ api: FakeKubeAPIServer, count: Int, endpointsPerService: Int) throws {
    for index in 0..<count {
        let addresses = (0..<endpointsPerService).map { "127.\(1 + (index >> 8) & 255).\(index & 255).\($0 + 1)" }
        try api.apply(service("svc-\(index)"))
        try api.apply(slice("svc-\(index)", addresses: addresses, port: 9))
        try api.apply(ingress("ing-\(index)", host: "h\(index).example.com", service: "svc-\(index)"))
    }
}

let ingressClass = #"{"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"postern"},"spec":{"controller":"postern.dev/ingress-controller"}}"#

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func startPostern(_ options: Options, apiPort: UInt16) throws -> (Child, UInt16, UInt16) {
    let child = try Child(options.products + "/postern", [
        "run", "--kubeconfig", try kubeconfig(port: apiPort), "--http-listen", "127.0.0.1:0", "--https-listen", "off",
        "--admin-listen", "127.0.0.1:0", "--workers", "1",
    ])
    let port = child.port(prefix: "listening on ")
    let admin = child.port(prefix: "admin listening on ")
    return (child, port, admin)
}

func waitReady(admin: UInt16, timeout: Double) -> Double? {
    let start = Date()
    while Date().timeIntervalSince(start) < timeout {
        if get(port: admin, host: "admin", path: "/readyz") == 200 { return Date().timeIntervalSince(start) }
        usleep(20_000)
    }
    return nil
}

let options = Options()
Socket.ignoreSIGPIPE()
print("# controller-bench \(ISO8601DateFormatter().string(from: Date()))")
print("cpus: \(ProcessInfo.processInfo.activeProcessorCount); postern --workers 1; products: \(options.products)")

// MARK: Propagation under load

do {
    let api = FakeKubeAPIServer(bookmarkInterval: 5)
    try api.start()
    let echo = try Child(options.products + "/postern-echo", ["--listen", "127.0.0.1:0", "--name", "a"])
    let echoPort = echo.port(prefix: "listening on ")
    let otherEcho = try Child(options.products + "/postern-echo", ["--listen", "127.0.0.1:0", "--name", "b"])
    let otherEchoPort = otherEcho.port(prefix: "listening on ")
    try api.apply(ingressClass)
    try api.apply(service("svc-a"))
    try api.apply(slice("svc-a", addresses: ["127.0.0.1"], port: echoPort))
    try api.apply(ingress("load", host: "load.example.com", service: "svc-a"))
    // The Service whose endpoint moves between the two echo servers.
    try api.apply(service("svc-moving"))
    try api.apply(slice("svc-moving", addresses: ["127.0.0.1"], port: echoPort))
    try api.apply(ingress("moving", host: "moving.example.com", service: "svc-moving"))
    try populate(api, count: options.backgroundIngresses, endpointsPerService: options.endpointsPerService)
    let (postern, port, admin) = try startPostern(options, apiPort: api.port)
    guard waitReady(admin: admin, timeout: 600) != nil else { fatalError("postern never became ready") }
    let wrk = try Child("/usr/bin/wrk", ["-t1", "-c16", "-d3600s", "-H", "Host: load.example.com", "http://127.0.0.1:\(port)/"])
    Thread.sleep(forTimeInterval: 1)
    var samples: [Double] = []
    var missed = 0
    for index in 0..<options.changes {
        let host = "bench-\(index).example.com"
        try api.apply(ingress("bench-\(index)", host: host, service: "svc-a"))
        let start = DispatchTime.now().uptimeNanoseconds
        var seen = false
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 5 {
            if get(port: port, host: host) == 200 {
                seen = true
                break
            }
            usleep(1000)
        }
        if seen { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) } else { missed += 1 }
        usleep(UInt32.random(in: 0..<50_000))
    }
    // EndpointSlice changes: svc-moving's endpoint goes to the other echo server.
    var endpointSamples: [Double] = []
    var endpointMissed = 0
    for index in 0..<options.changes {
        let (name, target) = index % 2 == 0 ? ("b", otherEchoPort) : ("a", echoPort)
        let marker = Array(#""name":"\#(name)""#.utf8)
        try api.apply(slice("svc-moving", addresses: ["127.0.0.1"], port: target))
        let start = DispatchTime.now().uptimeNanoseconds
        var seen = false
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 5 {
            // Read until the proxy closes (Connection: close): the body names the echo server.
            let answer = fetch(port: port, host: "moving.example.com") { _ in false }
            if answer.status == 200, answer.response.utf8.firstRange(of: marker) != nil {
                seen = true
                break
            }
            usleep(1000)
        }
        if seen { endpointSamples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) } else { endpointMissed += 1 }
        usleep(UInt32.random(in: 0..<50_000))
    }
    wrk.stop()
    let loadStatus = get(port: port, host: "load.example.com")
    postern.stop()
    echo.stop()
    otherEcho.stop()
    api.stop()
    func report(_ title: String, _ samples: [Double], missed: Int) {
        let samples = samples.sorted()
        print("## \(title) (\(samples.count) changes, \(missed) missed, wrk -c16 running, \(options.backgroundIngresses) other Ingresses loaded)")
        if !samples.isEmpty {
            print(String(format: "median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, min %.1f ms",
                         percentile(samples, 0.5), percentile(samples, 0.9), percentile(samples, 0.99), samples.last!, samples.first!))
        }
    }
    report("propagation: watch event written → new table answers", samples, missed: missed)
    report("propagation of an EndpointSlice change: watch event written → the new endpoint answers", endpointSamples, missed: endpointMissed)
    print("load host after the run: HTTP \(loadStatus)")
} catch {
    print("propagation run failed: \(error)")
}

// MARK: Memory at size

do {
    let api = FakeKubeAPIServer(bookmarkInterval: 30)
    try api.start()
    try api.apply(ingressClass)
    let total = options.ingresses
    try populate(api, count: total, endpointsPerService: options.endpointsPerService)
    let (idlePostern, _, idleAdmin) = try {
        let small = FakeKubeAPIServer()
        try small.start()
        try small.apply(ingressClass)
        let started = try startPostern(options, apiPort: small.port)
        _ = waitReady(admin: started.2, timeout: 30)
        Thread.sleep(forTimeInterval: 1)
        small.stop()
        return started
    }()
    _ = idleAdmin
    let idle = idlePostern.memoryKiB()
    idlePostern.stop()
    let (postern, port, admin) = try startPostern(options, apiPort: api.port)
    let ready = waitReady(admin: admin, timeout: 600)
    Thread.sleep(forTimeInterval: 2)
    let memory = postern.memoryKiB()
    let sample = get(port: port, host: "h\(total / 2).example.com")
    postern.stop()
    api.stop()
    print("## memory: \(total) Ingresses, \(total) Services, \(total) EndpointSlices, \(total * options.endpointsPerService) endpoints")
    print(String(format: "initial sync to ready: %.1f s; RSS %.1f MiB (peak %.1f MiB); empty cluster RSS %.1f MiB",
                 ready ?? -1, Double(memory.0) / 1024, Double(memory.1) / 1024, Double(idle.0) / 1024))
    print("a host from the middle of the set answered HTTP \(sample) (502 expected: routed, endpoints refuse)")
} catch {
    print("memory run failed: \(error)")
}
