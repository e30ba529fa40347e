import Proxy
import YAML

extension Settings {
    /// The keys that say who the client is (forwarded headers, PROXY
    /// protocol), with ingress-nginx's ConfigMap names, value syntax and
    /// defaults. They set `clientAddress` (`ClientAddressSettings`).
    static let clientAddressKeys: [String: (inout Settings, YAMLNode, String) throws -> Void] = [
        "use-forwarded-headers": { $0.clientAddress.useForwardedHeaders = try boolean($1, $2) },
        "enable-real-ip": { $0.clientAddress.enableRealIP = try boolean($1, $2) },
        "compute-full-forwarded-for": { $0.clientAddress.computeFullForwardedFor = try boolean($1, $2) },
        "use-proxy-protocol": { $0.clientAddress.useProxyProtocol = try boolean($1, $2) },
        "forwarded-for-header": {
            let name = try string($1, $2)
            guard ClientAddressSettings.isFieldName(name) else {
                throw SettingsError("\($2): expected a header field name, e.g. X-Forwarded-For or CF-Connecting-IP")
            }
            $0.clientAddress.forwardedForHeader = name
        },
        "proxy-real-ip-cidr": { settings, node, name in
            // ingress-nginx: a comma-separated list; a YAML list is taken too.
            let text: String
            if let sequence = node.sequence {
                text = try sequence.map { try string($0, name) }.joined(separator: ",")
            } else {
                text = try string(node, name)
            }
            switch ClientAddressSettings.parseRanges(text) {
            case let .success(ranges): settings.clientAddress.trustedRanges = ranges
            case let .failure(error):
                throw SettingsError("\(name): '\(error.element)' is not an IPv4 or IPv6 address or CIDR (expected e.g. 10.0.0.0/8,2001:db8::/32)")
            }
        },
        "proxy-protocol-header-timeout": {
            // ingress-nginx writes it as nginx time: "5s"; bare seconds are taken.
            let seconds = try seconds($1, $2)
            $0.clientAddress.proxyProtocolHeaderTimeoutMilliseconds = UInt64((seconds * 1000).rounded())
        },
    ]
}
