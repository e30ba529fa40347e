import RegexEngine
import RouteModel

extension RoutingTable {
    /// What a table keeps so that the next one can be made from a copy of it.
    struct PatchState: Sendable {
        /// Cluster name → cluster index.
        var clusterNames: ByteKeyTable
        /// Per cluster index: the routes, host defaults and model default naming it.
        var clusterUses: [Int32]
        /// Virtual host and cluster indexes no longer used (taken first by new ones).
        var freeHosts: [Int32]
        var freeClusters: [Int32]
        /// Entries of `routes` and `regexRoutes` no host refers to any more.
        var unusedRoutes: Int
        var unusedRegexRoutes: Int
    }

    /// A table's parts while they are built: from a model (every host in
    /// model order), or from a copy of the previous table changed where the
    /// models differ.
    struct Compilation {
        var clusters: [CompiledCluster]
        var hostTable: ByteKeyTable
        var pathTable: ByteKeyTable
        var virtualHosts: [CompiledVirtualHost]
        var routes: [CompiledRoute] = []
        var regexRoutes: [CompiledRegexRoute] = []
        var rewrites: [RewriteTemplate] = []
        var policies: [CompiledRoutePolicy] = []
        var anyHost: Int32 = -1
        var defaultCluster: Int32 = -1
        /// `RouteModel.httpsHosts` for request-time lookups.
        var httpsHostTable: ByteKeyTable
        /// nil when the table cannot be the base of a patch (a model that
        /// repeats a host or cluster name, or names an undefined cluster).
        var patchState: PatchState?

        // While compiling.
        private var clusterNames: ByteKeyTable
        private var clusterUses: [Int32] = []
        /// From scratch: position of a cluster in the model → its index, when a name repeats.
        private var compiledIndex: [Int32]? = nil
        /// From scratch: names routes use that the model does not define.
        private var undefinedClusters: [String: Int32] = [:]
        /// From scratch: the path keys (a patch inserts into `pathTable`).
        private var pathKeys: ByteKeyTable.Builder? = nil
        private var rewriteIndex: [String: Int32] = [:]
        private var policyIndex: [RoutePolicy: Int32] = [:]
        private var regexCache: [String: LinearRegex?] = [:]
        private var reusableClusters: [CompiledCluster] = []
        /// `RouteModel.httpsHosts`, for compiling redirects.
        private var httpsHosts: Set<String> = []
        /// The model's `defaultHTTPSRedirect`.
        private var defaultRedirect = HTTPSRedirect()

        // MARK: From scratch

