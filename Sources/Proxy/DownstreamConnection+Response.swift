import Glibc
import HTTP1
import Reactor
import RouteModel
import Telemetry

/// The response side of an exchange: read the upstream response, rewrite
/// its head, stream its body to the client with backpressure, and return the
/// upstream connection to the pool when it can serve another request.
extension DownstreamConnection {
    /// Readiness of the current upstream connection.
    func upstreamReady(_ connection: UpstreamConnection, _ readiness: Readiness) {
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
    func updateUpstreamInterest(_ connection: UpstreamConnection) {
        connection.updateInterest(readPaused: upstreamReadPaused)
    }

    /// Chooses which timeout applies to the upstream now: send while request
    /// bytes are queued, none while waiting on the client, read otherwise.
    @inline(__always)
    func refreshUpstreamDeadline(_ connection: UpstreamConnection) {
        connection.refreshDeadline(requestPending: requestBody != .complete, readPaused: upstreamReadPaused)
    }

    func readFromUpstream(_ connection: UpstreamConnection) {
        if state == .tunneling {
            tunnelUpstreamReadable(connection)
            return
        }
        if splice != nil {
            continueSplice()
            return
        }
        // A cleartext pair may splice the body: read the head in a small
        // first read (`spliceHeadReadBytes`), so most of the body stays in the socket.
        switch connection.readResponse(headDone: responseHeadDone, headReadLimit: isTLS ? 0 : Self.spliceHeadReadBytes) {
        case .pause:
            upstreamReadPaused = true
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
        if !responseHeadDone {
            switch connection.parseFinalResponseHead(requestWasHEAD: isHEAD, into: &responseHead) {
            case .incomplete:
                return
            case .switchingProtocols where upgradeRequested:
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
                responseHeadDone = true
            }
        }
        while writeBuffer.readableBytes < highWater {
            switch responseBody {
            case .none:
                finishResponse(connection)
                return
            case let .contentLength(remaining):
                if remaining == 0 {
                    responseBody = .none
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
                responseBody = .contentLength(remaining: remaining - UInt64(count))
            case .chunked:
                if input.isEmpty { return }
                let bytes = input.readable
                switch responseChunkedDecoder.next(bytes) {
                case let .data(range, consumed):
                    if encodeResponseChunked { writeBuffer.appendChunkHeader(size: range.count) }
                    writeBuffer.append(bytes, range)
                    if encodeResponseChunked { writeBuffer.append("\r\n") }
                    forwarded += UInt64(range.count)
                    input.consume(consumed)
                case let .needMore(consumed):
                    input.consume(consumed)
                    return
                case let .end(trailers, consumed):
                    if encodeResponseChunked {
                        writeBuffer.append("0\r\n")
                        if !trailers.isEmpty {
                            writeBuffer.append(bytes, trailers)
                            writeBuffer.append("\r\n")
                        }
                        writeBuffer.append("\r\n")
                    }
                    input.consume(consumed)
                    responseBody = .none
                case .failed:
                    worker.metrics.count(.malformedResponse)
                    abort()
                    return
                }
            case .untilClose:
                if input.isEmpty { return }
                let count = input.readableBytes
                if encodeResponseChunked { writeBuffer.appendChunkHeader(size: count) }
                writeBuffer.append(input.readable)
                if encodeResponseChunked { writeBuffer.append("\r\n") }
                input.consume(count)
                forwarded += UInt64(count)
            }
        }
        // The client's buffer is full: pause upstream reads until it drains.
        if responseBody != .none || !input.isEmpty {
            upstreamReadPaused = true
        }
    }

    /// Writes the client-facing response head: the upstream's fields minus
    /// hop-by-hop ones, with framing chosen for the client's HTTP version.
    func writeResponseHead(_ bytes: UnsafeRawBufferPointer) {
        let out = writeBuffer
        closeAfterResponse = closeAfterResponse || !clientKeepAlive || requestBody != .complete || peerClosedRead
            || worker.isDraining
        out.append("HTTP/1.1 ")
        out.appendDecimal(UInt64(responseHead.status))
        out.append(byte: UInt8(ascii: " "))
        out.append(bytes, responseHead.reason)
        out.append("\r\n")
        for field in responseHead.fields where !field.isHopByHop {
            out.append(bytes, field.name)
            out.append(": ")
            out.append(bytes, field.value)
            out.append("\r\n")
        }
        switch responseHead.framing {
        case .none:
            responseBody = .none
        case let .contentLength(length):
            responseBody = .contentLength(remaining: length)
        case .chunked, .untilClose:
            responseBody = responseHead.framing == .chunked ? .chunked : .untilClose
            if responseBody == .chunked { responseChunkedDecoder = HTTP1ChunkedDecoder() }
            if clientIsHTTP10 {
                // HTTP/1.0 has no chunked coding: the body ends at close.
                encodeResponseChunked = false
                closeAfterResponse = true
            } else {
                encodeResponseChunked = true
                out.append("Transfer-Encoding: chunked\r\n")
            }
        }
        if isTLS, let secure = worker.secure, !secure.strictTransportSecurity.isEmpty {
            out.append(secure.strictTransportSecurity)
        }
        if closeAfterResponse {
            out.append("Connection: close\r\n")
        } else if clientIsHTTP10 {
            out.append("Connection: keep-alive\r\n")
        }
        out.append("\r\n")
        worker.metrics.countResponse(status: responseHead.status)
    }

    /// The response is complete: pool or close the upstream, then serve the
    /// next request or close.
    func finishResponse(_ connection: UpstreamConnection) {
        let reusable = responseHead.keepAlive && requestBody == .complete && responseBody == .none
            && responseHead.framing != .untilClose && connection.readBuffer.isEmpty
            && connection.writeBuffer.isEmpty && !worker.isDraining
        upstream = nil
        connection.owner = nil
        if reusable {
            connection.state = .idle
            connection.deadline = worker.loop.now + worker.configuration.upstreamKeepAliveTimeoutMilliseconds
            connection.setInterest(.read)
            if !worker.pool.park(connection) { connection.close() }
        } else {
            connection.close()
        }
        let closeNow = closeAfterResponse || worker.isDraining
        resetExchange()
        if closeNow {
            state = .closingAfterWrite
            readBuffer.clear()
            flushDownstream()
        } else {
            state = .waitingForRequest
            idleSince = worker.loop.now
            // Flushing also starts the next pipelined request, if buffered.
            flushDownstream()
            if state == .waitingForRequest, writeBuffer.isEmpty, !readBuffer.isEmpty { processInput() }
        }
    }

    /// The upstream closed (EOF) or reset the connection.
    func upstreamClosed(_ connection: UpstreamConnection, reset: Bool) {
        if !responseHeadDone {
            upstreamFailedBeforeResponse(
                connection, kind: .reset,
                response: connection.readBuffer.isEmpty ? .badGateway : .badGatewayMalformed)
            return
        }
        if !reset, responseBody == .untilClose {
            if encodeResponseChunked { writeBuffer.append("0\r\n\r\n") }
            responseBody = .none
            closeAfterResponse = closeAfterResponse || clientIsHTTP10
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
        _ connection: UpstreamConnection, kind: UpstreamErrorKind?, response: ErrorResponse = .badGateway
    ) {
        let replayable = upstreamReused && connection.requestsServed > 1 && connection.readBuffer.isEmpty
            && head.framing == .none && attempts == 0
        upstream = nil
        connection.close()
        if replayable, kind == .reset {
            attempts += 1
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
    func upstreamTimedOut(_ connection: UpstreamConnection) {
        guard connection === upstream else {
            connection.close()
            return
        }
        if connectTimedOut(connection) { return }
        worker.metrics.count(connection.writeBuffer.isEmpty ? .readTimeout : .sendTimeout)
        if responseHeadDone {
            flushDownstream()
            abort()
        } else {
            upstream = nil
            connection.close()
            respondWithError(.gatewayTimeout, headParsed: true)
        }
    }
}
