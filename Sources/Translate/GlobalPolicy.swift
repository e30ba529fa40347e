import RouteModel

/// The global policy keys of the settings (`postern.yaml` and the
/// `--configmap` ConfigMap), with ingress-nginx's meaning: what every
/// Ingress gets unless its own annotation says otherwise.
///
/// - `proxy-body-size`: the body limit of routes without the annotation
///   (ingress-nginx's default is `1m`; `0` is no limit).
/// - `whitelist-source-range` / `denylist-source-range`: the allow and deny
///   lists of routes without the annotation of the same list (ingress-nginx
///   reads the global value as the annotation's default).
/// - `block-cidrs`: denied on every route, whatever its annotations say.
/// - `ssl-redirect` / `force-ssl-redirect`: the defaults of the annotations
///   of the same names.
///
/// `TranslateOptions()` carries `GlobalPolicy()`, which asks nothing (no
/// body limit, no lists): the product defaults (`1m`) are the settings'
/// (`GlobalPolicy.ingressNginxDefaults`), so that translation tests state
/// the globals they rely on.
public struct GlobalPolicy: Sendable, Equatable {
    /// `proxy-body-size` in bytes; nil: no limit.
    public var maximumBodySize: UInt64?
    /// `whitelist-source-range` (sorted, no repeats); empty: every client.
    public var allowedSourceRanges: [IPRange]
    /// `denylist-source-range` (sorted, no repeats).
    public var deniedSourceRanges: [IPRange]
    /// `block-cidrs` (sorted, no repeats).
    public var blockedSourceRanges: [IPRange]
    /// `ssl-redirect`: hosts of a `spec.tls` entry redirect plain HTTP to HTTPS.
    public var sslRedirect: Bool
    /// `force-ssl-redirect`: every rule host redirects, with or without `spec.tls`.
    public var forceSSLRedirect: Bool

    public init(
        maximumBodySize: UInt64? = nil, allowedSourceRanges: [IPRange] = [], deniedSourceRanges: [IPRange] = [],
        blockedSourceRanges: [IPRange] = [], sslRedirect: Bool = true, forceSSLRedirect: Bool = false
    ) {
        self.maximumBodySize = maximumBodySize
        self.allowedSourceRanges = allowedSourceRanges
        self.deniedSourceRanges = deniedSourceRanges
        self.blockedSourceRanges = blockedSourceRanges
        self.sslRedirect = sslRedirect
        self.forceSSLRedirect = forceSSLRedirect
    }

    /// ingress-nginx's ConfigMap defaults: `proxy-body-size: 1m`,
    /// `ssl-redirect: "true"`, `force-ssl-redirect: "false"`, no lists.
    public static let ingressNginxDefaults = GlobalPolicy(maximumBodySize: 1 << 20)

    /// The policy of a route whose Ingress asked for `review`: each
    /// annotation wins over its global key; `block-cidrs` is added to every
    /// deny list. A refused Ingress stays refused.
    public func policy(for review: AnnotationReview) -> RoutePolicy {
        var policy = review.policy
        if !review.setsBodySize { policy.maximumBodySize = maximumBodySize }
        if !review.setsAllowList { policy.allowedSourceRanges = allowedSourceRanges }
        if !review.setsDenyList { policy.deniedSourceRanges = deniedSourceRanges }
        if !blockedSourceRanges.isEmpty {
            policy.deniedSourceRanges = Array(Set(policy.deniedSourceRanges + blockedSourceRanges)).sorted()
        }
        return policy
    }

    /// The HTTPS redirect of requests no route matched (no annotation applies).
    public var defaultHTTPSRedirect: HTTPSRedirect {
        HTTPSRedirect(sslRedirect: sslRedirect, forceSSLRedirect: forceSSLRedirect)
    }

    /// The policy of requests a default backend answers (no annotation applies).
    public var defaultRoutePolicy: RoutePolicy {
        policy(for: AnnotationReview())
    }

    /// Parses a `whitelist-source-range`-style list for a global key: empty
    /// text is an empty list (the key's default), an invalid entry an error.
    public static func sourceRanges(_ text: String) -> Result<[IPRange], SourceRangeProblem> {
        if text.allSatisfy({ $0 == " " || $0 == "\t" || $0 == "," }) { return .success([]) }
        switch SourceRangeList.parse(text) {
        case let .success(ranges): return .success(ranges)
        case let .failure(problem): return .failure(SourceRangeProblem(description: problem.text))
        }
    }

    /// Parses an nginx size for `proxy-body-size`: bytes or a number with
    /// `k`, `m` or `g`; `0` (no limit) is nil. Returns `.none` on bad text.
    public static func bodySize(_ text: String) -> UInt64?? {
        guard let size = NginxSize.parse(text) else { return .none }
        return .some(size == 0 ? nil : size)
    }
}

/// Why a source-range list is invalid.
public struct SourceRangeProblem: Error, CustomStringConvertible {
    public var description: String
}
