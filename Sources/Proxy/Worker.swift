import Glibc
import Reactor
import Routing
import RouteModel
import Telemetry

/// One worker: an event loop on its own thread with its own listener,
/// connections, upstream side (`WorkerUpstreams`) and metrics. Workers
/// share nothing on the data path; the only cross-thread traffic is tasks
/// posted to `loop` (new routing tables, drain).
public final class Worker: @unchecked Sendable {
    /// Lifecycle of a worker.
    enum Phase {
        case serving
        /// No longer accepting; closing connections as they become idle.
        case draining(deadline: UInt64)
        case stopped
    }

    let index: Int
    let loop: EventLoop
    let configuration: ProxyConfiguration
    let metrics: WorkerMetrics
    let errorResponses: ErrorResponseTable
    /// The upstream side: load-balancing pick, pools, client TLS contexts.
    let upstreams: WorkerUpstreams
    /// The table new requests are routed with. A request keeps the cluster it
    /// was given even after a newer table is published.
    private(set) var table: RoutingTable
    var requestIDs = RequestIDGenerator()
    var phase: Phase = .serving
    /// Open client connections, for closing idle ones on drain.
    var downstream: [ObjectIdentifier: ClientConnection] = [:]
    private var listeners: [Listener] = []
    /// Certificates and client-certificate hosts for new connections and requests.
    private(set) var secure: SecurePolicy?
    /// 16 KiB chunks for client connections' buffers and upstream write
    /// buffers, taken while bytes are in flight (see `BufferPool`).
    let bufferPool = BufferPool(chunkSize: 16 * 1024, keepLimit: 512)
    /// Empty pipes for large cleartext response bodies (`HTTP1ClientConnection+Splice`).
    let splicePipes = SplicePipePool(keepLimit: 64)
    /// 32 KiB chunks for HTTP/2 client connections and upstream read buffers.
    let largeBufferPool = BufferPool(chunkSize: 32 * 1024, keepLimit: 256)
    /// How often the pools give back chunks nobody took since the last time.
    static let bufferTrimIntervalMilliseconds: UInt64 = 1_000
    /// Most client connections open at once since the heap was last trimmed.
    var connectionPeakSinceHeapTrim = 0
    /// Closed connections since the peak that make a heap trim worth its cost.
    static let heapTrimConnectionDrop = 1_000
    /// Scratch space for `rewrite-target`: the rewritten path is written here
    /// and copied into the upstream request head (one per worker, reused).
    let rewriteBuffer: UnsafeMutableRawBufferPointer
    /// Every per-request decision (HTTP/1.1 and HTTP/2 alike).
    let pipeline: RequestPipeline
    /// Called on the worker's thread when it has finished draining.
    var onStopped: (() -> Void)?
    /// Rare operational events (drain deadline, descriptor exhaustion).
    let log = OperationsLog()
    /// Sockets numbered at or above this are closed at once: the descriptors
    /// above it stay free for the admin endpoint and the controller
    /// (`DescriptorLimit`).
    let descriptorCeiling: CInt
    /// The process's descriptor limit, for log lines.
    let descriptorLimit: Int?
    /// Connections refused or not opened for lack of descriptors since the
    /// last log line, and when that line was written (loop milliseconds).
    private var descriptorShortfall = (accepts: 0, connects: 0, error: CInt(0))
    private var descriptorLoggedAt: UInt64?

