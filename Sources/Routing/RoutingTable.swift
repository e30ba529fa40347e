import RegexEngine
import RouteModel

/// The compiled, immutable routing configuration: built once per model
/// (off the data path), then shared by every worker.
///
/// Lookup order for a request: the exact host, then the wildcard whose suffix
/// follows the host's first label, then the `.any` host. Once a host is
/// chosen there is no fall-through to another host: when no path matches, the
/// host's default cluster answers, then the model's default cluster, else 404.
/// Within a host, on the dot-segment-free path: an Exact path first; then the
/// regex paths, longest pattern first (ingress-nginx's order), the first that
/// matches wins; then the longest matching Prefix.
public final class RoutingTable: Sendable {
    /// Increases with every table the controller publishes.
    public let generation: UInt64
    /// Every cluster; `clusters[i].index == i`. A table compiled from a
    /// previous one may hold unused positions (no route leads there).
    public let clusters: [CompiledCluster]
    /// The model the table was compiled from (for `explain`, never per request).
    public let model: RouteModel

    /// Host names: tag 0 exact host, tag 1 wildcard suffix (`.example.com`) → virtual host index.
    let hostTable: ByteKeyTable
    /// Paths: tag `2 * host` Exact, `2 * host + 1` Prefix → route index.
    let pathTable: ByteKeyTable
    /// By virtual host index (not model order once compiled from a previous table).
    let virtualHosts: [CompiledVirtualHost]
    /// Every path rule; a lookup ends at an index into this.
    let routes: [CompiledRoute]
    /// Regex rules of every host, grouped by host, each group in match order.
    let regexRoutes: [CompiledRegexRoute]
    /// Rewrite templates referenced by `CompiledRoute.rewrite`.
    let rewrites: [RewriteTemplate]
    /// Request policies referenced by `CompiledRoute.policy` (one per distinct policy).
    let policies: [CompiledRoutePolicy]
    /// The model's `defaultPolicy` for requests a default backend answers
    /// (nil when it asks nothing).
    let defaultPolicy: CompiledRoutePolicy?
    /// Index of the `.any` virtual host, -1 when none.
    let anyHost: Int32
    /// The redirect of requests that match no virtual host (the model's
    /// `defaultHTTPSRedirect`, decided on the request's host).
    let defaultHTTPSRedirect: HTTPSRedirectRule
    /// `RouteModel.httpsHosts` as a host-name table, for redirects that
    /// depend on the request's host.
    let httpsHostTable: ByteKeyTable
    /// `Strict-Transport-Security: value\r\n` for HTTPS responses (HTTP/1.1),
    /// empty when HSTS is off (`RouteModel.strictTransportSecurity`).
    public let strictTransportSecurityField: [UInt8]
    /// The HSTS value alone (HTTP/2 fields), empty when off.
    public let strictTransportSecurityValue: [UInt8]
    /// Cluster index of the model's default cluster, -1 when none.
    let defaultCluster: Int32
    /// What compiling the next table from this one needs (never read per request).
    let patchState: PatchState?
    /// True when made from a copy of the previous table rather than from scratch.
    let isPatched: Bool
    /// For per-worker state keyed by cluster index (round-robin counters):
    /// when this table was compiled afresh from `previous`, the index each
    /// cluster had in `previous` (-1: new), and `previous`'s generation.
    /// Nil when indexes did not move (a patched table keeps them) or there
    /// was no previous table.
    public let previousClusterIndexes: (generation: UInt64, indexes: [Int32])?

    static let exactHostTag: UInt32 = 0
    static let wildcardHostTag: UInt32 = 1
    /// Longest host name looked up (DNS allows 253); longer hosts match only `.any`.
    static let maximumHostLength = 255

    /// One virtual host's per-request facts.
    struct CompiledVirtualHost: Sendable {
        var hasExactPaths: Bool
        var hasPrefixPaths: Bool
        /// Route for Prefix `/`, -1 when none.
        var rootRoute: Int32
        /// The redirect of requests that match none of the host's routes:
        /// the union of its routes' and the model's default.
        var fallbackRedirect: HTTPSRedirectRule
        /// Cluster when no path matches, -1 when none.
        var defaultCluster: Int32
        /// This host's rules in `regexRoutes[regexStart..<regexEnd]`.
        var regexStart: Int32
        var regexEnd: Int32
        /// This host's rules in `routes[routeStart..<routeEnd]`, in model order.
        var routeStart: Int32
        var routeEnd: Int32

        /// A host no request reaches (a free index).
        static let unused = CompiledVirtualHost(
            hasExactPaths: false, hasPrefixPaths: false, rootRoute: -1, fallbackRedirect: .none, defaultCluster: -1,
            regexStart: 0, regexEnd: 0, routeStart: 0, routeEnd: 0)
    }

    /// One path rule as the data path needs it.
    struct CompiledRoute: Sendable {
        var cluster: Int32
        /// Index into `rewrites`, -1 for none.
        var rewrite: Int32
        /// Position of the rule in its model virtual host's `routes`.
        var modelRoute: Int32
        /// Index into `policies`, -1 for none.
        var policy: Int32
        /// What the route says about plain-HTTP requests.
        var httpsRedirect: HTTPSRedirectRule
    }

