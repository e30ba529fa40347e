import Glibc
import HTTP1
import HTTP2
import Reactor
import RouteModel
import Routing
import Telemetry

/// One HTTP/2 stream proxied to an HTTP/1.1 upstream: the request head is
/// translated (`:authority` → Host, cookie crumbs joined, forwarding fields
/// added), the body streamed with HTTP/2 flow control as backpressure (the
/// client's window reopens only as bytes reach the upstream), and the
/// upstream's response turned back into HEADERS, DATA and trailers.
///
/// Loop-bound.
final class HTTP2StreamExchange: UpstreamAttempt {
    enum ResponseBody: Equatable {
        case none
        case contentLength(remaining: UInt64)
        case chunked
        case untilClose
    }

    private(set) var stream: Int32
    // unowned(unsafe): the connection outlives its exchanges (it abandons them
    // all when it closes); a checked unowned reference costs a retain and
    // release per access.
    unowned(unsafe) let connection: HTTP2ClientConnection
    var worker: Worker { connection.worker }
    var session: HTTP2ServerSession { connection.session }
    var cluster: CompiledCluster?
    var upstream: HTTP1UpstreamConnection?
    var upstreamReused = false
    var attempts = 0
    /// The serialized upstream request head (kept for a retry on another endpoint).
    let upstreamRequestHead = ByteBuffer(capacity: 1024)
    var requestChunked = false
    var requestHasBody = false
    var requestComplete = false
    /// Request body bytes handed to the upstream buffer but not yet
    /// acknowledged to the client's flow-control window.
    var unconsumed = 0
    var isHEAD = false
    var responseHead = HTTP1ResponseHead()
    var responseHeadDone = false
    var responseBody: ResponseBody = .none
    var chunkedDecoder = HTTP1ChunkedDecoder()
    var upstreamReadPaused = false
    var finished = false

    // HTTP/2 upstreams (gRPC, H2C): the request as HTTP/2 fields, the
    // connection and stream carrying it, and flow-control bookkeeping.
    var upstreamFields = HTTP2Fields()
    var h2Upstream: HTTP2UpstreamConnection?
    var h2Stream: Int32 = 0
    /// The cluster speaks gRPC: failures are answered gRPC-style.
    var isGRPC = false
    /// The client sent `content-type: application/grpc...`.
    var requestLooksLikeGRPC = false
    /// Request body bytes waiting for the upstream stream to open.
    var pendingRequestBody: [UInt8] = []
    var pendingRequestEnd = false
    var pendingRequestTrailers: HTTP2Fields?
    /// Response bytes received from the upstream not yet acknowledged to it
    /// (held while the client's stream buffer is full).
    var unacknowledgedResponse = 0
    var responseStarted = false
    /// Request body bytes the route's `proxy-body-size` still allows.
    var requestBodyBudget = UInt64.max

    init(stream: Int32, connection: HTTP2ClientConnection) {
        self.stream = stream
        self.connection = connection
    }

    /// Makes a finished exchange new for `stream` on the same connection,
    /// keeping only buffer capacity. Every stored property is put back here:
    /// a recycled exchange must carry nothing of the previous stream. Only for
    /// exchanges nothing else references (`HTTP2ClientConnection.recycle` checks).
    func reset(stream: Int32) {
        precondition(upstream == nil && h2Upstream == nil, "a recycled exchange must have released its upstream")
        self.stream = stream
        cluster = nil
        upstreamReused = false
        attempts = 0
        upstreamRequestHead.clear()
        requestChunked = false
        requestHasBody = false
        requestComplete = false
        unconsumed = 0
        isHEAD = false
        responseHead.status = 0
        responseHead.version = .http11
        responseHead.reason = 0..<0
        responseHead.fields.removeAll(keepingCapacity: true)
        responseHead.headLength = 0
        responseHead.framing = .none
        responseHead.keepAlive = true
        responseHeadDone = false
        responseBody = .none
        chunkedDecoder = HTTP1ChunkedDecoder()
        upstreamReadPaused = false
        finished = false
        upstreamFields.removeAll()
        h2Stream = 0
        isGRPC = false
        requestLooksLikeGRPC = false
        pendingRequestBody.removeAll(keepingCapacity: true)
        pendingRequestEnd = false
        pendingRequestTrailers = nil
        unacknowledgedResponse = 0
        responseStarted = false
        requestBodyBudget = .max
    }

