import HTTP2
import Reactor
import Routing
import Telemetry

/// A client HTTP/2 stream proxied to an HTTP/2 upstream stream (gRPC,
/// GRPCS, H2C): fields, DATA and trailers pass through stream to stream,
/// with both flow-control windows as backpressure, and errors before the
/// response answered gRPC-style (`grpc-status` 14 UNAVAILABLE).
extension HTTP2StreamExchange {
    func startHTTP2Upstream(
        _ head: HTTP2RequestHead, authority: ArraySlice<UInt8>, path: ArraySlice<UInt8>, query: Int, rewrite: PathRewrite,
        passClientCertificate: Bool
    ) {
        guard let cluster else { return }
        isGRPC = cluster.upstream.wireProtocol == .grpc || cluster.upstream.wireProtocol == .grpcs
        var upstreamPath: [UInt8]
        if case let .rewritten(count) = rewrite {
            upstreamPath = Array(worker.rewriteBuffer[0..<count])
            upstreamPath += path[query...]
        } else {
            upstreamPath = Array(path)
        }
        var fields = HTTP2Fields.request(
            method: head.method, scheme: (cluster.upstream.tls != nil ? "https" : "http").utf8, authority: authority,
            path: upstreamPath)
        let dropped = UpstreamRequestFields.http2ToHTTP2(
            fields: head.fields, authority: authority, context: forwardingContext(passClientCertificate: passClientCertificate),
            requestIDs: &worker.requestIDs, into: &fields)
        if dropped > 0 { worker.metrics.underscoreFieldsDropped.add(UInt64(dropped)) }
        upstreamFields = fields
        guard let upstreamConnection = worker.upstreams.acquireHTTP2(cluster: cluster) else {
            worker.metrics.count(.noEndpoints)
            respondLocally(.serviceUnavailable)
            return
        }
        h2Upstream = upstreamConnection
        upstreamConnection.open(self)
    }

    /// The upstream stream is open: send what the client sent meanwhile.
    func upstreamH2Opened(_ upstreamConnection: HTTP2UpstreamConnection, stream upstreamStream: Int32) {
        h2Stream = upstreamStream
        guard !finished else {
            // Answered or abandoned while waiting (its client may be gone).
            upstreamConnection.cancel(self)
            return
        }
        if !pendingRequestBody.isEmpty || pendingRequestEnd {
            let body = pendingRequestBody
            pendingRequestBody.removeAll()
            let end = pendingRequestEnd && pendingRequestTrailers == nil
            body.withUnsafeBytes { _ = upstreamConnection.session.submitData(stream: upstreamStream, bytes: $0, endStream: end) }
            session.consumed(stream: stream, bytes: body.count)
            // The client's window reopens: its WINDOW_UPDATE goes out.
            connection.requestFlush()
        }
        if let trailers = pendingRequestTrailers {
            _ = upstreamConnection.session.submitTrailers(stream: upstreamStream, fields: trailers)
            pendingRequestTrailers = nil
        }
    }

    func forwardRequestBodyHTTP2(_ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        if endStream { requestComplete = true }
        guard let h2Upstream, !finished else {
            session.consumed(stream: stream, bytes: bytes.count)
            return
        }
        guard h2Stream != 0 else {
            // Not open yet: keep it (bounded by the client's stream window).
            pendingRequestBody += bytes
            pendingRequestEnd = endStream
            return
        }
        let buffered = h2Upstream.session.submitData(stream: h2Stream, bytes: bytes, endStream: endStream) ?? 0
        worker.metrics.requestBytesIn.add(UInt64(bytes.count))
        if buffered < worker.configuration.bufferHighWaterMark {
            session.consumed(stream: stream, bytes: bytes.count + unconsumed)
            unconsumed = 0
        } else {
            unconsumed += bytes.count
        }
        h2Upstream.flush()
    }

    func forwardRequestTrailersHTTP2(_ fields: HTTP2Fields) {
        requestComplete = true
        guard let h2Upstream, !finished else { return }
        guard h2Stream != 0 else {
            pendingRequestTrailers = fields
            pendingRequestEnd = true
            return
        }
        _ = h2Upstream.session.submitTrailers(stream: h2Stream, fields: fields)
        h2Upstream.flush()
    }

    /// The upstream stream's send buffer drained: acknowledge held client bytes.
    func upstreamH2Writable() {
        guard !finished, unconsumed > 0 else { return }
        session.consumed(stream: stream, bytes: unconsumed)
        unconsumed = 0
        connection.requestFlush()
    }

