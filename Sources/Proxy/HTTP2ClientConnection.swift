import Glibc
import HTTP2
import Reactor
import Routing
import Telemetry

/// A client connection speaking HTTP/2: negotiated with ALPN `h2` on the
/// HTTPS listener, or cleartext with prior knowledge (the connection preface)
/// on the HTTP listener. One nghttp2 server session; each stream is an
/// `HTTP2StreamExchange` proxied to an HTTP/1.1 upstream over the worker's pool.
///
/// Loop-bound: every method runs on its worker's loop.
final class HTTP2ClientConnection: EventHandler, ClientConnection, HTTP2ServerSessionDelegate, DeferredWork {
    /// The socket taken over from the HTTP/1.1 connection, its TLS session,
    /// and the buffers: chunks of the worker's `largeBufferPool`, held only
    /// while bytes are in flight (given back whenever a flush leaves them empty).
    var socket: TransportSocket
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    /// Over TLS (h2), not cleartext (h2c).
    var isTLS: Bool { socket.isEncrypted }
    /// What the pipeline may know of the TLS session (nil: h2c).
    var tls: TLSSessionFacts? { socket.sessionFacts }
    /// Who is at the other end (handed over by the HTTP/1.1 connection
    /// that read the PROXY header and checked the peer's trust).
    let peer: ConnectionPeer
    private(set) var session: HTTP2ServerSession!
    /// Bytes read from the socket, fed to the session at once: `socket`'s
    /// read buffer, kept as a `let` so that the hot path reads it without a
    /// retain and release (a read through the `var socket` needs them).
    let readBuffer: ByteBuffer
    /// Session output the socket did not take yet: `socket`'s write buffer
    /// (a `let` for the same reason).
    let writeBuffer: ByteBuffer
    var streams = HTTP2StreamMap<HTTP2StreamExchange>()
    /// Closed streams' exchanges, reused by the next streams (no allocation per stream).
    var spareExchanges: [HTTP2StreamExchange] = []
    static let spareExchangeLimit = 16
    /// OpenSSL's record buffers may be allocated (cleared once freed while idle).
    var tlsBuffersHeld = true
    /// Idle time after which OpenSSL's record buffers are freed.
    static let tlsBufferIdleMilliseconds: UInt64 = 1_000
    var closed = false
    /// A flush is deferred to the end of the loop iteration (`requestFlush`).
    var flushRequested = false
    var draining = false
    /// Reused for response heads and trailers (no allocation once grown).
    var scratchFields = HTTP2Fields(byteCapacity: 2048, fieldCapacity: 32)

    /// Takes over a connection from `HTTP1ClientConnection` (after ALPN `h2`
    /// or the h2c preface): its `socket` (with buffers of the worker's
    /// `largeBufferPool`); `initialBytes` were already read from it.
    init(socket: consuming TransportSocket, worker: Worker, peer: ConnectionPeer, initialBytes: UnsafeRawBufferPointer) {
        self.readBuffer = socket.readBuffer
        self.writeBuffer = socket.writeBuffer
        self.socket = socket
        self.worker = worker
        self.peer = peer
        self.socket.settleForHTTP2()
        self.socket.arm(Timeout.idle, after: worker.configuration.keepAliveTimeoutMilliseconds, restartedBy: .traffic)
        var settings = HTTP2Settings()
        settings.maxHeaderListSize = UInt32(worker.configuration.limits.maxHeaderSectionBytes)
        settings.streamSendBufferHighWater = worker.configuration.bufferHighWaterMark
        settings.idleTimeoutSeconds = UInt32(max(1, worker.configuration.keepAliveTimeoutMilliseconds / 1000))
        settings.maxConcurrentStreams = worker.configuration.http2MaxConcurrentStreams
        settings.initialStreamWindowSize = worker.configuration.http2InitialWindowSize
        settings.maxResetsPerSecond = worker.configuration.http2MaxResetsPerSecond
        session = HTTP2ServerSession(settings: settings, delegate: self)
        readBuffer.append(initialBytes)
    }

