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
    /// Every cluster; `clusters[i].index == i`.
    public let clusters: [CompiledCluster]
    /// The model the table was compiled from (for `explain`, never per request).
    public let model: RouteModel

    /// Host names: tag 0 exact host, tag 1 wildcard suffix (`.example.com`) → virtual host index.
    let hostTable: ByteKeyTable
    /// Paths: tag `2 * host` Exact, `2 * host + 1` Prefix → route index.
    let pathTable: ByteKeyTable
    let virtualHosts: [CompiledVirtualHost]
    /// Every path rule; a lookup ends at an index into this.
    let routes: [CompiledRoute]
    /// Regex rules of every host, grouped by host, each group in match order.
    let regexRoutes: [CompiledRegexRoute]
    /// Rewrite templates referenced by `CompiledRoute.rewrite`.
    let rewrites: [RewriteTemplate]
    /// Index of the `.any` virtual host, -1 when none.
    let anyHost: Int32
    /// Cluster index of the model's default cluster, -1 when none.
    let defaultCluster: Int32

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
        /// Cluster when no path matches, -1 when none.
        var defaultCluster: Int32
        /// This host's rules in `regexRoutes[regexStart..<regexEnd]`.
        var regexStart: Int32
        var regexEnd: Int32
    }

    /// One path rule as the data path needs it.
    struct CompiledRoute: Sendable {
        var cluster: Int32
        /// Index into `rewrites`, -1 for none.
        var rewrite: Int32
        /// Position of the rule in the model: `model.virtualHosts[host].routes[route]`.
        var modelHost: Int32
        var modelRoute: Int32
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
    /// `previous` (the table in service) lends its compiled clusters: one
    /// that is unchanged at the same position is shared rather than built
    /// again, which saves an allocation per cluster here and a deallocation on
    /// a worker when the old table goes.
    public init(model: RouteModel, generation: UInt64, reusing previous: RoutingTable? = nil) {
        self.generation = generation
        self.model = model
        var clusters: [CompiledCluster] = []
        clusters.reserveCapacity(model.clusters.count)
        var names = ByteKeyTable.Builder(capacity: model.clusters.count)
        let reusable = previous?.clusters ?? []
        func compiled(_ index: Int, name: String, endpoints: [Endpoint], unavailableReason: String?, upstream: UpstreamSettings)
            -> CompiledCluster
        {
            if index < reusable.count {
                let old = reusable[index]
                if old.name == name, old.endpoints == endpoints, old.unavailableReason == unavailableReason, old.upstream == upstream {
                    return old
                }
            }
            return CompiledCluster(
                index: index, name: name, endpoints: endpoints, unavailableReason: unavailableReason, upstream: upstream)
        }
        for (position, cluster) in model.clusters.enumerated() {
            names.add(tag: 0, key: cluster.name, value: Int32(position))
        }
        // Name → position in the model; of a repeated name the first is kept.
        let clusterIndex = names.build()
        // Position in the model → index in `clusters`: the identity unless a name repeats.
        var compiledIndex: [Int32]? = nil
        if clusterIndex.count == model.clusters.count {
            for cluster in model.clusters {
                clusters.append(compiled(
                    clusters.count, name: cluster.name, endpoints: cluster.endpoints,
                    unavailableReason: cluster.unavailableReason, upstream: cluster.upstream))
            }
        } else {
            var positions = [Int32](repeating: -1, count: model.clusters.count)
            for (position, cluster) in model.clusters.enumerated() {
                let first = ByteKeyTable.withUTF8(cluster.name) { clusterIndex.lookup(tag: 0, key: $0) }
                guard first == Int32(position) else { continue }
                positions[position] = Int32(clusters.count)
                clusters.append(compiled(
                    clusters.count, name: cluster.name, endpoints: cluster.endpoints,
                    unavailableReason: cluster.unavailableReason, upstream: cluster.upstream))
            }
            compiledIndex = positions
        }
        // Names routes use that the model does not define (rare).
        var undefined: [String: Int32] = [:]
        func index(of name: String?) -> Int32 {
            guard let name else { return -1 }
            let found = ByteKeyTable.withUTF8(name) { clusterIndex.lookup(tag: 0, key: $0) }
            if found != ByteKeyTable.missing { return compiledIndex?[Int(found)] ?? found }
            if let index = undefined[name] { return index }
            let index = Int32(clusters.count)
            undefined[name] = index
            clusters.append(compiled(
                Int(index), name: name, endpoints: [], unavailableReason: "cluster \(name) is not defined", upstream: .http))
            return index
        }

        var hostKeys = ByteKeyTable.Builder(capacity: model.virtualHosts.count)
        var pathKeys = ByteKeyTable.Builder(capacity: model.virtualHosts.count)
        var virtualHosts: [CompiledVirtualHost] = []
        virtualHosts.reserveCapacity(model.virtualHosts.count)
        var routes: [CompiledRoute] = []
        var regexRoutes: [CompiledRegexRoute] = []
        var rewrites: [RewriteTemplate] = []
        var rewriteIndex: [String: Int32] = [:]
        var regexCache: [String: LinearRegex?] = [:]
        var anyHost: Int32 = -1
        for (modelHost, vhost) in model.virtualHosts.enumerated() {
            let hostIndex = Int32(virtualHosts.count)
            switch vhost.host {
            case let .exact(name):
                hostKeys.add(tag: RoutingTable.exactHostTag, key: RoutingTable.lowercased(name), value: hostIndex)
            case let .wildcard(suffix):
                hostKeys.add(tag: RoutingTable.wildcardHostTag, key: RoutingTable.lowercased(suffix), value: hostIndex)
            case .any:
                if anyHost < 0 { anyHost = hostIndex }
            }
            var compiled = CompiledVirtualHost(
                hasExactPaths: false, hasPrefixPaths: false, rootRoute: -1,
                defaultCluster: index(of: vhost.defaultCluster),
                regexStart: Int32(regexRoutes.count), regexEnd: Int32(regexRoutes.count))
            var hostRegexes: [(route: Route, compiled: CompiledRegexRoute)] = []
            for (modelRoute, route) in vhost.routes.enumerated() {
                var rewrite: Int32 = -1
                if let target = route.rewriteTarget {
                    if let existing = rewriteIndex[target] {
                        rewrite = existing
                    } else {
                        rewrite = Int32(rewrites.count)
                        rewriteIndex[target] = rewrite
                        rewrites.append(RewriteTemplate(target))
                    }
                }
                let routeIndex = Int32(routes.count)
                routes.append(CompiledRoute(
                    cluster: index(of: route.cluster), rewrite: rewrite,
                    modelHost: Int32(modelHost), modelRoute: Int32(modelRoute)))
                switch route.match {
                case .exact:
                    compiled.hasExactPaths = true
                    pathKeys.add(tag: UInt32(hostIndex) &* 2, key: route.path, value: routeIndex)
                case .prefix:
                    // Matching compares whole segments, so a trailing "/" never matters.
                    ByteKeyTable.withUTF8(route.path) { path in
                        var count = path.count
                        while count > 1, path[count - 1] == UInt8(ascii: "/") { count -= 1 }
                        if count == 0 || (count == 1 && path[0] == UInt8(ascii: "/")) {
                            if compiled.rootRoute < 0 { compiled.rootRoute = routeIndex }
                        } else {
                            compiled.hasPrefixPaths = true
                            pathKeys.add(
                                tag: UInt32(hostIndex) &* 2 &+ 1, key: UnsafeBufferPointer(rebasing: path[0..<count]),
                                value: routeIndex)
                        }
                    }
                case .regex:
                    let regex: LinearRegex?
                    if let cached = regexCache[route.path] {
                        regex = cached
                    } else {
                        regex = try? LinearRegex(route.path)
                        regexCache[route.path] = regex
                    }
                    guard let regex else { continue }
                    let groups = rewrite < 0 ? 0 : min(regex.groupCount + 1, LinearRegex.maximumGroups)
                    hostRegexes.append((route, CompiledRegexRoute(regex: regex, route: routeIndex, groups: Int32(groups))))
                }
            }
            if !hostRegexes.isEmpty {
                hostRegexes.sort { RoutingTable.regexPrecedes($0.route, $1.route) }
                regexRoutes.append(contentsOf: hostRegexes.map(\.compiled))
            }
            compiled.regexEnd = Int32(regexRoutes.count)
            virtualHosts.append(compiled)
        }
        let defaultCluster = index(of: model.defaultCluster)
        self.clusters = clusters
        self.hostTable = hostKeys.build()
        self.pathTable = pathKeys.build()
        self.virtualHosts = virtualHosts
        self.routes = routes
        self.regexRoutes = regexRoutes
        self.rewrites = rewrites
        self.anyHost = anyHost
        self.defaultCluster = defaultCluster
    }

    /// `text.lowercased()`, without a copy when `text` is lower-case ASCII
    /// already (Translate's host names are).
    private static func lowercased(_ text: String) -> String {
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
