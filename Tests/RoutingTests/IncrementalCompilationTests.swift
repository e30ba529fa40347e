@testable import Routing
import RouteModel
import SeededRandom
import Testing

/// Models as Translate makes them (hosts and clusters sorted and unique,
/// every cluster named is defined), now and then one that is not.
struct ModelGenerator {
    var random: SplitMix64

    static let hosts: [HostMatch] = [
        .exact("a.example.com"), .exact("b.example.com"), .exact("c.org"), .exact("d.org"), .exact("e.org"),
        .wildcard(suffix: ".example.com"), .wildcard(suffix: ".b.example.com"), .any,
    ]
    static let clusterNames = ["c0", "c1", "c2", "c3", "c4", "c5"]

    mutating func route() -> Route {
        switch random.next() % 10 {
        case 0:
            return Route(
                path: random.pick(["/r/([0-9]+)", "/(a|b)", "/api/v[0-9]"]), match: .regex, cluster: random.pick(Self.clusterNames),
                source: "ns/r", rewriteTarget: random.pick([nil, "/items/$1", "/x"]))
        case 1...4:
            return Route(path: random.pick(["/", "/a", "/a/b", "/ab", "/api"]), match: .exact, cluster: random.pick(Self.clusterNames), source: "ns/e")
        default:
            return Route(
                path: random.pick(["/", "/a", "/a/", "/a/b", "/b", "/api/v1"]), match: .prefix, cluster: random.pick(Self.clusterNames),
                source: "ns/p", rewriteTarget: random.chance(10) ? "/p" : nil)
        }
    }

    mutating func virtualHost(_ host: HostMatch) -> VirtualHost {
        var routes: [Route] = []
        for _ in 0..<random.upTo(4) {
            let candidate = route()
            // One rule per (path, match), as Translate keeps the oldest.
            if !routes.contains(where: { $0.path == candidate.path && $0.match == candidate.match }) { routes.append(candidate) }
        }
        return VirtualHost(host: host, routes: routes, defaultCluster: random.chance(30) ? random.pick(Self.clusterNames) : nil)
    }

    mutating func cluster(_ name: String) -> Cluster {
        let endpoints = (0..<random.upTo(3)).map { Endpoint(address: .v4(10, 0, 0, UInt8($0 + 1)), port: random.pick([80, 8080])) }
        return Cluster(
            name: name, endpoints: endpoints, unavailableReason: endpoints.isEmpty ? "no endpoints" : nil,
            upstream: random.chance(20) ? UpstreamSettings(wireProtocol: .h2c) : .http)
    }

    mutating func model() -> RouteModel {
        let hosts = Self.hosts.filter { _ in random.chance(60) }
        let virtualHosts = hosts.sorted().map { virtualHost($0) }
        var names = Set(virtualHosts.flatMap { $0.routes.map(\.cluster) + [$0.defaultCluster].compactMap { $0 } })
        let defaultCluster = random.chance(30) ? random.pick(Self.clusterNames) : nil
        if let defaultCluster { names.insert(defaultCluster) }
        return RouteModel(virtualHosts: virtualHosts, clusters: names.sorted().map { cluster($0) }, defaultCluster: defaultCluster)
    }

    /// A few changes to `model`, as one controller round makes them.
    mutating func change(_ model: RouteModel) -> RouteModel {
        var model = model
        for _ in 0...random.upTo(2) {
            switch random.next() % 10 {
            case 0...2:
                // A host comes, goes or changes.
                let host = random.pick(Self.hosts)
                if let index = model.virtualHosts.firstIndex(where: { $0.host == host }) {
                    if random.chance(40) { model.virtualHosts.remove(at: index) } else { model.virtualHosts[index] = virtualHost(host) }
                } else {
                    model.virtualHosts.append(virtualHost(host))
                    model.virtualHosts.sort { $0.host < $1.host }
                }
            case 3...5:
                // A cluster's endpoints change.
                if !model.clusters.isEmpty {
                    let index = random.upTo(model.clusters.count - 1)
                    model.clusters[index] = cluster(model.clusters[index].name)
                }
            case 6:
                model.defaultCluster = random.chance(50) ? random.pick(Self.clusterNames) : nil
            case 7:
                // Irregular: a cluster named by nothing, or a repeated name.
                let name = random.pick(Self.clusterNames + ["extra"])
                model.clusters.append(cluster(name))
                if random.chance(50) { model.clusters.sort { $0.name < $1.name } }
            case 8:
                // Irregular: a host written twice, or in another case.
                if random.chance(50), let first = model.virtualHosts.first {
                    model.virtualHosts.append(first)
                } else {
                    model.virtualHosts.append(virtualHost(.exact("A.example.com")))
                }
            default:
                model = self.model()
            }
        }
        // Translate defines exactly the clusters named; keep most models that way.
        if random.chance(85) {
            var names = Set(model.virtualHosts.flatMap { $0.routes.map(\.cluster) + [$0.defaultCluster].compactMap { $0 } })
            if let name = model.defaultCluster { names.insert(name) }
            let existing = Dictionary(model.clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            model.clusters = names.sorted().map { existing[$0] ?? cluster($0) }
            var seen = Set<HostMatch>()
            model.virtualHosts = model.virtualHosts.filter { seen.insert($0.host).inserted && $0.host != .exact("A.example.com") }
        }
        return model
    }
}

/// What a request gets, comparable across tables.
struct Answer: Equatable, CustomStringConvertible {
    var cluster: String?
    var endpoints: [Endpoint]
    var reason: String?
    var upstream: UpstreamSettings?
    var rewritten: String?
    var explained: String

