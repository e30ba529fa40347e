import RouteModel

/// A cluster as the data path sees it: shared, immutable, indexed.
///
/// Shared by every worker; per-worker state (round-robin counters, pools)
/// lives with the worker, keyed by `index`.
public final class CompiledCluster: Sendable {
    /// Position in `RoutingTable.clusters`.
    public let index: Int
    /// `namespace/service:port`, as in the model.
    public let name: String
    /// Ready endpoints, sorted; empty answers 503.
    public let endpoints: [Endpoint]
    /// Why the cluster cannot serve (for the 503 and the logs), when known.
    public let unavailableReason: String?
    /// How to talk to the endpoints (HTTP, HTTPS, ...).
    public let upstream: UpstreamSettings

    /// Creates a compiled cluster.
    public init(index: Int, name: String, endpoints: [Endpoint], unavailableReason: String?, upstream: UpstreamSettings = .http) {
        self.index = index
        self.name = name
        self.endpoints = endpoints
        self.unavailableReason = unavailableReason
        self.upstream = upstream
    }
}

/// The outcome of a routing lookup.
public enum RouteDecision: Sendable {
    /// Send the request to this cluster (which may have no endpoints: 503).
    case cluster(CompiledCluster)
    /// No host, rule or default backend matched: 404.
    case notFound
}
