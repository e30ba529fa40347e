import RouteModel

/// The compiled, immutable routing configuration: built once per model
/// (off the data path), then shared by every worker.
///
/// Lookup order for a request: the exact host, then the wildcard whose suffix
/// follows the host's first label, then the `.any` host. Once a host is
/// chosen there is no fall-through to another host: when no path matches, the
/// host's default cluster answers, then the model's default cluster, else 404.
/// Within a host an Exact path beats every Prefix path, and the longest
/// matching prefix beats shorter ones.
public final class RoutingTable: Sendable {
    /// Increases with every table the controller publishes.
    public let generation: UInt64
    /// Every cluster; `clusters[i].index == i`.
    public let clusters: [CompiledCluster]

    /// Host names: tag 0 exact host, tag 1 wildcard suffix (`.example.com`) → virtual host index.
    let hostTable: ByteKeyTable
    /// Paths: tag `2 * host` Exact, `2 * host + 1` Prefix → cluster index.
    let pathTable: ByteKeyTable
    let virtualHosts: [CompiledVirtualHost]
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
        /// Cluster for Prefix `/`, -1 when none.
        var rootCluster: Int32
        /// Cluster when no path matches, -1 when none.
        var defaultCluster: Int32
    }

    /// Compiles `model`. Routes and defaults naming a cluster the model does
    /// not define get a cluster with no endpoints (503) rather than a crash.
    public init(model: RouteModel, generation: UInt64) {
        self.generation = generation
        var clusters: [CompiledCluster] = []
        var clusterIndex: [String: Int32] = [:]
        for cluster in model.clusters where clusterIndex[cluster.name] == nil {
            clusterIndex[cluster.name] = Int32(clusters.count)
            clusters.append(CompiledCluster(
                index: clusters.count, name: cluster.name, endpoints: cluster.endpoints,
                unavailableReason: cluster.unavailableReason))
        }
        func index(of name: String?) -> Int32 {
            guard let name else { return -1 }
            if let found = clusterIndex[name] { return found }
            let index = Int32(clusters.count)
            clusterIndex[name] = index
            clusters.append(CompiledCluster(
                index: Int(index), name: name, endpoints: [], unavailableReason: "cluster \(name) is not defined"))
            return index
        }

        var hostKeys: [(tag: UInt32, key: [UInt8], value: Int32)] = []
        var pathKeys: [(tag: UInt32, key: [UInt8], value: Int32)] = []
        var virtualHosts: [CompiledVirtualHost] = []
        var anyHost: Int32 = -1
        for vhost in model.virtualHosts {
            let hostIndex = Int32(virtualHosts.count)
            switch vhost.host {
            case let .exact(name):
                hostKeys.append((RoutingTable.exactHostTag, Array(name.lowercased().utf8), hostIndex))
            case let .wildcard(suffix):
                hostKeys.append((RoutingTable.wildcardHostTag, Array(suffix.lowercased().utf8), hostIndex))
            case .any:
                if anyHost < 0 { anyHost = hostIndex }
            }
            var compiled = CompiledVirtualHost(
                hasExactPaths: false, hasPrefixPaths: false, rootCluster: -1,
                defaultCluster: index(of: vhost.defaultCluster))
            for route in vhost.routes {
                let cluster = index(of: route.cluster)
                switch route.match {
                case .exact:
                    compiled.hasExactPaths = true
                    pathKeys.append((UInt32(hostIndex) &* 2, Array(route.path.utf8), cluster))
                case .prefix:
                    // Matching compares whole segments, so a trailing "/" never matters.
                    var key = Array(route.path.utf8)
                    while key.count > 1, key.last == UInt8(ascii: "/") { key.removeLast() }
                    if key == [UInt8(ascii: "/")] || key.isEmpty {
                        if compiled.rootCluster < 0 { compiled.rootCluster = cluster }
                    } else {
                        compiled.hasPrefixPaths = true
                        pathKeys.append((UInt32(hostIndex) &* 2 &+ 1, key, cluster))
                    }
                }
            }
            virtualHosts.append(compiled)
        }
        let defaultCluster = index(of: model.defaultCluster)
        self.clusters = clusters
        self.hostTable = ByteKeyTable(hostKeys)
        self.pathTable = ByteKeyTable(pathKeys)
        self.virtualHosts = virtualHosts
        self.anyHost = anyHost
        self.defaultCluster = defaultCluster
    }
}
