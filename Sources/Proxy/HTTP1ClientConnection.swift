import Glibc
import HTTP1
import HTTP2
import Reactor
import RouteModel
import Routing
import Telemetry

/// One client connection and the request it is currently proxying.
///
/// Requests on a connection are handled one at a time, in order
/// (pipelined requests wait in `readBuffer`). The connection drives the
/// upstream connection of its current request: upstream readiness is
/// forwarded here, so the whole request path reads top to bottom in this
/// type and its extensions (`+Request`, `+Response`).
///
/// Loop-bound: every method runs on its worker's loop.
final class HTTP1ClientConnection: EventHandler, UpstreamAttempt, ClientConnection, DeferredWork {
    /// Where the connection is in its life. One request at a time.
    enum State: Equatable {
        /// Waiting for the PROXY protocol header (`use-proxy-protocol`),
        /// before TLS or HTTP.
        case readingProxyHeader
        /// TLS handshake under way (HTTPS listener only).
        case handshaking
        /// Between requests, or reading a request head.
        case waitingForRequest
        /// A request was routed; its upstream exchange is running.
        case proxying
        /// After `101 Switching Protocols`: bytes are spliced both ways
        /// between the client and the upstream (WebSocket).
        case tunneling
        /// The last response is queued; close once it is written.
        case closingAfterWrite
        /// Write side shut; discarding input until the client closes
        /// (avoids a reset destroying the response in flight).
        case lingering
        case closed
    }

    /// How much of the request body is still to be forwarded.
    enum RequestBody: Equatable {
        case complete
        case contentLength(remaining: UInt64)
        /// `budget`: body bytes still allowed by the route's `proxy-body-size`.
        case chunked(budget: UInt64)
    }

    /// How the response body is read from the upstream.
    enum ResponseBody: Equatable {
        case none
        case contentLength(remaining: UInt64)
        case chunked
        case untilClose
    }

    /// The socket, its TLS session when there is one, and the connection's
    /// buffers (chunks of the worker's `bufferPool`, held only while bytes
    /// are in flight: `releaseIdleBuffers`).
    var socket: TransportSocket
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    /// Accepted on the HTTPS listener.
    var isTLS: Bool { socket.isEncrypted }
    /// What the pipeline may know of the TLS session (nil: plain HTTP).
    var tls: TLSSessionFacts? { socket.sessionFacts }
    /// A read of input the transport holds unannounced is deferred to the
    /// end of the loop iteration (`updateDownstreamInterest`).
    var bufferedReadScheduled = false
    var state: State
    /// Client bytes not yet handled: `socket`'s read buffer. Kept as a `let`
    /// as well: a read through the `var socket` costs a retain and a release
    /// per access (callgrind: about 270 instructions per request).
    let readBuffer: ByteBuffer
    /// Output the client has not taken yet: `socket`'s write buffer (a `let`
    /// for the same reason).
    let writeBuffer: ByteBuffer
    /// Who is at the other end: TCP peer, PROXY protocol source, trust.
    let peer: ConnectionPeer
    /// The request head being parsed: parse scratch, not request state
    /// (every parse overwrites it whole; it is kept between requests only
    /// so that its field array keeps its capacity).
    var head = HTTP1RequestHead()
    /// The state of the current request, from its first byte to the end of
    /// its response: replaced whole (`resetExchange`) between requests.
    var exchange = HTTP1Exchange()

    var inProcessInput = false
    /// Requests begun on this connection (the h2c preface is looked for
    /// only before the first).
    var requestsSeen = 0
    var peerClosedRead = false

