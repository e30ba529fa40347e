import RouteModel
import Routing
import Testing

/// A model with one cluster per name used; endpoints do not matter for lookup.
private func table(_ hosts: [VirtualHost], defaultCluster: String? = nil) -> RoutingTable {
    var names = Set(hosts.flatMap { $0.routes.map(\.cluster) + [$0.defaultCluster].compactMap { $0 } })
    if let defaultCluster { names.insert(defaultCluster) }
    let clusters = names.sorted().map {
        Cluster(name: $0, endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 8080)])
    }
    return RoutingTable(model: RouteModel(virtualHosts: hosts, clusters: clusters, defaultCluster: defaultCluster), generation: 1)
}

private func prefix(_ path: String, _ cluster: String) -> Route {
    Route(path: path, match: .prefix, cluster: cluster, source: "default/test")
}

private func exact(_ path: String, _ cluster: String) -> Route {
    Route(path: path, match: .exact, cluster: cluster, source: "default/test")
}

extension RoutingTable {
    /// The cluster name chosen for a request, or nil for 404.
    fileprivate func clusterName(_ host: String, _ path: String) -> String? {
        switch route(host: host, path: path) {
        case let .cluster(cluster): return cluster.name
        case .notFound: return nil
        }
    }
}

@Suite struct HostSelection {
    let routes = table([
        VirtualHost(host: .exact("example.com"), routes: [prefix("/", "exact")]),
        VirtualHost(host: .wildcard(suffix: ".example.com"), routes: [prefix("/", "wildcard")]),
        VirtualHost(host: .any, routes: [prefix("/", "any")]),
    ])

    @Test func exactHostIsMatchedCaseInsensitively() {
        #expect(routes.clusterName("Example.COM", "/") == "exact")
    }

    @Test func portInHostHeaderIsIgnored() {
        #expect(routes.clusterName("example.com:8443", "/x") == "exact")
        #expect(routes.clusterName("EXAMPLE.com:80", "/") == "exact")
    }

    @Test func trailingDotOfFullyQualifiedHostIsIgnored() {
        #expect(routes.clusterName("example.com.", "/") == "exact")
    }

    @Test func wildcardMatchesExactlyOneLabel() {
        #expect(routes.clusterName("a.example.com", "/") == "wildcard")
        #expect(routes.clusterName("A.Example.Com:443", "/") == "wildcard")
        #expect(routes.clusterName("b.a.example.com", "/") == "any")
    }

    @Test func wildcardDoesNotMatchItsBareSuffix() {
        #expect(routes.clusterName("xexample.com", "/") == "any")
        #expect(routes.clusterName(".example.com", "/") == "any")
    }

    @Test func unknownHostUsesRulesWithoutHost() {
        #expect(routes.clusterName("other.org", "/") == "any")
        #expect(routes.clusterName("", "/") == "any")
        #expect(routes.clusterName("[::1]:8080", "/") == "any")
    }

    @Test func unknownHostWithoutAnyHostIsNotFound() {
        let routes = table([VirtualHost(host: .exact("example.com"), routes: [prefix("/", "a")])])
        #expect(routes.clusterName("other.org", "/") == nil)
    }

    @Test func exactHostBeatsWildcardForTheSameName() {
        let routes = table([
            VirtualHost(host: .exact("api.example.com"), routes: [prefix("/", "api")]),
            VirtualHost(host: .wildcard(suffix: ".example.com"), routes: [prefix("/", "wildcard")]),
        ])
        #expect(routes.clusterName("api.example.com", "/") == "api")
        #expect(routes.clusterName("web.example.com", "/") == "wildcard")
    }

    @Test func ipv6LiteralHostKeepsItsBrackets() {
        let routes = table([VirtualHost(host: .exact("[fd00::1]"), routes: [prefix("/", "v6")])])
        #expect(routes.clusterName("[fd00::1]:8080", "/") == "v6")
    }
}

@Suite struct PathSelection {
    let routes = table([
        VirtualHost(host: .exact("example.com"), routes: [
            prefix("/", "root"),
            prefix("/foo", "foo"),
            prefix("/foo/bar", "foobar"),
            exact("/foo", "foo-exact"),
            exact("/exact-only", "exact-only"),
        ]),
    ])

