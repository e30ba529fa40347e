import CNGHTTP2

/// nghttp2's C callbacks, each a capture-free closure that recovers the
/// `HTTP2SessionCore` from `user_data` (a capturing closure cannot be a C
/// function pointer, and crashes the 6.3.1 compiler when tried).
enum NGHTTP2 {
    @inline(__always)
    static func core(_ userData: UnsafeMutableRawPointer?) -> HTTP2SessionCore {
        Unmanaged<HTTP2SessionCore>.fromOpaque(userData!).takeUnretainedValue()
    }

    static func installCallbacks(_ callbacks: OpaquePointer?) {
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSent)
    }

    static let onFrameSent: nghttp2_on_frame_send_callback = { _, frame, userData in
        guard let frame else { return 0 }
        return core(userData).frameSent(frame)
    }

    static let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
        guard let frame else { return 0 }
        return core(userData).beginHeaderBlock(frame)
    }

    static let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
        core(userData).headerField(
            name: UnsafeRawBufferPointer(start: name, count: nameLength),
            value: UnsafeRawBufferPointer(start: value, count: valueLength))
    }

    static let onFrameReceived: nghttp2_on_frame_recv_callback = { _, frame, userData in
        guard let frame else { return 0 }
        return core(userData).frameReceived(frame)
    }

    static let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
        core(userData).dataChunk(stream: streamID, bytes: UnsafeRawBufferPointer(start: data, count: length))
    }

    static let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
        core(userData).streamClosed(streamID, errorCode: errorCode)
    }

    static let readBody: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
        core(userData).readBody(stream: streamID, into: buffer!, length: length, flags: flags!)
    }
}

extension HTTP2SessionCore {
    func beginHeaderBlock(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        scratch.removeAll()
        blockBytes = 0
        blockTooLarge = false
        pseudoMethod = nil
        pseudoScheme = nil
        pseudoAuthority = nil
        pseudoPath = nil
        pseudoProtocol = nil
        pseudoStatus = nil
        hostValue = nil
        contentLength = nil
        let id = frame.pointee.hd.stream_id
        if role == .server, frame.pointee.headers.cat == NGHTTP2_HCAT_REQUEST, streams[id] == nil {
            _ = makeStream(id: id)
        }
        return 0
    }

    /// One decoded field. nghttp2 has already checked it (RFC 9113 §8.2, §8.3):
    /// lowercase token name, valid value bytes, pseudo-header rules,
    /// connection-specific fields, `te`, content-length syntax.
    func headerField(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Int32 {
        // RFC 9113 §6.5.2 / RFC 7541 §4.1: 32 bytes of overhead per field. Past
        // the limit, fields are still decoded (HPACK state must stay in sync)
        // but no longer stored: memory stays bounded whatever the peer sends.
        blockBytes += name.count + value.count + 32
        if blockTooLarge { return 0 }
        if blockBytes > Int(settings.maxHeaderListSize) {
            blockTooLarge = true
            return 0
        }
        if name.first == 0x3a {
            let range = scratch.appendValue(value)
            switch name.count {
            case 5 where HTTP2Fields.equals(name, ":path"): pseudoPath = range
            case 7 where HTTP2Fields.equals(name, ":method"): pseudoMethod = range
            case 7 where HTTP2Fields.equals(name, ":scheme"): pseudoScheme = range
            case 7 where HTTP2Fields.equals(name, ":status"): pseudoStatus = Self.parseStatus(value)
            case 9 where HTTP2Fields.equals(name, ":protocol"): pseudoProtocol = range
            case 10 where HTTP2Fields.equals(name, ":authority"): pseudoAuthority = range
            default: break
            }
            return 0
        }
        scratch.append(name: name, value: value)
        if name.count == 4, HTTP2Fields.equals(name, "host") {
            hostValue = scratch.entries[scratch.entries.count - 1].value
        } else if name.count == 14, HTTP2Fields.equals(name, "content-length") {
            contentLength = Self.parseDecimal(value)
        }
        return 0
    }

    func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        let type = UInt32(header.type)
        let endStream = header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        let ack = header.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0
        lastActivity = clock()
        switch type {
        case NGHTTP2_DATA.rawValue:
            if endStream, let stream = streams[header.stream_id], !stream.rejected {
                let empty = UnsafeRawBufferPointer(start: nil, count: 0)
                switch role {
                case .server: serverDelegate?.requestData(stream: header.stream_id, bytes: empty, endStream: true)
                case .client: clientDelegate?.responseData(stream: header.stream_id, bytes: empty, endStream: true)
                }
            }
        case NGHTTP2_HEADERS.rawValue:
            switch role {
            case .server: serverHeadersComplete(stream: header.stream_id, endStream: endStream)
            case .client: clientHeadersComplete(stream: header.stream_id, endStream: endStream)
            }
        case NGHTTP2_RST_STREAM.rawValue:
            streams[header.stream_id]?.peerReset = true
            countReset()
        // SETTINGS, PING, PRIORITY and empty DATA were charged to the
        // control-frame budget by `accountInboundFrames` before nghttp2 saw them.
        case NGHTTP2_SETTINGS.rawValue:
            if ack { settingsSentAt = nil }
        case NGHTTP2_PING.rawValue:
            if ack, shutdown == .noticeSent, Self.isShutdownPing(frame.pointee.ping.opaque_data) {
                finishGracefulShutdown()
            }
        case NGHTTP2_GOAWAY.rawValue:
            let goaway = frame.pointee.goaway
            let code = HTTP2ErrorCode(rawValue: goaway.error_code)
            switch role {
            case .server: serverDelegate?.goAwayReceived(lastStream: goaway.last_stream_id, errorCode: code)
            case .client: clientDelegate?.goAwayReceived(lastStream: goaway.last_stream_id, errorCode: code)
            }
        default:
            break
        }
        return 0
    }

