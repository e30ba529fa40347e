import Glibc
import HTTP1
import Reactor
import RouteModel
import Telemetry

/// The response side of an exchange: read the upstream response, rewrite
/// its head, stream its body to the client with backpressure, and return the
/// upstream connection to the pool when it can serve another request.
extension HTTP1ClientConnection {
    /// Readiness of the current upstream connection.
    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        guard connection === upstream else {
            connection.close()
            return
        }
        if readiness.contains(.writable) {
            flushUpstream()
            guard connection === upstream else { return }
        }
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            readFromUpstream(connection)
        }
    }

    /// Sets the upstream's epoll interest: read unless paused for
    /// backpressure, write while request bytes wait.
    @inline(__always)
    func updateUpstreamInterest(_ connection: HTTP1UpstreamConnection) {
        connection.updateInterest(readPaused: exchange.upstreamReadPaused)
    }

    /// Chooses which timeout applies to the upstream now: send while request
    /// bytes are queued, none while waiting on the client, read otherwise.
    @inline(__always)
    func refreshUpstreamDeadline(_ connection: HTTP1UpstreamConnection) {
        connection.refreshDeadline(requestPending: exchange.requestBody != .complete, readPaused: exchange.upstreamReadPaused)
    }

    func readFromUpstream(_ connection: HTTP1UpstreamConnection) {
        if state == .tunneling {
            tunnelUpstreamReadable(connection)
            return
        }
        if exchange.splice != nil {
            continueSplice()
            return
        }
        // A cleartext pair may splice the body: read the head in a small
        // first read (`spliceHeadReadBytes`), so most of the body stays in the socket.
        switch connection.readResponse(headDone: exchange.responseHeadDone, headReadLimit: isTLS ? 0 : Self.spliceHeadReadBytes) {
        case .pause:
            exchange.upstreamReadPaused = true
            refreshUpstreamDeadline(connection)
            updateUpstreamInterest(connection)
        case .headTooLarge:
            worker.metrics.count(.malformedResponse)
            upstreamFailedBeforeResponse(connection, kind: nil, response: .badGatewayMalformed)
        case .bytes:
            processUpstreamInput()
            guard connection === upstream, state == .proxying else { return }
            refreshUpstreamDeadline(connection)
            updateUpstreamInterest(connection)
            flushDownstream()
        case .wouldBlock:
            break
        case .endOfFile:
            upstreamClosed(connection, reset: false)
        case .failed:
            upstreamClosed(connection, reset: true)
        }
    }

    /// Parses and forwards what the upstream sent, until the client's write
    /// buffer reaches the high-water mark.
    func processUpstreamInput() {
        guard let connection = upstream else { return }
        let input = connection.readBuffer
        let highWater = worker.configuration.bufferHighWaterMark
        var forwarded: UInt64 = 0
        defer { worker.metrics.responseBytesOut.add(forwarded) }
        if !exchange.responseHeadDone {
            switch connection.parseFinalResponseHead(requestWasHEAD: exchange.isHEAD, into: &responseHead) {
            case .incomplete:
                return
            case .switchingProtocols where exchange.upgradeRequested:
                startTunnel(connection, head: input.readable)
                return
            case .malformed, .switchingProtocols:
                // A 101 without an upgrade request (Upgrade is hop-by-hop and
                // stripped otherwise) is a protocol error too.
                worker.metrics.count(.malformedResponse)
                upstreamFailedBeforeResponse(connection, kind: nil, response: .badGatewayMalformed)
                return
            case .final:
                writeResponseHead(input.readable)
                input.consume(responseHead.headLength)
                exchange.responseHeadDone = true
            }
        }
        while writeBuffer.readableBytes < highWater {
            switch exchange.responseBody {
            case .none:
                finishResponse(connection)
                return
            case let .contentLength(remaining):
                if remaining == 0 {
                    exchange.responseBody = .none
                    finishResponse(connection)
                    return
                }
                if input.isEmpty {
                    // The rest is in the upstream socket: large bodies go through a pipe.
                    _ = startSplice(connection, remaining: remaining)
                    return
                }
                let count = Int(min(remaining, UInt64(input.readableBytes)))
                writeBuffer.append(UnsafeRawBufferPointer(rebasing: input.readable[0..<count]))
                input.consume(count)
                forwarded += UInt64(count)
                exchange.responseBody = .contentLength(remaining: remaining - UInt64(count))
            case .chunked:
                if input.isEmpty { return }
                let bytes = input.readable
                switch exchange.responseChunkedDecoder.next(bytes) {
                case let .data(range, consumed):
                    if exchange.encodeResponseChunked { writeBuffer.appendChunkHeader(size: range.count) }
                    writeBuffer.append(bytes, range)
                    if exchange.encodeResponseChunked { writeBuffer.append("\r\n") }
                    forwarded += UInt64(range.count)
                    input.consume(consumed)
                case let .needMore(consumed):
                    input.consume(consumed)
                    return
                case let .end(trailers, consumed):
                    if exchange.encodeResponseChunked { writeBuffer.appendLastChunk(trailers: trailers, of: bytes) }
                    input.consume(consumed)
                    exchange.responseBody = .none
                case .failed:
                    worker.metrics.count(.malformedResponse)
                    abort()
                    return
                }
            case .untilClose:
                if input.isEmpty { return }
                let count = input.readableBytes
                if exchange.encodeResponseChunked { writeBuffer.appendChunkHeader(size: count) }
                writeBuffer.append(input.readable)
                if exchange.encodeResponseChunked { writeBuffer.append("\r\n") }
                input.consume(count)
                forwarded += UInt64(count)
            }
        }
        // The client's buffer is full: pause upstream reads until it drains.
        if exchange.responseBody != .none || !input.isEmpty {
            exchange.upstreamReadPaused = true
        }
    }

    /// Writes the client-facing response head: the upstream's fields minus
    /// hop-by-hop ones, with framing chosen for the client's HTTP version.
    func writeResponseHead(_ bytes: UnsafeRawBufferPointer) {
        let out = writeBuffer
        exchange.closeAfterResponse = exchange.closeAfterResponse || !exchange.clientKeepAlive || exchange.requestBody != .complete || peerClosedRead
            || worker.isDraining
        out.append("HTTP/1.1 ")
        out.appendDecimal(UInt64(responseHead.status))
        out.append(byte: UInt8(ascii: " "))
        out.append(bytes, responseHead.reason)
        out.append("\r\n")
        var run = HeaderLineRun()
        for field in responseHead.fields where !field.isHopByHop {
            run.add(name: field.name, value: field.value, of: bytes, to: out)
        }
        run.flush(bytes, to: out)
        switch responseHead.framing {
        case .none:
            exchange.responseBody = .none
        case let .contentLength(length):
            exchange.responseBody = .contentLength(remaining: length)
        case .chunked, .untilClose:
            exchange.responseBody = responseHead.framing == .chunked ? .chunked : .untilClose
            if exchange.responseBody == .chunked { exchange.responseChunkedDecoder = HTTP1ChunkedDecoder() }
            if exchange.clientIsHTTP10 {
                // HTTP/1.0 has no chunked coding: the body ends at close.
                exchange.encodeResponseChunked = false
                exchange.closeAfterResponse = true
            } else {
                exchange.encodeResponseChunked = true
                out.append("Transfer-Encoding: chunked\r\n")
            }
        }
        if isTLS {
            // HSTS (`hsts*`), from the routing table in service.
            let hsts = worker.table.strictTransportSecurityField
            if !hsts.isEmpty { out.append(hsts) }
        }
        if exchange.closeAfterResponse {
            out.append("Connection: close\r\n")
        } else if exchange.clientIsHTTP10 {
            out.append("Connection: keep-alive\r\n")
        }
        out.append("\r\n")
        worker.metrics.countResponse(status: responseHead.status)
    }

    /// The response is complete: pool or close the upstream, then serve the
    /// next request or close.
    func finishResponse(_ connection: HTTP1UpstreamConnection) {
        let reusable = responseHead.keepAlive && exchange.requestBody == .complete && exchange.responseBody == .none
            && responseHead.framing != .untilClose && connection.readBuffer.isEmpty
            && connection.writeBuffer.isEmpty && !worker.isDraining
        upstream = nil
        worker.upstreams.release(connection, reusable: reusable)
        let closeNow = exchange.closeAfterResponse || worker.isDraining
        resetExchange()
        if closeNow {
            state = .closingAfterWrite
            armSendTimeout()
            readBuffer.clear()
            flushDownstream()
        } else {
            state = .waitingForRequest
            armKeepAliveTimeout()
            // Flushing also starts the next pipelined request, if buffered.
            flushDownstream()
            if state == .waitingForRequest, writeBuffer.isEmpty, !readBuffer.isEmpty { processInput() }
        }
    }

    /// The upstream closed (EOF) or reset the connection.
    func upstreamClosed(_ connection: HTTP1UpstreamConnection, reset: Bool) {
        if !exchange.responseHeadDone {
            upstreamFailedBeforeResponse(
                connection, kind: .reset,
                response: connection.readBuffer.isEmpty ? .badGateway : .badGatewayMalformed)
            return
        }
        if !reset, exchange.responseBody == .untilClose {
            if exchange.encodeResponseChunked { writeBuffer.append("0\r\n\r\n") }
            exchange.responseBody = .none
            exchange.closeAfterResponse = exchange.closeAfterResponse || exchange.clientIsHTTP10
            finishResponse(connection)
            return
        }
        // The body was cut short: the client must see the connection end
        // rather than a complete-looking response.
        worker.metrics.count(.reset)
        flushDownstream()
        abort()
    }

    /// The upstream failed before a response head arrived. A reused pooled
    /// connection that the endpoint had already closed is retried once on a
    /// fresh connection when the request can be replayed (no body).
    func upstreamFailedBeforeResponse(
        _ connection: HTTP1UpstreamConnection, kind: UpstreamErrorKind?, response: ErrorResponse = .badGateway
    ) {
        let replayable = exchange.upstreamReused && connection.requestsServed > 1 && connection.readBuffer.isEmpty
            && head.framing == .none && exchange.attempts == 0
        upstream = nil
        connection.close()
        if replayable, kind == .reset {
            exchange.attempts += 1
            worker.metrics.upstreamRetries.add()
            if connectUpstream(excluding: nil, carrying: nil, allowPooled: false) {
                flushUpstream()
            }
            return
        }
        if let kind { worker.metrics.count(kind) }
        respondWithError(response, headParsed: true)
    }

    /// The upstream's deadline passed.
    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) {
        guard connection === upstream else {
            connection.close()
            return
        }
        if connectTimedOut(connection) { return }
        worker.metrics.count(connection.writeBuffer.isEmpty ? .readTimeout : .sendTimeout)
        if exchange.responseHeadDone {
            flushDownstream()
            abort()
        } else {
            upstream = nil
            connection.close()
            respondWithError(.gatewayTimeout, headParsed: true)
        }
    }
}
