import CNGHTTP2

/// Events of an `HTTP2ServerSession`, delivered synchronously on the session's
/// event loop from inside `receive` / `nextOutputChunk` / `produceOutput` (and
/// from submit calls). A delegate may call back into the session.
public protocol HTTP2ServerSessionDelegate: AnyObject {
    /// A request head arrived (HEADERS + CONTINUATION complete and valid).
    /// `head` is only borrowed: keep it (copy on write) only if needed later.
    /// `endStream` is true when the request has no body.
    func requestHead(stream: Int32, head: HTTP2RequestHead, endStream: Bool)
    /// Request body bytes, valid only during the call. Call
    /// `consumed(stream:bytes:)` once they were forwarded, to reopen the
    /// client's flow-control window. The end of the body arrives as a call with
    /// empty `bytes` and `endStream` true (unless trailers end the request).
    func requestData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool)
    /// Request trailers; they end the request.
    func requestTrailers(stream: Int32, fields: HTTP2Fields)
    /// The stream is closed: completed (`.noError`), reset by the client, or
    /// reset for a protocol error. No more events and no more submits for it.
    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode)
    /// The client sent GOAWAY: it opens no more streams above `lastStream`.
    func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode)
    /// The stream's buffered response body fell below
    /// `HTTP2Settings.streamSendBufferHighWater`: resume reading the upstream.
    func streamWritable(stream: Int32)
}

extension HTTP2ServerSessionDelegate {
    public func requestTrailers(stream: Int32, fields: HTTP2Fields) {}
    public func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode) {}
    public func streamWritable(stream: Int32) {}
}

/// One HTTP/2 server connection (RFC 9113), socket-free: bytes in with
/// `receive`, bytes out with `nextOutputChunk`/`produceOutput`, events to a
/// delegate, responses in with the `submit…` calls.
///
/// What nghttp2 1.52 (Debian, with its backported CVE fixes) enforces on
/// requests, answering RST_STREAM PROTOCOL_ERROR for a stream error or GOAWAY
/// for a connection error: pseudo-header presence, order, duplicates and
/// unknown names; `:path` form; uppercase and invalid names, invalid value
/// bytes; connection-specific fields and `te` other than `trailers`;
/// content-length syntax and its match with the DATA received; frames on
/// idle streams; flow-control window overflow; frame sizes;
/// SETTINGS and PING ACK floods (`maxOutboundAcks`, `maxSettingsEntries`);
/// CONTINUATION floods (`maxContinuations`); streams over
/// `maxConcurrentStreams` (REFUSED_STREAM). What this session adds: the
/// header-list size limit (431 for requests), `:authority` vs `host`
/// (PROTOCOL_ERROR), frames on closed streams, decreasing stream IDs and
/// PRIORITY checks (RFC 9113 §5.1, §5.1.1, §5.3.1, §6.3; see
/// `HTTP2SessionCore+StreamStates.swift`), Rapid Reset and control-frame rate caps (GOAWAY
/// ENHANCE_YOUR_CALM), settings and idle timeouts, the graceful shutdown
/// sequence, HEAD/204/304 responses without bodies, and receive windows
/// reopened only when the proxy says it forwarded the bytes.
///
/// Threading: not thread-safe; owned by one event loop.
public final class HTTP2ServerSession {
    let core: HTTP2SessionCore

    /// A session for a connection just accepted; its SETTINGS are already
    /// queued as output. `clock` returns monotonic nanoseconds (injectable for tests).
    public init(
        settings: HTTP2Settings = HTTP2Settings(), delegate: any HTTP2ServerSessionDelegate,
        clock: @escaping () -> UInt64 = HTTP2Clock.monotonicNanoseconds
    ) {
        core = HTTP2SessionCore(role: .server, settings: settings, clock: clock)
        core.serverDelegate = delegate
    }

    /// The delegate, not retained: it must outlive the session (the connection
    /// that owns the session is its delegate).
    public var delegate: (any HTTP2ServerSessionDelegate)? {
        get { core.serverDelegate }
        set { core.serverDelegate = newValue }
    }

