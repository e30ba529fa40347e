// controller-bench: how fast a Kubernetes change reaches the data path, what
// bulk deletes cost, and how much memory a large cluster costs, with the real
// `postern` binary watching the fake API server (the same list/watch protocol
// as a real one).
//
//   for p in postern postern-echo controller-bench; do swift build -c release --product $p; done
//   .build/release/controller-bench [--scenarios propagation,memory,delete,burst] [--changes 200]
//       [--ingresses 10000] [--endpoints-per-service 10] [--background-ingresses 10000]
//       [--sets 10000] [--kubectl-metadata true|false] [--pause-ms 60-110] [--products DIR]
//       [--pause-after-create SECONDS] [--pause-after-delete SECONDS]
//
// (One `swift build` with several `--product` builds only the last one.) The
// programs are taken from the directory controller-bench is in, or `--products`.
// Without `--scenarios`, propagation and memory run.
//
// propagation: with wrk keeping the proxy busy, each of N changes is written
// to the fake API server, which sends the watch event at once; the time until
// a request shows it is measured (polled every millisecond): a new Ingress
// with its own host (routed), an EndpointSlice change (one Service's endpoint
// moved between two echo servers: answered by the new one), a path change
// (the new path routed), an Ingress delete (404). Changes are 60-110 ms apart.
// memory: Postern's RSS after its initial sync of I Ingresses, I Services and
// I EndpointSlices of E endpoints.
// delete: N sets created with Postern running, then deleted (Ingresses in
// name order, then Services and EndpointSlices): Postern's CPU for each
// phase, 404 latency after the last delete event, RSS before, at size, after
// (each 3 s after Postern's CPU settled; `--pause-after-create`/`-delete` then wait,
// printing Postern's pid, e.g. for `heaptrack` or gdb's `malloc_stats()`).
// burst: bursts of 1,000 new Ingresses, and EndpointSlice changes while
// 10,000 new Ingresses are being written.
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
    /// Which runs: `propagation`, `memory` (the default pair), `delete`, `burst`.
    var scenarios: Set<String> = ["propagation", "memory"]
    /// Pause between two measured changes, in ms (random in this range): at
    /// least the controller's 50 ms coalescing window makes each change one on a quiet system.
    var pauseMilliseconds = 60..<110
    /// Sets (Ingress + Service + EndpointSlice) of the delete scenario.
    var sets = 10_000
    /// Give objects what kubectl-applied objects carry: managedFields and the last-applied annotation.
    var kubectlMetadata = true
    /// delete: seconds to wait after measuring RSS at size, and after the deletes (to attach a profiler).
    var pauseAfterCreate = 0.0
    var pauseAfterDelete = 0.0

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
            case "--scenarios": scenarios = Set(value.split(separator: ",").map(String.init))
            case "--sets": sets = Int(value) ?? sets
            case "--pause-ms":
                let bounds = value.split(separator: "-").compactMap { Int($0) }
                if bounds.count == 2, bounds[0] < bounds[1] { pauseMilliseconds = bounds[0]..<bounds[1] }
            case "--kubectl-metadata": kubectlMetadata = value != "false"
            case "--pause-after-create": pauseAfterCreate = Double(value) ?? pauseAfterCreate
            case "--pause-after-delete": pauseAfterDelete = Double(value) ?? pauseAfterDelete
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

    /// User + system CPU seconds the process used so far (/proc/PID/stat).
    func cpuSeconds() -> Double {
        let stat = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8)) ?? ""
        // Fields after the command name (which may hold spaces) start at field 3.
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Waits until the process used less than 10 ms of CPU in 500 ms (at most `limit` seconds); returns its CPU seconds then.
    func settledCPU(limit: Double = 120) -> Double {
        let start = Date()
        var last = cpuSeconds()
        while Date().timeIntervalSince(start) < limit {
            usleep(500_000)
            let now = cpuSeconds()
            if now - last < 0.01 { return now }
            last = now
        }
        return last
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

/// The Ingress of the path-change runs: host `paths.example.com`, one Exact path.
func pathIngress(path: String) -> String {
    #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"paths","namespace":"default"},"spec":{"ingressClassName":"postern","rules":[{"host":"paths.example.com","http":{"paths":[{"path":"\#(path)","pathType":"Exact","backend":{"service":{"name":"svc-a","port":{"number":80}}}}]}}]}}"#
}

func service(_ name: String) -> String {
    #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","namespace":"default"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}]}}"#
}

func slice(_ service: String, addresses: [String], port: UInt16) -> String {
    let endpoints = addresses.map { #"{"addresses":["\#($0)"],"conditions":{"ready":true}}"# }.joined(separator: ",")
    return #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"\#(service)-0","namespace":"default","labels":{"kubernetes.io/service-name":"\#(service)"}},"addressType":"IPv4","endpoints":[\#(endpoints)],"ports":[{"name":"http","port":\#(port)}]}"#
}

/// `json` with what a real cluster adds to an object written by `kubectl
/// apply` or a controller: the last-applied annotation (the object itself,
/// as text), managedFields, an owner, a label or two; Services get their
/// cluster IPs, EndpointSlice endpoints their Pod references. Postern reads
/// none of it: it is there to be dropped at decode time.
func withKubectlMetadata(_ json: String, index: Int) -> String {
    guard var object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any],
          var metadata = object["metadata"] as? [String: Any] else { return json }
    var annotations = metadata["annotations"] as? [String: Any] ?? [:]
    annotations["kubectl.kubernetes.io/last-applied-configuration"] = json + "\n"
    metadata["annotations"] = annotations
    var labels = metadata["labels"] as? [String: Any] ?? [:]
    labels["app.kubernetes.io/name"] = "app-\(index)"
    labels["app.kubernetes.io/part-of"] = "controller-bench"
    metadata["labels"] = labels
    metadata["generation"] = 1
    metadata["managedFields"] = [[
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": object["apiVersion"] ?? "v1",
        "time": "2026-11-27T08:00:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": ["f:metadata": ["f:annotations": [".": [String: Any](), "f:kubectl.kubernetes.io/last-applied-configuration": [String: Any]()],
                                    "f:labels": [".": [String: Any](), "f:app.kubernetes.io/name": [String: Any](), "f:app.kubernetes.io/part-of": [String: Any]()]],
                     "f:spec": ["f:rules": [String: Any](), "f:ports": [String: Any](), "f:selector": [String: Any]()]],
    ]]
    switch object["kind"] as? String {
    case "Service":
        var spec = object["spec"] as? [String: Any] ?? [:]
        let ip = "10.96.\((index >> 8) & 255).\(index & 255)"
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"
        spec["internalTrafficPolicy"] = "Cluster"
        spec["sessionAffinity"] = "None"
        spec["type"] = "ClusterIP"
        spec["selector"] = ["app.kubernetes.io/name": "app-\(index)"]
        object["spec"] = spec
        object["status"] = ["loadBalancer": [String: Any]()]
    case "EndpointSlice":
        labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
        metadata["labels"] = labels
        metadata["ownerReferences"] = [["apiVersion": "v1", "kind": "Service", "name": labels["kubernetes.io/service-name"] ?? "",
                                        "uid": "00000000-0000-4000-8000-\(index)", "controller": true, "blockOwnerDeletion": true]]
        let endpoints = (object["endpoints"] as? [[String: Any]] ?? []).enumerated().map { position, endpoint -> [String: Any] in
            var endpoint = endpoint
            endpoint["nodeName"] = "node-\(position % 3)"
            endpoint["targetRef"] = ["kind": "Pod", "namespace": "default", "name": "app-\(index)-7d9f8b6c5d-\(position)",
                                     "uid": "11111111-0000-4000-8000-\(index)-\(position)"]
            endpoint["zone"] = "zone-\(position % 3)"
            var conditions = endpoint["conditions"] as? [String: Any] ?? [:]
            conditions["serving"] = true
            conditions["terminating"] = false
            endpoint["conditions"] = conditions
            return endpoint
        }
        object["endpoints"] = endpoints
    default:
        break
    }
    object["metadata"] = metadata
    guard let data = try? JSONSerialization.data(withJSONObject: object) else { return json }
    return String(decoding: data, as: UTF8.self)
}

/// `count` Ingresses `ing-I` (host `hI.example.com`), each with its own Service
/// and an EndpointSlice of `endpointsPerService` loopback addresses on a
/// closed port: a routed request gets 502, and nothing leaves the machine.
/// Sleeps 1 ms after every 50 writes, so the fake's lock is not held by the
/// writing thread back to back while its watch and request threads wait
/// (its mutex is not fair): the events then flow while they are written, as
/// from a real API server.
struct Pacer {
    var writes = 0
    mutating func wrote() {
        writes += 1
        if writes % 50 == 0 { usleep(1000) }
    }
}

func populate(_ api: FakeKubeAPIServer, count: Int, endpointsPerService: Int, kubectlMetadata: Bool = false) throws {
    var pacer = Pacer()
    for index in 0..<count {
        let addresses = (0..<endpointsPerService).map { "127.\(1 + (index >> 8) & 255).\(index & 255).\($0 + 1)" }
        var objects = [
            service("svc-\(index)"), slice("svc-\(index)", addresses: addresses, port: 9),
            ingress("ing-\(index)", host: "h\(index).example.com", service: "svc-\(index)"),
        ]
        if kubectlMetadata { objects = objects.map { withKubectlMetadata($0, index: index) } }
        for object in objects {
            try api.apply(object)
            pacer.wrote()
        }
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

if options.scenarios.contains("propagation") { do {
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
    try api.apply(pathIngress(path: "/p-0"))
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
        usleep(UInt32(1000 * Int.random(in: options.pauseMilliseconds)))
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
        usleep(UInt32(1000 * Int.random(in: options.pauseMilliseconds)))
    }
    // Path changes: the Ingress `paths` moves from /p-I to /p-(I+1).
    var pathSamples: [Double] = []
    var pathMissed = 0
    for index in 0..<options.changes {
        try api.apply(pathIngress(path: "/p-\(index + 1)"))
        let start = DispatchTime.now().uptimeNanoseconds
        var seen = false
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 5 {
            if get(port: port, host: "paths.example.com", path: "/p-\(index + 1)") == 200 {
                seen = true
                break
            }
            usleep(1000)
        }
        if seen { pathSamples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) } else { pathMissed += 1 }
        usleep(UInt32(1000 * Int.random(in: options.pauseMilliseconds)))
    }
    // Deletes: each Ingress made above goes, until its host answers 404.
    var deleteSamples: [Double] = []
    var deleteMissed = 0
    for index in 0..<options.changes {
        let host = "bench-\(index).example.com"
        api.delete(resource: "ingresses", namespace: "default", name: "bench-\(index)")
        let start = DispatchTime.now().uptimeNanoseconds
        var seen = false
        while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 5 {
            if get(port: port, host: host) == 404 {
                seen = true
                break
            }
            usleep(1000)
        }
        if seen { deleteSamples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) } else { deleteMissed += 1 }
        usleep(UInt32(1000 * Int.random(in: options.pauseMilliseconds)))
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
    report("propagation of a path change: watch event written → the new path is routed", pathSamples, missed: pathMissed)
    report("propagation of an Ingress delete: watch event written → its host answers 404", deleteSamples, missed: deleteMissed)
    print("load host after the run: HTTP \(loadStatus)")
} catch {
    print("propagation run failed: \(error)")
} }

// MARK: Memory at size

if options.scenarios.contains("memory") { do {
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
} }

// MARK: Create, then delete, N sets

/// Polls `hosts` until every one answers `status` (at most `limit` seconds);
/// the seconds that took, nil on timeout.
func waitForStatus(port: UInt16, hosts: [String], status: Int, limit: Double) -> Double? {
    let start = DispatchTime.now().uptimeNanoseconds
    var remaining = hosts
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < limit {
        remaining = remaining.filter { get(port: port, host: $0) != status }
        if remaining.isEmpty { return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        usleep(1000)
    }
    return nil
}

if options.scenarios.contains("delete") { do {
    let count = options.sets
    let api = FakeKubeAPIServer(bookmarkInterval: 30, historyLimit: 20_000)
    try api.start()
    try api.apply(ingressClass)
    let (postern, port, admin) = try startPostern(options, apiPort: api.port)
    guard waitReady(admin: admin, timeout: 60) != nil else { fatalError("postern never became ready") }
    let idleCPU = postern.settledCPU()
    let idle = postern.memoryKiB()
    let sampleIndexes = Array(Set([0, count / 2, count - 1])).sorted()
    // Name order, the order of `deletecollection` and of a namespace deletion.
    let sampleHosts = sampleIndexes.map { "h\($0).example.com" }

    let createStart = Date()
    try populate(api, count: count, endpointsPerService: options.endpointsPerService, kubectlMetadata: options.kubectlMetadata)
    let written = Date().timeIntervalSince(createStart)
    let created = waitForStatus(port: port, hosts: sampleHosts, status: 502, limit: 600)
    let createCPU = postern.settledCPU() - idleCPU
    // As after the deletes: the trim runs a second after the last round of
    // a bulk change; RSS is read in the steady state that follows.
    Thread.sleep(forTimeInterval: 3)
    let afterCreate = postern.memoryKiB()
    if options.pauseAfterCreate > 0 {
        // Time to attach a profiler or read malloc statistics at size.
        print(String(format: "after create: RSS %.1f MiB; postern pid %d; pausing %.0f s",
                     Double(afterCreate.0) / 1024, postern.process.processIdentifier, options.pauseAfterCreate))
        fflush(stdout)
        Thread.sleep(forTimeInterval: options.pauseAfterCreate)
    }

    // Delete every Ingress in name order, then every Service and EndpointSlice.
    let names = (0..<count).map { "\($0)" }.sorted()
    let deleteCPUStart = postern.cpuSeconds()
    let deleteStart = Date()
    var pacer = Pacer()
    for name in names {
        api.delete(resource: "ingresses", namespace: "default", name: "ing-\(name)")
        pacer.wrote()
    }
    let lastIngressDelete = DispatchTime.now().uptimeNanoseconds
    let ingressesWritten = Date().timeIntervalSince(deleteStart)
    let gone = waitForStatus(port: port, hosts: sampleHosts, status: 404, limit: 600)
    let goneAfterLastEvent = gone.map { _ in Double(DispatchTime.now().uptimeNanoseconds - lastIngressDelete) / 1e6 }
    let ingressDeleteCPU = postern.settledCPU() - deleteCPUStart
    for name in names {
        api.delete(resource: "services", namespace: "default", name: "svc-\(name)")
        api.delete(resource: "endpointslices", namespace: "default", name: "svc-\(name)-0")
        pacer.wrote()
        pacer.wrote()
    }
    let deleteCPU = postern.settledCPU() - deleteCPUStart
    // The trim runs a second after the round that removed the objects.
    Thread.sleep(forTimeInterval: 3)
    let afterDelete = postern.memoryKiB()
    if options.pauseAfterDelete > 0 {
        print(String(format: "after delete: RSS %.1f MiB; postern pid %d; pausing %.0f s",
                     Double(afterDelete.0) / 1024, postern.process.processIdentifier, options.pauseAfterDelete))
        fflush(stdout)
        Thread.sleep(forTimeInterval: options.pauseAfterDelete)
    }
    let stillUp = get(port: admin, host: "admin", path: "/readyz")
    postern.stop()
    api.stop()

    print("## create then delete \(count) sets (Ingress + Service + EndpointSlice of \(options.endpointsPerService) endpoints), kubectl metadata: \(options.kubectlMetadata)")
    print(String(format: "create: %d objects written in %.1f s; sampled hosts routed %.2f s after the last write; postern CPU %.2f s",
                 3 * count, written, created ?? -1, createCPU))
    print(String(format: "delete: %d Ingresses written in %.2f s; sampled hosts answered 404 %.0f ms after the last delete event; postern CPU %.2f s (Ingresses) / %.2f s (all %d objects)",
                 count, ingressesWritten, goneAfterLastEvent ?? -1, ingressDeleteCPU, deleteCPU, 3 * count))
    print(String(format: "delete CPU / create CPU: %.2f", deleteCPU / max(createCPU, 0.001)))
    print(String(format: "RSS: new process %.1f MiB; after create %.1f MiB (%.2f MiB per 1,000 sets); after delete %.1f MiB (%+.1f MiB against the new process); peak %.1f MiB",
                 Double(idle.0) / 1024, Double(afterCreate.0) / 1024, Double(afterCreate.0 - idle.0) / 1024 / (Double(count) / 1000),
                 Double(afterDelete.0) / 1024, Double(afterDelete.0 - idle.0) / 1024, Double(afterDelete.1) / 1024))
    print("readyz after the deletes: HTTP \(stillUp)")
} catch {
    print("delete run failed: \(error)")
} }

// MARK: Bursts

/// Writes `count` Ingresses `prefix-I` (host `prefix-I.example.com`, backend
/// svc-a), paced; returns when the last was written (uptime nanoseconds).
func writeIngresses(_ api: FakeKubeAPIServer, prefix: String, count: Int) throws -> UInt64 {
    var pacer = Pacer()
    for index in 0..<count {
        try api.apply(ingress("\(prefix)-\(index)", host: "\(prefix)-\(index).example.com", service: "svc-a"))
        pacer.wrote()
    }
    return DispatchTime.now().uptimeNanoseconds
}

/// Moves svc-moving's endpoint to `target` and waits until a request is answered by `name`; ms, nil after 5 s.
func moveEndpoint(_ api: FakeKubeAPIServer, port: UInt16, name: String, target: UInt16) throws -> Double? {
    let marker = Array(#""name":"\#(name)""#.utf8)
    try api.apply(slice("svc-moving", addresses: ["127.0.0.1"], port: target))
    let start = DispatchTime.now().uptimeNanoseconds
    while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < 5 {
        let answer = fetch(port: port, host: "moving.example.com") { _ in false }
        if answer.status == 200, answer.response.utf8.firstRange(of: marker) != nil {
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        }
        usleep(1000)
    }
    return nil
}

/// Written from another thread.
final class Mark: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64? = nil
    func set(_ new: UInt64) { lock.withLock { value = new } }
    var get: UInt64? { lock.withLock { value } }
}

if options.scenarios.contains("burst") { do {
    let api = FakeKubeAPIServer(bookmarkInterval: 5, historyLimit: 50_000)
    try api.start()
    let echo = try Child(options.products + "/postern-echo", ["--listen", "127.0.0.1:0", "--name", "a"])
    let echoPort = echo.port(prefix: "listening on ")
    let otherEcho = try Child(options.products + "/postern-echo", ["--listen", "127.0.0.1:0", "--name", "b"])
    let otherEchoPort = otherEcho.port(prefix: "listening on ")
    try api.apply(ingressClass)
    try api.apply(service("svc-a"))
    try api.apply(slice("svc-a", addresses: ["127.0.0.1"], port: echoPort))
    try api.apply(ingress("load", host: "load.example.com", service: "svc-a"))
    try api.apply(service("svc-moving"))
    try api.apply(slice("svc-moving", addresses: ["127.0.0.1"], port: echoPort))
    try api.apply(ingress("moving", host: "moving.example.com", service: "svc-moving"))
    try populate(api, count: options.backgroundIngresses, endpointsPerService: options.endpointsPerService)
    let (postern, port, admin) = try startPostern(options, apiPort: api.port)
    guard waitReady(admin: admin, timeout: 600) != nil else { fatalError("postern never became ready") }
    let wrk = try Child("/usr/bin/wrk", ["-t1", "-c16", "-d3600s", "-H", "Host: load.example.com", "http://127.0.0.1:\(port)/"])
    Thread.sleep(forTimeInterval: 1)

    // Bursts of 1,000 new Ingresses: from the last write until the last and the first are routed.
    var burstSamples: [Double] = []
    for round in 0..<5 {
        let prefix = "burst\(round)"
        let last = try writeIngresses(api, prefix: prefix, count: 1000)
        if waitForStatus(port: port, hosts: ["\(prefix)-999.example.com", "\(prefix)-0.example.com"], status: 200, limit: 30) != nil {
            burstSamples.append(Double(DispatchTime.now().uptimeNanoseconds - last) / 1e6)
        }
        Thread.sleep(forTimeInterval: 1)
    }

    // EndpointSlice changes while 10,000 new Ingresses are being written.
    let floodDone = Mark()
    let flood = Thread {
        floodDone.set((try? writeIngresses(api, prefix: "flood", count: 10_000)) ?? 0)
    }
    let floodStart = DispatchTime.now().uptimeNanoseconds
    flood.start()
    var endpointSamples: [Double] = []
    var endpointMissed = 0
    var moves = 0
    while floodDone.get == nil {
        let (name, target) = moves % 2 == 0 ? ("b", otherEchoPort) : ("a", echoPort)
        moves += 1
        if let sample = try moveEndpoint(api, port: port, name: name, target: target) { endpointSamples.append(sample) } else { endpointMissed += 1 }
        usleep(UInt32(1000 * Int.random(in: 20..<60)))
    }
    let floodEnd = floodDone.get ?? 0
    let floodServed = waitForStatus(port: port, hosts: ["flood-9999.example.com"], status: 200, limit: 60)
        .map { _ in Double(DispatchTime.now().uptimeNanoseconds - floodEnd) / 1e6 }
    wrk.stop()
    postern.stop()
    echo.stop()
    otherEcho.stop()
    api.stop()

    func summary(_ samples: [Double]) -> String {
        let sorted = samples.sorted()
        guard !sorted.isEmpty else { return "no samples" }
        return String(format: "median %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, min %.1f ms",
                      percentile(sorted, 0.5), percentile(sorted, 0.9), percentile(sorted, 0.99), sorted.last!, sorted.first!)
    }
    print("## bursts (\(options.backgroundIngresses) other Ingresses loaded, wrk -c16 running)")
    print("1,000 new Ingresses written at once, last write → last and first routed (\(burstSamples.count) of 5 bursts): \(summary(burstSamples))")
    print(String(format: "10,000 new Ingresses written in %.1f s; the last routed %.0f ms after the last write",
                 Double(floodEnd - floodStart) / 1e9, floodServed ?? -1))
    print("EndpointSlice change during that burst (\(endpointSamples.count) changes, \(endpointMissed) missed): \(summary(endpointSamples))")
} catch {
    print("burst run failed: \(error)")
} }
