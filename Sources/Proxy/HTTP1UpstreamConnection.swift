import Glibc
import HTTP1
import Reactor
import RouteModel
import Telemetry

/// One TCP connection from a worker to an endpoint. While it serves a
/// request it belongs to one `HTTP1ClientConnection`, which drives it; between
/// requests it sits in its worker's `UpstreamPool` watching for the endpoint
/// closing it.
///
/// Loop-bound: every method runs on its worker's loop.
final class HTTP1UpstreamConnection: EventHandler, DeferredWork {
    /// Where the connection is in its life.
    enum State {
        case connecting
        /// TCP connected; TLS handshake with the endpoint under way.
        case handshaking
        case busy
        case idle
        case closed
    }

    /// The socket, its TLS session for HTTPS endpoints, and the buffers:
    /// responses read into chunks of the worker's `largeBufferPool`,
    /// requests written from its `bufferPool`.
    var socket: TransportSocket
    let endpoint: Endpoint
    /// Endpoint plus TLS context: connections are pooled only with their own kind.
    let poolKey: PoolKey
    /// The client TLS context for HTTPS endpoints (nil: plain HTTP).
    let secure: UpstreamTLSContext?
    /// SNI and verified name for HTTPS endpoints.
    let serverName: String
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    var state: State
    /// Bytes read from the endpoint, not yet forwarded: `socket`'s read
    /// buffer, kept as a `let` so that the hot path reads it without a
    /// retain and release (a read through the `var socket` needs them).
    let readBuffer: ByteBuffer
    /// Request bytes waiting for the socket to accept them (replaced when a
    /// failed attempt carries its unsent bytes here).
    var writeBuffer: ByteBuffer {
        get { socket.writeBuffer }
        set { socket.writeBuffer = newValue }
    }
    /// The client connection this one serves while busy.
    var owner: UpstreamOwner?
    /// Requests sent on this connection so far (more than one: it was reused).
    var requestsServed = 0

    init(fd: CInt, endpoint: Endpoint, worker: Worker, connecting: Bool, secure: UpstreamTLSContext?, serverName: String) {
        self.socket = TransportSocket(plain: fd, loop: worker.loop, readPool: worker.largeBufferPool, writePool: worker.bufferPool)
        self.readBuffer = socket.readBuffer
        self.endpoint = endpoint
        self.secure = secure
        self.serverName = serverName
        self.poolKey = PoolKey(endpoint: endpoint, secure: secure?.identity)
        self.worker = worker
        self.state = connecting ? .connecting : .busy
    }

    /// Registers the socket with the worker's loop.
    func register(interest: Interest) throws {
        try socket.register(on: worker.loop, interest: interest, handler: self)
    }

    /// The epoll interest last set.
    var interest: Interest { socket.interest }

    /// Sets the epoll interest for reading and writing as the owner wants
    /// them (the transport adds what TLS needs), skipping the system call
    /// when unchanged. An owner that wants to read while the transport
    /// holds input no event will announce (TLS bytes left when its buffer
    /// filled and it paused) hears `upstreamReady` at the end of the loop
    /// iteration instead.
    @inline(__always)
    func setInterest(_ new: Interest) {
        socket.setInterest(socket.interest(for: new), on: worker.loop)
        if new.contains(.read), !unannouncedReadScheduled, socket.hasUnannouncedInput {
            unannouncedReadScheduled = true
            worker.loop.defer(self)
        }
    }

    /// A read of input the transport holds unannounced is scheduled (`setInterest`).
    private var unannouncedReadScheduled = false

    func runDeferredWork() {
        unannouncedReadScheduled = false
        // Each such read takes bytes out of the transport, or stops at part
        // of a record (the socket announces the rest): it never spins.
        guard state == .busy, interest.contains(.read), socket.hasUnannouncedInput, let owner else { return }
        owner.upstreamReady(self, .readable)
    }

    func handleReadiness(_ readiness: Readiness) {
        switch state {
        case .connecting:
            if readiness.contains(.writable) || readiness.contains(.error) || readiness.contains(.hangup) {
                connectFinished(error: socket.connectError)
            }
        case .handshaking:
            continueHandshake()
        case .busy:
            if let owner { owner.upstreamReady(self, socket.translate(readiness)) } else { close() }
        case .idle:
            // An idle pooled connection that becomes readable was closed by
            // the endpoint (or sent bytes nobody asked for): drop it.
            worker.upstreams.forget(self)
            close()
        case .closed:
            break
        }
    }