    /// Starts serving: feeds what was already read, writes the SETTINGS.
    func start() {
        if !readBuffer.isEmpty { feedSession() }
        // Records that arrived with the handshake, which no event announces.
        if !closed, socket.hasUnannouncedInput { readFromClient() }
        if !closed { flushOutput() }
    }

    // MARK: Socket

    func handleReadiness(_ event: Readiness) {
        if closed { return }
        let readiness = socket.translate(event)
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            readFromClient()
        }
        if !closed { requestFlush() }
    }

    private func readFromClient() {
        // The transport may hold more than a buffer (with TLS read-ahead,
        // every record one system call brought): take it a buffer at a time.
        // The client's flow-control windows bound how much that can be.
        repeat {
            readBuffer.clear()
            switch socket.read() {
            case .bytes:
                tlsBuffersHeld = isTLS
                feedSession()
            case .wouldBlock:
                return
            case .endOfFile, .failed:
                close()
                return
            }
        } while !closed && !session.connectionShouldClose && socket.hasUnannouncedInput
    }

    private func feedSession() {
        do {
            try session.receive(readBuffer.readable)
        } catch {
            // A connection error: the GOAWAY is in the output; flush, then close.
            worker.metrics.count(.badRequest)
        }
        readBuffer.clear()
    }

    /// Output gathered from the session before a write: one TLS record and
    /// one system call carry the frames of many streams.
    static let writeBatchBytes = 32 * 1024

    /// Flushes once the current loop iteration's events are handled, so that
    /// every stream answered in the iteration shares one write.
    func requestFlush() {
        guard !flushRequested, !closed else { return }
        flushRequested = true
        worker.loop.defer(self)
    }

    func runDeferredWork() {
        flushRequested = false
        flushOutput()
    }

    /// Writes the session's output; closes when the session is finished.
    func flushOutput() {
        guard !closed else { return }
        while true {
            while writeBuffer.readableBytes < Self.writeBatchBytes {
                let chunk = session.nextOutputChunk()
                if chunk.isEmpty { break }
                writeBuffer.append(chunk)
            }
            if writeBuffer.isEmpty { break }
            if case .failed = socket.write() {
                close()
                return
            }
            // The socket is full: the rest stays here and in the session (backpressure).
            if !writeBuffer.isEmpty { break }
        }
        if writeBuffer.isEmpty, session.isFinished || (session.connectionShouldClose && !session.wantsWrite) {
            close()
            return
        }
        var wanted: Interest = session.wantsRead && !session.connectionShouldClose ? .read : .none
        if !writeBuffer.isEmpty { wanted.insert(.write) }
        socket.setInterest(socket.interest(for: wanted), on: worker.loop)
        // Nothing in flight: the buffers go back to the pool (a no-op for
        // one that holds bytes, e.g. while the session is being fed).
        socket.releaseIdleBuffers(includingSession: false)
    }

    /// The timeouts an HTTP/2 client connection arms on its transport
    /// (the session's own, for SETTINGS acknowledgements, run inside it).
    enum Timeout: UInt8, TransportTimeout {
        /// `keep-alive` without a byte either way: with no stream open,
        /// GOAWAY and closed.
        case idle = 1
        /// Draining: 2 s for the client to acknowledge the shutdown PING,
        /// then the shutdown is finished without it.
        case shutdownAcknowledgement
    }

    func tick(now: UInt64) {
        guard !closed else { return }
        if session.checkTimeouts() != nil {
            flushOutput()
            if !closed, writeBuffer.isEmpty { close() }
            return
        }
        // OpenSSL's record buffers (kept while busy: `tuneForMultiplexing`)
        // are freed once the connection has been quiet for a second; freeing
        // them whenever the last stream ends cost an allocation of both
        // every few requests under load (measured: +0.3 allocations and
        // +2.3 KB per request).
        if tlsBuffersHeld, streams.isEmpty, writeBuffer.isEmpty, socket.quiet(for: Self.tlsBufferIdleMilliseconds, now: now) {
            socket.releaseIdleBuffers(includingSession: true)
            tlsBuffersHeld = false
        }
        switch socket.expired(now: now, as: Timeout.self) {
        case .idle?:
            // Streams still open (a slow upstream): not idle; their last
            // bytes restart the clock.
            guard streams.isEmpty else { return }
            // Idle keep-alive: say goodbye properly, then close.
            session.submitGoAway(lastStream: Int32.max, errorCode: .noError)
            flushOutput()
            close()
        case .shutdownAcknowledgement?:
            // The client never acknowledged the shutdown PING: finish it.
            session.finishGracefulShutdown()
            flushOutput()
            if !closed {
                socket.arm(Timeout.idle, after: worker.configuration.keepAliveTimeoutMilliseconds, restartedBy: .traffic)
            }
        case nil:
            break
        }
    }

    // MARK: Session events

    func requestHead(stream: Int32, head: HTTP2RequestHead, endStream: Bool) {
        let exchange: HTTP2StreamExchange
        if let spare = spareExchanges.popLast() {
            spare.reset(stream: stream)
            exchange = spare
        } else {
            exchange = HTTP2StreamExchange(stream: stream, connection: self)
        }
        streams[stream] = exchange
        exchange.start(head: head, endStream: endStream)
    }

    /// Keeps a closed stream's exchange for the next stream, when nothing
    /// else (an upstream connection, a gRPC upstream's stream table) still
    /// holds it: only then can no late event of the old stream reach it.
    private func recycle(_ exchange: inout HTTP2StreamExchange) {
        guard spareExchanges.count < Self.spareExchangeLimit, exchange.upstream == nil, exchange.h2Upstream == nil,
              isKnownUniquelyReferenced(&exchange) else { return }
        spareExchanges.append(exchange)
    }

    func requestData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) {
        if let exchange = streams[stream] {
            exchange.requestBody(bytes, endStream: endStream)
        } else {
            session.consumed(stream: stream, bytes: bytes.count)
        }
    }

    func requestTrailers(stream: Int32, fields: HTTP2Fields) {
        streams[stream]?.requestTrailers(fields)
    }

    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode) {
        if var exchange = streams.removeValue(forKey: stream) {
            exchange.streamClosed(errorCode: errorCode)
            recycle(&exchange)
        }
        if draining, streams.isEmpty { session.finishGracefulShutdown() }
    }

    func streamWritable(stream: Int32) {
        streams[stream]?.clientDrained()
    }

    // MARK: Lifecycle

    func drainIfIdle() {
        guard !closed, !draining else { return }
        draining = true
        socket.arm(Timeout.shutdownAcknowledgement, after: 2_000)
        if streams.isEmpty {
            session.submitGoAway(lastStream: Int32.max, errorCode: .noError)
            flushOutput()
            close()
        } else {
            session.beginGracefulShutdown()
            flushOutput()
        }
    }

    func abort() { close() }

    func close() {
        guard !closed else { return }
        closed = true
        switch session.closeReason {
        case .rapidReset: worker.metrics.http2FloodCloses[HTTP2FloodKind.rapidReset.rawValue].add()
        case .controlFrameFlood: worker.metrics.http2FloodCloses[HTTP2FloodKind.controlFrames.rawValue].add()
        case .protocolError(.flooded): worker.metrics.http2FloodCloses[HTTP2FloodKind.unreadOutput.rawValue].add()
        default: break
        }
        for exchange in streams.allValues { exchange.abandon() }
        streams.removeAll()
        spareExchanges.removeAll()
        socket.close(loop: worker.loop, notify: true)
        worker.connectionClosed(self)
    }
}
