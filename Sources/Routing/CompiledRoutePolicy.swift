import RouteModel

/// A client's address as the access checks read it: IPv4 as the low 32
/// bits, IPv6 as 128 bits; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// from a dual-stack listener) is read as the IPv4 address it carries.
public struct ClientAddress: Sendable, Hashable {
    public enum Family: Sendable, Hashable { case v4, v6 }
    public let family: Family
    public let value: UInt128

    /// An IPv4 address (`a.b.c.d` is `a << 24 | b << 16 | c << 8 | d`). Not
    /// generic, so the data path's parsers call it without a generic
    /// collection walk.
    @inlinable
    public init(v4 value: UInt32) {
        family = .v4
        self.value = UInt128(value)
    }

    /// An IPv6 address as one 128-bit number; an IPv4-mapped one
    /// (`::ffff:a.b.c.d`) is its IPv4 address, as `init(bytes:)` reads it.
    @inlinable
    public init(v6 value: UInt128) {
        if value >> 32 == 0xffff {
            family = .v4
            self.value = value & 0xffff_ffff
        } else {
            family = .v6
            self.value = value
        }
    }

    /// From network-order bytes (4 or 16); nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        var value: UInt128 = 0
        for byte in bytes { value = value << 8 | UInt128(byte) }
        if bytes.count == 16, value >> 32 == 0xffff {
            family = .v4
            self.value = value & 0xffff_ffff
        } else {
            family = bytes.count == 4 ? .v4 : .v6
            self.value = value
        }
    }
}

/// A set of address ranges, merged into sorted disjoint intervals per
/// family: membership is a binary search, so a list of 1,000 CIDRs costs
/// about ten comparisons. Immutable.
public struct AddressRangeSet: Sendable {
    private let v4: [ClosedRange<UInt128>]
    private let v6: [ClosedRange<UInt128>]

    public init(_ ranges: [IPRange]) {
        var v4: [ClosedRange<UInt128>] = []
        var v6: [ClosedRange<UInt128>] = []
        for range in ranges {
            let bytes = range.address.bytes
            var start: UInt128 = 0
            for byte in bytes { start = start << 8 | UInt128(byte) }
            let bits = bytes.count * 8
            let hostBits = bits - range.prefixLength
            let size: UInt128 = hostBits == 128 ? .max : (UInt128(1) << hostBits) - 1
            let interval = start...(start + size)
            if bytes.count == 4 { v4.append(interval) } else { v6.append(interval) }
        }
        self.v4 = AddressRangeSet.merged(v4)
        self.v6 = AddressRangeSet.merged(v6)
    }

    public var isEmpty: Bool { v4.isEmpty && v6.isEmpty }

    private static func merged(_ intervals: [ClosedRange<UInt128>]) -> [ClosedRange<UInt128>] {
        var result: [ClosedRange<UInt128>] = []
        for interval in intervals.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, last.upperBound == .max || interval.lowerBound <= last.upperBound + 1 {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, interval.upperBound)
            } else {
                result.append(interval)
            }
        }
        return result
    }

    /// True when `address` is in one of the ranges.
    @inline(__always)
    public func contains(_ address: ClientAddress) -> Bool {
        let intervals = address.family == .v4 ? v4 : v6
        var low = 0
        var high = intervals.count
        // The last interval starting at or before the address.
        while low < high {
            let middle = (low + high) / 2
            if intervals[middle].lowerBound <= address.value { low = middle + 1 } else { high = middle }
        }
        return low > 0 && intervals[low - 1].upperBound >= address.value
    }
}

/// A route's `RoutePolicy` compiled for the request path. Shared by every
/// route with an equal policy; immutable.
public final class CompiledRoutePolicy: Sendable {
    /// The policy it was compiled from.
    public let policy: RoutePolicy
    private let denied: AddressRangeSet
    /// nil: every client.
    private let allowed: AddressRangeSet?
    /// `proxy-body-size`: the largest request body forwarded, nil for no limit.
    public let maximumBodySize: UInt64?
    /// True when the route is refused (an annotation Postern does not honour).
    public let isRefused: Bool

    public init(_ policy: RoutePolicy) {
        self.policy = policy
        denied = AddressRangeSet(policy.deniedSourceRanges)
        allowed = policy.allowedSourceRanges.isEmpty ? nil : AddressRangeSet(policy.allowedSourceRanges)
        maximumBodySize = policy.maximumBodySize
        isRefused = policy.refusal != nil
    }

    /// True when a client at `address` may use the route: not denied, and
    /// allowed when there is an allow list. An unknown address (nil) is
    /// admitted only when there are no lists.
    @inline(__always)
    public func admits(_ address: ClientAddress?) -> Bool {
        guard let address else { return denied.isEmpty && allowed == nil }
        if denied.contains(address) { return false }
        if let allowed { return allowed.contains(address) }
        return true
    }
}