    func tick(now: UInt64) {
        if holdsIdleBuffers, state == .idle, socket.quiet(for: HTTP1ClientConnection.idleBufferReleaseMilliseconds, now: now) {
            // An idle keep-alive connection holds no buffer memory.
            holdsIdleBuffers = false
            socket.releaseIdleBuffers(includingSession: true)
        }
        guard socket.expired(now: now, as: Timeout.self) != nil else { return }
        switch state {
        case .idle:
            worker.upstreams.forget(self)
            close()
        case .connecting, .handshaking, .busy:
            if let owner { owner.upstreamTimedOut(self) } else { close() }
        case .closed:
            break
        }
    }

    // MARK: Timeouts

    /// The timeouts an upstream connection arms on its transport. Whichever
    /// fires, an idle connection closes and a busy one tells its owner
    /// (`upstreamTimedOut`: 504, a reset stream, or a retry elsewhere).
    enum Timeout: UInt8, TransportTimeout {
        /// `proxy-connect-timeout`: the TCP connect, then the TLS handshake.
        case connect = 1
        /// `proxy-send-timeout` between writes while request bytes wait.
        case send
        /// `proxy-read-timeout` between reads while the response is awaited.
        case read
        /// `upstream-keepalive-timeout`: parked in the pool, or an HTTP/2
        /// connection without a stream.
        case idle
    }

    /// A connect (or the TLS handshake after it) is under way.
    func armConnectTimeout() {
        socket.arm(Timeout.connect, after: worker.configuration.connectTimeoutMilliseconds)
    }

    /// Idle: parked in the pool, or an HTTP/2 connection whose last stream ended.
    func armIdleTimeout() {
        socket.arm(Timeout.idle, after: worker.configuration.upstreamKeepAliveTimeoutMilliseconds)
    }

    /// No timeout of its own (a tunnel, timed on the client's side; an
    /// HTTP/2 connection carrying streams).
    func disarmTimeout() {
        socket.disarm()
    }

    /// The next idle connection of the same pool key (pool bookkeeping).
    var nextIdle: HTTP1UpstreamConnection?
    /// Parked with its buffers; `tick` gives them back after a while.
    var holdsIdleBuffers = false
    /// True when the last connect failed in the TLS handshake (certificate
    /// refused, no common protocol), rather than at the TCP level.
    var handshakeFailed = false

    /// Which upstream failure a failed connect (`error` from
    /// `upstreamConnected`) was, for `postern_upstream_errors_total`.
    func failureKind(error: CInt) -> UpstreamErrorKind {
        handshakeFailed ? .tlsHandshake : error == ETIMEDOUT ? .connectTimeout : .connectRefused
    }

    /// Room to read a response into.
    enum ReadRoom {
        /// The read buffer has room.
        case ready
        /// Body bytes wait for the client: stop reading until it drains.
        case pause
        /// A response head larger than the header limit: malformed.
        case headTooLarge
    }

    /// Makes room in `readBuffer` for the next read: compacts, grows while a
    /// response head is still being read (up to the header limit), and says
    /// when the owner should pause instead.
    func makeReadRoom(headDone: Bool) -> ReadRoom {
        if !readBuffer.hasStorage {
            readBuffer.ensureStorage()
            return .ready
        }
        guard readBuffer.writableBytes < 4096 else { return .ready }
        readBuffer.compact()
        guard readBuffer.writableBytes < 4096 else { return .ready }
        if headDone { return .pause }
        guard readBuffer.capacity < worker.configuration.limits.maxHeaderSectionBytes + 4096 else { return .headTooLarge }
        readBuffer.reserveWritable(readBuffer.capacity)
        return .ready
    }

    /// What `readResponse` got.
    enum ResponseRead {
        /// Bytes were added to `readBuffer`.
        case bytes
        /// Body bytes wait for the client (`makeReadRoom`): stop reading until it drains.
        case pause
        /// A response head larger than the header limit: malformed.
        case headTooLarge
        case wouldBlock
        case endOfFile
        case failed
    }