    @Test func exactPathBeatsPrefixOfTheSamePath() {
        #expect(routes.clusterName("example.com", "/foo") == "foo-exact")
    }

    @Test func prefixMatchesWholeSegmentsOnly() {
        #expect(routes.clusterName("example.com", "/foo/") == "foo")
        #expect(routes.clusterName("example.com", "/foo/baz") == "foo")
        #expect(routes.clusterName("example.com", "/foobar") == "root")
    }

    @Test func longestMatchingPrefixWins() {
        #expect(routes.clusterName("example.com", "/foo/bar") == "foobar")
        #expect(routes.clusterName("example.com", "/foo/bar/baz") == "foobar")
        #expect(routes.clusterName("example.com", "/foo/barn") == "foo")
    }

    @Test func rootPrefixMatchesEverything() {
        #expect(routes.clusterName("example.com", "/") == "root")
        #expect(routes.clusterName("example.com", "/anything/else") == "root")
    }

    @Test func exactPathDoesNotMatchLongerPaths() {
        #expect(routes.clusterName("example.com", "/exact-only") == "exact-only")
        #expect(routes.clusterName("example.com", "/exact-only/") == "root")
        #expect(routes.clusterName("example.com", "/exact-only/x") == "root")
    }

    @Test func pathsAreCaseSensitive() {
        #expect(routes.clusterName("example.com", "/FOO") == "root")
    }

    @Test func queryStringIsIgnoredByTheStringConvenience() {
        #expect(routes.clusterName("example.com", "/foo?x=1") == "foo-exact")
    }

    @Test func rawBytesLookupAgreesWithStrings() {
        let host = Array("EXAMPLE.com:443".utf8)
        let path = Array("/foo/bar/x".utf8)
        let decision = host.withUnsafeBytes { h in path.withUnsafeBytes { p in routes.route(host: h, path: p) } }
        guard case let .cluster(cluster) = decision else {
            Issue.record("expected a cluster")
            return
        }
        #expect(cluster.name == "foobar")
    }

    @Test func manyPrefixesStillPickTheLongest() {
        let many = (0..<500).map { prefix("/p\($0)", "c\($0)") } + [prefix("/p7/deep/er", "deep")]
        let routes = table([VirtualHost(host: .any, routes: many)])
        #expect(routes.clusterName("h", "/p499/x") == "c499")
        #expect(routes.clusterName("h", "/p7/deep/er/y") == "deep")
        #expect(routes.clusterName("h", "/p7/deep") == "c7")
        #expect(routes.clusterName("h", "/p5000") == nil)
    }
}

@Suite struct DefaultBackends {
    @Test func chosenHostDoesNotFallThroughToRulesWithoutHost() {
        let routes = table([
            VirtualHost(host: .exact("example.com"), routes: [prefix("/app", "app")]),
            VirtualHost(host: .any, routes: [prefix("/", "any")]),
        ])
        #expect(routes.clusterName("example.com", "/other") == nil)
    }

    @Test func hostDefaultAnswersUnmatchedPaths() {
        let routes = table([
            VirtualHost(host: .exact("example.com"), routes: [prefix("/app", "app")], defaultCluster: "host-default"),
        ], defaultCluster: "global")
        #expect(routes.clusterName("example.com", "/other") == "host-default")
    }

    @Test func globalDefaultAnswersWhenHostHasNoDefault() {
        let routes = table([
            VirtualHost(host: .exact("example.com"), routes: [prefix("/app", "app")]),
        ], defaultCluster: "global")
        #expect(routes.clusterName("example.com", "/other") == "global")
        #expect(routes.clusterName("unknown.org", "/") == "global")
    }

    @Test func undefinedClusterAnswers503InsteadOfCrashing() {
        let model = RouteModel(virtualHosts: [VirtualHost(host: .any, routes: [prefix("/", "ghost")])])
        let routes = RoutingTable(model: model, generation: 7)
        guard case let .cluster(cluster) = routes.route(host: "x", path: "/") else {
            Issue.record("expected the undefined cluster")
            return
        }
        #expect(cluster.endpoints.isEmpty)
        #expect(cluster.unavailableReason != nil)
        #expect(routes.generation == 7)
    }

