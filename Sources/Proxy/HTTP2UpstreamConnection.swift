import Glibc
import HTTP2
import Reactor
import RouteModel
import Routing
import Telemetry

/// One HTTP/2 connection to an endpoint (`backend-protocol: GRPC`, `GRPCS`
/// or `H2C`), carrying many streams at once. The TCP connect, the TLS
/// handshake (ALPN `h2`), the socket and its deadlines belong to the
/// `HTTP1UpstreamConnection` it drives; this object owns the nghttp2 client
/// session and maps its streams to client-side `HTTP2StreamExchange`s.
///
/// Loop-bound.
final class HTTP2UpstreamConnection: UpstreamOwner, HTTP2ClientSessionDelegate {
    let transport: HTTP1UpstreamConnection
    // unowned(unsafe): the worker outlives every connection of its loop (it
    // closes them all before it stops); a checked unowned reference costs a
    // retain and release per access on the hot path.
    unowned(unsafe) let worker: Worker
    private(set) var session: HTTP2ClientSession!
    var streams = HTTP2StreamMap<HTTP2StreamExchange>()
    /// Exchanges waiting for the connection (connect, handshake) to be ready.
    var waiting: [HTTP2StreamExchange] = []
    var ready = false
    var closed = false

    init(transport: HTTP1UpstreamConnection, worker: Worker) {
        self.transport = transport
        self.worker = worker
        var settings = HTTP2Settings()
        settings.streamSendBufferHighWater = worker.configuration.bufferHighWaterMark
        settings.idleTimeoutSeconds = UInt32(max(1, worker.configuration.upstreamKeepAliveTimeoutMilliseconds / 1000))
        session = HTTP2ClientSession(settings: settings, delegate: self)
    }

    /// Room for one more stream (per the endpoint's SETTINGS).
    var canOpenStream: Bool { !closed && session.canOpenStream && session.closeReason == nil }

    /// Opens a stream for `exchange` now, or once connected.
    func open(_ exchange: HTTP2StreamExchange) {
        if ready {
            submit(exchange)
        } else {
            waiting.append(exchange)
        }
    }

    private func submit(_ exchange: HTTP2StreamExchange) {
        guard let stream = session.submitRequest(fields: exchange.upstreamFields, hasBody: exchange.requestHasBody) else {
            exchange.upstreamH2Failed(connectionLevel: true)
            return
        }
        streams[stream] = exchange
        exchange.upstreamH2Opened(self, stream: stream)
        transport.disarmTimeout()
        flush()
    }

    // MARK: Transport events

    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt) {
        guard error == 0 else {
            worker.metrics.count(connection.failureKind(error: error))
            fail()
            return
        }
        ready = true
        let pending = waiting
        waiting.removeAll()
        for exchange in pending { submit(exchange) }
        flush()
    }

    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            let buffer = connection.readBuffer
            // A full buffer may leave input in the transport that no event
            // announces: read until it has none.
            reading: repeat {
                buffer.clear()
                switch connection.transportRead() {
                case .bytes:
                    do {
                        try session.receive(buffer.readable)
                    } catch {
                        worker.metrics.count(.malformedResponse)
                    }
                    buffer.clear()
                case .wouldBlock:
                    break reading
                case .endOfFile, .failed:
                    worker.metrics.count(.reset)
                    fail()
                    return
                }
            } while !closed && connection.hasUnannouncedInput
        }
        flush()
    }

    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) {
        if connection.state == .connecting || connection.state == .handshaking {
            worker.metrics.count(.connectTimeout)
        }
        // Idle (no stream) past upstream-keepalive-timeout, or never connected.
        fail()
    }

    /// Writes the session's output; closes when the session is done.
    func flush() {
        guard !closed, ready else { return }
        let out = transport.writeBuffer
        while true {
            if !out.isEmpty {
                if case .failed = transport.transportWrite() {
                    fail()
                    return
                }
                if !out.isEmpty { break }
            }
            let chunk = session.nextOutputChunk()
            if chunk.isEmpty { break }
            out.append(chunk)
        }
        if out.isEmpty, session.isFinished {
            fail()
            return
        }
        var wanted: Interest = .read
        if !out.isEmpty { wanted.insert(.write) }
        transport.setInterest(wanted)
        if streams.isEmpty, waiting.isEmpty {
            transport.armIdleTimeout()
        }
    }

    /// The connection is unusable: every exchange on it fails, it leaves the pool.
    func fail() {
        guard !closed else { return }
        closed = true
        worker.upstreams.forget(self)
        let affected = streams.allValues + waiting
        streams.removeAll()
        waiting.removeAll()
        transport.close()
        for exchange in affected { exchange.upstreamH2Failed(connectionLevel: true) }
    }

    /// Closes without failing anyone (drain).
    func close() {
        guard !closed else { return }
        closed = true
        transport.close()
    }

    // MARK: Session events

    func responseHead(stream: Int32, head: HTTP2ResponseHead, endStream: Bool) {
        streams[stream]?.upstreamH2ResponseHead(head, endStream: endStream)
    }

    func responseData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) {
        if let exchange = streams[stream] {
            exchange.upstreamH2Data(bytes, endStream: endStream)
        } else {
            session.consumed(stream: stream, bytes: bytes.count)
        }
    }

    func responseTrailers(stream: Int32, fields: HTTP2Fields) {
        streams[stream]?.upstreamH2Trailers(fields)
    }

    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode) {
        if let exchange = streams.removeValue(forKey: stream) {
            exchange.upstreamH2StreamClosed(errorCode: errorCode)
        }
    }

    func streamWritable(stream: Int32) {
        streams[stream]?.upstreamH2Writable()
    }

    /// `exchange` no longer wants its upstream stream (its client went away,
    /// or its response is complete before its request): forget it, whether
    /// still waiting for the connection or open, and reset its stream
    /// upstream. Afterwards this connection holds no reference to it.
    func cancel(_ exchange: HTTP2StreamExchange) {
        waiting.removeAll { $0 === exchange }
        let stream = exchange.h2Stream
        guard stream != 0, streams[stream] === exchange else { return }
        streams.removeValue(forKey: stream)
        guard !closed else { return }
        session.resetStream(stream: stream, errorCode: .cancel)
        flush()
    }
}
