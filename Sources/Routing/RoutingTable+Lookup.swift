import RegexEngine
import RouteModel

extension RoutingTable {
    /// Routes one request. Allocation-free; equivalent to
    /// `route(host:path:rewriteInto:)` with the rewrite ignored.
    ///
    /// - Parameters:
    ///   - host: the Host header (or `:authority`) bytes, any case, with or
    ///     without `:port`; a bracketed IPv6 literal keeps its brackets; one
    ///     trailing dot is ignored.
    ///   - path: the request path bytes without the query string, compared
    ///     case-sensitively and without percent-decoding, after dot-segments
    ///     are removed (`PathNormalization`).
    public func route(host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> RouteDecision {
        route(host: host, path: path, rewriteInto: UnsafeMutableRawBufferPointer(start: nil, count: 0), wantsRewrite: false)
            .decision
    }

    /// Routes one request and, when the chosen rule has a `rewrite-target`,
    /// writes the path to send upstream into `rewriteInto`. Allocation-free
    /// (dot-segment removal uses a stack buffer).
    ///
    /// The proxy sends `rewriteInto[0..<count]` as the upstream path when the
    /// result is `.rewritten(count:)`, followed by the client's `?query` if it
    /// had one; on `.none` it sends the client's target unchanged; `.tooLong`
    /// answers 414. `host` and `path` are as for `route(host:path:)`.
    public func route(
        host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer, rewriteInto: UnsafeMutableRawBufferPointer
    ) -> RouteResult {
        route(host: host, path: path, rewriteInto: rewriteInto, wantsRewrite: true)
    }

    /// Routes a request whose host is already canonical (`HostName`): the
    /// request pipeline's call, which skips the case folding and port
    /// handling of `route(host:path:rewriteInto:)`.
    public func route(
        canonicalHost host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer, rewriteInto: UnsafeMutableRawBufferPointer
    ) -> RouteResult {
        route(hostIndex: virtualHostIndex(canonicalHost: host), path: path, rewriteInto: rewriteInto, wantsRewrite: true)
    }

    /// Routes with strings, for tests and `postern route`; a `?query` on
    /// `path` is ignored.
    public func route(host: String, path: String) -> RouteDecision {
        routeWithRewrite(host: host, path: path).decision
    }

    /// Routes with strings and returns the rewritten upstream path (nil when
    /// the target is unchanged), for tests and `postern route`.
    public func routeWithRewrite(host: String, path: String) -> (decision: RouteDecision, rewrittenPath: String?) {
        var host = host
        var path = path
        if let query = path.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(path[..<query])
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        let result = host.withUTF8 { hostBytes in
            path.withUTF8 { pathBytes in
                buffer.withUnsafeMutableBytes { out in
                    route(host: UnsafeRawBufferPointer(hostBytes), path: UnsafeRawBufferPointer(pathBytes), rewriteInto: out)
                }
            }
        }
        switch result.rewrite {
        case .none: return (result.decision, nil)
        case let .rewritten(count): return (result.decision, String(decoding: buffer[0..<count], as: UTF8.self))
        case .tooLong: return (result.decision, nil)
        }
    }

    @inline(__always)
    private func route(
        host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer, rewriteInto: UnsafeMutableRawBufferPointer,
        wantsRewrite: Bool
    ) -> RouteResult {
        route(hostIndex: virtualHostIndex(host: host), path: path, rewriteInto: rewriteInto, wantsRewrite: wantsRewrite)
    }

    @inline(__always)
    private func route(
        hostIndex: Int32, path: UnsafeRawBufferPointer, rewriteInto: UnsafeMutableRawBufferPointer, wantsRewrite: Bool
    ) -> RouteResult {
        var cluster: Int32 = -1
        var policy: Int32 = -1
        var redirect = defaultHTTPSRedirect
        var viaDefault = hostIndex < 0
        var rewrite = PathRewrite.none
        if hostIndex >= 0 {
            let vhost = virtualHosts[Int(hostIndex)]
            if PathNormalization.needsNormalization(path) {
                // Never longer than the input. Stack for ordinary lengths.
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: path.count) { buffer in
                    let count = PathNormalization.normalize(path, into: buffer.baseAddress!)
                    cluster = matchRoute(
                        UnsafeRawBufferPointer(start: buffer.baseAddress, count: count), host: UInt32(hostIndex), vhost,
                        rewriteInto: rewriteInto, wantsRewrite: wantsRewrite, rewrite: &rewrite, policy: &policy,
                        redirect: &redirect)
                }
            } else {
                cluster = matchRoute(
                    path, host: UInt32(hostIndex), vhost, rewriteInto: rewriteInto, wantsRewrite: wantsRewrite,
                    rewrite: &rewrite, policy: &policy, redirect: &redirect)
            }
            if cluster < 0 {
                cluster = vhost.defaultCluster
                redirect = vhost.fallbackRedirect
                viaDefault = true
            }
        }
        if cluster < 0 {
            cluster = defaultCluster
            viaDefault = true
        }
        // A default backend has no rule of its own: the global policy
        // (`proxy-body-size`, source ranges, `block-cidrs`) applies to it.
        return RouteResult(
            decision: cluster < 0 ? .notFound : .cluster(clusters[Int(cluster)]), rewrite: rewrite,
            policy: policy >= 0 ? policies[Int(policy)] : (viaDefault ? defaultPolicy : nil),
            httpsRedirect: redirect)
    }

