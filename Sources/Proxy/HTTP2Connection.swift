import Glibc
import HTTP2
import Reactor
import Routing
import TLS
import Telemetry

/// A client connection speaking HTTP/2: negotiated with ALPN `h2` on the
/// HTTPS listener, or cleartext with prior knowledge (the connection preface)
/// on the HTTP listener. One nghttp2 server session; each stream is an
/// `HTTP2StreamExchange` proxied to an HTTP/1.1 upstream over the worker's pool.
///
/// Loop-bound: every method runs on its worker's loop.
final class HTTP2Connection: EventHandler, ClientConnection, HTTP2ServerSessionDelegate, DeferredWork {
    let fd: CInt
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    var tls: TLSConnection?
    var registration: Registration?
    var interest: Interest = .none
    let isTLS: Bool
    /// Who is at the other end (handed over by the HTTP/1.1 connection
    /// that read the PROXY header and checked the peer's trust).
    let peer: ConnectionPeer
    private(set) var session: HTTP2ServerSession!
    /// Bytes read from the socket, fed to the session at once.
    let readBuffer: ByteBuffer
    /// Session output the socket did not take yet.
    let writeBuffer: ByteBuffer
    var streams = HTTP2StreamMap<HTTP2StreamExchange>()
    /// Closed streams' exchanges, reused by the next streams (no allocation per stream).
    var spareExchanges: [HTTP2StreamExchange] = []
    static let spareExchangeLimit = 16
    var lastActivity: UInt64
    /// OpenSSL's record buffers may be allocated (cleared once freed while idle).
    var tlsBuffersHeld = true
    /// Idle time after which OpenSSL's record buffers are freed.
    static let tlsBufferIdleMilliseconds: UInt64 = 1_000
    var closed = false
    /// A flush is deferred to the end of the loop iteration (`requestFlush`).
    var flushRequested = false
    var draining = false
    var drainStartedAt: UInt64 = 0
    /// Reused for response heads and trailers (no allocation once grown).
    var scratchFields = HTTP2Fields(byteCapacity: 2048, fieldCapacity: 32)

    /// Takes over a connection from `DownstreamConnection` (after ALPN `h2`
    /// or the h2c preface); `initialBytes` were already read from it.
    init(fd: CInt, worker: Worker, tls: TLSConnection?, peer: ConnectionPeer, initialBytes: UnsafeRawBufferPointer) {
        self.fd = fd
        self.worker = worker
        self.tls = tls
        self.isTLS = tls != nil
        // Chunks of the worker's pool, held only while bytes are in flight:
        // given back whenever a flush leaves them empty.
        self.readBuffer = ByteBuffer(pool: worker.largeBufferPool)
        self.writeBuffer = ByteBuffer(pool: worker.largeBufferPool)
        self.peer = peer
        tls?.tuneForMultiplexing()
        self.lastActivity = worker.loop.now
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
        // Records that arrived with the handshake and are still inside OpenSSL.
        if !closed, let tls, tls.hasPendingInput { readFromClient() }
        if !closed { flushOutput() }
    }

    // MARK: Socket

    func handleReadiness(_ readiness: Readiness) {
        if closed { return }
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            readFromClient()
        }
        if !closed { requestFlush() }
    }

    private func readFromClient() {
        readBuffer.clear()
        var result = transportRead()
        guard case .bytes = result else {
            if case .wouldBlock = result { return }
            close()
            return
        }
        lastActivity = worker.loop.now
        tlsBuffersHeld = tls != nil
        while true {
            // With read-ahead OpenSSL may hold several records that epoll
            // will not announce: take them all, a buffer at a time. The
            // client's flow-control windows bound how much that can be.
            while let tls, tls.hasPendingInput, readBuffer.writableBytes > 0 {
                result = transportRead()
                guard case .bytes = result else { break }
            }
            feedSession()
            // close_notify or a broken record behind good ones: no epoll event follows.
            switch result {
            case .endOfFile, .failed:
                close()
                return
            case .bytes, .wouldBlock:
                break
            }
            guard !closed, let tls, tls.hasPendingInput, !session.connectionShouldClose else { return }
            result = transportRead()
            guard case .bytes = result else {
                if case .wouldBlock = result { return }
                close()
                return
            }
        }
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

    @inline(__always)
    private func transportRead() -> IOResult {
        var need = Transport.Need.none
        return Transport.read(fd: fd, tls: tls, into: readBuffer, need: &need)
    }

    @inline(__always)
    private func transportWrite() -> IOResult {
        var need = Transport.Need.none
        return Transport.write(fd: fd, tls: tls, from: writeBuffer, need: &need)
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
            if case .failed = transportWrite() {
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
        if let registration, wanted != interest {
            interest = wanted
            worker.loop.setInterest(registration, wanted)
        }
        // Nothing in flight: the buffers go back to the pool (a no-op for
        // one that holds bytes, e.g. while the session is being fed).
        readBuffer.releaseStorage()
        writeBuffer.releaseStorage()
    }

    func tick(now: UInt64) {
        guard !closed else { return }
        if session.checkTimeouts() != nil {
            flushOutput()
            if !closed, writeBuffer.isEmpty { close() }
            return
        }
        // OpenSSL's record buffers (kept while busy: `tuneForMultiplexing`)
        // are freed once the connection has been idle for a second; freeing
        // them whenever the last stream ends cost an allocation of both
        // every few requests under load (measured: +0.3 allocations and
        // +2.3 KB per request).
        if tlsBuffersHeld, streams.isEmpty, writeBuffer.isEmpty, now &- lastActivity >= Self.tlsBufferIdleMilliseconds, let tls {
            tls.releaseIdleBuffers()
            tlsBuffersHeld = false
        }
        if streams.isEmpty, now &- lastActivity >= worker.configuration.keepAliveTimeoutMilliseconds {
            // Idle keep-alive: say goodbye properly, then close.
            session.submitGoAway(lastStream: Int32.max, errorCode: .noError)
            flushOutput()
            close()
            return
        }
        if draining, now &- drainStartedAt >= 2_000 {
            // The client never acknowledged the shutdown PING: finish it.
            session.finishGracefulShutdown()
            flushOutput()
        }
    }

    // MARK: Session events

    func requestHead(stream: Int32, head: HTTP2RequestHead, endStream: Bool) {
        lastActivity = worker.loop.now
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
        lastActivity = worker.loop.now
        if draining, streams.isEmpty { session.finishGracefulShutdown() }
    }

    func streamWritable(stream: Int32) {
        streams[stream]?.clientDrained()
    }

    // MARK: Lifecycle

    func drainIfIdle() {
        guard !closed, !draining else { return }
        draining = true
        drainStartedAt = worker.loop.now
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
        if let registration { worker.loop.deregister(registration) }
        registration = nil
        tls?.shutdown()
        tls = nil
        Socket.close(fd)
        worker.connectionClosed(self)
    }
}
