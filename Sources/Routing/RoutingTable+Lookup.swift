import RouteModel

extension RoutingTable {
    /// Routes one request. Allocation-free.
    ///
    /// - Parameters:
    ///   - host: the Host header (or `:authority`) bytes, any case, with or
    ///     without `:port`; a bracketed IPv6 literal keeps its brackets; one
    ///     trailing dot is ignored.
    ///   - path: the request path bytes without the query string, compared
    ///     case-sensitively and without percent-decoding.
    public func route(host: UnsafeRawBufferPointer, path: UnsafeRawBufferPointer) -> RouteDecision {
        let hostIndex = virtualHostIndex(host: host)
        var cluster: Int32 = -1
        if hostIndex >= 0 {
            let vhost = virtualHosts[Int(hostIndex)]
            cluster = matchPath(path, host: UInt32(hostIndex), vhost)
            if cluster < 0 { cluster = vhost.defaultCluster }
        }
        if cluster < 0 { cluster = defaultCluster }
        return cluster < 0 ? .notFound : .cluster(clusters[Int(cluster)])
    }

    /// Routes with strings, for tests and `postern route`; a `?query` on
    /// `path` is ignored.
    public func route(host: String, path: String) -> RouteDecision {
        var host = host
        var path = path
        if let query = path.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = String(path[..<query])
        }
        return host.withUTF8 { hostBytes in
            path.withUTF8 { pathBytes in
                route(host: UnsafeRawBufferPointer(hostBytes), path: UnsafeRawBufferPointer(pathBytes))
            }
        }
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
            var hasher = ByteHasher(tag: RoutingTable.exactHostTag)
            var firstDot = -1
            for i in 0..<end {
                var byte = host[i]
                if byte >= UInt8(ascii: "A"), byte <= UInt8(ascii: "Z") { byte |= 0x20 }
                if byte == UInt8(ascii: "."), firstDot < 0 { firstDot = i }
                lower[i] = byte
                hasher.add(byte)
            }
            let exact = hostTable.lookup(
                tag: RoutingTable.exactHostTag, hash: hasher.value, bytes: UnsafePointer(lower), count: end)
            if exact >= 0 { return exact }
            // `*.example.com` matches exactly one non-empty label before ".example.com".
            if firstDot > 0 {
                var suffixHasher = ByteHasher(tag: RoutingTable.wildcardHostTag)
                for i in firstDot..<end { suffixHasher.add(lower[i]) }
                let wildcard = hostTable.lookup(
                    tag: RoutingTable.wildcardHostTag, hash: suffixHasher.value,
                    bytes: UnsafePointer(lower + firstDot), count: end - firstDot)
                if wildcard >= 0 { return wildcard }
            }
            return anyHost
        }
    }

    /// Cluster index of the best path rule of one host, or -1.
    ///
    /// One pass over the path: the Exact hash of the whole path, and the
    /// Prefix hash looked up at every segment boundary (the later the match,
    /// the longer the prefix), so the cost grows with the number of segments,
    /// not the number of rules.
    @inline(__always)
    func matchPath(_ path: UnsafeRawBufferPointer, host: UInt32, _ vhost: CompiledVirtualHost) -> Int32 {
        let count = path.count
        guard count > 0, let base = path.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return vhost.rootCluster
        }
        let exactTag = host &* 2
        let prefixTag = host &* 2 &+ 1
        if vhost.hasExactPaths {
            var hasher = ByteHasher(tag: exactTag)
            for i in 0..<count { hasher.add(base[i]) }
            let found = pathTable.lookup(tag: exactTag, hash: hasher.value, bytes: base, count: count)
            if found >= 0 { return found }
        }
        var best = vhost.rootCluster
        guard vhost.hasPrefixPaths, base[0] == UInt8(ascii: "/") else { return best }
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
        return best
    }
}