    init(
        index: Int, configuration: ProxyConfiguration, listenFD: CInt, httpsListenFD: CInt?, table: RoutingTable,
        secure: SecurePolicy?, metrics: WorkerMetrics, errorResponses: ErrorResponseTable,
        descriptorLimit: Int? = DescriptorLimit.current()
    ) throws {
        self.index = index
        self.descriptorLimit = descriptorLimit
        self.descriptorCeiling = DescriptorLimit.ceiling(forLimit: descriptorLimit)
        self.configuration = configuration
        self.loop = try EventLoop(name: "worker-\(index)")
        self.upstreams = WorkerUpstreams(configuration: configuration, table: table, loop: loop, metrics: metrics)
        self.metrics = metrics
        self.errorResponses = errorResponses
        self.table = table
        self.pipeline = RequestPipeline(configuration: configuration)
        self.rewriteBuffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: max(configuration.limits.maxRequestTargetLength, 8192), alignment: 8)
        self.secure = secure
        listeners.append(Listener(fd: listenFD, worker: self, isTLS: false))
        if let httpsListenFD { listeners.append(Listener(fd: httpsListenFD, worker: self, isTLS: true)) }
        metrics.routingTableGeneration.set(table.generation)
        upstreams.worker = self
    }

    deinit { rewriteBuffer.deallocate() }

    /// Registers the listener and runs the loop until drained. Blocks the calling thread.
    func run() throws {
        for listener in listeners {
            listener.registration = try loop.register(fd: listener.fd, interest: .read, handler: listener)
        }
        scheduleBufferTrim()
        loop.run()
    }

    /// Once a second, the buffer pools unmap the chunks that stayed free the
    /// whole time: after a burst of connections RSS comes back, while
    /// steady traffic keeps its working set without a system call.
    private func scheduleBufferTrim() {
        loop.schedule(afterMilliseconds: Self.bufferTrimIntervalMilliseconds) { [self] in
            if case .stopped = phase { return }
            bufferPool.trim()
            largeBufferPool.trim()
            trimHeapAfterConnectionDrop()
            scheduleBufferTrim()
        }
    }

    /// After thousands of client connections closed (a storm is over), the
    /// heap pages their objects used go back to the kernel: glibc would keep
    /// them, and RSS would stay at the peak.
    private func trimHeapAfterConnectionDrop() {
        let open = downstream.count
        connectionPeakSinceHeapTrim = max(connectionPeakSinceHeapTrim, open)
        if connectionPeakSinceHeapTrim - open >= Self.heapTrimConnectionDrop, open <= connectionPeakSinceHeapTrim / 2 {
            // The table of open connections keeps its peak capacity (16 bytes
            // a slot: 400 KiB after 10,000 connections) unless it is rebuilt.
            if downstream.capacity > 4 * max(open, 64) {
                var smaller = [ObjectIdentifier: ClientConnection](minimumCapacity: open)
                for (key, connection) in downstream { smaller[key] = connection }
                downstream = smaller
            }
            HeapTrim.giveBackFreePages()
            connectionPeakSinceHeapTrim = open
        }
    }

    /// Publishes a new routing table to this worker (from any thread).
    public func publish(_ newTable: RoutingTable) {
        publish(table: newTable, secure: nil)
    }

    /// Publishes one snapshot (from any thread): the routing table and the
    /// certificates and client-certificate hosts that go with it, installed together
    /// in one loop task, so that no request sees a new table with the old
    /// certificates or the reverse. nil leaves that part as it is.
    ///
    /// `upstreamTLS`: the client TLS contexts made for `newTable` off the
    /// loops (`ProxyServer`), installed with it.
    func publish(table newTable: RoutingTable?, secure newPolicy: SecurePolicy?, upstreamTLS: UpstreamTLSContextSet? = nil) {
        loop.execute { [self] in
            if let upstreamTLS { upstreams.installTLS(upstreamTLS) }
            if let newPolicy { secure = newPolicy }
            guard let newTable else { return }
            // The pick state of each cluster carries over (`WorkerUpstreams`).
            upstreams.tableInstalled(newTable, replacing: table, workerIndex: index)
            table = newTable
            metrics.routingTableGeneration.set(newTable.generation)
        }
    }

    /// Publishes new certificates and client-certificate hosts (from any thread).
    /// Handshakes already under way finish with the certificates they began with.
    public func publish(_ newPolicy: SecurePolicy) {
        publish(table: nil, secure: newPolicy)
    }

    /// Starts a graceful drain (from any thread): stop accepting, close idle
    /// connections, let in-flight requests finish until `timeoutMilliseconds`.
    /// The timeout is a hard bound: at the deadline every connection left,
    /// client or upstream, is closed whatever its state, and the loop stops.
    public func drain(timeoutMilliseconds: UInt64) {
        loop.execute { [self] in
            guard case .serving = phase else { return }
            phase = .draining(deadline: loop.now + timeoutMilliseconds)
            for listener in listeners { listener.close() }
            listeners.removeAll()
            upstreams.closeIdle()
            for connection in Array(downstream.values) { connection.drainIfIdle() }
            checkDrained()
            scheduleDrainCheck()
        }
    }

    private func scheduleDrainCheck() {
        loop.schedule(afterMilliseconds: 50) { [self] in
            guard case let .draining(deadline) = phase else { return }
            if loop.now >= deadline {
                stopAtDeadline()
                return
            }
            checkDrained()
            if case .draining = phase { scheduleDrainCheck() }
        }
    }

    /// The drain deadline passed: closes every client connection (abandoning
    /// its requests) and every upstream connection, then stops the loop even
    /// if some connection failed to unregister itself.
    private func stopAtDeadline() {
        let clients = downstream.count
        let http2Upstreams = upstreams.http2Connections.values.reduce(0) { $0 + $1.count }
        for connection in Array(downstream.values) { connection.abort() }
        // A connection that did not leave the table when it closed must not
        // hold the loop: the deadline is a hard bound.
        downstream.removeAll()
        log.warning(
            "drain deadline reached: closed remaining connections",
            ["worker": "\(index)", "client_connections": "\(clients)", "upstream_h2_connections": "\(http2Upstreams)"])
        stop()
    }

    /// Stops the loop once no client connection is left during a drain.
    func checkDrained() {
        guard case .draining = phase, downstream.isEmpty else { return }
        stop()
    }

    /// Closes what is left on the upstream side and stops the loop.
    private func stop() {
        if case .stopped = phase { return }
        phase = .stopped
        upstreams.closeAll()
        loop.stop()
        onStopped?()
    }

    var isDraining: Bool {
        if case .serving = phase { return false }
        return true
    }

    func accepted(fd: CInt, peer: SocketAddress?, isTLS: Bool) {
        let socket: TransportSocket
        if isTLS {
            guard let encrypted = TransportSocket(acceptedTLS: fd, secure: secure, loop: loop, readPool: bufferPool, writePool: bufferPool) else {
                metrics.tlsHandshakeFailures.add()
                Socket.close(fd)
                return
            }
            socket = encrypted
        } else {
            socket = TransportSocket(plain: fd, loop: loop, readPool: bufferPool, writePool: bufferPool)
        }
        let connection = HTTP1ClientConnection(socket: socket, peer: peer, worker: self)
        do {
            try connection.socket.register(on: loop, interest: .read, handler: connection)
        } catch {
            connection.socket.close(loop: loop, notify: false)
            return
        }
        // Tracked before the first handshake step: that step may close the
        // connection (garbage instead of a ClientHello) or hand it over, and
        // either must find it in the table to take it out again.
        downstream[ObjectIdentifier(connection)] = connection
        if downstream.count > connectionPeakSinceHeapTrim { connectionPeakSinceHeapTrim = downstream.count }
        metrics.downstreamConnectionsAccepted.add()
        if isTLS { connection.continueHandshake() }
    }

    /// Counts a client connection refused for lack of descriptors (`error`
    /// EMFILE/ENFILE, or 0: the socket was above the reserve ceiling) and
    /// logs at most once per second.
    func acceptFailedForDescriptors(_ error: CInt) {
        metrics.acceptDescriptorExhaustion.add()
        descriptorShortfall.accepts += 1
        descriptorShortfall.error = error
        logDescriptorShortfall(now: loop.now)
    }

    /// Counts an upstream connection not opened for lack of descriptors.
    func connectFailedForDescriptors(_ error: CInt) {
        metrics.connectDescriptorExhaustion.add()
        descriptorShortfall.connects += 1
        descriptorShortfall.error = error
        logDescriptorShortfall(now: loop.now)
    }

    /// One warning per second at most, with the counts since the last one
    /// (also called from the listeners' ticks to report the tail).
    func logDescriptorShortfall(now: UInt64) {
        guard descriptorShortfall.accepts + descriptorShortfall.connects > 0 else { return }
        if let last = descriptorLoggedAt, now &- last < 1_000 { return }
        descriptorLoggedAt = now
        let error = descriptorShortfall.error
        log.warning(
            "out of file descriptors: connections refused; raise the limit (ulimit -n, LimitNOFILE)",
            [
                "worker": "\(index)", "refused_clients": "\(descriptorShortfall.accepts)",
                "failed_upstream_connects": "\(descriptorShortfall.connects)",
                "error": error == 0 ? "reserve" : DescriptorLimit.name(error),
                "limit": descriptorLimit.map { "\($0)" } ?? "unlimited",
                "reserved_for_admin": descriptorLimit.map { "\(DescriptorLimit.reserve(forLimit: $0))" } ?? "0",
            ])
        descriptorShortfall = (0, 0, 0)
    }

    /// Starts a non-blocking connect to an upstream, keeping the descriptor
    /// reserve: a socket at or above the ceiling, or none at all for lack of
    /// descriptors, is counted and reported as a failed connect.
    func connectUpstream(to address: SocketAddress) -> (CInt, IOResult) {
        let (socketFD, result) = Socket.connect(to: address)
        if socketFD < 0 {
            if case let .failed(error) = result, DescriptorLimit.isExhaustion(error) { connectFailedForDescriptors(error) }
            return (socketFD, result)
        }
        if socketFD >= descriptorCeiling {
            Socket.close(socketFD)
            connectFailedForDescriptors(0)
            return (-1, .failed(EMFILE))
        }
        return (socketFD, result)
    }

    /// Moves a client connection that turned out to speak HTTP/2 (ALPN `h2`
    /// or the h2c preface) to an `HTTP2ClientConnection`, with the bytes already read.
    func handOverToHTTP2(_ old: HTTP1ClientConnection) {
        guard old.socket.registration != nil else { return }
        old.socket.deregister(from: loop)
        let socket = TransportSocket(takingOver: &old.socket, readPool: largeBufferPool, writePool: largeBufferPool)
        let connection = HTTP2ClientConnection(socket: socket, worker: self, peer: old.peer, initialBytes: old.readBuffer.readable)
        old.handOver()
        downstream.removeValue(forKey: ObjectIdentifier(old))
        downstream[ObjectIdentifier(connection)] = connection
        do {
            try connection.socket.register(on: loop, interest: .read, handler: connection)
        } catch {
            connection.close()
            return
        }
        connection.start()
    }

    func connectionClosed(_ connection: ClientConnection) {
        downstream.removeValue(forKey: ObjectIdentifier(connection))
        metrics.downstreamConnectionsClosed.add()
        if isDraining { checkDrained() }
    }
}