    func serverHeadersComplete(stream id: Int32, endStream: Bool) {
        guard let stream = streams[id], !stream.rejected, !stream.localReset else { return }
        if let method = pseudoMethod {
            if blockTooLarge {
                rejectOversizedRequest(stream, endStream: endStream)
                return
            }
            var authority = pseudoAuthority
            if let host = hostValue {
                if let given = authority {
                    // RFC 9113 §8.3.1: a Host that names another entity than
                    // :authority makes the request malformed.
                    if !scratch.bytes[given].elementsEqual(scratch.bytes[host], by: { Self.lower($0) == Self.lower($1) }) {
                        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.protocolError.rawValue)
                        return
                    }
                } else {
                    authority = host
                }
            }
            let head = HTTP2RequestHead(
                fields: scratch, methodRange: method, schemeRange: pseudoScheme, authorityRange: authority,
                pathRange: pseudoPath, protocolRange: pseudoProtocol,
                authorityFromHost: pseudoAuthority == nil && authority != nil, contentLength: contentLength)
            stream.isHeadRequest = head.isHead
            serverDelegate?.requestHead(stream: id, head: head, endStream: endStream)
        } else {
            if blockTooLarge {
                _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.protocolError.rawValue)
                return
            }
            serverDelegate?.requestTrailers(stream: id, fields: scratch)
        }
    }

    func clientHeadersComplete(stream id: Int32, endStream: Bool) {
        guard let stream = streams[id], !stream.localReset else { return }
        if blockTooLarge {
            // The upstream's header section is over our limit: the proxy answers 502.
            _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.protocolError.rawValue)
            return
        }
        if let status = pseudoStatus {
            let head = HTTP2ResponseHead(status: status, fields: scratch, contentLength: contentLength)
            if status < 200 {
                clientDelegate?.informationalResponse(stream: id, head: head)
            } else {
                clientDelegate?.responseHead(stream: id, head: head, endStream: endStream)
            }
        } else {
            clientDelegate?.responseTrailers(stream: id, fields: scratch)
        }
    }

    /// Answers a request whose header section is over `maxHeaderListSize` with
    /// 431 (RFC 6585 §5, RFC 9113 §10.5.1) and, when the client is still
    /// sending, RST_STREAM NO_ERROR after it (RFC 9113 §8.1).
    func rejectOversizedRequest(_ stream: HTTP2StreamState, endStream: Bool) {
        stream.rejected = true
        stream.headSubmitted = true
        stream.sendEnded = true
        stream.discardBody = true
        var fields = HTTP2Fields()
        fields.append("content-length", value: "0".utf8)
        _ = withNameValues(status: 431, fields: fields) { list, count in
            nghttp2_submit_response(session, stream.id, list, count, nil)
        }
        // The 431 first; the reset once it has gone (see resetStreamAfterResponse).
        if !endStream { stream.resetWhenResponseEnds = true }
    }

    func dataChunk(stream id: Int32, bytes: UnsafeRawBufferPointer) -> Int32 {
        guard let stream = streams[id], !stream.rejected, !stream.localReset else {
            // Nobody will forward these bytes: give the window back at once.
            _ = nghttp2_session_consume(session, id, bytes.count)
            return 0
        }
        stream.unconsumed += bytes.count
        switch role {
        case .server: serverDelegate?.requestData(stream: id, bytes: bytes, endStream: false)
        case .client: clientDelegate?.responseData(stream: id, bytes: bytes, endStream: false)
        }
        return 0
    }

    func streamClosed(_ id: Int32, errorCode: UInt32) -> Int32 {
        guard let stream = streams.removeValue(forKey: id) else { return 0 }
        lastActivity = clock()
        rememberClosedStream(UInt32(bitPattern: id), closedStreamKind(of: stream, errorCode: errorCode))
        if stream.unconsumed > 0 {
            // Bytes the delegate will never acknowledge now: free the connection window.
            _ = nghttp2_session_consume_connection(session, stream.unconsumed)
        }
        // A stream we reset because of the client's protocol error counts like
        // a client reset (a client can provoke resets as cheaply as send them).
        if errorCode != 0, !stream.peerReset, !stream.localReset, !stream.rejected { countReset() }
        if !stream.rejected {
            let code = HTTP2ErrorCode(rawValue: errorCode)
            switch role {
            case .server: serverDelegate?.streamClosed(stream: id, errorCode: code)
            case .client: clientDelegate?.streamClosed(stream: id, errorCode: code)
            }
        }
        recycle(stream)
        return 0
    }

    /// nghttp2's data provider: copies buffered body bytes into its frame
    /// buffer; DEFERRED when empty and not ended (resumed by `submitData`).
    func readBody(stream id: Int32, into buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard let stream = streams[id] else {
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            return 0
        }
        let count = min(length, stream.bufferedBytes)
        if count > 0 {
            // One DATA frame goes out: the peer may acknowledge it.
            earnWindowUpdateCredit(Self.windowUpdateCreditPerDataFrame)
            stream.sendBuffer.withUnsafeBytes { bytes in
                UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + stream.sendOffset, byteCount: count)
            }
            stream.sendOffset += count
            if stream.sendOffset == stream.sendBuffer.count {
                stream.sendBuffer.removeAll(keepingCapacity: true)
                stream.sendOffset = 0
            } else if stream.sendOffset >= 64 * 1024, stream.sendOffset * 2 >= stream.sendBuffer.count {
                stream.sendBuffer.removeFirst(stream.sendOffset)
                stream.sendOffset = 0
            }
            if stream.aboveHighWater, stream.bufferedBytes < settings.streamSendBufferHighWater {
                stream.aboveHighWater = false
                writableStreams.append(id)
            }
        }
        if stream.bufferedBytes == 0 {
            if !stream.sendEnded {
                if count == 0 {
                    stream.deferred = true
                    return Int(NGHTTP2_ERR_DEFERRED.rawValue)
                }
            } else {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = stream.trailers {
                    stream.trailers = nil
                    let rv = withNameValues(status: nil, fields: trailers) { list, count in
                        nghttp2_submit_trailer(session, id, list, count)
                    }
                    if rv == 0 { flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue }
                }
            }
        }
        return count
    }

    static func isShutdownPing(_ data: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> Bool {
        var received = data
        var expected = shutdownPing
        return withUnsafeBytes(of: &received) { a in withUnsafeBytes(of: &expected) { b in a.elementsEqual(b) } }
    }

    @inline(__always) static func lower(_ byte: UInt8) -> UInt8 { byte &- 0x41 < 26 ? byte | 0x20 : byte }

    static func parseStatus(_ value: UnsafeRawBufferPointer) -> Int? {
        guard value.count == 3 else { return nil }
        var status = 0
        for byte in value {
            guard byte &- 0x30 < 10 else { return nil }
            status = status * 10 + Int(byte &- 0x30)
        }
        return status
    }

    static func parseDecimal(_ value: UnsafeRawBufferPointer) -> Int64? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var result: Int64 = 0
        for byte in value {
            guard byte &- 0x30 < 10 else { return nil }
            result = result * 10 + Int64(byte &- 0x30)
        }
        return result
    }
}

extension HTTP2Fields {
    /// Stores a value without an entry (pseudo-header values): returns its range.
    mutating func appendValue(_ value: UnsafeRawBufferPointer) -> Range<Int> {
        let start = bytes.count
        appendRawBytes(value)
        return start..<bytes.count
    }
}
