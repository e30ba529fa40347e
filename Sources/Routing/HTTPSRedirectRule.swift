import RouteModel

/// What a route (or its host, when no route matched) says about plain-HTTP
/// requests: compiled from the Ingress's `ssl-redirect`,
/// `force-ssl-redirect` and `use-port-in-redirects` and from whether the
/// host has TLS (`RouteModel.httpsHosts`). One byte, read with the route.
public struct HTTPSRedirectRule: Sendable, Equatable {
    let bits: UInt8

    /// Redirect, whatever the request's host.
    static let always: UInt8 = 1
    /// Redirect when the request's host has TLS: `ssl-redirect` on a rule
    /// without a host, or for a request no host matched (only the
    /// request tells which host it is for).
    static let whenHostHasTLS: UInt8 = 2
    /// The Location names the HTTPS port even when it is 443.
    static let namesPort: UInt8 = 4

    /// No redirect.
    public static let none = HTTPSRedirectRule(bits: 0)

    /// True when no request is redirected by this rule.
    public var isNone: Bool { bits == 0 }

    init(bits: UInt8) { self.bits = bits }

    /// `redirect` as it applies to `host`'s routes; `hostHasTLS` answers for
    /// named hosts (`.any` is decided per request).
    init(_ redirect: HTTPSRedirect, host: HostMatch, hostHasTLS: (HostMatch) -> Bool) {
        let port = redirect.usePortInRedirects ? Self.namesPort : 0
        if redirect.forceSSLRedirect {
            bits = Self.always | port
        } else if redirect.sslRedirect {
            if case .any = host {
                bits = Self.whenHostHasTLS | port
            } else {
                bits = hostHasTLS(host) ? Self.always | port : 0
            }
        } else {
            bits = 0
        }
    }

    /// Both rules' redirects (a host's rule for requests no route matched).
    func union(_ other: HTTPSRedirectRule) -> HTTPSRedirectRule { HTTPSRedirectRule(bits: bits | other.bits) }
}

extension RoutingTable {
    /// Whether a plain-HTTP request that `rule` came with (`RouteResult.httpsRedirect`)
    /// and whose canonical host is `host` is redirected to HTTPS: nil for
    /// no, else whether the Location names the port (`use-port-in-redirects`).
    /// Only the request's host is looked up, and only for a rule that
    /// depends on it. Allocation-free.
    @inline(__always)
    public func httpsRedirect(_ rule: HTTPSRedirectRule, canonicalHost host: UnsafeRawBufferPointer) -> Bool? {
        let bits = rule.bits
        if bits & HTTPSRedirectRule.always != 0 { return bits & HTTPSRedirectRule.namesPort != 0 }
        guard bits & HTTPSRedirectRule.whenHostHasTLS != 0,
            RoutingTable.lookupHost(canonicalHost: host, in: httpsHostTable) >= 0
        else { return nil }
        return bits & HTTPSRedirectRule.namesPort != 0
    }

    /// The exact and wildcard (`*.suffix`) names of `hosts` in a host-name table (value 0).
    static func httpsHostTable(_ hosts: [String]) -> ByteKeyTable {
        var builder = ByteKeyTable.Builder(capacity: hosts.count)
        for host in hosts {
            let lower = lowercased(host)
            if lower.hasPrefix("*.") {
                builder.add(tag: wildcardHostTag, key: String(lower.dropFirst()), value: 0)
            } else {
                builder.add(tag: exactHostTag, key: lower, value: 0)
            }
        }
        return builder.build()
    }

    /// True when `host` (a model host) is one of `httpsHosts`, or falls
    /// under one of its wildcards (one extra label), as certificates match.
    static func hostHasTLS(_ host: HostMatch, httpsHosts: Set<String>) -> Bool {
        switch host {
        case let .exact(name):
            let lower = lowercased(name)
            if httpsHosts.contains(lower) { return true }
            guard let dot = lower.firstIndex(of: "."), dot > lower.startIndex else { return false }
            return httpsHosts.contains("*" + lower[dot...])
        case let .wildcard(suffix):
            return httpsHosts.contains("*" + lowercased(suffix))
        case .any:
            return false
        }
    }
}
