import RouteModel

/// The endpoint path: a table changed only in some clusters' endpoints,
/// made in time proportional to the number of clusters (a copy of the
/// cluster array), not to hosts and routes, the way Envoy's EDS updates
/// endpoints without touching routes.
extension RoutingTable {
    /// The clusters of `new` that differ from those of `old` when the two
    /// models differ in nothing else (the same hosts, routes, default
    /// cluster and policy, the same cluster names in the same order); nil
    /// when they differ in anything else. Unchanged elements compare by
    /// their bytes first (Translate's consecutive models share them), so
    /// this costs little more than one pass over the clusters.
    public static func clusterChanges(from old: RouteModel, to new: RouteModel) -> [Cluster]? {
        guard old.clusters.count == new.clusters.count, old.defaultCluster == new.defaultCluster,
              old.defaultPolicy == new.defaultPolicy
        else { return nil }
        let sameHosts = old.virtualHosts.withUnsafeBufferPointer { before in
            new.virtualHosts.withUnsafeBufferPointer { after in before.baseAddress == after.baseAddress }
        }
        guard sameHosts || old.virtualHosts == new.virtualHosts else { return nil }
        var changed: [Cluster] = []
        let ok = old.clusters.withUnsafeBufferPointer { before in
            new.clusters.withUnsafeBufferPointer { after -> Bool in
                for index in 0..<before.count {
                    if ModelDifference.identical(before.baseAddress! + index, after.baseAddress! + index) { continue }
                    guard before[index].name == after[index].name else { return false }
                    if before[index] != after[index] { changed.append(after[index]) }
                }
                return true
            }
        }
        return ok ? changed : nil
    }

    /// This table with each cluster of `replacements` that it holds (same
    /// name) swapped for the new value, in the compiled clusters and in the
    /// model alike; names it does not hold are ignored (a table built
    /// later will have them). Hosts, routes and cluster indexes stay as
    /// they are, so requests route exactly as in a table compiled from the
    /// patched model. Costs a copy of the cluster arrays plus O(log n) per
    /// replacement (O(n) once when the table keeps no patch state).
    ///
    /// `following`: for a table not yet published (`self` was built against
    /// an earlier table) that goes out after `following` instead, a table
    /// with the same cluster indexes as that earlier one (it only patched
    /// endpoints): the result keeps `self`'s map from the earlier indexes,
    /// stated against `following`, so workers still carry their round-robin
    /// counters over.
    public func replacingClusters(_ replacements: [Cluster], generation: UInt64, following: RoutingTable? = nil) -> RoutingTable {
        var compiled = clusters
        var model = self.model
        var positionByName: [String: Int]? = nil
        func compiledIndex(_ name: String) -> Int? {
            if let state = patchState {
                let found = ByteKeyTable.withUTF8(name) { state.clusterNames.lookup(tag: 0, key: $0) }
                return found >= 0 ? Int(found) : nil
            }
            if positionByName == nil {
                var byName: [String: Int] = [:]
                for cluster in clusters where byName[cluster.name] == nil { byName[cluster.name] = cluster.index }
                positionByName = byName
            }
            return positionByName?[name]
        }
        func modelIndex(_ name: String) -> Int? {
            // With patch state the names are unique, and Translate sorts
            // them; else the first of a repeated name is the one compiled.
            if patchState != nil {
                let index = model.clusters.partitionPoint { $0.name < name }
                if index < model.clusters.count, model.clusters[index].name == name { return index }
            }
            return model.clusters.firstIndex { $0.name == name }
        }
        for cluster in replacements {
            guard let index = compiledIndex(cluster.name), index < compiled.count, compiled[index].name == cluster.name,
                  let position = modelIndex(cluster.name)
            else { continue }
            compiled[index] = CompiledCluster(
                index: index, name: cluster.name, endpoints: cluster.endpoints, unavailableReason: cluster.unavailableReason,
                upstream: cluster.upstream)
            model.clusters[position] = cluster
        }
        let moved = following.flatMap { served in previousClusterIndexes.map { (served.generation, $0.indexes) } }
        return RoutingTable(patching: self, clusters: compiled, model: model, generation: generation, previousClusterIndexes: moved)
    }
}

extension Array {
    /// The first index whose element is not `isBefore` (binary search).
    fileprivate func partitionPoint(_ isBefore: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if isBefore(self[middle]) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