        /// Compiles every host of `model`; a cluster of `reusable` unchanged
        /// at the same position is shared instead of built again.
        init(model: RouteModel, reusing reusable: [CompiledCluster]) {
            clusters = []
            hostTable = ByteKeyTable([])
            pathTable = hostTable
            clusterNames = hostTable
            virtualHosts = []
            reusableClusters = reusable
            httpsHosts = Set(model.httpsHosts)
            httpsHostTable = RoutingTable.httpsHostTable(model.httpsHosts)
            defaultRedirect = model.defaultHTTPSRedirect
            clusters.reserveCapacity(model.clusters.count)
            var names = ByteKeyTable.Builder(capacity: model.clusters.count)
            for (position, cluster) in model.clusters.enumerated() {
                names.add(tag: 0, key: cluster.name, value: Int32(position))
            }
            // Name → position in the model; of a repeated name the first is kept.
            clusterNames = names.build(spare: model.clusters.count / 4)
            if clusterNames.count == model.clusters.count {
                for cluster in model.clusters { appendCluster(cluster.name, cluster) }
            } else {
                var positions = [Int32](repeating: -1, count: model.clusters.count)
                for (position, cluster) in model.clusters.enumerated() {
                    let first = ByteKeyTable.withUTF8(cluster.name) { clusterNames.lookup(tag: 0, key: $0) }
                    guard first == Int32(position) else { continue }
                    positions[position] = Int32(clusters.count)
                    appendCluster(cluster.name, cluster)
                }
                compiledIndex = positions
            }
            clusterUses = [Int32](repeating: 0, count: clusters.count)

            var hostKeys = ByteKeyTable.Builder(capacity: model.virtualHosts.count)
            pathKeys = ByteKeyTable.Builder(capacity: model.virtualHosts.count)
            virtualHosts.reserveCapacity(model.virtualHosts.count)
            var namedHosts = 0
            var anyHosts = 0
            for vhost in model.virtualHosts {
                let slot = Int32(virtualHosts.count)
                switch vhost.host {
                case let .exact(name):
                    hostKeys.add(tag: RoutingTable.exactHostTag, key: RoutingTable.lowercased(name), value: slot)
                    namedHosts += 1
                case let .wildcard(suffix):
                    hostKeys.add(tag: RoutingTable.wildcardHostTag, key: RoutingTable.lowercased(suffix), value: slot)
                    namedHosts += 1
                case .any:
                    if anyHost < 0 { anyHost = slot }
                    anyHosts += 1
                }
                virtualHosts.append(.unused)
                let compiled = compileHost(vhost, at: slot)
                precondition(compiled, "compiling from scratch defines every cluster it meets")
            }
            defaultCluster = clusterIndex(model.defaultCluster) ?? -1
            if defaultCluster >= 0 { clusterUses[Int(defaultCluster)] += 1 }
            hostTable = hostKeys.build(spare: model.virtualHosts.count / 4)
            pathTable = (pathKeys ?? ByteKeyTable.Builder(capacity: 0)).build(spare: routes.count / 4)
            pathKeys = nil
            let patchable = compiledIndex == nil && undefinedClusters.isEmpty && hostTable.count == namedHosts && anyHosts <= 1
            patchState = patchable
                ? PatchState(
                    clusterNames: clusterNames, clusterUses: clusterUses, freeHosts: [], freeClusters: [], unusedRoutes: 0,
                    unusedRegexRoutes: 0)
                : nil
        }

        private mutating func appendCluster(_ name: String, _ cluster: Cluster?) {
            let index = clusters.count
            let endpoints = cluster?.endpoints ?? []
            let reason = cluster == nil ? "cluster \(name) is not defined" : cluster?.unavailableReason
            let upstream = cluster?.upstream ?? .http
            if index < reusableClusters.count {
                let old = reusableClusters[index]
                if old.name == name, old.endpoints == endpoints, old.unavailableReason == reason, old.upstream == upstream {
                    clusters.append(old)
                    return
                }
            }
            clusters.append(CompiledCluster(
                index: index, name: name, endpoints: endpoints, unavailableReason: reason, upstream: upstream))
        }

        /// The index of the cluster `name` (-1 for nil); nil when a patch
        /// meets a name the table does not define (from scratch, such a name
        /// gets a cluster of its own that answers 503).
        private mutating func clusterIndex(_ name: String?) -> Int32? {
            guard let name else { return -1 }
            let found = ByteKeyTable.withUTF8(name) { clusterNames.lookup(tag: 0, key: $0) }
            if found != ByteKeyTable.missing { return compiledIndex?[Int(found)] ?? found }
            guard pathKeys != nil else { return nil }
            if let index = undefinedClusters[name] { return index }
            let index = Int32(clusters.count)
            undefinedClusters[name] = index
            appendCluster(name, nil)
            clusterUses.append(0)
            return index
        }

