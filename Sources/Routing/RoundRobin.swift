import RouteModel

/// Round-robin over a cluster's endpoints.
///
/// Tables are shared by all workers; counters are not: each worker keeps its
/// own `UInt32` per cluster (indexed by `CompiledCluster.index`), so picking
/// needs no atomics. Workers starting at the same counter value walk the
/// endpoints in the same order, which evens out over many requests.
public enum RoundRobin {
    /// The next endpoint after `counter`, skipping `excluding` (the endpoint a
    /// failed attempt used, for a retry). nil when the cluster has no endpoint,
    /// or its only endpoint is `excluding`.
    @inlinable
    public static func pick(_ cluster: CompiledCluster, counter: inout UInt32, excluding: Endpoint?) -> Endpoint? {
        let endpoints = cluster.endpoints
        let count = endpoints.count
        guard count > 0 else { return nil }
        let start = Int(counter % UInt32(truncatingIfNeeded: count))
        counter &+= 1
        let candidate = endpoints[start]
        if let excluding, candidate == excluding {
            guard count > 1 else { return nil }
            return endpoints[start + 1 == count ? 0 : start + 1]
        }
        return candidate
    }
}
