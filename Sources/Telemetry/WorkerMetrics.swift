import Synchronization

/// A counter written by exactly one thread (its worker) and read by the
/// scraper. Single-writer, so a relaxed load plus store is enough: on x86
/// that is two plain moves, never a contended locked instruction.
public final class Counter: Sendable {
    private let value = Atomic<UInt64>(0)

    public init() {}

    /// Adds `amount`. Only the owning worker calls this.
    @inline(__always)
    public func add(_ amount: UInt64 = 1) {
        value.store(value.load(ordering: .relaxed) &+ amount, ordering: .relaxed)
    }

    /// Subtracts `amount` (for gauges kept as counters of a worker's own objects).
    @inline(__always)
    public func subtract(_ amount: UInt64 = 1) {
        value.store(value.load(ordering: .relaxed) &- amount, ordering: .relaxed)
    }

    /// Replaces the value (for single-writer gauges kept in a counter).
    @inline(__always)
    public func set(_ newValue: UInt64) {
        value.store(newValue, ordering: .relaxed)
    }

    /// The current value, from any thread.
    public var current: UInt64 { value.load(ordering: .relaxed) }
}

/// Which side an upstream failure came from, for `postern_upstream_errors_total`.
public enum UpstreamErrorKind: Int, CaseIterable, Sendable {
    case connectRefused, connectTimeout, reset, readTimeout, sendTimeout, malformedResponse, noEndpoints, tlsHandshake

    /// The Prometheus label value.
    public var label: String {
        switch self {
        case .connectRefused: return "connect_refused"
        case .connectTimeout: return "connect_timeout"
        case .reset: return "reset"
        case .readTimeout: return "read_timeout"
        case .sendTimeout: return "send_timeout"
        case .malformedResponse: return "malformed_response"
        case .noEndpoints: return "no_endpoints"
        case .tlsHandshake: return "tls_handshake"
        }
    }
}

/// Why a downstream request was rejected before it reached an upstream.
public enum DownstreamErrorKind: Int, CaseIterable, Sendable {
    case badRequest, uriTooLong, headerTooLarge, notImplemented, versionNotSupported
    case headerTimeout, bodyTimeout, noRoute, clientReset
    case misdirected, clientCertificate, unsafeTarget, forbidden, bodyTooLarge, routeRefused
    /// A connection refused for its PROXY protocol header (`use-proxy-protocol`):
    /// none, malformed, or not sent in time.
    case proxyProtocol

    /// The Prometheus label value.
    public var label: String {
        switch self {
        case .badRequest: return "bad_request"
        case .uriTooLong: return "uri_too_long"
        case .headerTooLarge: return "header_too_large"
        case .notImplemented: return "not_implemented"
        case .versionNotSupported: return "version_not_supported"
        case .headerTimeout: return "header_timeout"
        case .bodyTimeout: return "body_timeout"
        case .noRoute: return "no_route"
        case .clientReset: return "client_reset"
        case .misdirected: return "misdirected"
        case .clientCertificate: return "client_certificate"
        case .unsafeTarget: return "unsafe_target"
        case .forbidden: return "forbidden"
        case .bodyTooLarge: return "body_too_large"
        case .routeRefused: return "route_refused"
        case .proxyProtocol: return "proxy_protocol"
        }
    }
}

/// Why an HTTP/2 client connection was cut for abuse, for `postern_http2_flood_closes_total`.
public enum HTTP2FloodKind: Int, CaseIterable, Sendable {
    /// More stream resets per second than allowed (Rapid Reset, CVE-2023-44487).
    case rapidReset
    /// More frames per second that carry no request than allowed (WINDOW_UPDATE, PRIORITY, PING... floods).
    case controlFrames
    /// The client did not read the acknowledgements its frames required (nghttp2's own guard).
    case unreadOutput

    /// The Prometheus label value.
    public var label: String {
        switch self {
        case .rapidReset: return "rapid_reset"
        case .controlFrames: return "control_frames"
        case .unreadOutput: return "unread_output"
        }
    }
}

/// The counters of one worker loop. Written only by that worker; summed
/// over all workers when scraped. No locks or contended atomics per request.
public final class WorkerMetrics: Sendable {
    /// Responses sent, indexed by status class (1..5 → index 1..5).
    public let responsesByClass: [Counter] = (0...5).map { _ in Counter() }
    public let downstreamConnectionsAccepted = Counter()
    public let downstreamConnectionsClosed = Counter()
    public let upstreamConnectionsOpened = Counter()
    public let upstreamConnectionsReused = Counter()
    public let upstreamConnectionsClosed = Counter()
    public let upstreamRetries = Counter()
    public let upstreamErrors: [Counter] = UpstreamErrorKind.allCases.map { _ in Counter() }
    public let downstreamErrors: [Counter] = DownstreamErrorKind.allCases.map { _ in Counter() }
    public let requestBytesIn = Counter()
    public let responseBytesOut = Counter()
    public let routingTableGeneration = Counter()
    /// TLS handshakes completed in full (no session resumption).
    public let tlsFullHandshakes = Counter()
    /// TLS handshakes that resumed a session (ticket).
    public let tlsResumedHandshakes = Counter()
    /// TLS handshakes that failed (protocol error, no shared version or cipher, client gone).
    public let tlsHandshakeFailures = Counter()
    /// Plain-HTTP requests redirected to HTTPS.
    public let httpsRedirects = Counter()
    /// Client fields dropped because their names hold `_`.
    public let underscoreFieldsDropped = Counter()
    /// Client connections refused because the process is out of descriptors
    /// (EMFILE/ENFILE, or at the reserve kept for the admin endpoint).
    public let acceptDescriptorExhaustion = Counter()
    /// Upstream connections not opened for the same reason.
    public let connectDescriptorExhaustion = Counter()
    /// HTTP/2 client connections closed with GOAWAY for abuse, by `HTTP2FloodKind`.
    public let http2FloodCloses: [Counter] = HTTP2FloodKind.allCases.map { _ in Counter() }

    public init() {}

    /// Counts one response with `status`.
    @inline(__always)
    public func countResponse(status: Int) {
        let statusClass = status / 100
        responsesByClass[statusClass >= 1 && statusClass <= 5 ? statusClass : 0].add()
    }

    /// Counts one upstream failure.
    @inline(__always)
    public func count(_ kind: UpstreamErrorKind) { upstreamErrors[kind.rawValue].add() }

    /// Counts one rejected downstream request.
    @inline(__always)
    public func count(_ kind: DownstreamErrorKind) { downstreamErrors[kind.rawValue].add() }
}
