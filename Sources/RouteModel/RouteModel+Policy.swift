/// What a route asks of each request before it is forwarded: filled by
/// Translate from the Ingress's annotations (and global settings), compiled
/// into the routing table, enforced by the request pipeline for HTTP/1.1 and
/// HTTP/2 alike. The default asks nothing.
public struct RoutePolicy: Sendable, Hashable {
    /// The Ingress asks for something Postern does not honour and whose
    /// absence would leave the route less protected (an unsupported `auth-*`,
    /// a snippet, a WAF): requests get 503 and never reach the backend. The
    /// text names the annotation, for logs and `postern route`.
    public var refusal: String?
    /// `whitelist-source-range` / `allowlist-source-range`: only clients in
    /// these ranges are served (403 otherwise). Empty: every client.
    public var allowedSourceRanges: [IPRange]
    /// `denylist-source-range`: clients in these ranges get 403 (checked
    /// before the allow list).
    public var deniedSourceRanges: [IPRange]
    /// `proxy-body-size` in bytes: a larger request body gets 413 (or the
    /// stream is cut once the limit is crossed). nil: no limit.
    public var maximumBodySize: UInt64?

    public init(
        refusal: String? = nil, allowedSourceRanges: [IPRange] = [], deniedSourceRanges: [IPRange] = [],
        maximumBodySize: UInt64? = nil
    ) {
        self.refusal = refusal
        self.allowedSourceRanges = allowedSourceRanges
        self.deniedSourceRanges = deniedSourceRanges
        self.maximumBodySize = maximumBodySize
    }

    /// True when the policy asks nothing of a request.
    public var isEmpty: Bool {
        refusal == nil && allowedSourceRanges.isEmpty && deniedSourceRanges.isEmpty && maximumBodySize == nil
    }
}

/// An IPv4 or IPv6 CIDR range (`10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is a range of one). Host bits are cleared.
public struct IPRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The first address of the range.
    public var address: IPAddress
    /// Leading bits that must match (0-32 for IPv4, 0-128 for IPv6).
    public var prefixLength: Int

    public init?(address: IPAddress, prefixLength: Int) {
        let bits = address.bytes.count * 8
        guard prefixLength >= 0, prefixLength <= bits else { return nil }
        var bytes = address.bytes
        for index in 0..<bytes.count {
            let keep = max(0, min(8, prefixLength - index * 8))
            bytes[index] &= keep == 0 ? 0 : ~UInt8(0) << (8 - keep)
        }
        self.address = bytes.count == 4 ? .v4(bytes[0], bytes[1], bytes[2], bytes[3]) : .v6(bytes)
        self.prefixLength = prefixLength
    }

    /// Parses `ADDRESS` or `ADDRESS/BITS` (surrounding spaces allowed).
    public init?(parsing text: String) {
        let trimmed = text.trimmingSpaces
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parsing: String(parts[0])) else { return nil }
        let bits = address.bytes.count * 8
        var prefixLength = bits
        if parts.count == 2 {
            guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), parts[1].count <= 3,
                let value = Int(parts[1])
            else { return nil }
            prefixLength = value
        }
        self.init(address: address, prefixLength: prefixLength)
    }

    /// True when `bytes` (4 or 16 network-order bytes) is in the range.
    public func contains(_ bytes: [UInt8]) -> Bool {
        let own = address.bytes
        guard own.count == bytes.count else { return false }
        var remaining = prefixLength
        var index = 0
        while remaining > 0 {
            let bits = min(8, remaining)
            let mask: UInt8 = ~UInt8(0) << (8 - bits)
            if own[index] & mask != bytes[index] & mask { return false }
            remaining -= bits
            index += 1
        }
        return true
    }

    public static func < (lhs: IPRange, rhs: IPRange) -> Bool {
        (lhs.address, lhs.prefixLength) < (rhs.address, rhs.prefixLength)
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " || scalars.first == "\t" { scalars.removeFirst() }
        while scalars.last == " " || scalars.last == "\t" { scalars.removeLast() }
        return String(scalars)
    }
}