    /// Makes room and reads what the socket has (with TLS, every record
    /// that fits: `TransportSocket.read`).
    ///
    /// `headReadLimit` (cleartext only, 0 for none) caps the first read of a
    /// response: a head fits in it, and a large body stays in the socket for
    /// the owner to `splice` instead of being copied out and back in.
    func readResponse(headDone: Bool, headReadLimit: Int = 0) -> ResponseRead {
        switch makeReadRoom(headDone: headDone) {
        case .ready: break
        case .pause: return .pause
        case .headTooLarge: return .headTooLarge
        }
        let result = headReadLimit > 0 && !headDone && readBuffer.isEmpty ? socket.read(atMost: headReadLimit) : socket.read()
        switch result {
        case .bytes:
            return .bytes
        case .wouldBlock: return .wouldBlock
        case .endOfFile: return .endOfFile
        case .failed: return .failed
        }
    }

    /// Sets the deadline of a connection carrying a request: the send timeout
    /// while request bytes wait, none while the request body is still coming
    /// or the owner paused reading (the client sets the pace), else the read timeout.
    @inline(__always)
    func refreshDeadline(requestPending: Bool, readPaused: Bool) {
        guard state == .busy else { return }
        if !writeBuffer.isEmpty {
            socket.arm(Timeout.send, after: worker.configuration.upstreamSendTimeoutMilliseconds, restartedBy: .output)
        } else if requestPending || readPaused {
            socket.disarm()
        } else {
            socket.arm(Timeout.read, after: worker.configuration.upstreamReadTimeoutMilliseconds, restartedBy: .input)
        }
    }

    /// Where the response head in `readBuffer` stands.
    enum ResponseHeadStep {
        case incomplete
        case malformed
        /// 101: only an upgrade the client asked for may answer so.
        case switchingProtocols
        /// A final (2xx-5xx) head is parsed; its bytes are still in `readBuffer`.
        case final
    }

    /// Parses the response head at the start of `readBuffer`. Interim heads
    /// (100, 103: the proxy answered `Expect` itself) are consumed and skipped.
    func parseFinalResponseHead(requestWasHEAD: Bool, into head: inout HTTP1ResponseHead) -> ResponseHeadStep {
        while true {
            if readBuffer.isEmpty { return .incomplete }
            switch HTTP1Parser.parseResponseHead(
                readBuffer.readable, requestWasHEAD: requestWasHEAD, limits: worker.configuration.limits, into: &head)
            {
            case .incomplete:
                return .incomplete
            case .failed:
                return .malformed
            case .complete:
                if head.status == 101 { return .switchingProtocols }
                if head.status >= 200 { return .final }
                readBuffer.consume(head.headLength)
            }
        }
    }

    /// The epoll interest of a connection carrying a request: read unless the
    /// owner paused for backpressure, write while request bytes wait.
    func updateInterest(readPaused: Bool) {
        guard state == .busy else { return }
        var wanted: Interest = readPaused ? .none : .read
        if !writeBuffer.isEmpty { wanted.insert(.write) }
        setInterest(wanted)
    }

    /// TCP connect done: for HTTPS endpoints the TLS handshake follows; the
    /// owner hears `upstreamConnected` once the connection can carry a request.
    func connectFinished(error: CInt) {
        guard error == 0, secure != nil else {
            if error == 0 { state = .busy }
            if let owner { owner.upstreamConnected(self, error: error) } else { close() }
            return
        }
        guard let secure, socket.startClientTLS(secure, serverName: serverName) else {
            handshakeFailed = true
            if let owner { owner.upstreamConnected(self, error: EPROTO) } else { close() }
            return
        }
        state = .handshaking
        armConnectTimeout()
        continueHandshake()
    }

    /// Drives the TLS handshake with the endpoint.
    func continueHandshake() {
        switch socket.handshake() {
        case .complete:
            state = .busy
            setInterest(.read)
            if let owner { owner.upstreamConnected(self, error: 0) } else { close() }
        case .waiting:
            // The transport asks for what the handshake waits for.
            setInterest(.read)
        case .failed:
            handshakeFailed = true
            if let owner { owner.upstreamConnected(self, error: EPROTO) } else { close() }
        }
    }

    /// Deregisters and closes the socket. Idempotent.
    func close() {
        guard state != .closed else { return }
        state = .closed
        owner = nil
        socket.close(loop: worker.loop, notify: false)
        worker.metrics.upstreamConnectionsClosed.add()
    }

    /// Reads into `readBuffer` (through TLS for HTTPS endpoints, every
    /// record that fits).
    @inline(__always)
    func transportRead() -> IOResult { socket.read() }

    /// Writes from `writeBuffer` (through TLS for HTTPS endpoints).
    @inline(__always)
    func transportWrite() -> IOResult { socket.write() }