    // MARK: Request

    /// Routes the request and starts the upstream exchange.
    func start(head: HTTP2RequestHead, endStream: Bool) {
        isHEAD = head.isHead
        requestLooksLikeGRPC = head.fields.firstValue(named: "content-type").map { $0.starts(with: "application/grpc".utf8) } ?? false
        requestComplete = endStream
        requestHasBody = !endStream
        guard let path = head.path, let first = path.first, first == UInt8(ascii: "/") else {
            // CONNECT and asterisk-form are not proxied.
            worker.metrics.count(.badRequest)
            respondLocally(.methodNotAllowed)
            return
        }
        let authority = head.authority ?? []
        let query = path.firstIndex(of: UInt8(ascii: "?")) ?? path.endIndex
        let outcome = authority.withUnsafeBytes { authorityBytes in
            path.withUnsafeBytes { target in
                worker.pipeline.decide(
                    RequestFacts(
                        authority: authorityBytes, target: target, pathLength: query - path.startIndex,
                        peer: connection.peer,
                        declaredBodyLength: endStream ? 0 : head.contentLength.map { UInt64(clamping: $0) }),
                    fields: HTTP2RequestFields(fields: head.fields), tls: connection.tls, table: worker.table, secure: worker.secure, rewriteInto: worker.rewriteBuffer,
                    metrics: worker.metrics, redirectStatus: worker.configuration.httpRedirectCode)
            }
        }
        let rewrite: PathRewrite
        let passClientCertificate: Bool
        switch outcome {
        case let .respond(response):
            respondLocally(response)
            return
        case let .redirect(status, namePort):
            respondWithRedirect(status: status, namePort: namePort, path: path)
            return
        case let .forward(found, foundRewrite, pass, bodyLimit):
            cluster = found
            requestBodyBudget = bodyLimit
            rewrite = foundRewrite
            passClientCertificate = pass
        }
        switch cluster?.upstream.wireProtocol {
        case .grpc?, .grpcs?, .h2c?:
            startHTTP2Upstream(
                head, authority: authority, path: path, query: query, rewrite: rewrite, passClientCertificate: passClientCertificate)
            return
        default:
            break
        }
        writeRequestHead(
            head, authority: authority, path: path, query: query, rewrite: rewrite, passClientCertificate: passClientCertificate)
        guard connectUpstream(excluding: nil, carrying: nil, allowPooled: true) else { return }
        flushUpstream()
    }

    /// The forwarding policy's view of this stream's request.
    func forwardingContext(passClientCertificate: Bool) -> ForwardingContext {
        worker.pipeline.forwardingContext(peer: connection.peer, tls: connection.tls, passClientCertificate: passClientCertificate)
    }

    private func writeRequestHead(
        _ head: HTTP2RequestHead, authority: ArraySlice<UInt8>, path: ArraySlice<UInt8>, query: Int, rewrite: PathRewrite,
        passClientCertificate: Bool
    ) {
        let out = upstreamRequestHead
        out.clear()
        head.method.withUnsafeBytes { out.append($0) }
        out.append(byte: UInt8(ascii: " "))
        if case let .rewritten(count) = rewrite {
            out.append(UnsafeRawBufferPointer(rebasing: worker.rewriteBuffer[0..<count]))
            path[query...].withUnsafeBytes { out.append($0) }
        } else {
            path.withUnsafeBytes { out.append($0) }
        }
        out.append(" HTTP/1.1\r\n")
        let dropped = UpstreamRequestFields.http2ToHTTP1(
            fields: head.fields, authority: authority, context: forwardingContext(passClientCertificate: passClientCertificate),
            requestIDs: &worker.requestIDs, into: out)
        if dropped > 0 { worker.metrics.underscoreFieldsDropped.add(UInt64(dropped)) }
        if requestHasBody {
            if let length = head.contentLength {
                out.append("Content-Length: ")
                out.appendDecimal(UInt64(length))
                out.append("\r\n")
            } else {
                requestChunked = true
                out.append("Transfer-Encoding: chunked\r\n")
            }
        }
        out.append("\r\n")
    }