    /// Cluster of the chosen rule (and its rewrite), or -1.
    @inline(__always)
    private func matchRoute(
        _ path: UnsafeRawBufferPointer, host: UInt32, _ vhost: CompiledVirtualHost,
        rewriteInto: UnsafeMutableRawBufferPointer, wantsRewrite: Bool, rewrite: inout PathRewrite, policy: inout Int32,
        redirect: inout HTTPSRedirectRule
    ) -> Int32 {
        if vhost.regexStart < vhost.regexEnd {
            return withUnsafeTemporaryAllocation(of: Int32.self, capacity: 2 * LinearRegex.maximumGroups) { offsets in
                let offsets = offsets.baseAddress!
                let (routeIndex, groups) = matchPath(path, host: host, vhost, offsets: offsets)
                guard routeIndex >= 0 else { return -1 }
                let route = routes[Int(routeIndex)]
                if wantsRewrite, route.rewrite >= 0 {
                    rewrite = applyRewrite(route.rewrite, path: path, offsets: offsets, groups: groups, into: rewriteInto)
                }
                policy = route.policy
                redirect = route.httpsRedirect
                return route.cluster
            }
        }
        let (routeIndex, _) = matchPath(path, host: host, vhost, offsets: nil)
        guard routeIndex >= 0 else { return -1 }
        let route = routes[Int(routeIndex)]
        if wantsRewrite, route.rewrite >= 0 {
            rewrite = applyRewrite(route.rewrite, path: path, offsets: nil, groups: 0, into: rewriteInto)
        }
        policy = route.policy
        redirect = route.httpsRedirect
        return route.cluster
    }

    @inline(__always)
    private func applyRewrite(
        _ index: Int32, path: UnsafeRawBufferPointer, offsets: UnsafeMutablePointer<Int32>?, groups: Int,
        into output: UnsafeMutableRawBufferPointer
    ) -> PathRewrite {
        let template = rewrites[Int(index)]
        let base = path.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(bitPattern: 1)!
        let written: Int?
        if let offsets {
            written = template.expand(path: base, offsets: offsets, groups: groups, into: output)
        } else {
            var none: Int32 = -1
            written = template.expand(path: base, offsets: &none, groups: 0, into: output)
        }
        guard let written else { return .tooLong }
        return .rewritten(count: written)
    }

