/// The translated routing configuration: plain values, no behaviour.
///
/// Produced by Translate from Kubernetes objects, consumed by Routing's
/// compiler. Every array is sorted by Translate so that the same objects in any
/// order give an equal model (and an unchanged model is not republished).
public struct RouteModel: Sendable, Equatable {
    /// Virtual hosts with an exact or wildcard name, plus at most one
    /// `.any` host that collects the rules without a host.
    public var virtualHosts: [VirtualHost]
    /// Clusters referenced by routes, keyed by `Cluster.name`.
    public var clusters: [Cluster]
    /// The cluster answering requests that no host and no rule matched
    /// (`--default-backend-service`); nil answers 404.
    public var defaultCluster: String?
    /// The global policy (ConfigMap / `postern.yaml`: `proxy-body-size`,
    /// `whitelist-source-range`, `denylist-source-range`, `block-cidrs`)
    /// for requests forwarded without a route of their own: a host's
    /// `spec.defaultBackend` and the global default backend. Routes carry
    /// the global policy merged into their own (Translate does that).
    public var defaultPolicy: RoutePolicy
    /// Hosts (lower case, exact or `*.suffix`) named in the `spec.tls`
    /// entries of served Ingresses, sorted: the hosts whose routes
    /// `ssl-redirect` sends to HTTPS (ingress-nginx redirects a location
    /// only when its server has TLS).
    public var httpsHosts: [String]
    /// The global `ssl-redirect` / `force-ssl-redirect` (ConfigMap): the
    /// redirect of requests that no route of their host matched (the host's
    /// or the global default backend, or 404).
    public var defaultHTTPSRedirect: HTTPSRedirect
    /// The `Strict-Transport-Security` value sent on HTTPS responses (the
    /// `hsts*` settings), nil for none.
    public var strictTransportSecurity: String?

    public init(
        virtualHosts: [VirtualHost] = [], clusters: [Cluster] = [], defaultCluster: String? = nil,
        defaultPolicy: RoutePolicy = RoutePolicy(), httpsHosts: [String] = [],
        defaultHTTPSRedirect: HTTPSRedirect = HTTPSRedirect(), strictTransportSecurity: String? = nil
    ) {
        self.virtualHosts = virtualHosts
        self.clusters = clusters
        self.defaultCluster = defaultCluster
        self.defaultPolicy = defaultPolicy
        self.httpsHosts = httpsHosts
        self.defaultHTTPSRedirect = defaultHTTPSRedirect
        self.strictTransportSecurity = strictTransportSecurity
    }
}

/// What an Ingress asks of its plain-HTTP requests, per location as in
/// ingress-nginx: `ssl-redirect` (redirect when the host has TLS),
/// `force-ssl-redirect` (redirect whether or not it has), and
/// `use-port-in-redirects` (the Location names the HTTPS port even when it
/// is 443). The global keys give the defaults. No redirect by default.
public struct HTTPSRedirect: Sendable, Hashable {
    /// `ssl-redirect`: redirect when the route's host is in `RouteModel.httpsHosts`.
    public var sslRedirect: Bool
    /// `force-ssl-redirect`: redirect whatever the host.
    public var forceSSLRedirect: Bool
    /// `use-port-in-redirects`.
    public var usePortInRedirects: Bool

    public init(sslRedirect: Bool = false, forceSSLRedirect: Bool = false, usePortInRedirects: Bool = false) {
        self.sslRedirect = sslRedirect
        self.forceSSLRedirect = forceSSLRedirect
        self.usePortInRedirects = usePortInRedirects
    }
}

/// How a virtual host matches the request's Host (case-insensitive, port ignored).
public enum HostMatch: Sendable, Hashable, Comparable {
    /// Byte-exact match of a lower-cased host name.
    case exact(String)
    /// `*.example.com`: exactly one extra label before `suffix` (stored as
    /// `.example.com`, lower-cased).
    case wildcard(suffix: String)
    /// Rules written without a host: used when no other host matches.
    case any
}

/// One host's routes.
public struct VirtualHost: Sendable, Equatable {
    public var host: HostMatch
    /// Sorted by Translate; Routing applies its own precedence regardless.
    public var routes: [Route]
    /// The cluster for requests to this host that match no path (an
    /// Ingress's `spec.defaultBackend`); nil falls back to the global one.
    public var defaultCluster: String?

