import PropertyBased
import RouteModel
import Routing
import Testing

// The compiled table (hash maps, segment-boundary lookups, stack-buffer
// normalisation) against a straightforward reading of the Ingress
// specification, on random rule sets and requests.

/// A rule or request path built from a small alphabet so that random paths
/// often share segments with random rules.
private let segment = Gen<String?>.element(of: ["a", "b", "ab", "A", "", ".", "..", "%2e%2e", "%2F", "a.b"]).map { $0! }
private let path = segment.array(of: 0...4).map { "/" + $0.joined(separator: "/") }
private let ruleSegment = Gen<String?>.element(of: ["a", "b", "ab", "A"]).map { $0! }
private let rulePath = PropertyBased.zip(ruleSegment.array(of: 0...3), Gen.bool).map { segments, slash in
    "/" + segments.joined(separator: "/") + (slash && !segments.isEmpty ? "/" : "")
}
private let hostName = Gen<HostMatch?>.element(of: [
    HostMatch.exact("x.example.com"), .exact("example.com"), .wildcard(suffix: ".example.com"), .any,
]).map { $0! }
private let requestHost = Gen<String?>.element(of: [
    "x.example.com", "X.Example.COM:80", "example.com", "y.example.com", "z.y.example.com", "other.org",
]).map { $0! }

private struct RandomRule: Sendable {
    var host: HostMatch
    var path: String
    var exact: Bool
}

private let rule = PropertyBased.zip(hostName, rulePath, Gen.bool).map { RandomRule(host: $0, path: $1, exact: $2) }

/// Builds a model the way Translate would (first rule for a host/path/kind wins,
/// Prefix trailing slashes removed), with one cluster per rule.
private func model(_ rules: [RandomRule], hostDefault: Bool) -> RouteModel {
    var hosts: [HostMatch: [Route]] = [:]
    for (index, rule) in rules.enumerated() {
        var path = rule.path
        if !rule.exact { while path.count > 1, path.hasSuffix("/") { path.removeLast() } }
        let route = Route(path: path, match: rule.exact ? .exact : .prefix, cluster: "c\(index)", source: "r\(index)")
        if hosts[rule.host, default: []].contains(where: { $0.path == route.path && $0.match == route.match }) { continue }
        hosts[rule.host, default: []].append(route)
    }
    let virtualHosts = hosts.keys.sorted().map {
        VirtualHost(host: $0, routes: hosts[$0]!, defaultCluster: hostDefault ? "default-\($0)" : nil)
    }
    let clusters = rules.indices.map { Cluster(name: "c\($0)", endpoints: []) }
    return RouteModel(virtualHosts: virtualHosts, clusters: clusters, defaultCluster: "global")
}

/// RFC 3986 §5.2.4 on strings, `%2e` read as a dot.
private func referenceNormalize(_ path: String) -> String {
    var input = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
    var output: [String] = []
    func dots(_ s: String) -> Int? {
        let t = s.lowercased().replacingOccurrences(of: "%2e", with: ".")
        return t == "." ? 1 : t == ".." ? 2 : nil
    }
    var trailingSlash = false
    while !input.isEmpty {
        let s = input.removeFirst()
        switch dots(s) {
        case 1: trailingSlash = input.isEmpty
        case 2:
            if !output.isEmpty { output.removeLast() }
            trailingSlash = input.isEmpty
        default:
            output.append(s)
            trailingSlash = false
        }
    }
    return "/" + output.joined(separator: "/") + (trailingSlash && !output.isEmpty ? "/" : "")
}

/// The specification, read literally.
private func referenceRoute(_ model: RouteModel, host: String, path: String) -> String? {
    var name = host.lowercased()
    if let colon = name.firstIndex(of: ":") { name = String(name[..<colon]) }
    let vhost = model.virtualHosts.first { $0.host == .exact(name) }
        ?? model.virtualHosts.first { vhost in
            guard case let .wildcard(suffix) = vhost.host, let dot = name.firstIndex(of: ".") else { return false }
            return name[dot...] == suffix && dot != name.startIndex
        }
        ?? model.virtualHosts.first { $0.host == .any }
    guard let vhost else { return model.defaultCluster }
    let path = referenceNormalize(path)
    if let exact = vhost.routes.first(where: { $0.match == .exact && $0.path == path }) { return exact.cluster }
    let pathSegments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
    var best: Route?
    for route in vhost.routes where route.match == .prefix {
        let ruleSegments = route.path.split(separator: "/")
        guard ruleSegments.count <= pathSegments.count,
              zip(ruleSegments, pathSegments).allSatisfy({ $0 == $1 })
        else { continue }
        if best == nil || route.path.count > best!.path.count { best = route }
    }
    return best?.cluster ?? vhost.defaultCluster ?? model.defaultCluster
}

@Suite struct CompiledMatcherProperties {
    @Test func compiledTableAgreesWithTheSpecificationOnRandomRulesAndRequests() async {
        await propertyCheck(
            count: 400, input: rule.array(of: 0...12), Gen.bool, PropertyBased.zip(requestHost, path).array(of: 1...8)
        ) { rules, hostDefault, requests in
            let model = model(rules, hostDefault: hostDefault)
            let table = RoutingTable(model: model, generation: 1)
            for (host, path) in requests {
                var got: String? = nil
                if case let .cluster(cluster) = table.route(host: host, path: path) { got = cluster.name }
                #expect(got == referenceRoute(model, host: host, path: path), "\(host) \(path)")
            }
        }
    }

    @Test func normalisationAgreesWithTheRFCAlgorithm() async {
        await propertyCheck(count: 1000, input: path) { path in
            #expect(PathNormalization.normalize(path) == referenceNormalize(path), "\(path)")
        }
    }
}

@Suite struct PathRewriting {
    private let table = RoutingTable(
        model: RouteModel(
            virtualHosts: [VirtualHost(host: .any, routes: [
                Route(path: "/app/(.*)", match: .regex, cluster: "app", source: "t", rewriteTarget: "/v2/$1"),
                Route(path: "/plain", match: .prefix, cluster: "plain", source: "t"),
            ])],
            clusters: [Cluster(name: "app", endpoints: []), Cluster(name: "plain", endpoints: [])]),
        generation: 1)

    private func route(_ path: String, capacity: Int) -> PathRewrite {
        var host = "h"
        var path = path
        var buffer = [UInt8](repeating: 0, count: capacity)
        return host.withUTF8 { h in
            path.withUTF8 { p in
                buffer.withUnsafeMutableBytes { table.route(host: UnsafeRawBufferPointer(h), path: UnsafeRawBufferPointer(p), rewriteInto: $0).rewrite }
            }
        }
    }

    @Test func rewriteIsWrittenIntoTheCallersBuffer() {
        #expect(route("/app/x/y", capacity: 64) == .rewritten(count: "/v2/x/y".utf8.count))
    }

    @Test func rewriteThatDoesNotFitIsReportedNotTruncated() {
        #expect(route("/app/x/y", capacity: 4) == .tooLong)
    }

    @Test func routeWithoutRewriteLeavesThePathAlone() {
        #expect(route("/plain/x", capacity: 64) == .none)
    }
}
