import Glibc
import Synchronization
import Reactor
import Routing
import Telemetry

/// The data plane: N workers, each an event loop on its own thread with its
/// own SO_REUSEPORT listener on the same address. The address must be free
/// at start: the workers of one process share it, another process may not.
///
/// Thread-safety: `publish` and `drain` may be called from any thread; they
/// post tasks to every worker (Envoy's run-on-all-threads).
public final class ProxyServer: @unchecked Sendable {
    private let workers: [Worker]
    private var threads: [pthread_t] = []
    /// Worker threads whose loop has returned.
    private let stoppedWorkers = Atomic<Int>(0)
    /// Monotonic milliseconds by which `wait` returns after a `drain` (0: no drain yet).
    private let drainDeadline = Atomic<UInt64>(0)
    /// How long after the drain deadline `wait` still waits for a worker that
    /// has not stopped (its loop closes everything at the deadline itself).
    static let drainGraceMilliseconds: UInt64 = 2_000
    private let log = OperationsLog()
    /// The address actually bound (port 0 resolved to the real port).
    public let boundAddress: SocketAddress
    /// The HTTPS address actually bound (nil without HTTPS).
    public let boundHTTPSAddress: SocketAddress?
    public let metrics: MetricsRegistry

    /// Binds the listeners. Fails fast (before any thread starts) when the
    /// address cannot be bound, and with `AddressInUseError` when another
    /// process listens there already (even with SO_REUSEPORT: a second
    /// Postern must not silently take half of the first one's traffic).
    public init(configuration: ProxyConfiguration, initialTable: RoutingTable, secure: SecurePolicy?, metrics: MetricsRegistry) throws {
        precondition(configuration.httpsListen == nil || secure != nil, "an HTTPS listener needs certificates")
        precondition(configuration.workers >= 1, "at least one worker")
        precondition(metrics.workers.count == configuration.workers, "one WorkerMetrics per worker")
        self.metrics = metrics
        let errorResponses = ErrorResponseTable()
        // Bind the first listener, then the others to the port it got (port 0
        // would give every SO_REUSEPORT socket a different port).
        try Socket.probeExclusive(configuration.httpListen)
        if let httpsListen = configuration.httpsListen { try Socket.probeExclusive(httpsListen) }
        let firstFD = try Socket.listen(at: configuration.httpListen, reusePort: true)
        guard let bound = Socket.localAddress(firstFD) else {
            Socket.close(firstFD)
            throw SystemError("getsockname", errno: errno)
        }
        boundAddress = bound
        var resolved = configuration
        resolved.httpListen = SocketAddress(bytes: configuration.httpListen.bytes, port: bound.port)
        var fds = [firstFD]
        var httpsFDs: [CInt] = []
        do {
            for _ in 1..<max(configuration.workers, 1) {
                fds.append(try Socket.listen(at: resolved.httpListen, reusePort: true))
            }
            if let httpsListen = configuration.httpsListen {
                let firstHTTPS = try Socket.listen(at: httpsListen, reusePort: true)
                httpsFDs.append(firstHTTPS)
                guard let boundHTTPS = Socket.localAddress(firstHTTPS) else { throw SystemError("getsockname", errno: errno) }
                resolved.httpsListen = SocketAddress(bytes: httpsListen.bytes, port: boundHTTPS.port)
                for _ in 1..<max(configuration.workers, 1) {
                    httpsFDs.append(try Socket.listen(at: resolved.httpsListen!, reusePort: true))
                }
            }
        } catch {
            (fds + httpsFDs).forEach(Socket.close)
            throw error
        }
        boundHTTPSAddress = resolved.httpsListen
        var workers: [Worker] = []
        for (index, fd) in fds.enumerated() {
            workers.append(
                try Worker(
                    index: index, configuration: resolved, listenFD: fd,
                    httpsListenFD: httpsFDs.isEmpty ? nil : httpsFDs[index], table: initialTable, secure: secure,
                    metrics: metrics.workers[index], errorResponses: errorResponses))
        }
        self.workers = workers
        let initialTLS = prepareUpstreamTLS(for: initialTable)
        for worker in workers { worker.upstreams.installTLS(initialTLS) }
    }

