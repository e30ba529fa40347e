@testable import Routing
import RouteModel
import SeededRandom
import Testing

/// The endpoint path's table patch: a table with some clusters replaced
/// routes every request as a table compiled from scratch from the patched model.
@Suite struct EndpointPatch {
    @Test(arguments: 0..<150)
    func aTableWithClustersReplacedRoutesLikeOneCompiledFromScratch(seed: Int) {
        var generator = ModelGenerator(random: SplitMix64(seed: UInt64(seed) &* 7919 &+ 3))
        var model = generator.model()
        var table = RoutingTable(model: model, generation: 1)
        for step in 0..<20 {
            if generator.random.chance(30) {
                // Now and then a routes round in between (patched or compiled afresh, regular or not).
                model = generator.change(model)
                table = RoutingTable(model: model, generation: table.generation + 1, reusing: table)
            }
            // Some clusters get new endpoints; a name the table lacks is ignored.
            var replacements: [Cluster] = []
            for _ in 0...generator.random.upTo(2) {
                let name = generator.random.pick(ModelGenerator.clusterNames + ["not-in-the-table"])
                replacements.append(generator.cluster(name))
            }
            let patched = table.replacingClusters(replacements, generation: table.generation + 1)
            var expected = table.model
            for replacement in replacements {
                if let index = expected.clusters.firstIndex(where: { $0.name == replacement.name }) { expected.clusters[index] = replacement }
            }
            #expect(patched.model == expected, "seed \(seed) step \(step): the model")
            #expect(patched.clusters.enumerated().allSatisfy { $0.offset == $0.element.index }, "seed \(seed) step \(step): cluster indexes")
            let fresh = RoutingTable(model: expected, generation: patched.generation)
            for host in IncrementalCompilation.requestHosts {
                for path in IncrementalCompilation.requestPaths {
                    let got = Answer(patched, host: host, path: path)
                    let want = Answer(fresh, host: host, path: path)
                    guard got == want else {
                        Issue.record("seed \(seed) step \(step) \(host)\(path): \(got) != \(want); model: \(expected)")
                        return
                    }
                }
            }
            model = expected
            table = patched
        }
    }

    @Test func clusterChangesFindsOnlyChangedEndpointsAndRefusesAnyOtherDifference() {
        let hosts = (0..<50).map { VirtualHost(host: .exact("h\($0).example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c\($0)", source: "ns/i")]) }
        let clusters = (0..<50).map { Cluster(name: "c\($0)", endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 80)]) }.sorted { $0.name < $1.name }
        let old = RouteModel(virtualHosts: hosts, clusters: clusters)
        var new = old
        new.clusters[7].endpoints = [Endpoint(address: .v4(10, 0, 0, 2), port: 80)]
        #expect(RoutingTable.clusterChanges(from: old, to: new) == [new.clusters[7]])
        #expect(RoutingTable.clusterChanges(from: old, to: old) == [])
        var moved = new
        moved.virtualHosts[3].routes[0].cluster = "c4"
        #expect(RoutingTable.clusterChanges(from: old, to: moved) == nil, "a route changed")
        var renamed = new
        renamed.clusters[7].name = "c7x"
        #expect(RoutingTable.clusterChanges(from: old, to: renamed) == nil, "a cluster was replaced by another")
        var fewer = old
        fewer.clusters.removeLast()
        #expect(RoutingTable.clusterChanges(from: old, to: fewer) == nil)
        var defaulted = old
        defaulted.defaultCluster = "c1"
        #expect(RoutingTable.clusterChanges(from: old, to: defaulted) == nil)
    }

    @Test func aPatchedTableSharesEverythingButTheChangedCluster() {
        let hosts = (0..<100).map { VirtualHost(host: .exact("h\($0).example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c\($0)", source: "ns/i")]) }
        let clusters = (0..<100).map { Cluster(name: "c\($0)", endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 80)]) }.sorted { $0.name < $1.name }
        let table = RoutingTable(model: RouteModel(virtualHosts: hosts, clusters: clusters), generation: 1)
        let moved = Cluster(name: "c42", endpoints: [Endpoint(address: .v4(10, 0, 0, 9), port: 8080)])
        let patched = table.replacingClusters([moved], generation: 2)
        guard case let .cluster(cluster) = patched.route(host: "h42.example.com", path: "/x") else {
            Issue.record("h42 routes")
            return
        }
        #expect(cluster.endpoints == moved.endpoints)
        let changed = zip(table.clusters, patched.clusters).filter { $0 !== $1 }
        #expect(changed.count == 1 && changed.first?.1.name == "c42")
        #expect(patched.generation == 2 && patched.previousClusterIndexes == nil)
    }

    /// A routes round built against table 1 while the endpoint path
    /// published a patch of it (table 2): the round's table goes out after
    /// table 2, so its map from the old cluster indexes must name table 2,
    /// or workers would not carry their round-robin counters over.
    @Test func aRoundBuiltBeforeAnEndpointPatchStatesItsIndexMapAgainstThePatch() {
        let hosts = (0..<10).map { VirtualHost(host: .exact("h\($0).example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c\($0)", source: "ns/i")]) }
        let clusters = (0..<10).map { Cluster(name: "c\($0)", endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 80)]) }.sorted { $0.name < $1.name }
        let first = RoutingTable(model: RouteModel(virtualHosts: hosts, clusters: clusters), generation: 1)
        // The round: more new clusters than a patch takes, sorted first, so
        // the table is compiled afresh and every index moves.
        var grown = first.model
        grown.clusters.insert(
            contentsOf: (0..<20).map { Cluster(name: "a-new-\($0)", endpoints: [Endpoint(address: .v4(10, 0, 0, 2), port: 80)]) }
                .sorted { $0.name < $1.name },
            at: 0)
        let built = RoutingTable(model: grown, generation: 3, reusing: first)
        #expect(built.previousClusterIndexes?.generation == 1)
        // Meanwhile the endpoint path published a patch of table 1.
        let patch = first.replacingClusters([Cluster(name: "c4", endpoints: [Endpoint(address: .v4(10, 0, 0, 9), port: 80)])], generation: 2)
        let published = built.replacingClusters([], generation: 4, following: patch)
        #expect(published.generation == 4)
        #expect(published.previousClusterIndexes?.generation == 2, "the map names the table in service")
        #expect(published.previousClusterIndexes?.indexes == built.previousClusterIndexes?.indexes, "patches do not move indexes")
        // Without a table to follow, a patch keeps no map (its indexes did not move).
        #expect(built.replacingClusters([], generation: 5).previousClusterIndexes == nil)
    }
}