    @Test func clusterIndexesMatchPositions() {
        let routes = table([VirtualHost(host: .any, routes: [prefix("/a", "a"), prefix("/b", "b")])])
        for (position, cluster) in routes.clusters.enumerated() {
            #expect(cluster.index == position)
        }
    }

    @Test func aRepeatedClusterNameKeepsTheFirstDefinition() {
        let one = Endpoint(address: .v4(10, 0, 0, 1), port: 80)
        let two = Endpoint(address: .v4(10, 0, 0, 2), port: 80)
        let model = RouteModel(
            virtualHosts: [VirtualHost(host: .any, routes: [prefix("/a", "a"), prefix("/b", "b")])],
            clusters: [Cluster(name: "a", endpoints: [one]), Cluster(name: "a", endpoints: [two]), Cluster(name: "b", endpoints: [two])])
        let routes = RoutingTable(model: model, generation: 1)
        #expect(routes.clusters.map(\.name) == ["a", "b"])
        #expect(routes.clusters.map(\.index) == [0, 1])
        guard case let .cluster(a) = routes.route(host: "x", path: "/a"), case let .cluster(b) = routes.route(host: "x", path: "/b") else {
            Issue.record("both paths route")
            return
        }
        #expect(a.endpoints == [one] && b.name == "b")
    }

    @Test func unchangedClustersOfThePreviousTableAreShared() {
        let endpoint = Endpoint(address: .v4(10, 0, 0, 1), port: 80)
        func model(_ bEndpoints: [Endpoint]) -> RouteModel {
            RouteModel(
                virtualHosts: [VirtualHost(host: .any, routes: [prefix("/a", "a"), prefix("/b", "b"), prefix("/c", "c")])],
                clusters: [Cluster(name: "a", endpoints: [endpoint]), Cluster(name: "b", endpoints: bEndpoints)])
        }
        let first = RoutingTable(model: model([endpoint]), generation: 1)
        let second = RoutingTable(model: model([]), generation: 2, reusing: first)
        #expect(second.clusters[0] === first.clusters[0])
        #expect(second.clusters[1] !== first.clusters[1] && second.clusters[1].endpoints.isEmpty)
        // "c" is not defined: a 503 cluster either way, shared too.
        #expect(second.clusters[2] === first.clusters[2])
        #expect(second.clusters.enumerated().allSatisfy { $0.offset == $0.element.index })
    }
}

@Suite struct RoundRobinPicking {
    let cluster = CompiledCluster(index: 0, name: "c", endpoints: [
        Endpoint(address: .v4(10, 0, 0, 1), port: 80),
        Endpoint(address: .v4(10, 0, 0, 2), port: 80),
        Endpoint(address: .v4(10, 0, 0, 3), port: 80),
    ], unavailableReason: nil)

    @Test func cyclesThroughEveryEndpointInOrder() {
        var counter: UInt32 = 0
        let picked = (0..<6).compactMap { _ in RoundRobin.pick(cluster, counter: &counter, excluding: nil) }
        #expect(picked == cluster.endpoints + cluster.endpoints)
    }

    @Test func skipsTheExcludedEndpointForARetry() {
        var counter: UInt32 = 1
        let picked = RoundRobin.pick(cluster, counter: &counter, excluding: cluster.endpoints[1])
        #expect(picked == cluster.endpoints[2])
    }

    @Test func returnsNothingWhenTheOnlyEndpointIsExcludedOrThereIsNone() {
        let single = CompiledCluster(index: 0, name: "s", endpoints: [cluster.endpoints[0]], unavailableReason: nil)
        var counter: UInt32 = 0
        #expect(RoundRobin.pick(single, counter: &counter, excluding: cluster.endpoints[0]) == nil)
        let empty = CompiledCluster(index: 1, name: "e", endpoints: [], unavailableReason: "no endpoints")
        #expect(RoundRobin.pick(empty, counter: &counter, excluding: nil) == nil)
    }

    @Test func counterWrapsWithoutTrapping() {
        var counter = UInt32.max
        #expect(RoundRobin.pick(cluster, counter: &counter, excluding: nil) != nil)
        #expect(counter == 0)
    }
}