    /// Feeds bytes read from the client, starting with the connection preface.
    /// Events fire during the call. On a thrown error, write the pending output
    /// (it may hold a GOAWAY) and close. After the session decided to close
    /// (`closeReason`), further input is ignored.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2SessionError) {
        try core.receive(bytes)
    }

    /// The next bytes to write, or an empty buffer when there are none. Valid
    /// until the next call into the session; a short socket write must copy the rest.
    public func nextOutputChunk() -> UnsafeRawBufferPointer { core.nextOutputChunk() }

    /// Appends pending output to `buffer` until none is left or at least
    /// `maxBytes` were appended (may pass it by less than one frame). Returns the count.
    @discardableResult
    public func produceOutput(into buffer: inout [UInt8], maxBytes: Int = .max) -> Int {
        core.produceOutput(into: &buffer, maxBytes: maxBytes)
    }

    /// nghttp2 wants more input. False (with `wantsWrite` false) means the
    /// connection is done: close it.
    public var wantsRead: Bool { core.wantsRead }
    /// There is output to produce.
    public var wantsWrite: Bool { core.wantsWrite }
    /// Neither reading nor writing is wanted: close the socket.
    public var isFinished: Bool { !core.wantsRead && !core.wantsWrite }
    /// Set when the session decided the connection must close (rapid reset,
    /// flood, timeout, fatal input): stop reading, flush output, then close.
    public var closeReason: HTTP2CloseReason? { core.closeReason }
    /// Shorthand for `closeReason != nil`.
    public var connectionShouldClose: Bool { core.closeReason != nil }
    /// Streams open at the moment (seen by the delegate or answered by the session).
    public var openStreamCount: Int { core.streams.count }
    /// Resets charged to the client so far (Rapid Reset accounting), for metrics.
    public var resetsCounted: Int { core.resetsCounted }
    /// Frames charged to the client's control-frame budget so far, for tests.
    public var controlFramesCounted: Int { core.controlFramesCounted }

    /// Submits the response head. `fields` are regular fields, lowercase names,
    /// no connection-specific ones (see `HTTP2Fields.isConnectionSpecific`).
    /// A 1xx status sends an informational head; call again for the final one.
    /// With `hasBody` false (or for HEAD, 204 and 304, whatever `hasBody`) the
    /// HEADERS frame ends the stream and later body bytes are dropped.
    /// Returns false when the stream is gone or already has a final head.
    @discardableResult
    public func submitResponse(stream: Int32, status: Int, fields: HTTP2Fields, hasBody: Bool) -> Bool {
        guard let state = core.streams[stream], !state.headSubmitted, !state.localReset else { return false }
        if status < 200 {
            let rv = core.withNameValues(status: status, fields: fields) { list, count in
                nghttp2_submit_headers(core.session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, nil, list, count, nil)
            }
            return rv == 0
        }
        let body = hasBody && !state.isHeadRequest && status != 204 && status != 304
        state.headSubmitted = true
        state.discardBody = !body
        if !body {
            state.sendEnded = true
            state.sendBuffer.removeAll(keepingCapacity: true)
            state.sendOffset = 0
        }
        state.bodyProviderActive = body
        var provider = HTTP2SessionCore.dataProvider()
        let rv = core.withNameValues(status: status, fields: fields) { list, count in
            body ? nghttp2_submit_response(core.session, stream, list, count, &provider)
                : nghttp2_submit_response(core.session, stream, list, count, nil)
        }
        return rv == 0
    }

    /// Queues response body bytes (copied) for the stream; nghttp2 sends them
    /// as the client's flow-control window allows. May be called before
    /// `submitResponse`. Returns the stream's buffered byte count (stop reading
    /// the upstream at `streamSendBufferHighWater`, resume on `streamWritable`),
    /// or nil when the stream is gone or its body already ended.
    @discardableResult
    public func submitData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) -> Int? {
        core.submitData(stream: stream, bytes: bytes, endStream: endStream)
    }

    /// Queues trailers that end the response after the buffered body (needs a
    /// head submitted with `hasBody`). Returns false when the body already ended.
    @discardableResult
    public func submitTrailers(stream: Int32, fields: HTTP2Fields) -> Bool {
        core.submitTrailers(stream: stream, fields: fields)
    }

    /// Response body bytes buffered for the stream and not yet sent.
    public func bufferedBytes(stream: Int32) -> Int { core.bufferedBytes(stream: stream) }

    /// Acknowledges `bytes` of request body delivered by `requestData` as
    /// forwarded: nghttp2 reopens the stream and connection windows
    /// (WINDOW_UPDATE) once enough is acknowledged. Unknown streams are
    /// ignored (closing a stream acknowledges its remaining bytes).
    public func consumed(stream: Int32, bytes: Int) { core.consumed(stream: stream, bytes: bytes) }

    /// Resets the stream (RST_STREAM with `errorCode`); `streamClosed` follows.
    /// Not counted as the client's reset.
    public func resetStream(stream: Int32, errorCode: HTTP2ErrorCode) {
        core.resetStream(stream, errorCode: errorCode)
    }

    /// Resets the stream (RST_STREAM with NO_ERROR) right after the response
    /// submitted for it has been sent whole (RFC 9113 §8.1): for a response
    /// given before the request body ended. Resetting at once would lose
    /// the response.
    public func resetStreamAfterResponse(stream: Int32) {
        core.resetStreamAfterResponse(stream)
    }

    /// Sends GOAWAY now. Streams up to `lastStream` may still complete.
    public func submitGoAway(lastStream: Int32, errorCode: HTTP2ErrorCode) {
        core.submitGoAway(lastStream: lastStream, errorCode: errorCode)
    }

    /// Graceful shutdown (RFC 9113 §6.8): GOAWAY with stream 2^31-1 and a PING;
    /// when the PING's ACK arrives (one round trip), the final GOAWAY with the
    /// last stream processed follows by itself. Open streams finish; then
    /// `isFinished` turns true. Call `finishGracefulShutdown` if the ACK never comes.
    public func beginGracefulShutdown() { core.beginGracefulShutdown() }

    /// Sends the final GOAWAY (NO_ERROR, last stream processed) now.
    public func finishGracefulShutdown() { core.finishGracefulShutdown() }

    /// Checks the settings-ACK and idle deadlines against the clock (call from
    /// the loop's periodic tick); when one passed, queues the GOAWAY and
    /// returns the reason (also in `closeReason`).
    @discardableResult
    public func checkTimeouts() -> HTTP2CloseReason? { core.checkTimeouts() }
}