        /// Compiles `vhost` into virtual host `slot` (which exists): its
        /// routes, regex routes and path keys. False when a patch cannot (an
        /// undefined cluster, a full path table).
        private mutating func compileHost(_ vhost: VirtualHost, at slot: Int32) -> Bool {
            guard let hostDefault = clusterIndex(vhost.defaultCluster) else { return false }
            if hostDefault >= 0 { clusterUses[Int(hostDefault)] += 1 }
            let hostHasTLS = { [httpsHosts] (host: HostMatch) in RoutingTable.hostHasTLS(host, httpsHosts: httpsHosts) }
            var fallbackRedirect = HTTPSRedirectRule(defaultRedirect, host: vhost.host, hostHasTLS: hostHasTLS)
            var compiled = CompiledVirtualHost(
                hasExactPaths: false, hasPrefixPaths: false, rootRoute: -1, fallbackRedirect: .none, defaultCluster: hostDefault,
                regexStart: Int32(regexRoutes.count), regexEnd: Int32(regexRoutes.count),
                routeStart: Int32(routes.count), routeEnd: Int32(routes.count))
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
                var policy: Int32 = -1
                if !route.policy.isEmpty {
                    if let existing = policyIndex[route.policy] {
                        policy = existing
                    } else {
                        policy = Int32(policies.count)
                        policyIndex[route.policy] = policy
                        policies.append(CompiledRoutePolicy(route.policy))
                    }
                }
                guard let cluster = clusterIndex(route.cluster) else { return false }
                clusterUses[Int(cluster)] += 1
                let routeIndex = Int32(routes.count)
                let redirect = HTTPSRedirectRule(route.httpsRedirect, host: vhost.host, hostHasTLS: hostHasTLS)
                fallbackRedirect = fallbackRedirect.union(redirect)
                routes.append(CompiledRoute(
                    cluster: cluster, rewrite: rewrite, modelRoute: Int32(modelRoute), policy: policy, httpsRedirect: redirect))
                switch route.match {
                case .exact:
                    compiled.hasExactPaths = true
                    let added = ByteKeyTable.withUTF8(route.path) { addPathKey(tag: UInt32(slot) &* 2, key: $0, value: routeIndex) }
                    guard added else { return false }
                case .prefix:
                    // Matching compares whole segments, so a trailing "/" never matters.
                    let added = ByteKeyTable.withUTF8(route.path) { path -> Bool in
                        guard let key = RoutingTable.prefixKey(path) else {
                            if compiled.rootRoute < 0 { compiled.rootRoute = routeIndex }
                            return true
                        }
                        compiled.hasPrefixPaths = true
                        return addPathKey(tag: UInt32(slot) &* 2 &+ 1, key: key, value: routeIndex)
                    }
                    guard added else { return false }
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
            compiled.routeEnd = Int32(routes.count)
            compiled.fallbackRedirect = fallbackRedirect
            virtualHosts[Int(slot)] = compiled
            return true
        }

        /// Adds a path key; a repeated one keeps its first route. False when the table is full.
        private mutating func addPathKey(tag: UInt32, key: UnsafeBufferPointer<UInt8>, value: Int32) -> Bool {
            if pathKeys != nil {
                pathKeys?.add(tag: tag, key: key, value: value)
                return true
            }
            if pathTable.insert(tag: tag, key: key, value: value) != .full { return true }
            // A full table grows (a copy with twice the room), not the whole compilation.
            pathTable = pathTable.compacted(spare: pathTable.count + 16)
            return pathTable.insert(tag: tag, key: key, value: value) != .full
        }

        // MARK: From the previous table

        /// `previous` changed to match `model`; nil when that is not cheaper
        /// (or not possible) than compiling from scratch: `previous` keeps no
        /// patch state, the models differ in many hosts or clusters, the model
        /// repeats a name or names an undefined cluster, or the copy would
        /// hold more unused room than used.
        init?(patching previous: RoutingTable, toMatch model: RouteModel) {
            guard var state = previous.patchState else { return nil }
            let old = previous.model
            // Which hosts have TLS decides every host's redirects: compiled afresh when it changes.
            guard old.httpsHosts == model.httpsHosts, old.defaultHTTPSRedirect == model.defaultHTTPSRedirect else { return nil }
            let limit = max(16, (old.virtualHosts.count + old.clusters.count) / 16)
            guard let hostChanges = ModelDifference(old.virtualHosts, model.virtualHosts, key: \.host, limit: limit),
                  let clusterChanges = ModelDifference(old.clusters, model.clusters, key: \.name, limit: limit)
            else { return nil }
            clusters = previous.clusters
            hostTable = previous.hostTable
            pathTable = previous.pathTable
            virtualHosts = previous.virtualHosts
            routes = previous.routes
            regexRoutes = previous.regexRoutes
            rewrites = previous.rewrites
            policies = previous.policies
            anyHost = previous.anyHost
            defaultCluster = previous.defaultCluster
            httpsHostTable = previous.httpsHostTable
            httpsHosts = Set(model.httpsHosts)
            defaultRedirect = model.defaultHTTPSRedirect
            clusterNames = state.clusterNames
            clusterUses = state.clusterUses

            // Clusters changed in place or added (removed ones go last, once nothing uses them).
            for (before, after) in clusterChanges.changed {
                let index = ByteKeyTable.withUTF8(old.clusters[before].name) { clusterNames.lookup(tag: 0, key: $0) }
                guard index >= 0 else { return nil }
                setCluster(model.clusters[after], at: Int(index))
            }
            for after in clusterChanges.added {
                let cluster = model.clusters[after]
                let index = state.freeClusters.popLast() ?? Int32(clusters.count)
                var inserted = ByteKeyTable.withUTF8(cluster.name) { clusterNames.insert(tag: 0, key: $0, value: index) }
                if inserted == .full {
                    clusterNames = clusterNames.compacted(spare: clusterNames.count + 16)
                    inserted = ByteKeyTable.withUTF8(cluster.name) { clusterNames.insert(tag: 0, key: $0, value: index) }
                }
                guard inserted == .inserted else { return nil }
                if Int(index) == clusters.count {
                    clusters.append(RoutingTable.unusedCluster(Int(index)))
                    clusterUses.append(0)
                }
                setCluster(cluster, at: Int(index))
            }

            // Hosts: what the old ones held goes first, then the new ones come.
            for before in hostChanges.removed {
                let vhost = old.virtualHosts[before]
                guard let slot = slot(of: vhost.host) else { return nil }
                release(slot, vhost, state: &state)
                unmap(vhost.host)
                virtualHosts[Int(slot)] = .unused
                state.freeHosts.append(slot)
            }
            var changedSlots: [Int32] = []
            for (before, _) in hostChanges.changed {
                let vhost = old.virtualHosts[before]
                guard let slot = slot(of: vhost.host) else { return nil }
                release(slot, vhost, state: &state)
                changedSlots.append(slot)
            }
            for ((_, after), slot) in zip(hostChanges.changed, changedSlots) {
                guard compileHost(model.virtualHosts[after], at: slot) else { return nil }
            }
            for after in hostChanges.added {
                let vhost = model.virtualHosts[after]
                let slot = state.freeHosts.popLast() ?? Int32(virtualHosts.count)
                if Int(slot) == virtualHosts.count { virtualHosts.append(.unused) }
                guard map(vhost.host, to: slot), compileHost(vhost, at: slot) else { return nil }
            }

            if old.defaultCluster != model.defaultCluster {
                if defaultCluster >= 0 { clusterUses[Int(defaultCluster)] -= 1 }
                guard let index = clusterIndex(model.defaultCluster) else { return nil }
                defaultCluster = index
                if index >= 0 { clusterUses[Int(index)] += 1 }
            }

            for before in clusterChanges.removed {
                let index = ByteKeyTable.withUTF8(old.clusters[before].name) { clusterNames.remove(tag: 0, key: $0) }
                // A cluster still named somewhere becomes undefined: compile from scratch.
                guard index >= 0, clusterUses[Int(index)] == 0 else { return nil }
                clusters[Int(index)] = RoutingTable.unusedCluster(Int(index))
                state.freeClusters.append(index)
            }

            // Removed keys' room in the key tables is reclaimed by rebuilding
            // that table alone (a host whose path changes over and over
            // leaves one removed key per change in a small path table);
            // other unused room by compiling from scratch.
            let slack = 64
            if hostTable.removedCount > hostTable.count + slack { hostTable = hostTable.compacted(spare: hostTable.count / 4) }
            if pathTable.removedCount > pathTable.count + slack { pathTable = pathTable.compacted(spare: pathTable.count / 4) }
            if clusterNames.removedCount > clusterNames.count + slack {
                clusterNames = clusterNames.compacted(spare: clusterNames.count / 4)
            }
            guard state.unusedRoutes <= routes.count / 2 + slack,
                  state.unusedRegexRoutes <= regexRoutes.count / 2 + slack,
                  state.freeHosts.count <= virtualHosts.count / 2 + slack,
                  state.freeClusters.count <= clusters.count / 2 + slack,
                  rewrites.count <= routes.count + slack,
                  policies.count <= routes.count + slack
            else { return nil }
            state.clusterNames = clusterNames
            state.clusterUses = clusterUses
            patchState = state
        }

        private mutating func setCluster(_ cluster: Cluster, at index: Int) {
            clusters[index] = CompiledCluster(
                index: index, name: cluster.name, endpoints: cluster.endpoints, unavailableReason: cluster.unavailableReason,
                upstream: cluster.upstream)
        }

        /// The virtual host index of `host` in the table being changed, nil when absent.
        private func slot(of host: HostMatch) -> Int32? {
            let found: Int32
            switch host {
            case let .exact(name):
                found = ByteKeyTable.withUTF8(RoutingTable.lowercased(name)) { hostTable.lookup(tag: RoutingTable.exactHostTag, key: $0) }
            case let .wildcard(suffix):
                found = ByteKeyTable.withUTF8(RoutingTable.lowercased(suffix)) {
                    hostTable.lookup(tag: RoutingTable.wildcardHostTag, key: $0)
                }
            case .any:
                found = anyHost
            }
            return found >= 0 ? found : nil
        }

        /// Makes requests for `host` reach `slot`; false when another host has its name.
        private mutating func map(_ host: HostMatch, to slot: Int32) -> Bool {
            if hostTable.count + 1 > hostTable.capacityBeforeFull {
                // Full: grow the host table alone rather than compile every host again.
                hostTable = hostTable.compacted(spare: hostTable.count + 16)
            }
            switch host {
            case let .exact(name):
                return ByteKeyTable.withUTF8(RoutingTable.lowercased(name)) {
                    hostTable.insert(tag: RoutingTable.exactHostTag, key: $0, value: slot)
                } == .inserted
            case let .wildcard(suffix):
                return ByteKeyTable.withUTF8(RoutingTable.lowercased(suffix)) {
                    hostTable.insert(tag: RoutingTable.wildcardHostTag, key: $0, value: slot)
                } == .inserted
            case .any:
                guard anyHost < 0 else { return false }
                anyHost = slot
                return true
            }
        }

        private mutating func unmap(_ host: HostMatch) {
            switch host {
            case let .exact(name):
                _ = ByteKeyTable.withUTF8(RoutingTable.lowercased(name)) { hostTable.remove(tag: RoutingTable.exactHostTag, key: $0) }
            case let .wildcard(suffix):
                _ = ByteKeyTable.withUTF8(RoutingTable.lowercased(suffix)) {
                    hostTable.remove(tag: RoutingTable.wildcardHostTag, key: $0)
                }
            case .any:
                anyHost = -1
            }
        }

        /// Drops what virtual host `slot` (compiled from `vhost`) holds: its
        /// path keys and its uses of clusters. Its routes stay, unused.
        private mutating func release(_ slot: Int32, _ vhost: VirtualHost, state: inout PatchState) {
            let compiled = virtualHosts[Int(slot)]
            for route in routes[Int(compiled.routeStart)..<Int(compiled.routeEnd)] {
                clusterUses[Int(route.cluster)] -= 1
            }
            if compiled.defaultCluster >= 0 { clusterUses[Int(compiled.defaultCluster)] -= 1 }
            state.unusedRoutes += Int(compiled.routeEnd - compiled.routeStart)
            state.unusedRegexRoutes += Int(compiled.regexEnd - compiled.regexStart)
            for route in vhost.routes {
                ByteKeyTable.withUTF8(route.path) { path in
                    switch route.match {
                    case .exact:
                        pathTable.remove(tag: UInt32(slot) &* 2, key: path)
                    case .prefix:
                        if let key = RoutingTable.prefixKey(path) { pathTable.remove(tag: UInt32(slot) &* 2 &+ 1, key: key) }
                    case .regex:
                        break
                    }
                }
            }
        }
    }