    /// The descriptor for `splice(2)` (nil with TLS: `TransportSocket.spliceDescriptor`).
    var spliceDescriptor: CInt? { socket.spliceDescriptor }

    /// Moves up to `count` response bytes from the socket into `pipe`
    /// (`TransportSocket.splice(into:count:)`).
    @inline(__always)
    func splice(into pipe: SplicePipe, count: Int) -> IOResult { socket.splice(into: pipe, count: count) }

    /// Input is ready that no readiness event will announce (see
    /// `TransportSocket.hasUnannouncedInput`): read again without waiting.
    var hasUnannouncedInput: Bool { socket.hasUnannouncedInput }
}

/// Whoever drives an upstream connection while it serves a request: an
/// HTTP/1.1 client connection, or one stream of an HTTP/2 connection.
/// Loop-bound.
protocol UpstreamOwner: AnyObject {
    /// A non-blocking connect finished (`error` 0: connected).
    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt)
    /// The connection is readable or writable.
    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness)
    /// The connection's deadline passed.
    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection)
}

/// What pooled upstream connections are keyed by.
struct PoolKey: Hashable {
    var endpoint: Endpoint
    /// The TLS context (nil: plain HTTP).
    var secure: ObjectIdentifier?

    /// One word per IPv4 key instead of the synthesized byte-by-byte hash
    /// (taking and parking a connection hash the key on every request).
    func hash(into hasher: inout Hasher) {
        switch endpoint.address {
        case let .v4(a, b, c, d):
            let word = UInt64(a) << 56 | UInt64(b) << 48 | UInt64(c) << 40 | UInt64(d) << 32 | UInt64(endpoint.port)
            hasher.combine(word)
        case .v6:
            hasher.combine(endpoint)
        }
        hasher.combine(secure)
    }
}

/// Idle keep-alive connections of one worker, per endpoint. Most recently
/// used first (LIFO), which keeps few connections warm and lets the rest time out.
final class UpstreamPool {
    /// Idle connections of one key: a singly linked list through
    /// `HTTP1UpstreamConnection.nextIdle`, most recent first. No array, so taking
    /// and parking never allocate.
    private struct Slot {
        var head: HTTP1UpstreamConnection?
        var count: Int
    }

    private var idle: [PoolKey: Slot] = [:]
    private let perEndpointLimit: Int

    init(perEndpointLimit: Int) {
        self.perEndpointLimit = perEndpointLimit
    }

    /// Takes the most recently used idle connection for `key`, if any.
    @inline(__always)
    func take(_ key: PoolKey) -> HTTP1UpstreamConnection? {
        guard var slot = idle[key], let head = slot.head else { return nil }
        slot.head = head.nextIdle
        slot.count -= 1
        head.nextIdle = nil
        idle[key] = slot
        return head
    }

    /// Parks a connection; returns false when its key's pool is full
    /// (the caller then closes it).
    @inline(__always)
    func park(_ connection: HTTP1UpstreamConnection) -> Bool {
        var slot = idle[connection.poolKey] ?? Slot(head: nil, count: 0)
        guard slot.count < perEndpointLimit else { return false }
        connection.nextIdle = slot.head
        slot.head = connection
        slot.count += 1
        idle[connection.poolKey] = slot
        // Its buffers go back to the worker's pool once it has stayed idle
        // a while (`tick`), not at once: a busy pool reuses it at once.
        connection.holdsIdleBuffers = true
        return true
    }

    /// Forgets a connection (closed by its endpoint or timed out).
    func remove(_ connection: HTTP1UpstreamConnection) {
        guard var slot = idle[connection.poolKey] else { return }
        if slot.head === connection {
            slot.head = connection.nextIdle
        } else {
            var previous = slot.head
            while let current = previous?.nextIdle, current !== connection { previous = current }
            guard let previous, previous.nextIdle === connection else { return }
            previous.nextIdle = connection.nextIdle
        }
        connection.nextIdle = nil
        slot.count -= 1
        idle[connection.poolKey] = slot
    }

    /// Closes every idle connection (drain).
    func closeAll() {
        var all: [HTTP1UpstreamConnection] = []
        for slot in idle.values {
            var current = slot.head
            while let connection = current {
                all.append(connection)
                current = connection.nextIdle
                connection.nextIdle = nil
            }
        }
        idle.removeAll()
        for connection in all { connection.close() }
    }

    /// Idle connections across all keys.
    var count: Int { idle.values.reduce(0) { $0 + $1.count } }
}
