/// Every `nginx.ingress.kubernetes.io/*` annotation that ingress-nginx
/// documents, classified once: what Postern does with it. Translate reads
/// this table to decide whether an Ingress is served, refused (fail closed)
/// or served with a warning; `postern check` prints it per Ingress; and
/// `docs/annotations.md` is checked against it by a test.
public enum AnnotationCatalog {
    /// The ingress-nginx annotation prefix.
    public static let nginxPrefix = "nginx.ingress.kubernetes.io/"
    /// Postern's own prefix (no keys are defined under it yet: every key
    /// there is unknown and reported).
    public static let posternPrefix = "postern.dev/"

    /// What Postern does with one annotation key.
    public enum Support: Sendable, Hashable {
        /// Read with ingress-nginx's meaning; an invalid value refuses the Ingress.
        case honoured
        /// Accepted and ignored because it cannot change what Postern does
        /// (the reason says why, e.g. a buffering knob on a streaming proxy).
        case withoutEffect
        /// Not implemented; ignored with a warning.
        case unsupported
        /// Not implemented, and ignoring it would leave the Ingress's routes
        /// less protected than its author asked (authentication, limits,
        /// snippets, WAF, ...): the Ingress is refused (its rules answer 503).
        case unsupportedSecurity

        /// How the docs and `postern check` name the class.
        public var label: String {
            switch self {
            case .honoured: return "honoured"
            case .withoutEffect: return "accepted, no effect"
            case .unsupported: return "ignored, warning"
            case .unsupportedSecurity: return "refused (503)"
            }
        }
    }

    /// One documented key.
    public struct Entry: Sendable, Hashable {
        /// The key without the prefix, e.g. `auth-url`.
        public var name: String
        public var support: Support
        /// For an operator: what Postern does, or why it does not.
        public var note: String

        /// The full key, `nginx.ingress.kubernetes.io/NAME`.
        public var key: String { AnnotationCatalog.nginxPrefix + name }
    }

    /// The entry for a full key (`nginx.ingress.kubernetes.io/NAME`), or nil
    /// when the key is not a documented ingress-nginx annotation.
    public static func entry(forKey key: String) -> Entry? {
        guard key.hasPrefix(nginxPrefix) else { return nil }
        return byName[String(key.dropFirst(nginxPrefix.count))]
    }

    /// The documented key closest to `name` (edit distance at most 3), for
    /// "did you mean" on a misspelt key.
    public static func closestName(to name: String) -> String? {
        var best: (name: String, distance: Int)? = nil
        for entry in entries {
            let distance = editDistance(Array(name.utf8), Array(entry.name.utf8))
            if distance <= 3, distance < (best?.distance ?? Int.max) { best = (entry.name, distance) }
        }
        return best?.name
    }

    private static let byName: [String: Entry] = {
        var result: [String: Entry] = [:]
        for entry in entries {
            precondition(result[entry.name] == nil, "annotation \(entry.name) is classified twice")
            result[entry.name] = entry
        }
        return result
    }()

    /// The catalog as a Markdown table, as `docs/annotations.md` holds it
    /// (a test keeps the two equal).
    public static func markdownTable() -> String {
        var text = "| annotation | Postern | why / effect |\n|---|---|---|\n"
        for entry in entries {
            text += "| `\(entry.name)` | \(entry.support.label) | \(entry.note) |\n"
        }
        return text
    }

    /// Levenshtein distance between two byte strings.
    private static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func honoured(_ name: String, _ note: String) -> Entry { Entry(name: name, support: .honoured, note: note) }
    private static func noEffect(_ name: String, _ note: String) -> Entry { Entry(name: name, support: .withoutEffect, note: note) }
    private static func ignored(_ name: String, _ note: String) -> Entry { Entry(name: name, support: .unsupported, note: note) }
    private static func refused(_ name: String, _ note: String) -> Entry {
        Entry(name: name, support: .unsupportedSecurity, note: note)
    }

    private static let externalAuthentication = "external authentication is not implemented"
    private static let basicAuthentication = "basic and digest authentication are not implemented"
    private static let rateLimits = "request, connection and bandwidth limits are not implemented"
    private static let globalRateLimits = "the global rate limiter is not implemented"
    private static let snippets = "there are no configuration snippets: nginx text cannot be applied"
    private static let firewall = "there is no web application firewall (ModSecurity)"
    private static let mirroring = "request mirroring is not implemented"
    private static let canaries = "canary Ingresses are not implemented"
    private static let affinity = "session affinity is not implemented; requests are balanced round-robin"
    private static let cors = "CORS is not implemented; browsers refuse cross-origin reads, so nothing is exposed"
    private static let upstreamTLSLimits = "restrictions on the upstream TLS handshake are not implemented"
    private static let tracing = "tracing is not implemented"
    private static let influx = "InfluxDB metrics are not implemented (ingress-nginx removed them too)"
    private static let perIngressTimeouts = "per-Ingress timeouts are not implemented; the proxy's timeouts apply"
    private static let retries = "per-Ingress retry settings are not implemented; the proxy's retry policy applies"
    private static let redirects = "redirect annotations are not implemented; requests reach the backend"
    private static let buffering = "Postern streams bodies with bounded per-connection buffers: there is no buffering to tune"

