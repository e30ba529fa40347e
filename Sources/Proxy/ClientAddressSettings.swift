import RouteModel

/// Who the client of a request is, as ingress-nginx's ConfigMap says it:
/// forwarded headers from trusted proxies, PROXY protocol on the listeners.
/// Defaults are ingress-nginx's.
public struct ClientAddressSettings: Sendable, Equatable {
    /// `use-forwarded-headers`: take the client address from
    /// `forwardedForHeader`, and pass `X-Forwarded-Proto`, `-Host` and
    /// `-Port` through, when the peer is in `trustedRanges`.
    public var useForwardedHeaders = false
    /// `enable-real-ip`: take the client address from `forwardedForHeader`
    /// of trusted peers without passing the other forwarded headers through.
    public var enableRealIP = false
    /// `proxy-real-ip-cidr`: the peers (load balancers, proxies) whose word
    /// on the client address is taken. ingress-nginx's default: `0.0.0.0/0`.
    public var trustedRanges: [IPRange] = ClientAddressSettings.defaultTrustedRanges
    /// `forwarded-for-header`: the field that names the client (`X-Forwarded-For`).
    public var forwardedForHeader = "X-Forwarded-For"
    /// `compute-full-forwarded-for`: append the peer to a trusted
    /// `X-Forwarded-For` instead of replacing it (with `use-forwarded-headers`).
    public var computeFullForwardedFor = false
    /// `use-proxy-protocol`: every connection on the HTTP and HTTPS listeners
    /// starts with a PROXY protocol header (v1 or v2).
    public var useProxyProtocol = false
    /// `proxy-protocol-header-timeout`: how long a connection may take to send it.
    public var proxyProtocolHeaderTimeoutMilliseconds: UInt64 = 5_000

    public static let defaultTrustedRanges: [IPRange] = [IPRange(address: .v4(0, 0, 0, 0), prefixLength: 0)!]

    public init() {}

    /// Whether the realip step runs at all (as ingress-nginx's template:
    /// `use-forwarded-headers`, `use-proxy-protocol` or `enable-real-ip`).
    public var realIPEnabled: Bool { useForwardedHeaders || useProxyProtocol || enableRealIP }

    /// Parses a `proxy-real-ip-cidr` value: CIDRs or addresses separated
    /// by commas (spaces allowed). nil names the first bad element.
    public static func parseRanges(_ text: String) -> Result<[IPRange], RangeListError> {
        var ranges: [IPRange] = []
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = element.trimmedOf(" \t")
            guard !trimmed.isEmpty else { return .failure(RangeListError(element: String(element))) }
            guard let range = IPRange(parsing: trimmed) else { return .failure(RangeListError(element: trimmed)) }
            ranges.append(range)
        }
        return ranges.isEmpty ? .failure(RangeListError(element: text)) : .success(ranges)
    }

    /// A `proxy-real-ip-cidr` element that is not an address or CIDR.
    public struct RangeListError: Error, Equatable {
        public let element: String
    }

    /// True for a header name nginx accepts in `real_ip_header`: an HTTP
    /// token (letters, digits, `-`, `_`, ...), not empty.
    public static func isFieldName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 64 else { return false }
        return text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
            }
        }
    }
}

extension StringProtocol {
    fileprivate func trimmedOf(_ set: String) -> String {
        var text = Substring(self)
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
