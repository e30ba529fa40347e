import CNGHTTP2

/// How a client stream that is no longer open ended, remembered so that a
/// late frame on it gets the answer RFC 9113 §5.1 gives for that history.
enum HTTP2ClosedStreamKind: UInt32 {
    /// Skipped by the client: a higher stream ID was opened first, which
    /// closed this one implicitly (RFC 9113 §5.1.1).
    case neverOpened = 1
    /// END_STREAM went both ways.
    case endedBothWays = 2
    /// The client reset it (its RST_STREAM).
    case resetByPeer = 3
    /// We reset it (ours or nghttp2's RST_STREAM): late frames are ignored.
    case resetByUs = 4
}

/// A frame header the stream-state check looks at once nghttp2 has processed
/// every frame before it (`checkStreamStates`).
struct HTTP2FrameCheck {
    /// Where the frame starts in the bytes being received (0 when it began in an earlier read).
    var offset: Int
    var type: UInt8
    var stream: UInt32
    var length: Int
    /// PRIORITY only: the stream it depends on (nil when the payload is not 5 bytes).
    var dependency: UInt32?
}

/// Why nghttp2 alone does not give these answers (nghttp2 1.52):
/// - it forgets a stream the moment it closes (always, once we announced
///   SETTINGS_NO_RFC7540_PRIORITIES; `no_closed_streams` only matters for the
///   RFC 7540 priority tree), so DATA or HEADERS on a closed stream find no
///   stream and are silently ignored (h2spec http2/5.1/8, 9, 11, 12);
/// - it deliberately ignores a HEADERS whose stream ID is below the highest
///   one seen when it has no state for it (a comment in
///   `nghttp2_session_on_request_headers_received`), so a decreasing stream ID
///   is dropped instead of being a connection error (5.1.1/2);
/// - under SETTINGS_NO_RFC7540_PRIORITIES it skips PRIORITY frames before
///   validating them (5.3.1/2, 6.3/1).
/// So the session remembers how recent client streams closed, and checks each
/// DATA, HEADERS, WINDOW_UPDATE and PRIORITY frame against that before
/// nghttp2 sees it. Server sessions only: an upstream is trusted more, and its
/// late frames on streams we cancelled are expected.
extension HTTP2SessionCore {
    /// Closed-stream entries kept: a direct-mapped table over the last 256
    /// client stream IDs (128 odd ones), 512 bytes per connection, allocated
    /// on the first close. An older stream's entry is overwritten, which is
    /// the bounded "period" RFC 9113 §5.1 allows for remembering it; a frame
    /// on a forgotten stream is ignored, as nghttp2 would.
    static let closedStreamSlots = 128

    @inline(__always)
    static func closedStreamSlot(_ id: UInt32) -> Int { Int(id >> 1) & (closedStreamSlots - 1) }

    /// Remembers how client stream `id` closed (odd IDs only).
    func rememberClosedStream(_ id: UInt32, _ kind: HTTP2ClosedStreamKind) {
        guard role == .server, id & 1 == 1 else { return }
        if closedStreams.isEmpty { closedStreams = [UInt32](repeating: 0, count: Self.closedStreamSlots) }
        // The slot's index holds the ID's low bits; the entry its high bits and the kind.
        closedStreams[Self.closedStreamSlot(id)] = (id >> 8) << 3 | kind.rawValue
    }

    /// How client stream `id` closed, if it is still remembered.
    func closedStreamKind(_ id: UInt32) -> HTTP2ClosedStreamKind? {
        guard !closedStreams.isEmpty else { return nil }
        let entry = closedStreams[Self.closedStreamSlot(id)]
        guard entry >> 3 == id >> 8 else { return nil }
        return HTTP2ClosedStreamKind(rawValue: entry & 7)
    }

    /// The kind to remember for a stream nghttp2 just closed.
    func closedStreamKind(of stream: HTTP2StreamState, errorCode: UInt32) -> HTTP2ClosedStreamKind {
        if stream.peerReset { return .resetByPeer }
        if errorCode != 0 || stream.localReset || stream.rejected { return .resetByUs }
        return .endedBothWays
    }

    /// Records a frame for `checkStreamStates` (called by the frame scanner).
    @inline(__always)
    func noteFrameForStateCheck(offset: Int, type: UInt8, stream: UInt32, length: Int, dependency: UInt32?) {
        frameChecks.append(HTTP2FrameCheck(offset: offset, type: type, stream: stream, length: length, dependency: dependency))
    }