/// The worker's SO_REUSEPORT listening socket.
final class Listener: EventHandler {
    let fd: CInt
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    var registration: Registration?
    /// Connections accepted here start with a TLS handshake.
    let isTLS: Bool
    /// After EMFILE/ENFILE, accepting pauses until this time.
    private var pausedUntil: UInt64 = 0

    init(fd: CInt, worker: Worker, isTLS: Bool) {
        self.fd = fd
        self.worker = worker
        self.isTLS = isTLS
    }

    func handleReadiness(_ readiness: Readiness) {
        // Accept a bounded batch per wake-up so one loop does not starve its
        // existing connections under a connection flood.
        for _ in 0..<64 {
            switch Socket.accept(fd) {
            case let .accepted(clientFD, peer):
                if clientFD >= worker.descriptorCeiling {
                    // The descriptors above the ceiling belong to the admin
                    // endpoint and the controller: refuse this client, and
                    // leave the others in the backlog for a moment.
                    Socket.close(clientFD)
                    worker.acceptFailedForDescriptors(0)
                    pause()
                    return
                }
                Socket.setNoDelay(clientFD)
                worker.accepted(fd: clientFD, peer: peer, isTLS: isTLS)
            case .wouldBlock:
                return
            case let .failed(error):
                if DescriptorLimit.isExhaustion(error) { worker.acceptFailedForDescriptors(error) }
                pause()
                return
            }
        }
    }

    /// Stops listening for `pauseMilliseconds`: the pending connection that
    /// cannot be accepted would wake a level-triggered listener at once,
    /// again and again (a core at 100 %).
    private func pause() {
        if let registration { worker.loop.setInterest(registration, .none) }
        pausedUntil = worker.loop.now + Self.pauseMilliseconds
    }

    /// How long accepting pauses after running out of descriptors.
    static let pauseMilliseconds: UInt64 = 100

    func tick(now: UInt64) {
        worker.logDescriptorShortfall(now: now)
        if pausedUntil != 0, now >= pausedUntil, let registration {
            pausedUntil = 0
            worker.loop.setInterest(registration, .read)
        }
    }

    func close() {
        if let registration { worker.loop.deregister(registration) }
        registration = nil
        Socket.close(fd)
    }
}
