/// What went wrong, and which status code a server answers with.
///
/// For a response from an upstream the status code does not apply: a proxy
/// answers its client with 502 whatever the case.
public enum HTTP1ParseError: Error, Equatable, Sendable {
    /// The message breaks the grammar or a framing rule; 400.
    case badRequest(HTTP1Violation)
    /// The request-target exceeds `HTTP1Limits.maxRequestTargetLength`; 414.
    case uriTooLong
    /// The head exceeds `HTTP1Limits.maxHeaderSectionBytes` or `maxHeaderCount`; 431.
    case headerSectionTooLarge
    /// Transfer-Encoding names a coding other than `chunked` (gzip, deflate, unknown); 501.
    case unsupportedTransferCoding
    /// A well-formed `HTTP/x.y` version other than 1.0 and 1.1 (HTTP/2.0, HTTP/3.1); 505.
    case versionNotSupported

    /// The status code a server answers this error with.
    public var statusCode: Int {
        switch self {
        case .badRequest: return 400
        case .uriTooLong: return 414
        case .headerSectionTooLarge: return 431
        case .unsupportedTransferCoding: return 501
        case .versionNotSupported: return 505
        }
    }
}

/// The named reason behind a `HTTP1ParseError.badRequest`.
public enum HTTP1Violation: Sendable, Equatable {
    /// Request line is not `method SP request-target SP HTTP-version CRLF`
    /// (includes HTTP/0.9 requests without a version, and extra spaces).
    case malformedRequestLine
    /// Status line is not `HTTP-version SP 3DIGIT SP reason CRLF` or the code is outside 100–599.
    case malformedStatusLine
    /// A line ends in LF without CR (RFC 9112 §2.2 allows rejecting it; we do).
    case bareLineFeed
    /// A CR not followed by LF outside a field value.
    case bareCarriageReturn
    /// A field line starts with SP or HTAB (obs-fold, RFC 9112 §5.2).
    case obsoleteLineFolding
    /// Whitespace between a field name and its colon (RFC 9112 §5.1).
    case whitespaceBeforeColon
    /// A field name is empty or not a token, or the line has no colon.
    case invalidHeaderName
    /// A field value holds a bare CR, NUL or another control byte except HTAB.
    case invalidHeaderValue
    /// HTTP/1.1 request without a Host field (RFC 9112 §3.2).
    case missingHost
    /// More than one Host field.
    case multipleHost
    /// The Host value holds bytes that cannot appear in `uri-host [ ":" port ]` (RFC 3986 §3.2.2).
    case invalidHost
    /// Content-Length is not 1*DIGIT (at most 19 digits).
    case invalidContentLength
    /// Content-Length fields or list members with different values.
    case conflictingContentLength
    /// Both Content-Length and Transfer-Encoding (RFC 9112 §6.1: a smuggling vector).
    case contentLengthAndTransferEncoding
    /// The final transfer coding of a request is not `chunked` (RFC 9112 §6.3).
    case transferEncodingNotEndingInChunked
    /// `chunked` applied more than once.
    case chunkedAppliedTwice
    /// A Transfer-Encoding list member is empty or not a token.
    case invalidTransferEncoding
    /// Transfer-Encoding in an HTTP/1.0 message (RFC 9112 §6.1).
    case transferEncodingInHTTP10
    /// Chunk size is empty, not hex, longer than 16 digits, or has stray whitespace.
    case invalidChunkSize
    /// A chunk extension is not `;name[=token|quoted-string]`.
    case invalidChunkExtension
    /// A chunk-size line is longer than 4096 bytes.
    case chunkSizeLineTooLong
    /// Chunk data is not followed by CRLF.
    case invalidChunkTerminator
    /// A trailer field line is malformed.
    case invalidTrailer
    /// The trailer section exceeds 32 KiB.
    case trailerSectionTooLarge

    /// Short human-readable text, suitable for a log line or an error body.
    public var reason: StaticString {
        switch self {
        case .malformedRequestLine: return "malformed request line"
        case .malformedStatusLine: return "malformed status line"
        case .bareLineFeed: return "bare LF line ending"
        case .bareCarriageReturn: return "bare CR"
        case .obsoleteLineFolding: return "obsolete line folding"
        case .whitespaceBeforeColon: return "whitespace before colon in field line"
        case .invalidHeaderName: return "invalid header field name"
        case .invalidHeaderValue: return "invalid header field value"
        case .missingHost: return "missing Host header"
        case .multipleHost: return "multiple Host headers"
        case .invalidHost: return "invalid Host header"
        case .invalidContentLength: return "invalid Content-Length"
        case .conflictingContentLength: return "conflicting Content-Length values"
        case .contentLengthAndTransferEncoding: return "both Content-Length and Transfer-Encoding"
        case .transferEncodingNotEndingInChunked: return "Transfer-Encoding does not end in chunked"
        case .chunkedAppliedTwice: return "chunked applied more than once"
        case .invalidTransferEncoding: return "invalid Transfer-Encoding"
        case .transferEncodingInHTTP10: return "Transfer-Encoding in HTTP/1.0 message"
        case .invalidChunkSize: return "invalid chunk size"
        case .invalidChunkExtension: return "invalid chunk extension"
        case .chunkSizeLineTooLong: return "chunk size line too long"
        case .invalidChunkTerminator: return "chunk data not followed by CRLF"
        case .invalidTrailer: return "invalid trailer field"
        case .trailerSectionTooLarge: return "trailer section too large"
        }
    }
}