    // The current exchange.
    var upstream: HTTP1UpstreamConnection?
    /// The serialized upstream request head, kept to replay it on a fresh
    /// connection when a reused one turns out to be closed.
    let upstreamRequestHead: ByteBuffer
    /// The upstream response head being parsed: parse scratch like `head`.
    var responseHead = HTTP1ResponseHead()
    /// `UpstreamAttempt`: the exchange's routed cluster.
    var cluster: CompiledCluster? { exchange.cluster }
    /// `UpstreamAttempt`: the exchange's connection attempts.
    var attempts: Int {
        get { exchange.attempts }
        set { exchange.attempts = newValue }
    }
    /// `UpstreamAttempt`: the exchange's upstream came from the pool.
    var upstreamReused: Bool {
        get { exchange.upstreamReused }
        set { exchange.upstreamReused = newValue }
    }
    init(socket: consuming TransportSocket, peer: SocketAddress?, worker: Worker) {
        let encrypted = socket.isEncrypted
        self.readBuffer = socket.readBuffer
        self.writeBuffer = socket.writeBuffer
        self.socket = socket
        self.worker = worker
        self.upstreamRequestHead = ByteBuffer(pool: worker.bufferPool)
        self.peer = worker.pipeline.peer(peer)
        // The PROXY header comes first, before TLS: `Worker.accepted`'s
        // first handshake step finds the connection not handshaking yet.
        self.state = self.peer.policy.useProxyProtocol ? .readingProxyHeader : encrypted ? .handshaking : .waitingForRequest
        switch state {
        case .readingProxyHeader: self.socket.arm(Timeout.proxyHeader, after: self.peer.policy.headerTimeoutMilliseconds)
        case .handshaking: armHandshakeTimeout()
        default: armKeepAliveTimeout()
        }
    }

    // MARK: Timeouts

    /// The timeouts a client connection arms on its transport: one per
    /// state (the transport counts; `tick` acts when one fires). The send
    /// timeout runs beside `requestBody` while response bytes wait for the
    /// client (`TransportSocket.outputStalled`).
    enum Timeout: UInt8, TransportTimeout {
        /// `proxy-protocol-header-timeout` from accept: closed, counted.
        case proxyHeader = 1
        /// The TLS handshake, within `client-header-timeout`: closed, counted.
        case handshake
        /// `keep-alive` between requests: closed.
        case keepAlive
        /// `client-header-timeout` from a request's first byte: 408.
        case requestHead
        /// `client-body-timeout` between reads of a request body: 408, or
        /// the connection cut once the response began.
        case requestBody
        /// `proxy-read-timeout` without a byte either way through a tunnel: closed.
        case tunnel
        /// The last response queued: `send_timeout` between writes, then closed.
        case send
        /// Write side shut: the client has 2 s to close, then it is closed.
        case linger
    }

    /// Waiting for a request (none started): `keep-alive`.
    @inline(__always)
    func armKeepAliveTimeout() {
        socket.arm(Timeout.keepAlive, after: worker.configuration.keepAliveTimeoutMilliseconds)
    }

    /// The TLS handshake runs within `client-header-timeout`.
    func armHandshakeTimeout() {
        socket.arm(Timeout.handshake, after: worker.configuration.clientHeaderTimeoutMilliseconds)
    }

    /// The last response is queued (`closingAfterWrite`): the client must
    /// keep taking it.
    func armSendTimeout() {
        socket.arm(Timeout.send, after: worker.configuration.clientSendTimeoutMilliseconds, restartedBy: .output)
    }

    // MARK: Readiness