@Suite struct AddressText {
    @Test func parsesAndPrintsIPv4() {
        #expect(IPAddress(parsing: "10.1.2.3") == .v4(10, 1, 2, 3))
        #expect(IPAddress(parsing: "10.1.2.3")?.description == "10.1.2.3")
    }

    @Test func rejectsNamesAndMalformedIPv4() {
        for text in ["web.default.svc", "10.1.2", "10.1.2.3.4", "256.1.1.1", "01.2.3.4", "", "1..2.3", "10.1.2.3 "] {
            #expect(IPAddress(parsing: text) == nil, "\(text) must not parse")
        }
    }

    @Test func parsesIPv6FormsToTheSameBytes() {
        let loopback = IPAddress.v6([UInt8](repeating: 0, count: 15) + [1])
        #expect(IPAddress(parsing: "::1") == loopback)
        #expect(IPAddress(parsing: "0:0:0:0:0:0:0:1") == loopback)
        #expect(IPAddress(parsing: "::") == .v6([UInt8](repeating: 0, count: 16)))
        #expect(IPAddress(parsing: "::ffff:10.0.0.7")?.bytes == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7])
        #expect(IPAddress(parsing: "FD00::7")?.description == "fd00::7")
    }

    @Test func printsIPv6InCanonicalForm() {
        #expect(IPAddress(parsing: "2001:db8:0:0:1:0:0:1")?.description == "2001:db8::1:0:0:1")
        #expect(IPAddress(parsing: "1::")?.description == "1::")
        #expect(IPAddress(parsing: "1:0:2:3:4:5:6:7")?.description == "1:0:2:3:4:5:6:7")
        #expect(Endpoint(address: .v6([UInt8](repeating: 0, count: 15) + [1]), port: 80).description == "[::1]:80")
    }

    @Test func rejectsMalformedIPv6() {
        for text in [":1", "1:", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "fe80::1%eth0", "::g", ":::1", "1:2:3:4:5:6:7::8:9"] {
            #expect(IPAddress(parsing: text) == nil, "\(text) must not parse")
        }
    }
}

@Suite struct ClusterIndexContinuity {
    /// Per-worker state (round-robin counters) is keyed by cluster index: from
    /// one table to the next, every surviving cluster either keeps its index
    /// or `previousClusterIndexes` says where it was. Clusters are added
    /// before and after the watched one in name order, so tables compiled
    /// afresh move it.
    @Test func everySurvivingClusterCanBeFollowedToItsNextIndex() throws {
        let endpoint = Endpoint(address: .v4(10, 0, 0, 1), port: 80)
        func model(_ extras: Int) -> RouteModel {
            var names = ["m-pair"]
            for extra in 0..<extras { names.append(extra % 2 == 0 ? "a-\(extra)" : "z-\(extra)") }
            names.sort()
            // Every host renamed at 20 and 40: more changes than a patch takes, so a table compiled afresh.
            let domain = (extras / 20) % 2 == 0 ? ".example.com" : ".example.org"
            let hosts = names.map { VirtualHost(host: .exact($0 + domain), routes: [prefix("/", $0)]) }
            return RouteModel(virtualHosts: hosts, clusters: names.map { Cluster(name: $0, endpoints: [endpoint]) })
        }
        var previous = RoutingTable(model: model(0), generation: 1)
        var sawFresh = false
        var sawPatched = false
        for extras in 1...40 {
            let next = RoutingTable(model: model(extras), generation: UInt64(extras + 1), reusing: previous)
            for cluster in previous.clusters where next.clusters.contains(where: { $0.name == cluster.name }) {
                let now = try #require(next.clusters.first { $0.name == cluster.name })
                if let moved = next.previousClusterIndexes {
                    sawFresh = true
                    #expect(moved.generation == previous.generation)
                    #expect(moved.indexes[now.index] == Int32(cluster.index), "\(cluster.name) after \(extras) extras")
                } else {
                    sawPatched = true
                    #expect(now.index == cluster.index, "\(cluster.name) after \(extras) extras")
                }
            }
            previous = next
        }
        #expect(sawFresh && sawPatched)
    }
}