    /// Index of the virtual host for `host`, or -1.
    @inline(__always)
    func virtualHostIndex(host: UnsafeRawBufferPointer) -> Int32 {
        // The name part: up to the port, brackets kept for IPv6 literals.
        var end = host.count
        if end > 0, host[0] == UInt8(ascii: "[") {
            var i = 1
            while i < end, host[i] != UInt8(ascii: "]") { i += 1 }
            end = i < end ? i + 1 : end
        } else {
            var i = 0
            while i < end, host[i] != UInt8(ascii: ":") { i += 1 }
            end = i
        }
        if end > 1, host[end - 1] == UInt8(ascii: ".") { end -= 1 }
        guard end > 0, end <= RoutingTable.maximumHostLength else { return anyHost }

        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: RoutingTable.maximumHostLength) { buffer in
            guard let lower = buffer.baseAddress else { return anyHost }
            for i in 0..<end {
                let byte = host[i]
                lower[i] = byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
            }
            return virtualHostIndex(canonicalHost: UnsafeRawBufferPointer(start: lower, count: end))
        }
    }

    /// Index of the virtual host for a canonical host (lower case, no port,
    /// no trailing dot: `HostName`'s output), or -1. No copy.
    @inline(__always)
    func virtualHostIndex(canonicalHost host: UnsafeRawBufferPointer) -> Int32 {
        let found = RoutingTable.lookupHost(canonicalHost: host, in: hostTable)
        return found >= 0 ? found : anyHost
    }

    /// The value of a canonical host in a host-name table (tag 0 exact
    /// names, tag 1 wildcard suffixes), or -1.
    @inline(__always)
    static func lookupHost(canonicalHost host: UnsafeRawBufferPointer, in table: ByteKeyTable) -> Int32 {
        let end = host.count
        guard end > 0, end <= RoutingTable.maximumHostLength,
            let base = host.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return -1 }
        var hasher = ByteHasher(tag: RoutingTable.exactHostTag)
        var firstDot = -1
        for i in 0..<end {
            let byte = base[i]
            if byte == UInt8(ascii: "."), firstDot < 0 { firstDot = i }
            hasher.add(byte)
        }
        let exact = table.lookup(tag: RoutingTable.exactHostTag, hash: hasher.value, bytes: base, count: end)
        if exact >= 0 { return exact }
        // `*.example.com` matches exactly one non-empty label before ".example.com".
        if firstDot > 0 {
            var suffixHasher = ByteHasher(tag: RoutingTable.wildcardHostTag)
            for i in firstDot..<end { suffixHasher.add(base[i]) }
            let wildcard = table.lookup(
                tag: RoutingTable.wildcardHostTag, hash: suffixHasher.value, bytes: base + firstDot, count: end - firstDot)
            if wildcard >= 0 { return wildcard }
        }
        return -1
    }

    /// Route index of the best path rule of one host, or -1, and for a regex
    /// rule the number of groups written to `offsets`.
    ///
    /// Exact: one hash lookup of the whole path. Regex: the host's patterns
    /// in order, each linear in the path. Prefix: one pass over the path,
    /// looking up the hash at every segment boundary (the later the match,
    /// the longer the prefix), so the cost grows with the number of segments,
    /// not the number of rules.
    @inline(__always)
    func matchPath(
        _ path: UnsafeRawBufferPointer, host: UInt32, _ vhost: CompiledVirtualHost,
        offsets: UnsafeMutablePointer<Int32>?
    ) -> (route: Int32, groups: Int) {
        let count = path.count
        guard count > 0, let base = path.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return (vhost.rootRoute, 0)
        }
        let exactTag = host &* 2
        let prefixTag = host &* 2 &+ 1
        if vhost.hasExactPaths {
            var hasher = ByteHasher(tag: exactTag)
            for i in 0..<count { hasher.add(base[i]) }
            let found = pathTable.lookup(tag: exactTag, hash: hasher.value, bytes: base, count: count)
            if found >= 0 { return (found, 0) }
        }
        if let offsets {
            var i = Int(vhost.regexStart)
            let end = Int(vhost.regexEnd)
            while i < end {
                let candidate = regexRoutes[i]
                if candidate.regex.matchesPrefix(path, offsets: offsets, groups: Int(candidate.groups)) {
                    return (candidate.route, Int(candidate.groups))
                }
                i += 1
            }
        }
        var best = vhost.rootRoute
        guard vhost.hasPrefixPaths, base[0] == UInt8(ascii: "/") else { return (best, 0) }
        var hasher = ByteHasher(tag: prefixTag)
        hasher.add(base[0])
        var i = 1
        while i < count {
            let byte = base[i]
            if byte == UInt8(ascii: "/") {
                // path[0..<i] is a whole-segment prefix.
                let found = pathTable.lookup(tag: prefixTag, hash: hasher.value, bytes: base, count: i)
                if found >= 0 { best = found }
            }
            hasher.add(byte)
            i += 1
        }
        if base[count - 1] != UInt8(ascii: "/") {
            let found = pathTable.lookup(tag: prefixTag, hash: hasher.value, bytes: base, count: count)
            if found >= 0 { best = found }
        }
        return (best, 0)
    }
}
