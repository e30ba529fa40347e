/// The protocol version of a message; only HTTP/1.0 and HTTP/1.1 parse.
public enum HTTP1Version: Sendable, Equatable {
    /// HTTP/1.0: no persistent connection unless `Connection: keep-alive`.
    case http10
    /// HTTP/1.1: persistent connection unless `Connection: close`.
    case http11
}

/// Classification of a header name, computed once at parse time
/// (case-insensitive compare of the name bytes).
public enum HTTP1HeaderName: UInt8, Sendable {
    /// Any name not listed below.
    case other
    /// `Host`.
    case host
    /// `Content-Length`.
    case contentLength
    /// `Transfer-Encoding`.
    case transferEncoding
    /// `Connection`.
    case connection
    /// `Keep-Alive`.
    case keepAlive
    /// `TE`.
    case te
    /// `Trailer`.
    case trailer
    /// `Upgrade`.
    case upgrade
    /// `Proxy-Connection` (non-standard, still sent by old clients).
    case proxyConnection
    /// `Proxy-Authorization`.
    case proxyAuthorization
    /// `Expect`.
    case expect
    /// `X-Forwarded-For`.
    case xForwardedFor
    /// `X-Forwarded-Proto`.
    case xForwardedProto
    /// `X-Forwarded-Host`.
    case xForwardedHost
    /// `X-Forwarded-Port`.
    case xForwardedPort
    /// `X-Real-IP`.
    case xRealIP
    /// `X-Request-ID`.
    case xRequestID
}

/// One header field line, as offsets into the buffer that was parsed.
public struct HTTP1HeaderField: Sendable, Equatable {
    /// Offsets of the field name in the head buffer (the buffer passed to parse).
    public var name: Range<Int>
    /// Offsets of the value, leading and trailing OWS trimmed (may be empty).
    public var value: Range<Int>
    /// Which well-known field this is, if any.
    public var kind: HTTP1HeaderName
    /// True for hop-by-hop fields a proxy must not forward: Connection, Keep-Alive, TE, Trailer,
    /// Transfer-Encoding, Upgrade, Proxy-Connection, Proxy-Authorization, and any field whose name
    /// is listed as a token in a Connection header (RFC 9110 §7.6.1). Computed after the whole head
    /// is parsed. Content-Length and Host are never marked through Connection: dropping them would
    /// change the framing or routing the proxy already decided on (a smuggling vector).
    public var isHopByHop: Bool
    /// The name holds `_` (dropped by default before forwarding: backends
    /// that map `-` and `_` to one variable would read it as another field).
    public var nameHasUnderscore: Bool

    /// Creates a field from offsets.
    public init(name: Range<Int>, value: Range<Int>, kind: HTTP1HeaderName, isHopByHop: Bool, nameHasUnderscore: Bool = false) {
        self.name = name
        self.value = value
        self.kind = kind
        self.isHopByHop = isHopByHop
        self.nameHasUnderscore = nameHasUnderscore
    }
}

/// How the message body is delimited (RFC 9112 §6.3).
public enum HTTP1BodyFraming: Sendable, Equatable {
    /// No body.
    case none
    /// Exactly this many bytes follow the head (zero is possible: no body).
    case contentLength(UInt64)
    /// Chunked transfer coding; decode with `HTTP1ChunkedDecoder`.
    case chunked
    /// Responses only: no length and no chunked, so the body ends when the connection closes.
    case untilClose
}

/// A parsed request head. Keep one per connection and pass it `inout` to
/// `HTTP1Parser.parseRequestHead`; its `fields` array keeps its capacity, so a
/// steady stream of requests does not allocate.
public struct HTTP1RequestHead: Sendable {
    /// Offsets of the method token.
    public var method: Range<Int>
    /// The method is exactly `HEAD`.
    public var isHEAD: Bool
    /// The method is exactly `CONNECT`.
    public var isCONNECT: Bool
    /// Offsets of the request-target as sent.
    public var target: Range<Int>
    /// The request's protocol version.
    public var version: HTTP1Version
    /// Header fields in order.
    public var fields: [HTTP1HeaderField]
    /// Bytes of the head, including leading empty lines and the final CRLFCRLF.
    public var headLength: Int
    /// How the request body is delimited: `.none`, `.contentLength` or `.chunked`.
    public var framing: HTTP1BodyFraming
    /// Offsets of the value of the single Host field, if any.
    public var host: Range<Int>?
    /// HTTP/1.1: true unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    public var keepAlive: Bool
    /// HTTP/1.1 request with `Expect: 100-continue` (case-insensitive).
    public var expectsContinue: Bool
    /// Offsets of the Upgrade value when Connection lists `upgrade`.
    public var upgrade: Range<Int>?

    /// An empty head, ready to be filled by the parser.
    public init() {
        method = 0..<0
        isHEAD = false
        isCONNECT = false
        target = 0..<0
        version = .http11
        fields = []
        headLength = 0
        framing = .none
        host = nil
        keepAlive = true
        expectsContinue = false
        upgrade = nil
    }
}

/// A parsed response head. Keep one per upstream connection and pass it `inout`
/// to `HTTP1Parser.parseResponseHead`.
public struct HTTP1ResponseHead: Sendable {
    /// The status code, 100–599.
    public var status: Int
    /// The response's protocol version.
    public var version: HTTP1Version
    /// Offsets of the reason phrase (may be empty).
    public var reason: Range<Int>
    /// Header fields in order.
    public var fields: [HTTP1HeaderField]
    /// Bytes of the head including the final CRLFCRLF.
    public var headLength: Int
    /// How the body is delimited; `.none` for 1xx, 204, 304 and responses to HEAD.
    public var framing: HTTP1BodyFraming
    /// Whether the connection may carry another request after this response.
    /// Always false when the body is delimited by close.
    public var keepAlive: Bool

    /// An empty head, ready to be filled by the parser.
    public init() {
        status = 0
        version = .http11
        reason = 0..<0
        fields = []
        headLength = 0
        framing = .none
        keepAlive = true
    }
}

/// Result of one head-parsing attempt.
public enum HTTP1HeadResult: Sendable, Equatable {
    /// Need more bytes (the head is not terminated yet, and no limit is exceeded).
    case incomplete
    /// The head is filled in; `headLength` bytes were consumed.
    case complete
    /// The head is invalid; answer with `error.statusCode` and close.
    case failed(HTTP1ParseError)
}
