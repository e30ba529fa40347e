import Glibc
import HTTP1
import Reactor
import RouteModel
import Routing
import Telemetry

private let slash = UInt8(ascii: "/")
private let questionMark = UInt8(ascii: "?")

/// The request side of an exchange: route, choose an endpoint, write the
/// request head and stream the body upstream.
extension HTTP1ClientConnection {
    /// Where the request head says to route: host and path byte ranges in
    /// the head buffer, and the origin-form target to send upstream.
    struct Target {
        var host: Range<Int>?
        var path: Range<Int>
        /// Path and query, as sent upstream (origin-form).
        var originForm: Range<Int>
        /// True for absolute-form (`GET http://host/path`): its authority replaces Host.
        var hostFromTarget: Bool
    }

    /// Splits the request target (RFC 9112 §3.2). Nil for forms a reverse
    /// proxy does not serve (asterisk-form, authority-form).
    func parseTarget(_ bytes: UnsafeRawBufferPointer) -> Target? {
        let target = head.target
        guard !target.isEmpty else { return nil }
        if bytes[target.lowerBound] == slash {
            var pathEnd = target.lowerBound
            while pathEnd < target.upperBound, bytes[pathEnd] != questionMark { pathEnd += 1 }
            return Target(host: head.host, path: target.lowerBound..<pathEnd, originForm: target, hostFromTarget: false)
        }
        // absolute-form: scheme "://" authority [path-abempty] ["?" query]
        var index = target.lowerBound
        while index < target.upperBound, bytes[index] != UInt8(ascii: ":") { index += 1 }
        let scheme = target.lowerBound..<index
        guard isHTTPScheme(bytes, scheme), index + 3 <= target.upperBound,
            bytes[index + 1] == slash, bytes[index + 2] == slash
        else { return nil }
        let authorityStart = index + 3
        var authorityEnd = authorityStart
        while authorityEnd < target.upperBound, bytes[authorityEnd] != slash, bytes[authorityEnd] != questionMark {
            authorityEnd += 1
        }
        guard authorityEnd > authorityStart else { return nil }
        var pathEnd = authorityEnd
        while pathEnd < target.upperBound, bytes[pathEnd] != questionMark { pathEnd += 1 }
        return Target(
            host: authorityStart..<authorityEnd, path: authorityEnd..<pathEnd,
            originForm: authorityEnd..<target.upperBound, hostFromTarget: true)
    }

    /// The body length a request head declares; nil when only the body's
    /// end tells (chunked).
    private func declaredBodyLength(_ framing: HTTP1BodyFraming) -> UInt64? {
        switch framing {
        case .none: return 0
        case let .contentLength(length): return length
        case .chunked, .untilClose: return nil
        }
    }

    private func isHTTPScheme(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        let lower = range.map { bytes[$0] | 0x20 }
        return lower == Array("http".utf8) || lower == Array("https".utf8)
    }