    /// The path-table key of a Prefix rule: the path without trailing "/";
    /// nil for the root (`/`, or an empty path).
    static func prefixKey(_ path: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8>? {
        var count = path.count
        while count > 1, path[count - 1] == UInt8(ascii: "/") { count -= 1 }
        if count == 0 || (count == 1 && path[0] == UInt8(ascii: "/")) { return nil }
        return UnsafeBufferPointer(rebasing: path[0..<count])
    }

    /// A free cluster index: no route leads there.
    static func unusedCluster(_ index: Int) -> CompiledCluster {
        CompiledCluster(index: index, name: "", endpoints: [], unavailableReason: "unused")
    }
}

/// How one list of the model (virtual hosts, clusters) changed between two
/// models: elements removed, added, and changed in place (same key). Found by
/// walking both lists side by side: unchanged stretches compare by identity
/// (Translate shares unchanged values), so this is cheap for a few changes
/// among many elements. Any answer is a correct one (a moved element is
/// removed and added); the walk only keeps it small.
struct ModelDifference {
    var removed: [Int] = []
    var added: [Int] = []
    var changed: [(before: Int, after: Int)] = []

    /// For lists sorted by a comparable key (Translate sorts hosts and
    /// clusters): a merge of the two lists, which matches any number of
    /// insertions and removals next to each other (a burst of new hosts in
    /// name order is often many). On lists that are not sorted the answer
    /// is still a correct one, only larger. nil when more than `limit`
    /// elements differ.
    init?<Element: Equatable, Key: Comparable>(_ old: [Element], _ new: [Element], key: (Element) -> Key, limit: Int) {
        let found = old.withUnsafeBufferPointer { old in
            new.withUnsafeBufferPointer { new in ModelDifference.merge(old, new, key: key, limit: limit) }
        }
        guard let found else { return nil }
        self = found
    }