    init(_ table: RoutingTable, host: String, path: String) {
        let (decision, rewritten) = table.routeWithRewrite(host: host, path: path)
        switch decision {
        case let .cluster(cluster):
            self.cluster = cluster.name
            endpoints = cluster.endpoints
            reason = cluster.unavailableReason
            upstream = cluster.upstream
        case .notFound:
            cluster = nil
            endpoints = []
        }
        self.rewritten = rewritten
        let explanation = table.explain(host: host, path: path)
        explained = "\(String(describing: explanation.host)) \(explanation.outcome) "
            + explanation.candidates.map { "\($0.route.path) \($0.route.match) \($0.verdict)" }.joined(separator: ", ")
    }

    var description: String { "\(cluster ?? "404") \(endpoints) \(rewritten ?? "") [\(explained)]" }
}

@Suite struct IncrementalCompilation {
    static let requestHosts = ["a.example.com", "A.Example.COM:8080", "b.example.com", "x.example.com", "y.b.example.com", "c.org", "d.org", "none.net"]
    static let requestPaths = ["/", "/a", "/a/", "/a/b", "/ab", "/r/12", "/x/../a", "/b/c", "/api/v1/x", "/api/v2"]

    @Test(arguments: 0..<150)
    func aTableMadeFromThePreviousOneRoutesLikeOneCompiledFromScratch(seed: Int) {
        var generator = ModelGenerator(random: SplitMix64(seed: UInt64(seed) &* 6151))
        var model = generator.model()
        var table = RoutingTable(model: model, generation: 1)
        var patched = 0
        for step in 0..<30 {
            model = generator.change(model)
            let next = RoutingTable(model: model, generation: UInt64(step + 2), reusing: table)
            let fresh = RoutingTable(model: model, generation: UInt64(step + 2))
            if next.isPatched { patched += 1 }
            #expect(next.clusters.enumerated().allSatisfy { $0.offset == $0.element.index }, "seed \(seed) step \(step): cluster indexes")
            for host in Self.requestHosts {
                for path in Self.requestPaths {
                    let got = Answer(next, host: host, path: path)
                    let want = Answer(fresh, host: host, path: path)
                    guard got == want else {
                        Issue.record("seed \(seed) step \(step) \(host)\(path): \(got) != \(want); patched: \(next.isPatched); model: \(model)")
                        return
                    }
                }
            }
            table = next
        }
        #expect(patched > 0, "seed \(seed): no table was made from the previous one")
    }

    @Test func aChangedHostIsPatchedAndTheRestShared() {
        let hosts = (0..<100).map { VirtualHost(host: .exact("h\($0).example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c\($0)", source: "ns/i")]) }
        let clusters = (0..<100).map { Cluster(name: "c\($0)", endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 80)]) }
        let first = RoutingTable(model: RouteModel(virtualHosts: hosts, clusters: clusters.sorted { $0.name < $1.name }), generation: 1)
        var more = hosts
        more.append(VirtualHost(host: .exact("zz.example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c5", source: "ns/new")]))
        let second = RoutingTable(model: RouteModel(virtualHosts: more, clusters: clusters.sorted { $0.name < $1.name }), generation: 2, reusing: first)
        #expect(second.isPatched)
        #expect(second.clusters.count == first.clusters.count && zip(second.clusters, first.clusters).allSatisfy { $0 === $1 })
        guard case let .cluster(cluster) = second.route(host: "zz.example.com", path: "/x") else {
            Issue.record("the new host routes")
            return
        }
        #expect(cluster.name == "c5")
    }
}