    /// A complete request head is at the start of `readBuffer`: route it and
    /// start the exchange, or answer it with an error.
    func startExchange() {
        let bytes = readBuffer.readable
        exchange.isHEAD = head.isHEAD
        exchange.clientIsHTTP10 = head.version == .http10
        exchange.upgradeRequested = isWebSocketUpgrade(bytes)
        exchange.clientKeepAlive = head.keepAlive && !worker.isDraining
        switch head.framing {
        case .none, .untilClose, .contentLength(0): exchange.requestBody = .complete
        case let .contentLength(length): exchange.requestBody = .contentLength(remaining: length)
        case .chunked:
            exchange.requestBody = .chunked(budget: .max)
            exchange.requestChunkedDecoder = HTTP1ChunkedDecoder()
        }
        if head.isCONNECT {
            worker.metrics.count(.badRequest)
            readBuffer.consume(head.headLength)
            respondWithError(.methodNotAllowed, headParsed: false)
            return
        }
        guard let target = parseTarget(bytes) else {
            worker.metrics.count(.badRequest)
            readBuffer.consume(head.headLength)
            respondWithError(.badRequest, headParsed: false)
            return
        }
        let facts = RequestFacts(
            authority: target.host.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0),
            target: UnsafeRawBufferPointer(rebasing: bytes[target.originForm]), pathLength: target.path.count,
            peer: peer, declaredBodyLength: declaredBodyLength(head.framing))
        let outcome = worker.pipeline.decide(
            facts, fields: HTTP1RequestFields(fields: head.fields, bytes: bytes), tls: tls, table: worker.table,
            secure: worker.secure, rewriteInto: worker.rewriteBuffer, metrics: worker.metrics,
            redirectStatus: worker.configuration.httpRedirectCode)
        switch outcome {
        case let .respond(response):
            readBuffer.consume(head.headLength)
            respondWithError(response, headParsed: true)
        case let .redirect(status, namePort):
            respondWithRedirect(bytes, target: target, status: status, namePort: namePort)
        case let .forward(found, rewrite, passClientCertificate, bodyLimit):
            if case .chunked = exchange.requestBody { exchange.requestBody = .chunked(budget: bodyLimit) }
            if found.upstream.wireProtocol != .http && found.upstream.wireProtocol != .https {
                // gRPC and H2C endpoints are reached from HTTP/2 clients only.
                worker.metrics.count(.badRequest)
                readBuffer.consume(head.headLength)
                respondWithError(.needsHTTP2, headParsed: true)
                return
            }
            writeUpstreamRequestHead(bytes, target: target, rewrite: rewrite, passClientCertificate: passClientCertificate)
            let expectsContinue = head.expectsContinue
            readBuffer.consume(head.headLength)
            state = .proxying
            exchange.cluster = found
            exchange.attempts = 0
            // The client's body (if any) is waited for from now; the send
            // timeout counts from now too (`tick`).
            socket.arm(Timeout.requestBody, after: worker.configuration.clientBodyTimeoutMilliseconds, restartedBy: .input)
            if expectsContinue, exchange.requestBody != .complete, !exchange.clientIsHTTP10 {
                // RFC 9110 §10.1.1: the proxy answers the expectation itself
                // and does not forward it.
                writeBuffer.append("HTTP/1.1 100 Continue\r\n\r\n")
            }
            guard connectUpstream(excluding: nil, carrying: nil, allowPooled: true) else { return }
            pumpRequestBody()
            flushUpstream()
            if state == .proxying { flushDownstream() }
        }
    }

    /// Serializes the upstream request head into `upstreamRequestHead`:
    /// hop-by-hop fields removed (RFC 9110 §7.6.1), forwarding fields added,
    /// framing rewritten to one canonical field.
    func writeUpstreamRequestHead(
        _ bytes: UnsafeRawBufferPointer, target: Target, rewrite: PathRewrite, passClientCertificate: Bool
    ) {
        let out = upstreamRequestHead
        out.clear()
        out.append(bytes, head.method)
        out.append(byte: UInt8(ascii: " "))
        if case let .rewritten(count) = rewrite {
            // rewrite-target: the new path, then the client's query unchanged.
            out.append(UnsafeRawBufferPointer(rebasing: worker.rewriteBuffer[0..<count]))
            out.append(bytes, target.path.upperBound..<target.originForm.upperBound)
        } else if target.originForm.isEmpty {
            out.append(byte: slash)
        } else {
            out.append(bytes, target.originForm)
        }
        out.append(" HTTP/1.1\r\n")
        let dropped = UpstreamRequestFields.http1(
            fields: head.fields, hostField: head.host, bytes: bytes, host: target.host, hostFromTarget: target.hostFromTarget,
            context: forwardingContext(passClientCertificate: passClientCertificate), requestIDs: &worker.requestIDs, into: out)
        if dropped > 0 { worker.metrics.underscoreFieldsDropped.add(UInt64(dropped)) }
        if exchange.upgradeRequested {
            // RFC 9110 §7.8: Upgrade travels hop by hop, so the proxy re-sends it.
            out.append("Connection: upgrade\r\nUpgrade: websocket\r\n")
        }
        switch exchange.requestBody {
        case .complete:
            if case .contentLength(0) = head.framing { out.append("Content-Length: 0\r\n") }
        case let .contentLength(remaining):
            out.append("Content-Length: ")
            out.appendDecimal(remaining)
            out.append("\r\n")
        case .chunked:
            out.append("Transfer-Encoding: chunked\r\n")
        }
        out.append("\r\n")
    }

    /// `UpstreamAttempt`: errors before the upstream answered.
    func respondBeforeUpstream(_ error: ErrorResponse) {
        respondWithError(error, headParsed: true)
    }

    /// Moves buffered request body bytes to the upstream's write buffer,
    /// re-framing chunked bodies, up to the high-water mark.
    func pumpRequestBody() {
        guard state == .proxying, let upstream else { return }
        let highWater = worker.configuration.bufferHighWaterMark
        let out = upstream.writeBuffer
        var forwarded: UInt64 = 0
        loop: while exchange.requestBody != .complete, !readBuffer.isEmpty, out.readableBytes < highWater {
            switch exchange.requestBody {
            case .complete:
                break loop
            case let .contentLength(remaining):
                let count = Int(min(remaining, UInt64(readBuffer.readableBytes)))
                out.append(UnsafeRawBufferPointer(rebasing: readBuffer.readable[0..<count]))
                readBuffer.consume(count)
                forwarded += UInt64(count)
                exchange.requestBody = remaining == UInt64(count) ? .complete : .contentLength(remaining: remaining - UInt64(count))
            case let .chunked(budget):
                let input = readBuffer.readable
                switch exchange.requestChunkedDecoder.next(input) {
                case let .data(range, consumed):
                    guard UInt64(range.count) <= budget else {
                        // proxy-body-size: cut at once, never buffered.
                        stopRequestBody(.contentTooLarge, counting: .bodyTooLarge, forwarded: forwarded)
                        return
                    }
                    exchange.requestBody = .chunked(budget: budget - UInt64(range.count))
                    out.appendChunkHeader(size: range.count)
                    out.append(input, range)
                    out.append("\r\n")
                    forwarded += UInt64(range.count)
                    readBuffer.consume(consumed)
                case let .needMore(consumed):
                    readBuffer.consume(consumed)
                    break loop
                case let .end(trailers, consumed):
                    out.appendLastChunk(trailers: trailers, of: input)
                    readBuffer.consume(consumed)
                    exchange.requestBody = .complete
                case .failed:
                    stopRequestBody(.badRequest, counting: .badRequest, forwarded: forwarded)
                    return
                }
            }
        }
        worker.metrics.requestBytesIn.add(forwarded)
    }

    /// Ends an exchange whose request body cannot go on: `response` when the
    /// upstream has not answered yet, else the connection is cut.
    private func stopRequestBody(_ response: ErrorResponse, counting reason: DownstreamErrorKind, forwarded: UInt64) {
        worker.metrics.count(reason)
        worker.metrics.requestBytesIn.add(forwarded)
        if exchange.responseHeadDone {
            abort()
        } else {
            readBuffer.clear()
            respondWithError(response, headParsed: false)
        }
    }

    /// Writes queued request bytes upstream (when connected).
    func flushUpstream() {
        guard let upstream, upstream.state == .busy else { return }
        if !upstream.writeBuffer.isEmpty {
            switch upstream.transportWrite() {
            case .bytes, .wouldBlock, .endOfFile:
                break
            case .failed:
                // The endpoint closed or reset while we were sending; if it
                // answered, the response is still read.
                if !exchange.responseHeadDone, upstream.readBuffer.isEmpty {
                    upstreamFailedBeforeResponse(upstream, kind: .reset)
                    return
                }
                upstream.writeBuffer.clear()
            }
        }
        if state == .tunneling {
            // Room again toward the upstream: take what the client sent.
            if upstream.writeBuffer.readableBytes < worker.configuration.bufferHighWaterMark { tunnelClientBytes() }
            return
        }
        if upstream.writeBuffer.readableBytes < worker.configuration.bufferHighWaterMark, exchange.requestBody != .complete {
            // Room again: take more body bytes already read, and read more.
            pumpRequestBody()
            guard self.upstream === upstream, state == .proxying else { return }
            if !upstream.writeBuffer.isEmpty, upstream.state == .busy {
                _ = upstream.transportWrite()
            }
        }
        refreshUpstreamDeadline(upstream)
        updateUpstreamInterest(upstream)
        updateDownstreamInterest()
    }
}

