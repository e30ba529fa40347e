// Routing micro-benchmark: route lookup time on a large table and
// translate+compile time for many Ingresses. Release mode only:
//   swift run -c release routing-bench [--hosts 10000] [--paths 10] [--ingresses 10000]
// Prints medians (and min/max) of repeated runs; nothing is asserted.
import Kube
import RouteModel
import Routing
import SeededRandom
import Translate

#if canImport(Glibc)
    import Glibc
#endif

func argument(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let number = Int(arguments[index + 1])
    else { return value }
    return number
}

let hostCount = argument("--hosts", default: 10_000)
let pathsPerHost = argument("--paths", default: 10)
let ingressCount = argument("--ingresses", default: 10_000)
/// Translate input shape: paths per Ingress, Services, endpoints per Service.
/// `--ingress-paths 1 --services 10000 --endpoints 10` is controller-bench's shape.
let ingressPaths = argument("--ingress-paths", default: pathsPerHost)
let serviceCount = argument("--services", default: max(1, ingressCount / 10))
let endpointsPerService = argument("--endpoints", default: 3)
/// `--translate-only 1` skips the lookup benchmarks (for profiling translation).
let translateOnly = argument("--translate-only", default: 0) != 0
let lookupsPerRound = 200_000
let rounds = 11


func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func summary(_ samples: [Double], unit: String, scale: Double) -> String {
    let sorted = samples.sorted()
    func f(_ v: Double) -> String {
        let scaled = (v * scale * 10).rounded() / 10
        return "\(scaled)"
    }
    return "median \(f(sorted[sorted.count / 2])) \(unit) (min \(f(sorted.first!)), max \(f(sorted.last!)), n=\(sorted.count))"
}

// MARK: Route lookup