    func handleReadiness(_ event: Readiness) {
        if state == .readingProxyHeader {
            readProxyHeader()
            return
        }
        if state == .handshaking {
            continueHandshake()
            return
        }
        let readiness = socket.translate(event)
        if readiness.contains(.writable) {
            flushDownstream()
            if state == .closed { return }
        }
        if state == .proxying, peerClosedRead {
            // The client's FIN was seen (and `.ignoringReadHangup` asked
            // epoll not to repeat it): reading again would find only that
            // end of file. Only a reset matters now.
            if !readiness.isDisjoint(with: [.hangup, .error]) {
                worker.metrics.count(.clientReset)
                abort()
            }
            return
        }
        if state != .closed, !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            readFromClient()
        }
    }

    func tick(now: UInt64) {
        // Response bytes the client does not take: `send_timeout`, beside
        // the request body's own timeout.
        if state == .proxying, clientOutputPending,
            socket.outputStalled(for: worker.configuration.clientSendTimeoutMilliseconds, now: now)
        {
            abort()
            return
        }
        guard let timeout = socket.expired(now: now, as: Timeout.self) else {
            // Between requests, the buffers go back to the pools once the
            // connection has been quiet a while.
            if state == .waitingForRequest, !exchange.requestStarted,
                socket.quiet(for: HTTP1ClientConnection.idleBufferReleaseMilliseconds, now: now)
            {
                releaseIdleBuffers()
            }
            return
        }
        timedOut(timeout)
    }

    /// The armed timeout passed: what its state does then.
    private func timedOut(_ timeout: Timeout) {
        switch (timeout, state) {
        case (_, .closed):
            break
        case (.proxyHeader, .readingProxyHeader):
            worker.metrics.count(.proxyProtocol)
            close()
        case (.handshake, .handshaking):
            worker.metrics.tlsHandshakeFailures.add()
            close()
        case (.requestHead, .waitingForRequest):
            worker.metrics.count(.headerTimeout)
            respondWithError(.requestTimeout, headParsed: false)
        case (.keepAlive, .waitingForRequest), (.send, .closingAfterWrite), (.linger, .lingering):
            close()
        case (.requestBody, .proxying):
            // Only while waiting on the client: a pause for upstream
            // backpressure is governed by the upstream send timeout.
            guard exchange.requestBody != .complete, !peerClosedRead, socket.awaitsInput else { return }
            worker.metrics.count(.bodyTimeout)
            if exchange.responseHeadDone { abort() } else { respondWithError(.requestTimeout, headParsed: true) }
        case (.tunnel, .tunneling):
            closeTunnel()
        default:
            // Every state change arms its state's timeout: a kind left from
            // another state would be a missed arming.
            assertionFailure("timeout \(timeout) fired in state \(state)")
        }
    }

    // MARK: Client input

    /// Largest the read buffer grows: a full request head plus room for body bytes.
    private var readBufferLimit: Int { worker.configuration.limits.maxHeaderSectionBytes + 16 * 1024 }

    func readFromClient() {
        // Back from idle: take a buffer from the worker's pool for these bytes.
        readBuffer.ensureStorage()
        if readBuffer.writableBytes < 2048 {
            readBuffer.compact()
            if readBuffer.writableBytes < 2048, readBuffer.capacity < readBufferLimit {
                readBuffer.reserveWritable(readBuffer.capacity)
            }
        }
        if readBuffer.writableBytes == 0 {
            updateDownstreamInterest()
            return
        }
        switch socket.read() {
        case .bytes:
            switch state {
            case .waitingForRequest:
                processInput()
            case .proxying:
                if exchange.requestBody != .complete {
                    pumpRequestBody()
                    flushUpstream()
                }
                updateDownstreamInterest()
            case .tunneling:
                tunnelClientBytes()
            case .closingAfterWrite, .lingering:
                readBuffer.clear()
            case .readingProxyHeader, .handshaking, .closed:
                break
            }
        case .wouldBlock:
            // A TLS read may need the socket writable first: the interest says so.
            updateDownstreamInterest()
        case .endOfFile:
            if state == .tunneling {
                closeTunnel()
                return
            }
            clientClosed()
        case .failed:
            worker.metrics.count(.clientReset)
            abort()
        }
    }

    /// The client closed its sending side.
    func clientClosed() {
        switch state {
        case .readingProxyHeader, .handshaking, .waitingForRequest, .closingAfterWrite, .lingering, .tunneling:
            close()
        case .proxying:
            if exchange.requestBody == .complete {
                // A half-close after a complete request (`printf ... | nc`)
                // still gets its response; the connection closes after it.
                peerClosedRead = true
                exchange.closeAfterResponse = true
                updateDownstreamInterest()
            } else {
                worker.metrics.count(.clientReset)
                abort()
            }
        case .closed:
            break
        }
    }

    /// Parses and starts buffered requests, one at a time.
    func processInput() {
        guard !inProcessInput else { return }
        inProcessInput = true
        defer { inProcessInput = false }
        while state == .waitingForRequest, !readBuffer.isEmpty {
            // Do not queue responses faster than the client reads them.
            if writeBuffer.readableBytes >= worker.configuration.bufferHighWaterMark { break }
            if requestsSeen == 0, !isTLS, worker.configuration.h2c {
                // Cleartext HTTP/2 with prior knowledge starts with the preface.
                switch HTTP2Preface.matches(prefixOf: readBuffer.readable) {
                case .yes:
                    worker.handOverToHTTP2(self)
                    return
                case .needMore:
                    updateDownstreamInterest()
                    return
                case .no:
                    break
                }
            }
            if !exchange.requestStarted {
                exchange.requestStarted = true
                socket.arm(Timeout.requestHead, after: worker.configuration.clientHeaderTimeoutMilliseconds)
            }
            let input = readBuffer.readable
            // A head trickled in tiny reads is re-parsed only when a line
            // ended (or the limit is reached): parsing stays linear.
            if exchange.parsedHeadBytes > 0,
                !HTTP1Parser.shouldReparse(input, previousCount: exchange.parsedHeadBytes, limits: worker.configuration.limits)
            {
                break
            }
            switch HTTP1Parser.parseRequestHead(input, limits: worker.configuration.limits, into: &head) {
            case .incomplete:
                exchange.parsedHeadBytes = input.count
                updateDownstreamInterest()
                return
            case let .failed(error):
                exchange.parsedHeadBytes = 0
                worker.metrics.count(DownstreamErrorKind(error))
                respondWithError(ErrorResponse(error), headParsed: false)
            case .complete:
                exchange.parsedHeadBytes = 0
                requestsSeen += 1
                startExchange()
            }
        }
        updateDownstreamInterest()
    }

    // MARK: Interest and output

    @inline(__always)
    func setInterest(_ new: Interest) {
        // The transport restarts the wait for input when reading resumes.
        socket.setInterest(new, on: worker.loop)
    }

    /// The epoll interest last set.
    var interest: Interest { socket.interest }

    /// Reads when there is somewhere to put the bytes; writes when output is queued.
    func updateDownstreamInterest() {
        var wanted: Interest = clientOutputPending ? .write : .none
        switch state {
        case .readingProxyHeader:
            // Before TLS: only the header's bytes, whatever is queued.
            setInterest(.read)
            return
        case .handshaking:
            // The transport answers with what the handshake waits for.
            wanted = .read
        case .waitingForRequest:
            if readBuffer.writableBytes > 0 || readBuffer.capacity < readBufferLimit { wanted.insert(.read) }
        case .proxying:
            if peerClosedRead {
                // The client's FIN is known: stop epoll reporting it on every wait.
                wanted.insert(.ignoringReadHangup)
            } else {
                if exchange.requestBody != .complete {
                    if let upstream, upstream.writeBuffer.readableBytes < worker.configuration.bufferHighWaterMark {
                        wanted.insert(.read)
                    }
                } else if readBuffer.writableBytes > 0 {
                    // Keep watching for pipelined bytes and for the client going away.
                    wanted.insert(.read)
                }
            }
        case .lingering:
            wanted.insert(.read)
        case .tunneling:
            if let upstream, upstream.writeBuffer.readableBytes < worker.configuration.bufferHighWaterMark { wanted.insert(.read) }
        case .closingAfterWrite, .closed:
            break
        }
        setInterest(socket.interest(for: wanted))
        // The transport may hold client bytes that epoll will never announce
        // (TLS records read with the handshake, or the rest of what the read
        // buffer had no room for when reading paused): read them once this
        // iteration's events are handled. Each such read takes bytes or finds
        // only part of a record (then the socket has the rest, and the
        // transport stops saying so), so this never spins.
        if wanted.contains(.read), state != .handshaking, !bufferedReadScheduled,
           readBuffer.writableBytes > 0 || readBuffer.readerIndex > 0 || readBuffer.capacity < readBufferLimit,
           socket.hasUnannouncedInput
        {
            bufferedReadScheduled = true
            worker.loop.defer(self)
        }
    }

    /// How long a connection waits between requests before its buffers go
    /// back to the pool (`tick`). Not at once: on a busy keep-alive
    /// connection the next request follows within microseconds, and
    /// giving the buffers back after every response cost about 1,300
    /// instructions per request (callgrind).
    static let idleBufferReleaseMilliseconds: UInt64 = 200

    /// Between requests with nothing buffered either way (keep-alive wait,
    /// or just after the TLS handshake) for `idleBufferReleaseMilliseconds`,
    /// the buffers go back to the worker's pool: an idle connection holds no
    /// buffer memory. The next read or response takes them again.
    @inline(__always)
    func releaseIdleBuffers() {
        guard state == .waitingForRequest, !exchange.requestStarted, readBuffer.isEmpty, writeBuffer.isEmpty else { return }
        if readBuffer.hasStorage || writeBuffer.hasStorage || upstreamRequestHead.hasStorage { releaseBuffers() }
        // The parsed heads' field lists keep their capacity between requests
        // (no allocation per request); an idle connection gives it up too:
        // 40 bytes a field, about 1 KiB for a browser-sized request and its response.
        if head.fields.capacity > 0 { head.fields = [] }
        if responseHead.fields.capacity > 0 { responseHead.fields = [] }
    }

    private func releaseBuffers() {
        socket.releaseIdleBuffers(includingSession: true)
        // Kept during an exchange to replay the request; no exchange now.
        upstreamRequestHead.clear()
        upstreamRequestHead.releaseStorage()
    }

    func runDeferredWork() {
        bufferedReadScheduled = false
        guard state != .closed, state != .handshaking, state != .readingProxyHeader, socket.hasUnannouncedInput else { return }
        readFromClient()
    }

    /// Writes what the write buffer holds, as far as the socket takes it.
    /// Returns false when the client is gone (the connection is aborted).
    @inline(__always)
    func writeQueuedOutput() -> Bool {
        guard !writeBuffer.isEmpty else { return true }
        switch socket.write() {
        case .bytes, .wouldBlock, .endOfFile:
            break
        case .failed:
            worker.metrics.count(.clientReset)
            abort()
            return false
        }
        return true
    }

    /// Writes queued output; continues whatever was waiting for room.
    func flushDownstream() {
        guard writeQueuedOutput() else { return }
        let highWater = worker.configuration.bufferHighWaterMark
        switch state {
        case .closingAfterWrite:
            if writeBuffer.isEmpty { startLingeringClose() } else { updateDownstreamInterest() }
            return
        case .proxying:
            if exchange.splice != nil {
                // The pipe path sets both sides' interest itself.
                continueSplice()
                return
            }
            if exchange.upstreamReadPaused, writeBuffer.readableBytes < highWater, let upstream {
                exchange.upstreamReadPaused = false
                processUpstreamInput()
                if exchange.splice != nil {
                    continueSplice()
                    return
                }
                if state == .proxying, self.upstream === upstream {
                    refreshUpstreamDeadline(upstream)
                    updateUpstreamInterest(upstream)
                }
            }
        case .waitingForRequest:
            if !readBuffer.isEmpty, writeBuffer.readableBytes < highWater { processInput() }
        case .tunneling:
            // Room again toward the client: take what the upstream sent.
            if let upstream, writeBuffer.readableBytes < highWater { tunnelUpstreamBytes(upstream) }
            if state == .tunneling { updateDownstreamInterest() }
            return
        case .readingProxyHeader, .handshaking, .lingering, .closed:
            return
        }
        if state != .closed { updateDownstreamInterest() }
    }

    /// Shuts the write side and waits (bounded) for the client to close.
    func startLingeringClose() {
        socket.shutdownWrite()
        state = .lingering
        socket.arm(Timeout.linger, after: 2_000)
        readBuffer.clear()
        updateDownstreamInterest()
    }

    /// Sends a generated error response. `headParsed` says whether the
    /// request head was understood (else the connection always closes: the
    /// framing of what follows is unknown).
    func respondWithError(_ response: ErrorResponse, headParsed: Bool) {
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        let keepAlive = headParsed && exchange.clientKeepAlive && exchange.requestBody == .complete && !peerClosedRead && !worker.isDraining
        worker.errorResponses.append(response, keepAlive: keepAlive, isHEAD: headParsed && exchange.isHEAD, to: writeBuffer)
        worker.metrics.countResponse(status: response.status)
        finishLocalResponse(keepAlive: keepAlive)
    }

    /// A response Postern wrote itself (an error, a redirect) is queued:
    /// the exchange ends, and the connection waits for the next request or
    /// closes once the response is out.
    func finishLocalResponse(keepAlive: Bool) {
        resetExchange()
        if keepAlive {
            state = .waitingForRequest
            armKeepAliveTimeout()
        } else {
            state = .closingAfterWrite
            armSendTimeout()
            readBuffer.clear()
        }
        flushDownstream()
    }

    /// Ends the current request's state: the next request starts from a
    /// fresh `HTTP1Exchange`, so nothing of this one can leak into it.
    @inline(__always)
    func resetExchange() {
        // A body still in a pipe goes with it: its pipe is closed, never pooled.
        exchange = HTTP1Exchange()
    }

    // MARK: Closing

    /// Closes at once, abandoning any exchange (its upstream is not reused).
    func abort() {
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        close()
    }

    /// During a drain: closes now if no request is under way.
    func drainIfIdle() {
        // A connection still in its TLS handshake has no request in flight either.
        if (state == .waitingForRequest && !exchange.requestStarted) || state == .handshaking || state == .readingProxyHeader { close() }
    }

    /// The connection now belongs to an `HTTP2ClientConnection`, which took its
    /// socket (`TransportSocket(takingOver:)`): forget the bytes it carried over.
    func handOver() {
        state = .closed
        readBuffer.clear()
    }

    func close() {
        guard state != .closed else { return }
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        state = .closed
        // A pipe with bytes of an abandoned body is closed, not pooled.
        exchange.splice = nil
        // No close_notify: a client that just goes away keeps its session resumable.
        socket.close(loop: worker.loop, notify: false)
        worker.connectionClosed(self)
    }
}