    /// Feeds `bytes` to nghttp2, stopping before each frame in `frameChecks`
    /// to check it against the stream states (RFC 9113 §5.1) with nghttp2's
    /// and our state up to date. Returns nghttp2's error, or ours.
    func receiveCheckingStreamStates(_ bytes: UnsafeRawBufferPointer) throws(HTTP2SessionError) {
        defer { frameChecks.removeAll(keepingCapacity: true) }
        var fed = 0
        for index in frameChecks.indices {
            let check = frameChecks[index]
            if check.offset > fed {
                try feedNGHTTP2(UnsafeRawBufferPointer(rebasing: bytes[fed..<check.offset]))
                fed = check.offset
            }
            // nghttp2 ended the session itself: the rest is ignored anyway.
            guard closeReason == nil, nghttp2_session_want_read(session) != 0 else { break }
            if let code = checkStreamState(check) {
                terminate(code, reason: .protocolError(.streamState(code)))
                throw HTTP2SessionError.streamState(code)
            }
        }
        if fed < bytes.count, closeReason == nil {
            try feedNGHTTP2(UnsafeRawBufferPointer(rebasing: bytes[fed...]))
        }
    }

    func feedNGHTTP2(_ bytes: UnsafeRawBufferPointer) throws(HTTP2SessionError) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let processed = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if processed < 0 {
            let error = Self.sessionError(Int32(truncatingIfNeeded: processed))
            if closeReason == nil { closeReason = .protocolError(error) }
            throw error
        }
    }

    /// The answer to one frame: nil when nghttp2 may process it (possibly
    /// after we queued a stream error), or the code of the connection error.
    func checkStreamState(_ check: HTTP2FrameCheck) -> HTTP2ErrorCode? {
        let id = check.stream
        switch check.type {
        case 0x2:  // PRIORITY
            // RFC 9113 §6.3: PRIORITY always names a stream.
            if id == 0 { return .protocolError }
            // RFC 9113 §5.3.1: a stream cannot depend on itself (a stream error).
            guard check.dependency == id else { return nil }
            // RFC 9113 §6.4: no RST_STREAM on an idle stream, and PRIORITY
            // leaves a stream idle, so there the stream error can only be
            // raised to a connection error (§5.4).
            if id > highestClientStream { return .protocolError }
            streamError(id, .protocolError)
            return nil
        case 0x1:  // HEADERS
            guard id != 0, id & 1 == 1 else { return nil }  // nghttp2: PROTOCOL_ERROR
            if id > highestClientStream {
                // RFC 9113 §5.1.1: opening this stream closes the lower ones never used.
                // Only the last ones fit in the table: the loop is bounded.
                let window = 2 * UInt32(Self.closedStreamSlots)
                var skipped = max(highestClientStream == 0 ? 1 : highestClientStream + 2, id > window ? id - window : 1)
                while skipped < id {
                    rememberClosedStream(skipped, .neverOpened)
                    skipped += 2
                }
                highestClientStream = id
                return nil
            }
            if streams[Int32(bitPattern: id)] != nil { return nil }  // trailers on an open stream
            switch closedStreamKind(id) {
            // RFC 9113 §5.1.1: a new stream's ID must exceed every earlier one.
            case .neverOpened: return .protocolError
            // RFC 9113 §5.1, closed: a frame after END_STREAM both ways.
            case .endedBothWays: return .streamClosed
            // RFC 9113 §5.1, closed: a frame after the client's own RST_STREAM.
            case .resetByPeer: streamError(id, .streamClosed)
            // After our RST_STREAM the client may have frames in flight: ignore them.
            case .resetByUs, nil: break
            }
            return nil
        case 0x0:  // DATA
            guard id != 0, id <= highestClientStream, streams[Int32(bitPattern: id)] == nil else { return nil }
            switch closedStreamKind(id) {
            case .endedBothWays: return .streamClosed
            // RFC 9113 §6.1: DATA on a stream that is not open is a stream error.
            case .resetByPeer, .neverOpened: streamError(id, .streamClosed)
            case .resetByUs, nil: break
            }
            return nil
        case 0x8:  // WINDOW_UPDATE: may trail our END_STREAM or RST_STREAM (§5.1), not the client's RST_STREAM.
            guard id != 0, id <= highestClientStream, streams[Int32(bitPattern: id)] == nil,
                  closedStreamKind(id) == .resetByPeer else { return nil }
            streamError(id, .streamClosed)
            return nil
        default:
            return nil
        }
    }

    /// RST_STREAM for a frame on a stream that may not carry it. The stream
    /// then counts as reset by us: further late frames on it are ignored, so
    /// a client gets at most one such reset per stream, and each is charged
    /// to its reset budget (Rapid Reset accounting).
    func streamError(_ id: UInt32, _ code: HTTP2ErrorCode) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), Int32(bitPattern: id), code.rawValue)
        if let stream = streams[Int32(bitPattern: id)] {
            stream.localReset = true
        } else {
            rememberClosedStream(id, .resetByUs)
        }
        countReset()
    }
}