    /// Starts one thread per worker.
    public func start() throws {
        for worker in workers {
            let thread = try WorkerThread.start(name: "postern-w\(worker.index)") { [self] in
                do {
                    try worker.run()
                } catch {
                    fatalError("worker \(worker.index) could not start: \(error)")
                }
                stoppedWorkers.add(1, ordering: .releasing)
            }
            threads.append(thread)
        }
    }

    /// Hands a new routing table to every worker. In-flight requests finish
    /// on the cluster they were routed to; new requests use the new table.
    public func publish(_ table: RoutingTable) {
        publish(table: table, secure: nil)
    }

    /// Hands new certificates and client-certificate hosts to every worker.
    public func publish(_ secure: SecurePolicy) {
        for worker in workers { worker.publish(secure) }
    }

    /// Hands one snapshot to every worker: the table and the certificates,
    /// client-certificate hosts built for it, installed on each worker in one loop
    /// task (nil: that part is unchanged). Build `secure` (the certificate
    /// store) before calling: nothing is built on a worker loop.
    public func publish(table: RoutingTable?, secure: SecurePolicy?) {
        guard table != nil || secure != nil else { return }
        let upstreamTLS = table.map(prepareUpstreamTLS)
        for worker in workers { worker.publish(table: table, secure: secure, upstreamTLS: upstreamTLS) }
    }

    /// Client TLS contexts for the HTTPS and gRPCS clusters of every table,
    /// kept across publications (`UpstreamTLSContexts`).
    private let upstreamTLS = Mutex(UpstreamTLSContexts())

    /// Makes the client TLS contexts `table` needs, on the calling thread (never
    /// on a worker loop, so no request waits for one), reports the settings
    /// whose context cannot be made, once each, and counts them in
    /// `postern_upstream_tls_contexts_failed`.
    private func prepareUpstreamTLS(for table: RoutingTable) -> UpstreamTLSContextSet {
        let (prepared, newFailures) = upstreamTLS.withLock { $0.prepare(for: table.clusters) }
        metrics.upstreamTLSContextsFailed.store(prepared.failures, ordering: .relaxed)
        for key in newFailures {
            log.warning(
                "upstream TLS: no client context can be made for these settings (proxy-ssl-secret CA bundle?); requests to their endpoints get 502",
                ["server_name": key.settings.serverName, "verify": "\(key.settings.verify)",
                 "alpn": key.applicationProtocols.joined(separator: ",")])
        }
        return prepared
    }

    /// Stops accepting, closes idle connections and lets in-flight requests
    /// finish for up to `timeoutMilliseconds`; then closes what is left.
    public func drain(timeoutMilliseconds: UInt64) {
        drainDeadline.store(EventLoop.monotonicMilliseconds() + timeoutMilliseconds, ordering: .relaxed)
        for worker in workers { worker.drain(timeoutMilliseconds: timeoutMilliseconds) }
    }

    /// Blocks until every worker thread has exited. After `drain`, returns at
    /// the latest `drainGraceMilliseconds` after the drain deadline even if a
    /// worker is still running (logged): the drain timeout bounds shutdown.
    public func wait() {
        let deadline = drainDeadline.load(ordering: .relaxed)
        if deadline != 0 {
            let limit = deadline + Self.drainGraceMilliseconds
            while stoppedWorkers.load(ordering: .acquiring) < threads.count, EventLoop.monotonicMilliseconds() < limit {
                usleep(10_000)
            }
            let stopped = stoppedWorkers.load(ordering: .acquiring)
            if stopped < threads.count {
                log.warning(
                    "drain: workers still running after the drain deadline; exiting without them",
                    ["running_workers": "\(threads.count - stopped)"])
                return
            }
        }
        for thread in threads { WorkerThread.join(thread) }
        threads.removeAll()
    }
}
