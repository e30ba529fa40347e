/// Who the client of a request is, as ingress-nginx's ConfigMap says it:
/// forwarded headers from trusted proxies, PROXY protocol on the listeners.
public struct ClientAddressSettings: Sendable, Equatable {
    public init() {}
}