extension DownstreamErrorKind {
    init(_ error: HTTP1ParseError) {
        switch error {
        case .badRequest: self = .badRequest
        case .uriTooLong: self = .uriTooLong
        case .headerSectionTooLarge: self = .headerTooLarge
        case .unsupportedTransferCoding: self = .notImplemented
        case .versionNotSupported: self = .versionNotSupported
        }
    }
}

/// The TLS handshake of a connection on the HTTPS listener.
extension HTTP1ClientConnection {
    /// Drives the TLS handshake; once done, the connection reads requests.
    func continueHandshake() {
        guard state == .handshaking else { return }
        switch socket.handshake() {
        case .complete:
            if socket.resumedSession { worker.metrics.tlsResumedHandshakes.add() } else { worker.metrics.tlsFullHandshakes.add() }
            state = .waitingForRequest
            armKeepAliveTimeout()
            if socket.negotiatedHTTP2 {
                worker.handOverToHTTP2(self)
                return
            }
            socket.settleForHTTP1()
            // Application data may have arrived with the final handshake
            // flight: `updateDownstreamInterest` reads it at the end of this
            // loop iteration.
            updateDownstreamInterest()
        case .waiting:
            updateDownstreamInterest()
        case .failed:
            worker.metrics.tlsHandshakeFailures.add()
            close()
        }
    }
}