    struct CompiledRegexRoute: Sendable {
        var regex: LinearRegex
        var route: Int32
        /// Capture groups to read on a match (0 when the route has no rewrite).
        var groups: Int32
    }

    /// Compiles `model`. Routes and defaults naming a cluster the model does
    /// not define get a cluster with no endpoints (503) rather than a crash. A
    /// regex route whose pattern does not compile (Translate reports those
    /// first) never matches.
    ///
    /// With `previous` (the table in service), the table is made from a copy
    /// of `previous` changed where the models differ, when they differ in a
    /// few hosts and clusters (what one controller round usually changes):
    /// an unchanged host then costs a comparison and a few copied bytes
    /// instead of a compilation (10,000 hosts: ~1 ms instead of ~5). Else,
    /// or when the copy has collected too much unused room, it is compiled
    /// afresh, sharing `previous`'s compiled clusters that are unchanged at
    /// the same position. Either way it routes every request the same.
    public init(model: RouteModel, generation: UInt64, reusing previous: RoutingTable? = nil) {
        let patched = previous.flatMap { Compilation(patching: $0, toMatch: model) }
        let compilation = patched ?? Compilation(model: model, reusing: previous?.clusters ?? [])
        isPatched = patched != nil
        self.generation = generation
        self.model = model
        clusters = compilation.clusters
        hostTable = compilation.hostTable
        pathTable = compilation.pathTable
        virtualHosts = compilation.virtualHosts
        routes = compilation.routes
        regexRoutes = compilation.regexRoutes
        rewrites = compilation.rewrites
        policies = compilation.policies
        defaultPolicy = model.defaultPolicy.isEmpty ? nil : CompiledRoutePolicy(model.defaultPolicy)
        anyHost = compilation.anyHost
        defaultCluster = compilation.defaultCluster
        patchState = compilation.patchState
        defaultHTTPSRedirect = HTTPSRedirectRule(model.defaultHTTPSRedirect, host: .any, hostHasTLS: { _ in false })
        httpsHostTable = compilation.httpsHostTable
        (strictTransportSecurityField, strictTransportSecurityValue) = RoutingTable.strictTransportSecurity(model)
        if patched == nil, let previous {
            var byName: [String: Int32] = [:]
            byName.reserveCapacity(previous.clusters.count)
            for cluster in previous.clusters where byName[cluster.name] == nil {
                byName[cluster.name] = Int32(cluster.index)
            }
            previousClusterIndexes = (previous.generation, clusters.map { byName[$0.name] ?? -1 })
        } else {
            previousClusterIndexes = nil
        }
    }

    /// A copy of `base` with some clusters and the model they came from
    /// replaced (`RoutingTable+EndpointPatch`): every other part is shared.
    init(
        patching base: RoutingTable, clusters: [CompiledCluster], model: RouteModel, generation: UInt64,
        previousClusterIndexes: (generation: UInt64, indexes: [Int32])? = nil
    ) {
        self.generation = generation
        self.model = model
        self.clusters = clusters
        hostTable = base.hostTable
        pathTable = base.pathTable
        virtualHosts = base.virtualHosts
        routes = base.routes
        regexRoutes = base.regexRoutes
        rewrites = base.rewrites
        policies = base.policies
        defaultPolicy = base.defaultPolicy
        anyHost = base.anyHost
        defaultCluster = base.defaultCluster
        patchState = base.patchState
        defaultHTTPSRedirect = base.defaultHTTPSRedirect
        httpsHostTable = base.httpsHostTable
        strictTransportSecurityField = base.strictTransportSecurityField
        strictTransportSecurityValue = base.strictTransportSecurityValue
        isPatched = true
        // Indexes do not move from `base`: a worker keeps its counters by
        // index, unless `base` itself was never published.
        self.previousClusterIndexes = previousClusterIndexes
    }

    /// The HSTS field line and value of `model` (empty when off).
    static func strictTransportSecurity(_ model: RouteModel) -> ([UInt8], [UInt8]) {
        guard let value = model.strictTransportSecurity else { return ([], []) }
        return (Array("Strict-Transport-Security: \(value)\r\n".utf8), Array(value.utf8))
    }

    /// `text.lowercased()`, without a copy when `text` is lower-case ASCII
    /// already (Translate's host names are).
    static func lowercased(_ text: String) -> String {
        let lower = ByteKeyTable.withUTF8(text) { bytes in
            !bytes.contains { $0 >= 0x80 || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }
        }
        return lower ? text : text.lowercased()
    }

    /// ingress-nginx's regex location order: the longer pattern first; ties
    /// by pattern text, then by the older source (model order).
    static func regexPrecedes(_ lhs: Route, _ rhs: Route) -> Bool {
        let l = lhs.path.utf8.count, r = rhs.path.utf8.count
        if l != r { return l > r }
        return lhs.path < rhs.path
    }
}