    private init() {}

    private static func merge<Element: Equatable, Key: Comparable>(
        _ old: UnsafeBufferPointer<Element>, _ new: UnsafeBufferPointer<Element>, key: (Element) -> Key, limit: Int
    ) -> ModelDifference? {
        var result = ModelDifference()
        var i = 0, j = 0
        var differences = 0
        while i < old.count || j < new.count {
            guard differences <= limit else { return nil }
            guard i < old.count else {
                result.added += j..<new.count
                differences += new.count - j
                break
            }
            guard j < new.count else {
                result.removed += i..<old.count
                differences += old.count - i
                break
            }
            if identical(old.baseAddress! + i, new.baseAddress! + j) || old[i] == new[j] {
                i += 1
                j += 1
                continue
            }
            differences += 1
            let oldKey = key(old[i]), newKey = key(new[j])
            if oldKey == newKey {
                result.changed.append((i, j))
                i += 1
                j += 1
            } else if oldKey < newKey {
                result.removed.append(i)
                i += 1
            } else {
                result.added.append(j)
                j += 1
            }
        }
        return differences <= limit ? result : nil
    }

    /// True when two values have the same bytes: the same references and
    /// the same plain fields, so equal (false says nothing: compare them).
    /// Unchanged elements of Translate's models are copies of one value, and
    /// this avoids `==`'s retains and per-field work on every one of them.
    @inline(__always)
    static func identical<Element>(_ lhs: UnsafePointer<Element>, _ rhs: UnsafePointer<Element>) -> Bool {
        let size = MemoryLayout<Element>.size
        let left = UnsafeRawPointer(lhs), right = UnsafeRawPointer(rhs)
        var offset = 0
        while offset + 8 <= size {
            if left.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != right.loadUnaligned(fromByteOffset: offset, as: UInt64.self) {
                return false
            }
            offset += 8
        }
        while offset < size {
            if left.load(fromByteOffset: offset, as: UInt8.self) != right.load(fromByteOffset: offset, as: UInt8.self) { return false }
            offset += 1
        }
        return true
    }
}
