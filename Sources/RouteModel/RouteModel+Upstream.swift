/// How the proxy talks to a cluster's endpoints
/// (`nginx.ingress.kubernetes.io/backend-protocol` and the `proxy-ssl-*` annotations).
public struct UpstreamSettings: Sendable, Hashable {
    /// The protocol spoken to the endpoints.
    public enum WireProtocol: String, Sendable, Hashable {
        case http = "HTTP"
        case https = "HTTPS"
        case grpc = "GRPC"
        case grpcs = "GRPCS"
        case h2c = "H2C"
    }

    public var wireProtocol: WireProtocol
    /// TLS to the endpoints (HTTPS, GRPCS); nil otherwise.
    public var tls: UpstreamTLS?

    public init(wireProtocol: WireProtocol = .http, tls: UpstreamTLS? = nil) {
        self.wireProtocol = wireProtocol
        self.tls = tls
    }

    /// Plain HTTP/1.1: the default.
    public static let http = UpstreamSettings()
}

/// TLS from the proxy to the endpoints.
public struct UpstreamTLS: Sendable, Hashable {
    /// SNI sent, and the name checked when verifying: `proxy-ssl-name`, else
    /// the Service's cluster DNS name (`service.namespace.svc`).
    public var serverName: String
    /// `proxy-ssl-verify: "on"`: check the chain and the name (off by default, as in ingress-nginx).
    public var verify: Bool
    /// `ca.crt` of `proxy-ssl-secret` (PEM); nil uses the system trust store.
    public var certificateAuthoritiesPEM: [UInt8]?

    public init(serverName: String, verify: Bool, certificateAuthoritiesPEM: [UInt8]?) {
        self.serverName = serverName
        self.verify = verify
        self.certificateAuthoritiesPEM = certificateAuthoritiesPEM
    }
}