    public init(host: HostMatch, routes: [Route], defaultCluster: String? = nil) {
        self.host = host
        self.routes = routes
        self.defaultCluster = defaultCluster
    }
}

/// How a route's path is compared with the request path.
public enum PathMatch: Sendable, Hashable, Comparable {
    /// Byte-exact, case-sensitive.
    case exact
    /// Element-wise on `/`-separated segments: `/foo` matches `/foo`,
    /// `/foo/` and `/foo/bar`, never `/foobar`.
    case prefix
    /// `Route.path` is an RE2 pattern matched anchored at the start of the
    /// path (not at its end), as ingress-nginx's `use-regex` does.
    case regex
}

/// One path rule of a virtual host.
public struct Route: Sendable, Equatable {
    /// The rule's path, starting with `/`. For `.prefix` a trailing `/` has
    /// been removed by Translate (except for the root path `/`).
    public var path: String
    public var match: PathMatch
    /// Name of the cluster that serves the route.
    public var cluster: String
    /// The Ingress the rule came from (`namespace/name`), for diagnostics and `route`.
    public var source: String
    /// Where in the Ingress the rule is written (`spec.rules[0].http.paths[1]`); empty when unknown.
    public var location: String
    /// `nginx.ingress.kubernetes.io/rewrite-target`: the path sent upstream,
    /// with `$0`-`$9` replaced by the capture groups of a `.regex` route
    /// (empty for other routes). nil sends the client's path unchanged.
    public var rewriteTarget: String?
    /// What the route asks of each request (source ranges, body size,
    /// refusal); empty by default.
    public var policy: RoutePolicy
    /// Its Ingress's HTTPS redirect settings (none by default).
    public var httpsRedirect: HTTPSRedirect

    public init(
        path: String, match: PathMatch, cluster: String, source: String, location: String = "",
        rewriteTarget: String? = nil, policy: RoutePolicy = RoutePolicy(), httpsRedirect: HTTPSRedirect = HTTPSRedirect()
    ) {
        self.path = path
        self.match = match
        self.cluster = cluster
        self.source = source
        self.location = location
        self.rewriteTarget = rewriteTarget
        self.policy = policy
        self.httpsRedirect = httpsRedirect
    }
}

/// A set of interchangeable endpoints: one Service port.
public struct Cluster: Sendable, Equatable {
    /// `namespace/service:port` (the port as written in the Ingress: number or name).
    public var name: String
    /// Ready endpoints, sorted. Empty means 503.
    public var endpoints: [Endpoint]
    /// Why the cluster cannot serve, when Translate knows (missing service,
    /// unsupported resource backend); nil otherwise.
    public var unavailableReason: String?
    /// How to talk to the endpoints (HTTP by default).
    public var upstream: UpstreamSettings

    public init(name: String, endpoints: [Endpoint], unavailableReason: String? = nil, upstream: UpstreamSettings = .http) {
        self.name = name
        self.endpoints = endpoints
        self.unavailableReason = unavailableReason
        self.upstream = upstream
    }
}

/// A numeric IP address (no names: the data path never resolves DNS).
public enum IPAddress: Sendable, Hashable, Comparable {
    /// Four bytes in network order, e.g. 127.0.0.1 is (127, 0, 0, 1).
    case v4(UInt8, UInt8, UInt8, UInt8)
    /// Sixteen bytes in network order.
    case v6([UInt8])

    /// Byte order (`bytes` compared lexicographically), without building
    /// arrays for two IPv4 addresses: sorting a cluster's endpoints compares
    /// n log n times.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if case let .v4(a0, a1, a2, a3) = lhs, case let .v4(b0, b1, b2, b3) = rhs {
            return (a0, a1, a2, a3) < (b0, b1, b2, b3)
        }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }

    /// The address bytes in network order (4 or 16).
    public var bytes: [UInt8] {
        switch self {
        case let .v4(a, b, c, d): return [a, b, c, d]
        case let .v6(bytes): return bytes
        }
    }
}

/// One Pod address and port.
public struct Endpoint: Sendable, Hashable, Comparable {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func < (lhs: Endpoint, rhs: Endpoint) -> Bool {
        if lhs.address != rhs.address { return lhs.address < rhs.address }
        return lhs.port < rhs.port
    }
}