/// PROXY protocol (`use-proxy-protocol`): the header is read before
/// anything else, with bounded reads that never take a byte behind it (the
/// TLS ClientHello, or the first request, stays in the socket).
extension HTTP1ClientConnection {
    func readProxyHeader() {
        guard state == .readingProxyHeader else { return }
        // The header's bytes read so far are at the start of `readBuffer`.
        readBuffer.ensureStorage()
        let have = readBuffer.readableBytes
        let space = readBuffer.writable
        let limit = min(space.count, ProxyProtocol.maximumV2Length - have)
        guard limit > 0 else { return refuseProxyHeader() }
        let window = UnsafeMutableRawBufferPointer(rebasing: space[0..<limit])
        let peeked: Int
        switch socket.peek(into: window) {
        case let .bytes(count):
            peeked = count
        case .wouldBlock:
            return
        case .endOfFile, .failed:
            // Gone before a header: counted when it had begun one (a bare
            // TCP health check that connects and closes is not a failure).
            if have > 0 { worker.metrics.count(.proxyProtocol) }
            close()
            return
        }
        let candidate = UnsafeRawBufferPointer(start: readBuffer.readable.baseAddress, count: have + peeked)
        let take: Int
        var header: ProxyProtocol.Header?
        switch ProxyProtocol.parse(candidate) {
        case .invalid:
            return refuseProxyHeader()
        case .needMore:
            // Every byte seen belongs to the header: take them all.
            take = peeked
        case let .complete(parsed, length):
            take = length - have
            header = parsed
        }
        guard take > 0 else { return }
        switch socket.receive(into: UnsafeMutableRawBufferPointer(rebasing: window[0..<take])) {
        case let .bytes(count):
            readBuffer.didWrite(count)
            if count < take { return }
        case .wouldBlock:
            return
        case .endOfFile, .failed:
            worker.metrics.count(.proxyProtocol)
            close()
            return
        }
        guard let header else { return }
        readBuffer.clear()
        peer.accept(header)
        if isTLS {
            state = .handshaking
            armHandshakeTimeout()
            continueHandshake()
        } else {
            state = .waitingForRequest
            armKeepAliveTimeout()
            readFromClient()
        }
    }

    /// No header, a malformed one, or one longer than the bound: closed and counted.
    private func refuseProxyHeader() {
        worker.metrics.count(.proxyProtocol)
        close()
    }
}