    /// Request body bytes from the client (valid during the call).
    func requestBody(_ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        if !bytes.isEmpty, !finished {
            guard UInt64(bytes.count) <= requestBodyBudget else {
                refuseOversizedBody(bytes.count)
                return
            }
            requestBodyBudget -= UInt64(bytes.count)
        }
        if cluster.map({ $0.upstream.wireProtocol != .http && $0.upstream.wireProtocol != .https }) == true {
            forwardRequestBodyHTTP2(bytes, endStream: endStream)
            return
        }
        guard let upstream, !finished else {
            session.consumed(stream: stream, bytes: bytes.count)
            return
        }
        let out = upstream.writeBuffer
        if !bytes.isEmpty {
            if requestChunked { out.appendChunkHeader(size: bytes.count) }
            out.append(bytes)
            if requestChunked { out.append("\r\n") }
            unconsumed += bytes.count
            worker.metrics.requestBytesIn.add(UInt64(bytes.count))
        }
        if endStream {
            if requestChunked { out.append("0\r\n\r\n") }
            requestComplete = true
        }
        flushUpstream()
    }

    /// The body grew past the route's `proxy-body-size`: 413 while no
    /// response has begun, else the stream is reset; the upstream request is
    /// abandoned either way and nothing more is buffered.
    private func refuseOversizedBody(_ count: Int) {
        worker.metrics.count(.bodyTooLarge)
        session.consumed(stream: stream, bytes: count)
        if responseHeadDone || responseStarted {
            releaseUpstreams()
            finished = true
            session.resetStream(stream: stream, errorCode: .cancel)
            connection.requestFlush()
        } else {
            respondLocally(.contentTooLarge)
        }
    }

    /// Request trailers end the body (forwarded when the body is chunked).
    func requestTrailers(_ fields: HTTP2Fields) {
        if cluster.map({ $0.upstream.wireProtocol != .http && $0.upstream.wireProtocol != .https }) == true {
            forwardRequestTrailersHTTP2(fields)
            return
        }
        guard let upstream, !finished else { return }
        if requestChunked {
            let out = upstream.writeBuffer
            out.append("0\r\n")
            for index in 0..<fields.count {
                fields.name(at: index).withUnsafeBytes { out.append($0) }
                out.append(": ")
                fields.value(at: index).withUnsafeBytes { out.append($0) }
                out.append("\r\n")
            }
            out.append("\r\n")
        }
        requestComplete = true
        flushUpstream()
    }

    // MARK: Upstream