    /// The table: every documented key, sorted by name.
    public static let entries: [Entry] = [
        ignored("affinity", affinity),
        ignored("affinity-canary-behavior", affinity),
        ignored("affinity-mode", affinity),
        honoured("allowlist-source-range", "newer name of whitelist-source-range: only these client ranges are served (403 otherwise)"),
        ignored("app-root", "the redirect of / to the application root is not implemented"),
        refused("auth-always-set-cookie", externalAuthentication),
        refused("auth-cache-duration", externalAuthentication),
        refused("auth-cache-key", externalAuthentication),
        refused("auth-keepalive", externalAuthentication),
        refused("auth-keepalive-requests", externalAuthentication),
        refused("auth-keepalive-share-vars", externalAuthentication),
        refused("auth-keepalive-timeout", externalAuthentication),
        refused("auth-method", externalAuthentication),
        refused("auth-proxy-set-headers", externalAuthentication),
        refused("auth-realm", basicAuthentication),
        refused("auth-request-redirect", externalAuthentication),
        refused("auth-response-headers", externalAuthentication),
        refused("auth-secret", basicAuthentication),
        refused("auth-secret-type", basicAuthentication),
        refused("auth-signin", externalAuthentication),
        refused("auth-signin-redirect-param", externalAuthentication),
        refused("auth-snippet", snippets),
        ignored("auth-tls-error-page", "the redirect to an error page on a failed client certificate is not implemented; the client gets 400"),
        refused("auth-tls-match-cn", "matching the client certificate's CN is not implemented"),
        honoured("auth-tls-pass-certificate-to-upstream", "send the verified client certificate upstream in ssl-client-cert"),
        honoured("auth-tls-secret", "client certificates signed by this CA are required on the Ingress's TLS hosts"),
        honoured("auth-tls-verify-client", "on, optional or off"),
        honoured("auth-tls-verify-depth", "longest client certificate chain accepted (1-10)"),
        refused("auth-type", basicAuthentication),
        refused("auth-url", externalAuthentication),
        honoured("backend-protocol", "HTTP, HTTPS, GRPC, GRPCS or H2C (AJP and FCGI are refused)"),
        ignored("canary", canaries + "; the Ingress is not served and all traffic stays on the main Ingress"),
        ignored("canary-by-cookie", canaries),
        ignored("canary-by-header", canaries),
        ignored("canary-by-header-pattern", canaries),
        ignored("canary-by-header-value", canaries),
        ignored("canary-weight", canaries),
        ignored("canary-weight-total", canaries),
        noEffect("client-body-buffer-size", buffering),
        refused("configuration-snippet", snippets),
        ignored("connection-proxy-header", "the Connection header sent upstream is Postern's own (keep-alive pooling)"),
        ignored("cors-allow-credentials", cors),
        ignored("cors-allow-headers", cors),
        ignored("cors-allow-methods", cors),
        ignored("cors-allow-origin", cors),
        ignored("cors-expose-headers", cors),
        ignored("cors-max-age", cors),
        refused("custom-headers", "response headers from a ConfigMap (often security headers) are not implemented"),
        ignored("custom-http-errors", "intercepting upstream errors is not implemented; the backend's response is sent"),
        ignored("default-backend", "a per-Ingress error backend is not implemented"),
        honoured("denylist-source-range", "clients in these ranges get 403"),
        noEffect("disable-proxy-intercept-errors", "Postern never intercepts upstream errors"),
        ignored("enable-access-log", "the access log is a proxy setting, not a per-Ingress one"),
        ignored("enable-cors", cors),
        noEffect("enable-global-auth", "there is no global external authentication to opt out of"),
        ignored("enable-influxdb", influx),
        refused("enable-modsecurity", firewall),
        ignored("enable-opentelemetry", tracing),
        ignored("enable-opentracing", tracing),
        refused("enable-owasp-core-rules", firewall),
        noEffect("enable-rewrite-log", "a debugging log of nginx's rewrite module; Postern's rewrites are shown by postern route"),
        honoured("force-ssl-redirect", "redirect the Ingress's paths to HTTPS, with or without TLS"),
        ignored("from-to-www-redirect", redirects),
        refused("global-rate-limit", globalRateLimits),
        refused("global-rate-limit-ignored-cidrs", globalRateLimits),
        refused("global-rate-limit-key", globalRateLimits),
        refused("global-rate-limit-window", globalRateLimits),
        noEffect("http2-push-preload", "HTTP/2 server push is obsolete (browsers removed it); nothing is pushed"),
        ignored("influxdb-host", influx),
        ignored("influxdb-measurement", influx),
        ignored("influxdb-port", influx),
        ignored("influxdb-server-name", influx),
        refused("limit-allowlist", rateLimits),
        refused("limit-burst-multiplier", rateLimits),
        refused("limit-connections", rateLimits),
        refused("limit-rate", rateLimits),
        refused("limit-rate-after", rateLimits),
        refused("limit-rpm", rateLimits),
        refused("limit-rps", rateLimits),
        refused("limit-whitelist", rateLimits),
        ignored("load-balance", "endpoints are balanced round-robin; other algorithms are not implemented"),
        refused("mirror-host", mirroring),
        refused("mirror-request-body", mirroring),
        refused("mirror-target", mirroring),
        refused("modsecurity-snippet", firewall),
        refused("modsecurity-transaction-id", firewall),
        ignored("opentelemetry-operation-name", tracing),
        ignored("opentelemetry-trust-incoming-span", tracing),
        ignored("opentracing-trust-incoming-span", tracing),
        ignored("permanent-redirect", redirects),
        ignored("permanent-redirect-code", redirects),
        ignored("preserve-trailing-slash", "HTTPS redirects keep the path as the client sent it"),
        honoured("proxy-body-size", "largest request body (nginx size: 8m, 512k, 0 for no limit); larger gets 413"),
        noEffect("proxy-buffer-size", buffering),
        noEffect("proxy-buffering", buffering),
        noEffect("proxy-buffers-number", buffering),
        noEffect("proxy-busy-buffers-size", buffering),
        ignored("proxy-connect-timeout", perIngressTimeouts),
        ignored("proxy-cookie-domain", "rewriting Set-Cookie domains is not implemented"),
        ignored("proxy-cookie-path", "rewriting Set-Cookie paths is not implemented"),
        noEffect("proxy-http-version", "Postern speaks HTTP/1.1 (or HTTP/2 by backend-protocol) to backends"),
        noEffect("proxy-max-temp-file-size", buffering),
        ignored("proxy-next-upstream", retries),
        ignored("proxy-next-upstream-timeout", retries),
        ignored("proxy-next-upstream-tries", retries),
        ignored("proxy-read-timeout", perIngressTimeouts),
        ignored("proxy-redirect-from", "rewriting Location headers is not implemented"),
        ignored("proxy-redirect-to", "rewriting Location headers is not implemented"),
        noEffect("proxy-request-buffering", buffering),
        ignored("proxy-send-timeout", perIngressTimeouts),
        refused("proxy-ssl-ciphers", upstreamTLSLimits),
        honoured("proxy-ssl-name", "SNI sent to HTTPS backends and the name verified"),
        refused("proxy-ssl-protocols", upstreamTLSLimits),
        honoured("proxy-ssl-secret", "the Secret's ca.crt is trusted for HTTPS backends (its tls.crt/tls.key are not presented to them)"),
        noEffect("proxy-ssl-server-name", "SNI is always sent to HTTPS backends"),
        honoured("proxy-ssl-verify", "verify HTTPS backends' certificates (on or off)"),
        refused("proxy-ssl-verify-depth", upstreamTLSLimits),
        ignored("relative-redirects", redirects),
        honoured("rewrite-target", "the path sent upstream, with $1-$9 from the rule's regex"),
        refused("satisfy", "combining authentication methods is not implemented"),
        ignored("server-alias", "extra host names are not implemented; write them as rules"),
        refused("server-snippet", snippets),
        ignored("service-upstream", "Postern balances over the Service's ready endpoints, never its cluster IP"),
        ignored("session-cookie-change-on-failure", affinity),
        ignored("session-cookie-conditional-samesite-none", affinity),
        ignored("session-cookie-domain", affinity),
        ignored("session-cookie-expires", affinity),
        ignored("session-cookie-max-age", affinity),
        ignored("session-cookie-name", affinity),
        ignored("session-cookie-path", affinity),
        ignored("session-cookie-samesite", affinity),
        ignored("session-cookie-secure", affinity),
        refused("ssl-ciphers", "per-Ingress TLS cipher restrictions are not implemented"),
        refused("ssl-passthrough", "TLS passthrough is not implemented: the proxy would terminate TLS the backend expects to see"),
        ignored("ssl-prefer-server-ciphers", "the server's cipher order always applies"),
        honoured("ssl-redirect", "plain-HTTP requests for the Ingress's paths on a host with TLS are redirected to HTTPS"),
        refused("stream-snippet", snippets),
        ignored("temporal-redirect", redirects),
        ignored("temporal-redirect-code", redirects),
        ignored("upstream-hash-by", "consistent hashing is not implemented; requests are balanced round-robin"),
        ignored("upstream-hash-by-subset", "consistent hashing is not implemented; requests are balanced round-robin"),
        ignored("upstream-hash-by-subset-size", "consistent hashing is not implemented; requests are balanced round-robin"),
        ignored("upstream-vhost", "rewriting the Host sent upstream is not implemented"),
        honoured("use-port-in-redirects", "the HTTPS redirect names the public HTTPS port even when it is 443"),
        honoured("use-regex", "ImplementationSpecific paths are RE2 regular expressions"),
        honoured("whitelist-source-range", "only these client ranges are served (403 otherwise)"),
        ignored("x-forwarded-prefix", "the X-Forwarded-Prefix header is not implemented"),
    ]
}