let segments = ["api", "v1", "v2", "users", "items", "static", "img", "cart", "search", "admin", "health", "docs"]
/// Lookup benchmarks on a synthetic table of `hostCount` hosts.
func runLookupBenchmarks() {
    var random = SplitMix64(seed: 42)
    var virtualHosts: [VirtualHost] = []
    var clusters: [Cluster] = []
    for h in 0..<hostCount {
        var routes: [Route] = []
        for p in 0..<pathsPerHost {
            let depth = 1 + p % 3
            let path = "/" + (0..<depth).map { _ in segments[Int(random.next() % UInt64(segments.count))] }.joined(separator: "/") + "\(p)"
            routes.append(Route(path: path, match: p % 4 == 0 ? .exact : .prefix, cluster: "c\(h % 1000)", source: "ns/i\(h)"))
        }
        routes.append(Route(path: "/", match: .prefix, cluster: "c\(h % 1000)", source: "ns/i\(h)"))
        virtualHosts.append(VirtualHost(host: h % 10 == 9 ? .wildcard(suffix: ".w\(h).example.com") : .exact("host\(h).example.com"), routes: routes))
    }
    for c in 0..<1000 { clusters.append(Cluster(name: "c\(c)", endpoints: [Endpoint(address: .v4(10, 0, UInt8(c / 256), UInt8(c % 256)), port: 8080)])) }
    let model = RouteModel(virtualHosts: virtualHosts, clusters: clusters)
    let compileStart = ContinuousClock.now
    let table = RoutingTable(model: model, generation: 1)
    let compileTime = ContinuousClock.now - compileStart

    /// Requests as bytes (host, path), like the proxy's buffers.
    func makeRequests(dotSegments: Bool) -> [(host: [UInt8], path: [UInt8])] {
        var random = SplitMix64(seed: 7)
        return (0..<4096).map { _ in
            let h = Int(random.next() % UInt64(hostCount))
            let vhost = virtualHosts[h]
            let host: String
            switch vhost.host {
            case let .exact(name): host = name.uppercased() + ":443"
            case let .wildcard(suffix): host = "x" + suffix
            case .any: host = "any"
            }
            let route = vhost.routes[Int(random.next() % UInt64(vhost.routes.count))]
            var path = route.match == .exact ? route.path : route.path + "/deeper/still"
            if dotSegments { path = "/x/.." + path + "/./y/.." }
            return (Array(host.utf8), Array(path.utf8))
        }
    }

    func measureLookups(_ requests: [(host: [UInt8], path: [UInt8])]) -> (samples: [Double], notFound: Int) {
        var samples: [Double] = []
        var notFound = 0
        for _ in 0..<rounds {
            let start = ContinuousClock.now
            var i = 0
            for n in 0..<lookupsPerRound {
                let request = requests[i]
                i = (i + 1) & 4095
                let decision = request.host.withUnsafeBytes { host in
                    request.path.withUnsafeBytes { path in table.route(host: host, path: path) }
                }
                if case .notFound = decision { notFound &+= n & 1 }
            }
            samples.append(seconds(ContinuousClock.now - start) / Double(lookupsPerRound))
        }
        return (samples, notFound)
    }

    print("routing-bench: \(hostCount) hosts x \(pathsPerHost + 1) paths (1 in 4 Exact, 1 in 10 hosts wildcard), 1000 clusters")
    print("compile (model -> RoutingTable): \(summary([seconds(compileTime)], unit: "ms", scale: 1e3))")
    let plain = measureLookups(makeRequests(dotSegments: false))
    print("route lookup: \(summary(plain.samples, unit: "ns", scale: 1e9))")
    let dotted = measureLookups(makeRequests(dotSegments: true))
    print("route lookup, path with dot-segments: \(summary(dotted.samples, unit: "ns", scale: 1e9))")

    // A host whose 10 rules are regexes (use-regex), requests matching the last one tried.
    let regexModel = RouteModel(
        virtualHosts: [VirtualHost(host: .exact("regex.example.com"), routes: (0..<10).map {
            Route(path: "/api/v\($0)/[a-z]+/([0-9]+)", match: .regex, cluster: "c0", source: "ns/r", rewriteTarget: "/items/$1")
        })],
        clusters: [clusters[0]])
    let regexTable = RoutingTable(model: regexModel, generation: 1)
    var regexSamples: [Double] = []
    let regexHost = Array("regex.example.com".utf8)
    // Same-length patterns are tried in text order, so v9 is the last one tried.
    let regexPath = Array("/api/v9/users/12345/profile".utf8)
    var rewriteBuffer = [UInt8](repeating: 0, count: 8192)
    for _ in 0..<rounds {
        let start = ContinuousClock.now
        for _ in 0..<(lookupsPerRound / 10) {
            let result = regexHost.withUnsafeBytes { host in
                regexPath.withUnsafeBytes { path in
                    rewriteBuffer.withUnsafeMutableBytes { regexTable.route(host: host, path: path, rewriteInto: $0) }
                }
            }
            precondition(result.rewrite == .rewritten(count: 12), "regex benchmark must rewrite to /items/12345")
        }
        regexSamples.append(seconds(ContinuousClock.now - start) / Double(lookupsPerRound / 10))
    }
    print("route lookup, 10 regex rules (RE2, 9 misses then a match with a rewrite): \(summary(regexSamples, unit: "ns", scale: 1e9))")
}

if !translateOnly { runLookupBenchmarks() }

// MARK: Translate + compile

