import CNGHTTP2

/// Events of an `HTTP2ClientSession` (an upstream connection), delivered
/// synchronously from inside `receive` / output calls on the session's loop.
public protocol HTTP2ClientSessionDelegate: AnyObject {
    /// The final response head (status ≥ 200). `endStream` true: no body follows.
    func responseHead(stream: Int32, head: HTTP2ResponseHead, endStream: Bool)
    /// A 1xx informational head (for example 103); a final head follows.
    func informationalResponse(stream: Int32, head: HTTP2ResponseHead)
    /// Response body bytes, valid only during the call; acknowledge with
    /// `consumed(stream:bytes:)` once forwarded. The end arrives as empty bytes
    /// with `endStream` true, unless trailers end the response.
    func responseData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool)
    /// Response trailers (for gRPC: `grpc-status`, `grpc-message`); they end the response.
    func responseTrailers(stream: Int32, fields: HTTP2Fields)
    /// The stream closed. `.refusedStream` (also after the server's GOAWAY for
    /// streams above its last stream id) means the server did not process the
    /// request: safe to retry elsewhere.
    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode)
    /// The server sent GOAWAY: open no new streams on this connection.
    func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode)
    /// The stream's buffered request body fell below the high-water mark.
    func streamWritable(stream: Int32)
}

extension HTTP2ClientSessionDelegate {
    public func informationalResponse(stream: Int32, head: HTTP2ResponseHead) {}
    public func responseTrailers(stream: Int32, fields: HTTP2Fields) {}
    public func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode) {}
    public func streamWritable(stream: Int32) {}
}

/// One HTTP/2 client connection to an upstream (gRPC, H2C), many streams
/// multiplexed, socket-free like `HTTP2ServerSession`. The first output holds
/// the connection preface and SETTINGS. nghttp2 validates responses as it does
/// requests on the server side (pseudo-headers, field syntax, content-length).
///
/// Threading: not thread-safe; owned by one event loop.
public final class HTTP2ClientSession {
    let core: HTTP2SessionCore

    /// A session for a freshly connected upstream. `clock` as for the server.
    public init(
        settings: HTTP2Settings = HTTP2Settings(), delegate: any HTTP2ClientSessionDelegate,
        clock: @escaping () -> UInt64 = HTTP2Clock.monotonicNanoseconds
    ) {
        core = HTTP2SessionCore(role: .client, settings: settings, clock: clock)
        core.clientDelegate = delegate
    }

    /// The delegate, not retained: it must outlive the session (the connection
    /// that owns the session is its delegate).
    public var delegate: (any HTTP2ClientSessionDelegate)? {
        get { core.clientDelegate }
        set { core.clientDelegate = newValue }
    }

    /// Submits a request: `fields` starts with the pseudo-headers (`:method`,
    /// `:scheme`, `:authority`, `:path`, see `HTTP2Fields.request`) followed by
    /// regular lowercase fields. With `hasBody`, send the body with
    /// `submitData`/`submitTrailers`. Returns the new stream id, or nil when
    /// nghttp2 refuses (GOAWAY received, stream ids exhausted). Requests above
    /// the server's concurrency limit wait inside nghttp2 until a stream frees.
    public func submitRequest(fields: HTTP2Fields, hasBody: Bool) -> Int32? {
        // nghttp2 would accept it and refuse it later; say no at once after a GOAWAY.
        guard core.closeReason == nil, nghttp2_session_check_request_allowed(core.session) != 0 else { return nil }
        var provider = HTTP2SessionCore.dataProvider()
        let id = core.withNameValues(status: nil, fields: fields) { list, count in
            hasBody ? nghttp2_submit_request(core.session, nil, list, count, &provider, nil)
                : nghttp2_submit_request(core.session, nil, list, count, nil, nil)
        }
        guard id > 0 else { return nil }
        let state = core.makeStream(id: id)
        state.headSubmitted = true
        state.bodyProviderActive = hasBody
        state.sendEnded = !hasBody
        state.discardBody = !hasBody
        return id
    }