/// HTTPS policy per request: redirects of plain HTTP and misdirected requests.
extension HTTP1ClientConnection {
    /// Answers a plain-HTTP request with the pipeline's redirect to the
    /// same host (canonical) and target on HTTPS.
    func respondWithRedirect(_ bytes: UnsafeRawBufferPointer, target: Target, status code: Int, namePort: Bool) {
        let location = worker.pipeline.httpsLocation(
            target: target.originForm.isEmpty ? RequestPipeline.rootPath : UnsafeRawBufferPointer(rebasing: bytes[target.originForm]),
            namePort: namePort)
        let keepAlive = exchange.clientKeepAlive && exchange.requestBody == .complete && !worker.isDraining
        readBuffer.consume(head.headLength)
        writeBuffer.append("HTTP/1.1 ")
        writeBuffer.appendDecimal(UInt64(code))
        writeBuffer.append(byte: UInt8(ascii: " "))
        let reason = HTTP1Serializer.reasonPhrase(code)
        writeBuffer.append(UnsafeRawBufferPointer(start: reason.utf8Start, count: reason.utf8CodeUnitCount))
        writeBuffer.append("\r\nLocation: ")
        writeBuffer.append(location)
        writeBuffer.append("\r\nContent-Length: 0\r\n")
        if !keepAlive { writeBuffer.append("Connection: close\r\n") }
        writeBuffer.append("\r\n")
        worker.metrics.countResponse(status: code)
        finishLocalResponse(keepAlive: keepAlive)
    }
}

extension HTTP1ClientConnection {
    /// The forwarding policy's view of the current request.
    @inline(__always)
    func forwardingContext(passClientCertificate: Bool) -> ForwardingContext {
        worker.pipeline.forwardingContext(peer: peer, tls: tls, passClientCertificate: passClientCertificate)
    }
}