/// Key tables that fill up or collect removed keys are rebuilt alone, so a
/// long run of path changes or new hosts keeps being patched (a compilation
/// of every host costs milliseconds at 10,000 hosts: the propagation tail).
@Suite struct KeyTableUpkeep {
    /// Host names in number order, so new hosts come after the others.
    static func name(_ index: Int) -> String {
        let digits = String(index)
        return "h" + String(repeating: "0", count: max(0, 5 - digits.count)) + digits + ".example.com"
    }

    static func model(hosts: Int, path: String) -> RouteModel {
        var virtualHosts = (0..<hosts).map {
            VirtualHost(host: .exact(name($0)), routes: [Route(path: "/", match: .prefix, cluster: "c", source: "ns/i")])
        }
        virtualHosts.append(VirtualHost(host: .exact("paths.example.com"), routes: [Route(path: path, match: .exact, cluster: "c", source: "ns/p")]))
        return RouteModel(virtualHosts: virtualHosts.sorted { $0.host < $1.host }, clusters: [Cluster(name: "c", endpoints: [Endpoint(address: .v4(10, 0, 0, 1), port: 80)])])
    }

    @Test func aPathChangedHundredsOfTimesIsPatchedEveryTimeAndRoutes() {
        var table = RoutingTable(model: Self.model(hosts: 200, path: "/p-0"), generation: 1)
        for step in 1...300 {
            let next = RoutingTable(model: Self.model(hosts: 200, path: "/p-\(step)"), generation: UInt64(step + 1), reusing: table)
            #expect(next.isPatched, "step \(step) compiled every host again")
            guard case .cluster = next.route(host: "paths.example.com", path: "/p-\(step)") else {
                Issue.record("step \(step): the new path is not routed")
                return
            }
            guard case .notFound = next.route(host: "paths.example.com", path: "/p-\(step - 1)") else {
                Issue.record("step \(step): the old path is still routed")
                return
            }
            table = next
        }
    }

    @Test func hostsAddedPastTheTablesRoomAreStillPatched() {
        var hosts = 100
        var table = RoutingTable(model: Self.model(hosts: hosts, path: "/"), generation: 1)
        for step in 1...40 {
            hosts += 10
            let next = RoutingTable(model: Self.model(hosts: hosts, path: "/"), generation: UInt64(step + 1), reusing: table)
            #expect(next.isPatched, "step \(step) (\(hosts) hosts) compiled every host again")
            for index in stride(from: 0, to: hosts, by: 7) {
                guard case .cluster = next.route(host: Self.name(index), path: "/") else {
                    Issue.record("step \(step): h\(index) not routed")
                    return
                }
            }
            table = next
        }
    }
}

extension KeyTableUpkeep {
    @Test func aRunOfNewHostsNextToEachOtherInNameOrderIsPatched() {
        // flood-1000 ... flood-1039 land together between flood-100 and flood-101.
        func model(_ indexes: [Int]) -> RouteModel {
            let hosts = indexes.map {
                VirtualHost(host: .exact("flood-\($0).example.com"), routes: [Route(path: "/", match: .prefix, cluster: "c", source: "ns/i")])
            }
            return RouteModel(virtualHosts: hosts.sorted { $0.host < $1.host }, clusters: [Cluster(name: "c", endpoints: [])])
        }
        let first = Array(0..<1000)
        let table = RoutingTable(model: model(first), generation: 1)
        let next = RoutingTable(model: model(first + Array(1000..<1040)), generation: 2, reusing: table)
        #expect(next.isPatched)
        guard case .cluster = next.route(host: "flood-1039.example.com", path: "/") else {
            Issue.record("flood-1039 is not routed")
            return
        }
    }
}