    /// `UpstreamAttempt`: errors before the upstream answered.
    func respondBeforeUpstream(_ error: ErrorResponse) {
        respondLocally(error)
    }

    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        guard connection === upstream else { return connection.close() }
        if readiness.contains(.writable) {
            flushUpstream()
            guard connection === upstream else { return }
        }
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) {
            readFromUpstream(connection)
        }
    }

    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) {
        guard connection === upstream else { return connection.close() }
        if connectTimedOut(connection) { return }
        worker.metrics.count(connection.writeBuffer.isEmpty ? .readTimeout : .sendTimeout)
        upstream = nil
        connection.close()
        if responseHeadDone {
            session.resetStream(stream: stream, errorCode: .internalError)
            self.connection.requestFlush()
        } else {
            respondLocally(.gatewayTimeout)
        }
    }

    /// Writes queued request bytes; reopens the client's window as they leave.
    func flushUpstream() {
        guard let upstream, upstream.state == .busy else { return }
        if !upstream.writeBuffer.isEmpty {
            if case .failed = upstream.transportWrite() {
                if !responseHeadDone, upstream.readBuffer.isEmpty {
                    worker.metrics.count(.reset)
                    self.upstream = nil
                    upstream.close()
                    respondLocally(.badGateway)
                    return
                }
                upstream.writeBuffer.clear()
            }
        }
        if unconsumed > 0, upstream.writeBuffer.readableBytes < worker.configuration.bufferHighWaterMark {
            session.consumed(stream: stream, bytes: unconsumed)
            unconsumed = 0
            connection.requestFlush()
        }
        refreshDeadline(upstream)
        updateInterest(upstream)
    }

    private func updateInterest(_ upstream: HTTP1UpstreamConnection) {
        upstream.updateInterest(readPaused: upstreamReadPaused)
    }

    private func refreshDeadline(_ upstream: HTTP1UpstreamConnection) {
        upstream.refreshDeadline(requestPending: !requestComplete, readPaused: upstreamReadPaused)
    }

    private func readFromUpstream(_ upstream: HTTP1UpstreamConnection) {
        switch upstream.readResponse(headDone: responseHeadDone) {
        case .pause:
            upstreamReadPaused = true
            refreshDeadline(upstream)
            updateInterest(upstream)
        case .headTooLarge:
            worker.metrics.count(.malformedResponse)
            failBeforeResponse(upstream, .badGatewayMalformed)
        case .bytes:
            processResponse()
            connection.requestFlush()
            if let current = self.upstream {
                refreshDeadline(current)
                updateInterest(current)
            }
        case .wouldBlock:
            break
        case .endOfFile:
            upstreamClosed(upstream, reset: false)
        case .failed:
            upstreamClosed(upstream, reset: true)
        }
    }

    private func failBeforeResponse(_ upstream: HTTP1UpstreamConnection, _ response: ErrorResponse) {
        self.upstream = nil
        upstream.close()
        respondLocally(response)
    }

    private func upstreamClosed(_ upstream: HTTP1UpstreamConnection, reset: Bool) {
        if !responseHeadDone {
            let replayable = upstreamReused && !requestHasBody && upstream.readBuffer.isEmpty && attempts == 0
            self.upstream = nil
            upstream.close()
            if replayable {
                // The pooled connection had been closed by the endpoint: retry on a fresh one.
                attempts += 1
                worker.metrics.upstreamRetries.add()
                if connectUpstream(excluding: nil, carrying: nil, allowPooled: false) { flushUpstream() }
                return
            }
            worker.metrics.count(.reset)
            respondLocally(upstream.readBuffer.isEmpty ? .badGateway : .badGatewayMalformed)
            return
        }
        if !reset, responseBody == .untilClose {
            session.submitData(stream: stream, bytes: UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
            responseBody = .none
            finishResponse(upstream, reusable: false)
            connection.requestFlush()
            return
        }
        worker.metrics.count(.reset)
        self.upstream = nil
        upstream.close()
        session.resetStream(stream: stream, errorCode: .internalError)
        connection.requestFlush()
    }

    /// Parses the upstream's response and hands it to the session, until the
    /// stream's send buffer reaches the high-water mark.
    private func processResponse() {
        guard let upstream else { return }
        let input = upstream.readBuffer
        if !responseHeadDone {
            switch upstream.parseFinalResponseHead(requestWasHEAD: isHEAD, into: &responseHead) {
            case .incomplete:
                return
            case .malformed, .switchingProtocols:
                // HTTP/2 has no 101 (RFC 9113 §8.6): no upgrade goes upstream.
                worker.metrics.count(.malformedResponse)
                failBeforeResponse(upstream, .badGatewayMalformed)
                return
            case .final:
                submitResponseHead(input.readable)
                input.consume(responseHead.headLength)
                responseHeadDone = true
            }
        }
        let highWater = worker.configuration.bufferHighWaterMark
        var forwarded: UInt64 = 0
        defer { worker.metrics.responseBytesOut.add(forwarded) }
        while true {
            switch responseBody {
            case .none:
                finishResponse(upstream, reusable: responseHead.keepAlive && responseHead.framing != .untilClose)
                return
            case let .contentLength(remaining):
                if remaining == 0 {
                    responseBody = .none
                    continue
                }
                if input.isEmpty { return }
                let count = Int(min(remaining, UInt64(input.readableBytes)))
                let left = remaining - UInt64(count)
                let buffered = session.submitData(
                    stream: stream, bytes: UnsafeRawBufferPointer(rebasing: input.readable[0..<count]), endStream: left == 0)
                input.consume(count)
                forwarded += UInt64(count)
                responseBody = left == 0 ? .none : .contentLength(remaining: left)
                if left == 0 { continue }
                if (buffered ?? 0) >= highWater { return pause() }
            case .chunked:
                if input.isEmpty { return }
                let bytes = input.readable
                switch chunkedDecoder.next(bytes) {
                case let .data(range, consumed):
                    let buffered = session.submitData(stream: stream, bytes: UnsafeRawBufferPointer(rebasing: bytes[range]), endStream: false)
                    forwarded += UInt64(range.count)
                    input.consume(consumed)
                    if (buffered ?? 0) >= highWater { return pause() }
                case let .needMore(consumed):
                    input.consume(consumed)
                    return
                case let .end(trailers, consumed):
                    if trailers.isEmpty {
                        session.submitData(stream: stream, bytes: UnsafeRawBufferPointer(start: nil, count: 0), endStream: true)
                    } else {
                        submitTrailers(UnsafeRawBufferPointer(rebasing: bytes[trailers]))
                    }
                    input.consume(consumed)
                    responseBody = .none
                case .failed:
                    worker.metrics.count(.malformedResponse)
                    self.upstream = nil
                    upstream.close()
                    session.resetStream(stream: stream, errorCode: .internalError)
                    return
                }
            case .untilClose:
                if input.isEmpty { return }
                let count = input.readableBytes
                let buffered = session.submitData(stream: stream, bytes: input.readable, endStream: false)
                input.consume(count)
                forwarded += UInt64(count)
                if (buffered ?? 0) >= highWater { return pause() }
            }
        }
    }

    private func pause() {
        upstreamReadPaused = true
    }

    /// The stream's send buffer drained below the high-water mark.
    func clientDrained() {
        if h2Upstream != nil {
            acknowledgeResponseBytes()
            return
        }
        guard upstreamReadPaused, let upstream else { return }
        upstreamReadPaused = false
        processResponse()
        connection.requestFlush()
        if let current = self.upstream, current === upstream {
            refreshDeadline(current)
            updateInterest(current)
        }
    }

    private func submitResponseHead(_ bytes: UnsafeRawBufferPointer) {
        // Taken out of the connection while filled, so the storage stays
        // uniquely referenced (no copy-on-write copy per response).
        var fields = connection.scratchFields
        connection.scratchFields = HTTP2Fields()
        fields.removeAll()
        for field in responseHead.fields where !field.isHopByHop {
            let name = UnsafeRawBufferPointer(rebasing: bytes[field.name])
            if HTTP2Fields.isConnectionSpecific(name: name) { continue }
            fields.append(lowercasingName: name, value: UnsafeRawBufferPointer(rebasing: bytes[field.value]))
        }
        if connection.isTLS, !worker.table.strictTransportSecurityValue.isEmpty {
            fields.append("strict-transport-security", bytes: worker.table.strictTransportSecurityValue)
        }
        switch responseHead.framing {
        case .none: responseBody = .none
        case let .contentLength(length): responseBody = .contentLength(remaining: length)
        case .chunked:
            responseBody = .chunked
            chunkedDecoder = HTTP1ChunkedDecoder()
        case .untilClose: responseBody = .untilClose
        }
        session.submitResponse(stream: stream, status: responseHead.status, fields: fields, hasBody: responseBody != .none)
        connection.scratchFields = fields
        worker.metrics.countResponse(status: responseHead.status)
    }

    /// Chunked trailers ("name: value\r\n" lines) as HTTP/2 trailers.
    private func submitTrailers(_ lines: UnsafeRawBufferPointer) {
        var fields = HTTP2Fields()
        var start = 0
        while start < lines.count {
            var end = start
            while end < lines.count, lines[end] != 10 { end += 1 }
            var lineEnd = end
            if lineEnd > start, lines[lineEnd - 1] == 13 { lineEnd -= 1 }
            if let colon = lines[start..<lineEnd].firstIndex(of: UInt8(ascii: ":")) {
                var valueStart = colon + 1
                while valueStart < lineEnd, lines[valueStart] == 32 || lines[valueStart] == 9 { valueStart += 1 }
                var valueEnd = lineEnd
                while valueEnd > valueStart, lines[valueEnd - 1] == 32 || lines[valueEnd - 1] == 9 { valueEnd -= 1 }
                let name = UnsafeRawBufferPointer(rebasing: lines[start..<colon])
                if !HTTP2Fields.isConnectionSpecific(name: name) {
                    fields.append(lowercasingName: name, value: UnsafeRawBufferPointer(rebasing: lines[valueStart..<valueEnd]))
                }
            }
            start = end + 1
        }
        session.submitTrailers(stream: stream, fields: fields)
    }

    private func finishResponse(_ upstream: HTTP1UpstreamConnection, reusable keepAlive: Bool) {
        finished = true
        self.upstream = nil
        let reusable = keepAlive && requestComplete && upstream.readBuffer.isEmpty && upstream.writeBuffer.isEmpty
            && !connection.draining && !worker.isDraining
        worker.upstreams.release(upstream, reusable: reusable)
        if !requestComplete {
            // RFC 9113 §8.1: the response is complete; the rest of the request is not needed.
            session.resetStreamAfterResponse(stream: stream)
        }
    }

    /// Plain HTTP/2 (h2c) to a host that has TLS: redirect to HTTPS.
    /// Answers with the pipeline's redirect to the same host (canonical)
    /// and path on HTTPS.
    private func respondWithRedirect(status: Int, namePort: Bool, path: ArraySlice<UInt8>) {
        let location = path.withUnsafeBytes { worker.pipeline.httpsLocation(target: $0, namePort: namePort) }
        finished = true
        var fields = HTTP2Fields()
        fields.append("location", value: location)
        fields.append("content-length", value: "0".utf8)
        session.submitResponse(stream: stream, status: status, fields: fields, hasBody: false)
        if !requestComplete { session.resetStreamAfterResponse(stream: stream) }
        worker.metrics.countResponse(status: status)
        connection.requestFlush()
    }

    /// Answers the stream itself (404, 502, 503, 504, ...); gRPC requests get
    /// a trailers-only gRPC answer instead (`grpc-status` 14 UNAVAILABLE for
    /// 502/503/504, 12 UNIMPLEMENTED for 404).
    /// Lets go of the upstream side, HTTP/1.1 (closed) or HTTP/2 (its
    /// stream cancelled), when the exchange is answered here instead.
    private func releaseUpstreams() {
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        if let h2Upstream {
            h2Upstream.cancel(self)
            self.h2Upstream = nil
        }
    }

    func respondLocally(_ response: ErrorResponse) {
        if isGRPC || requestLooksLikeGRPC {
            respondGRPCError(response)
            return
        }
        releaseUpstreams()
        guard !finished else { return }
        finished = true
        var fields = HTTP2Fields()
        let body = Array(response.body.utf8)
        fields.append("content-type", value: "text/plain; charset=utf-8".utf8)
        fields.append("content-length", value: String(body.count).utf8)
        session.submitResponse(stream: stream, status: response.status, fields: fields, hasBody: !isHEAD)
        if !isHEAD {
            body.withUnsafeBytes { _ = session.submitData(stream: stream, bytes: $0, endStream: true) }
        }
        if !requestComplete { session.resetStreamAfterResponse(stream: stream) }
        worker.metrics.countResponse(status: response.status)
        connection.requestFlush()
    }

    /// The stream closed; an unfinished exchange is abandoned (client reset).
    func streamClosed(errorCode: HTTP2ErrorCode) {
        if !finished { worker.metrics.count(.clientReset) }
        abandon()
    }

    /// Drops the upstream (never reused after an abandoned exchange).
    func abandon() {
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        if let h2Upstream {
            h2Upstream.cancel(self)
            self.h2Upstream = nil
        }
        finished = true
    }
}

