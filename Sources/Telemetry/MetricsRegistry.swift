import Synchronization

/// All metrics of the process: one `WorkerMetrics` per worker plus the
/// controller's gauges. Renders the Prometheus text exposition format
/// (version 0.0.4), summing worker counters at scrape time.
public final class MetricsRegistry: Sendable {
    /// Per-worker counters, index = worker number.
    public let workers: [WorkerMetrics]
    /// Configuration reloads that produced a new routing table.
    public let configReloads = Counter()
    /// Reload attempts that found errors (bad files or objects); the last
    /// good configuration stayed in service.
    public let configReloadFailures = Counter()
    /// Diagnostics currently reported for the loaded objects.
    public let configDiagnostics = Atomic<Int>(0)
    /// Generation of the routing table most recently published.
    public let publishedGeneration = Atomic<UInt64>(0)
    /// Unix time (seconds) of the last successful publish.
    public let lastReloadSuccessTimestamp = Atomic<Int>(0)
    /// Ingresses whose rules are refused in the published table (an
    /// unsupported security-relevant annotation or an invalid value: 503).
    public let refusedIngresses = Atomic<Int>(0)
    /// Upstream TLS settings (proxy-ssl-*, backend-protocol HTTPS/GRPCS) of
    /// the configuration in service whose client context cannot be made.
    public let upstreamTLSContextsFailed = Atomic<Int>(0)
    /// 1 once the first routing table is published (readiness).
    public let ready = Atomic<Bool>(false)

    /// Metrics kept elsewhere (the Kubernetes source, leader election),
    /// rendered by their owners in the text format at scrape time.
    private let collectors = Mutex<[@Sendable () -> String]>([])

    /// Adds a collector: it returns complete `# HELP`/`# TYPE`/sample lines.
    public func addCollector(_ collector: @escaping @Sendable () -> String) {
        collectors.withLock { $0.append(collector) }
    }

    /// Creates a registry for `workerCount` workers.
    public init(workerCount: Int) {
        workers = (0..<workerCount).map { _ in WorkerMetrics() }
    }

    private func sum(_ pick: (WorkerMetrics) -> Counter) -> UInt64 {
        workers.reduce(0) { $0 &+ pick($1).current }
    }

    /// The Prometheus text format for every metric.
    public func renderPrometheus() -> String {
        var out = ""
        func counter(_ name: String, _ help: String, _ samples: [(String, UInt64)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        func gauge(_ name: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(value)\n"
        }
        counter(
            "postern_http_responses_total", "HTTP responses sent to clients, by status class.",
            (1...5).map { statusClass in ("{class=\"\(statusClass)xx\"}", sum { $0.responsesByClass[statusClass] }) })
        counter(
            "postern_downstream_connections_total", "Client connections accepted.",
            [("", sum { $0.downstreamConnectionsAccepted })])
        gauge(
            "postern_downstream_connections_active", "Client connections open now.",
            "\(sum { $0.downstreamConnectionsAccepted } &- sum { $0.downstreamConnectionsClosed })")
        counter(
            "postern_upstream_connections_total", "Upstream connections opened.",
            [("", sum { $0.upstreamConnectionsOpened })])
        counter(
            "postern_upstream_connection_reuses_total", "Requests sent on a pooled keep-alive upstream connection.",
            [("", sum { $0.upstreamConnectionsReused })])
        gauge(
            "postern_upstream_connections_active", "Upstream connections open now (busy or idle in a pool).",
            "\(sum { $0.upstreamConnectionsOpened } &- sum { $0.upstreamConnectionsClosed })")
        counter(
            "postern_upstream_retries_total", "Requests retried on another endpoint after a failed connect.",
            [("", sum { $0.upstreamRetries })])
        counter(
            "postern_upstream_errors_total", "Upstream failures, by kind.",
            UpstreamErrorKind.allCases.map { kind in ("{kind=\"\(kind.label)\"}", sum { $0.upstreamErrors[kind.rawValue] }) })
        counter(
            "postern_downstream_errors_total", "Client requests rejected or cut short, by reason.",
            DownstreamErrorKind.allCases.map { kind in ("{reason=\"\(kind.label)\"}", sum { $0.downstreamErrors[kind.rawValue] }) })
        counter(
            "postern_request_body_bytes_total", "Request body bytes forwarded upstream.",
            [("", sum { $0.requestBytesIn })])
        counter(
            "postern_response_body_bytes_total", "Response body bytes forwarded to clients.",
            [("", sum { $0.responseBytesOut })])
        counter(
            "postern_tls_handshakes_total", "TLS handshakes with clients, by outcome.",
            [
                ("{result=\"full\"}", sum { $0.tlsFullHandshakes }), ("{result=\"resumed\"}", sum { $0.tlsResumedHandshakes }),
                ("{result=\"failed\"}", sum { $0.tlsHandshakeFailures }),
            ])
        counter(
            "postern_descriptor_exhaustion_total",
            "Connections refused (accept) or not opened (connect) because the process is out of file descriptors.",
            [("{side=\"accept\"}", sum { $0.acceptDescriptorExhaustion }), ("{side=\"connect\"}", sum { $0.connectDescriptorExhaustion })])
        counter(
            "postern_http2_flood_closes_total", "HTTP/2 client connections closed with GOAWAY for abuse, by reason.",
            HTTP2FloodKind.allCases.map { kind in ("{reason=\"\(kind.label)\"}", sum { $0.http2FloodCloses[kind.rawValue] }) })
        counter("postern_https_redirects_total", "Plain-HTTP requests redirected to HTTPS.", [("", sum { $0.httpsRedirects })])
        counter(
            "postern_underscore_fields_dropped_total",
            "Client header fields not forwarded because their names hold an underscore (enable-underscores-in-headers).",
            [("", sum { $0.underscoreFieldsDropped })])
        counter("postern_config_reloads_total", "Routing tables published after a configuration change.", [("", configReloads.current)])
        counter(
            "postern_config_reload_errors_total", "Configuration loads that reported errors; the last good configuration kept serving.",
            [("", configReloadFailures.current)])
        gauge("postern_config_diagnostics", "Problems reported for the current configuration objects.", "\(configDiagnostics.load(ordering: .relaxed))")
        gauge(
            "postern_ingresses_refused", "Ingresses kept out of service by an unsupported or invalid annotation (their rules answer 503).",
            "\(refusedIngresses.load(ordering: .relaxed))")
        gauge(
            "postern_upstream_tls_contexts_failed",
            "Upstream TLS settings in service whose client context cannot be made (their requests answer 502).",
            "\(upstreamTLSContextsFailed.load(ordering: .relaxed))")
        gauge("postern_routing_table_generation", "Generation of the routing table in service.", "\(publishedGeneration.load(ordering: .relaxed))")
        gauge(
            "postern_config_last_reload_success_timestamp_seconds", "Unix time of the last published routing table.",
            "\(lastReloadSuccessTimestamp.load(ordering: .relaxed))")
        for collector in collectors.withLock({ $0 }) { out += collector() }
        return out
    }
}