    /// Feeds bytes read from the upstream; see `HTTP2ServerSession.receive`.
    public func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2SessionError) { try core.receive(bytes) }
    /// The next bytes to write (valid until the next call into the session).
    public func nextOutputChunk() -> UnsafeRawBufferPointer { core.nextOutputChunk() }
    /// Appends pending output to `buffer`; returns the count.
    @discardableResult
    public func produceOutput(into buffer: inout [UInt8], maxBytes: Int = .max) -> Int {
        core.produceOutput(into: &buffer, maxBytes: maxBytes)
    }
    /// nghttp2 wants more input.
    public var wantsRead: Bool { core.wantsRead }
    /// There is output to produce.
    public var wantsWrite: Bool { core.wantsWrite }
    /// Neither reading nor writing is wanted: close the socket.
    public var isFinished: Bool { !core.wantsRead && !core.wantsWrite }
    /// Set when the session decided the connection must close.
    public var closeReason: HTTP2CloseReason? { core.closeReason }
    /// Streams open now.
    public var openStreamCount: Int { core.streams.count }
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive).
    public var remoteMaxConcurrentStreams: UInt32 {
        nghttp2_session_get_remote_settings(core.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
    }
    /// True when a new request would start at once (below the server's limit, no GOAWAY).
    public var canOpenStream: Bool {
        core.closeReason == nil && core.shutdown == .none && nghttp2_session_check_request_allowed(core.session) != 0
            && UInt32(core.streams.count) < remoteMaxConcurrentStreams
    }

    /// Queues request body bytes; see `HTTP2ServerSession.submitData`.
    @discardableResult
    public func submitData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) -> Int? {
        core.submitData(stream: stream, bytes: bytes, endStream: endStream)
    }
    /// Queues request trailers that end the request body.
    @discardableResult
    public func submitTrailers(stream: Int32, fields: HTTP2Fields) -> Bool { core.submitTrailers(stream: stream, fields: fields) }
    /// Request body bytes buffered and not yet sent.
    public func bufferedBytes(stream: Int32) -> Int { core.bufferedBytes(stream: stream) }
    /// Acknowledges response body bytes as forwarded (reopens windows).
    public func consumed(stream: Int32, bytes: Int) { core.consumed(stream: stream, bytes: bytes) }
    /// Resets the stream (for example CANCEL when the downstream client went away).
    public func resetStream(stream: Int32, errorCode: HTTP2ErrorCode) { core.resetStream(stream, errorCode: errorCode) }
    /// Sends GOAWAY NO_ERROR: no new streams; open ones finish.
    public func submitGoAway(errorCode: HTTP2ErrorCode = .noError) {
        core.submitGoAway(lastStream: 0, errorCode: errorCode)
    }
    /// Checks the settings-ACK and idle deadlines; see `HTTP2ServerSession.checkTimeouts`.
    @discardableResult
    public func checkTimeouts() -> HTTP2CloseReason? { core.checkTimeouts() }
}

extension HTTP2Fields {
    /// A request's pseudo-headers in RFC 9113 §8.3.1 order, ready for regular
    /// fields to be appended and for `HTTP2ClientSession.submitRequest`.
    public static func request<Method: Sequence, Scheme: Sequence, Authority: Sequence, Path: Sequence>(
        method: Method, scheme: Scheme, authority: Authority, path: Path
    ) -> HTTP2Fields
    where Method.Element == UInt8, Scheme.Element == UInt8, Authority.Element == UInt8, Path.Element == UInt8 {
        var fields = HTTP2Fields(byteCapacity: 256, fieldCapacity: 16)
        fields.append(":method", value: method)
        fields.append(":scheme", value: scheme)
        fields.append(":authority", value: authority)
        fields.append(":path", value: path)
        return fields
    }
}