func manifests(ingresses: Int) -> ObjectSnapshot {
    var snapshot = ObjectSnapshot()
    snapshot.ingressClasses = [IngressClass(metadata: ObjectMeta(name: "postern"), spec: IngressClassSpec(controller: "postern.dev/ingress-controller"))]
    let services = serviceCount
    for s in 0..<services {
        snapshot.services.append(Service(
            metadata: ObjectMeta(name: "svc\(s)", namespace: "ns\(s % 50)"),
            spec: ServiceSpec(ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080))])))
        snapshot.endpointSlices.append(EndpointSlice(
            metadata: ObjectMeta(name: "svc\(s)-0", namespace: "ns\(s % 50)", labels: [EndpointSlice.serviceNameLabel: "svc\(s)"]),
            addressType: "IPv4",
            endpoints: (0..<endpointsPerService).map { EndpointSliceEndpoint(addresses: ["10.\(s / 250 % 250).\(s % 250).\($0 + 1)"]) },
            ports: [EndpointSlicePort(name: "http", port: 8080)]))
    }
    for i in 0..<ingresses {
        let s = i % services
        let backend = IngressBackend(service: IngressServiceBackend(name: "svc\(s)", port: ServiceBackendPort(name: "http")))
        let paths = (0..<ingressPaths).map { p in
            HTTPIngressPath(path: "/\(segments[p % segments.count])/\(p)", pathType: p % 4 == 0 ? "Exact" : "Prefix", backend: backend)
        }
        snapshot.ingresses.append(Ingress(
            metadata: ObjectMeta(name: "ing\(i)", namespace: "ns\(s % 50)", creationTimestamp: "2024-01-01T00:00:\(String(format2: i % 60))Z"),
            spec: IngressSpec(ingressClassName: "postern", rules: [
                IngressRule(host: "host\(i).example.com", http: HTTPIngressRuleValue(paths: paths)),
            ])))
    }
    return snapshot
}

extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : "\(value)" }
}

let snapshot = manifests(ingresses: ingressCount)
var translateSamples: [Double] = []
var tlsSamples: [Double] = []
var compareSamples: [Double] = []
var compileSamples: [Double] = []
var reuseSamples: [Double] = []
var totalSamples: [Double] = []
var routes = 0
var previous: RouteModel? = nil
for _ in 0..<5 {
    let start = ContinuousClock.now
    let result = translate(snapshot, options: TranslateOptions())
    let translated = ContinuousClock.now
    let tls = translateTLS(snapshot, options: TranslateOptions())
    let tlsDone = ContinuousClock.now
    // What the controller does to decide whether to publish.
    let changed = previous != result.model
    previous = result.model
    let compared = ContinuousClock.now
    let compiled = RoutingTable(model: result.model, generation: 1)
    let end = ContinuousClock.now
    // What the controller does after a change: one more host (in the middle
    // of the sorted hosts), compiled from the table in service.
    var changedModel = result.model
    let middle = changedModel.virtualHosts.count / 2
    var added = changedModel.virtualHosts[middle]
    if case let .exact(name) = added.host { added.host = .exact(name + "-new") }
    changedModel.virtualHosts.insert(added, at: middle + 1)
    let patchStart = ContinuousClock.now
    let patched = RoutingTable(model: changedModel, generation: 2, reusing: compiled)
    reuseSamples.append(seconds(ContinuousClock.now - patchStart))
    precondition(patched.clusters.count == compiled.clusters.count, "one more host, no new cluster")
    precondition(tls.diagnostics.isEmpty && (changed || translateSamples.count > 0), "benchmark input must translate cleanly")
    tlsSamples.append(seconds(tlsDone - translated))
    compareSamples.append(seconds(compared - tlsDone))
    routes = result.model.virtualHosts.reduce(0) { $0 + $1.routes.count }
    precondition(compiled.clusters.count > 0 && result.diagnostics.isEmpty, "benchmark input must translate cleanly")
    translateSamples.append(seconds(translated - start))
    compileSamples.append(seconds(end - compared))
    totalSamples.append(seconds(end - start))
}
print("translate \(ingressCount) Ingresses (\(routes) routes, \(snapshot.services.count) services): \(summary(translateSamples, unit: "ms", scale: 1e3))")
print("translateTLS: \(summary(tlsSamples, unit: "ms", scale: 1e3))")
print("model comparison with the previous round: \(summary(compareSamples, unit: "ms", scale: 1e3))")
print("compile: \(summary(compileSamples, unit: "ms", scale: 1e3))")
print("compile after one new host, from the previous table: \(summary(reuseSamples, unit: "ms", scale: 1e3))")
print("translate + TLS + comparison + compile: \(summary(totalSamples, unit: "ms", scale: 1e3))")
