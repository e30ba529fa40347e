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
}