    func upstreamH2ResponseHead(_ head: HTTP2ResponseHead, endStream: Bool) {
        guard !finished else { return }
        responseStarted = true
        var fields = head.fields
        if connection.isTLS, !worker.table.strictTransportSecurityValue.isEmpty {
            fields.append("strict-transport-security", bytes: worker.table.strictTransportSecurityValue)
        }
        session.submitResponse(stream: stream, status: head.status, fields: fields, hasBody: !endStream)
        worker.metrics.countResponse(status: head.status)
        if endStream { finishHTTP2Upstream() }
        connection.requestFlush()
    }

    func upstreamH2Data(_ bytes: UnsafeRawBufferPointer, endStream: Bool) {
        guard !finished, let h2Upstream else { return }
        let buffered = session.submitData(stream: stream, bytes: bytes, endStream: endStream) ?? 0
        worker.metrics.responseBytesOut.add(UInt64(bytes.count))
        unacknowledgedResponse += bytes.count
        if buffered < worker.configuration.bufferHighWaterMark { acknowledgeResponseBytes() }
        if endStream { finishHTTP2Upstream() }
        connection.requestFlush()
        h2Upstream.flush()
    }

    /// Reopens the upstream's window for response bytes the client took.
    func acknowledgeResponseBytes() {
        guard unacknowledgedResponse > 0, let h2Upstream, h2Stream != 0 else { return }
        h2Upstream.session.consumed(stream: h2Stream, bytes: unacknowledgedResponse)
        unacknowledgedResponse = 0
        h2Upstream.flush()
    }

    func upstreamH2Trailers(_ fields: HTTP2Fields) {
        guard !finished else { return }
        session.submitTrailers(stream: stream, fields: fields)
        finishHTTP2Upstream()
        connection.requestFlush()
    }

    private func finishHTTP2Upstream() {
        finished = true
        if !requestComplete {
            // RFC 9113 §8.1: the rest of the request is not needed, on
            // either side; the upstream stream is reset too, so the upstream
            // connection lets go of this exchange now.
            h2Upstream?.cancel(self)
            session.resetStreamAfterResponse(stream: stream)
        }
        h2Upstream = nil
    }

    func upstreamH2StreamClosed(errorCode: HTTP2ErrorCode) {
        guard !finished else { return }
        h2Upstream = nil
        if responseStarted {
            // Cut off mid-response: the client sees its stream reset.
            finished = true
            session.resetStream(stream: stream, errorCode: errorCode == .noError ? .internalError : errorCode)
            connection.requestFlush()
        } else {
            worker.metrics.count(.reset)
            respondLocally(errorCode == .refusedStream ? .serviceUnavailable : .badGateway)
        }
    }

    /// The upstream connection failed (connect, handshake, reset).
    func upstreamH2Failed(connectionLevel: Bool) {
        h2Upstream = nil
        guard !finished else { return }
        if responseStarted {
            finished = true
            session.resetStream(stream: stream, errorCode: .internalError)
            connection.requestFlush()
        } else {
            respondLocally(.badGateway)
        }
    }

    /// gRPC's own error reply: HTTP 200, trailers-only, `grpc-status` and
    /// `grpc-message` (14 UNAVAILABLE for 502/503/504, 12 UNIMPLEMENTED for 404,
    /// 7 PERMISSION_DENIED for 403, 8 RESOURCE_EXHAUSTED for 413).
    func respondGRPCError(_ response: ErrorResponse) {
        if let h2Upstream {
            h2Upstream.cancel(self)
            self.h2Upstream = nil
        }
        guard !finished else { return }
        finished = true
        var fields = HTTP2Fields()
        let status: StaticString
        switch response.status {
        case 403: status = "7"
        case 404: status = "12"
        case 405, 414: status = "13"
        case 413: status = "8"
        default: status = "14"
        }
        fields.append("content-type", value: "application/grpc".utf8)
        fields.append("grpc-status", value: UnsafeRawBufferPointer(start: status.utf8Start, count: status.utf8CodeUnitCount))
        // grpc-message is percent-encoded (gRPC HTTP/2 protocol spec).
        var encoded: [UInt8] = []
        for byte in response.body.utf8 where byte != 10 {
            if byte == 0x20 {
                encoded += "%20".utf8
            } else if byte == UInt8(ascii: "%") {
                encoded += "%25".utf8
            } else {
                encoded.append(byte)
            }
        }
        fields.append("grpc-message", value: encoded)
        session.submitResponse(stream: stream, status: 200, fields: fields, hasBody: false)
        if !requestComplete { session.resetStreamAfterResponse(stream: stream) }
        worker.metrics.countResponse(status: response.status)
        connection.requestFlush()
    }
}
