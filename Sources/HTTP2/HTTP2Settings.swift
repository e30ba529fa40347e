/// Limits and protocol settings for one HTTP/2 connection, with safe defaults.
///
/// A plain value: the proxy builds one from its settings file at start-up and
/// hands it to every session. Values the peer sees are sent in the initial
/// SETTINGS frame; the rest are local limits enforced by the session (or by
/// nghttp2 where it can, see `docs` in `HTTP2ServerSession`).
public struct HTTP2Settings: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we advertise (RFC 9113 §6.5.2); nghttp2
    /// refuses streams above it with RST_STREAM REFUSED_STREAM.
    public var maxConcurrentStreams: UInt32 = 128
    /// SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce on every received
    /// header section (name + value + 32 per field, RFC 9113 §6.5.2). A request
    /// over it gets a 431 response; a response or trailers over it a stream reset.
    public var maxHeaderListSize: UInt32 = 32 * 1024
    /// SETTINGS_INITIAL_WINDOW_SIZE: how many request (or response, for a client
    /// session) body bytes a peer may send on one stream before we acknowledge them.
    public var initialStreamWindowSize: UInt32 = 65_535
    /// Receive window of the whole connection (raised with a WINDOW_UPDATE on
    /// stream 0 at start). Bounds the unacknowledged body bytes of all streams.
    public var initialConnectionWindowSize: UInt32 = 1 << 20
    /// SETTINGS_MAX_FRAME_SIZE we accept (16 KiB .. 16 MiB - 1).
    public var maxFrameSize: UInt32 = 16_384
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK decoder's dynamic table (HPACK bomb bound).
    public var headerTableSize: UInt32 = 4_096
    /// Upper bound on our HPACK encoder's dynamic table, whatever the peer offers.
    public var maxEncoderTableSize: Int = 4_096
    /// CONTINUATION frames accepted after one HEADERS frame (CVE-2024-27316 style floods).
    public var maxContinuations: Int = 8
    /// Rapid Reset (CVE-2023-44487): stream resets per second a client may cause
    /// (its RST_STREAMs plus streams we reset for its protocol errors) before the
    /// connection gets GOAWAY ENHANCE_YOUR_CALM.
    public var maxResetsPerSecond: Int = 100
    /// Frames per second that cost work without carrying a request or body
    /// bytes a peer may send before GOAWAY ENHANCE_YOUR_CALM (CVE-2019-9512,
    /// -9514, -9515, -9518): SETTINGS, PING, PRIORITY, GOAWAY, PUSH_PROMISE,
    /// unknown frame types, empty DATA without END_STREAM, empty HEADERS or
    /// CONTINUATION, and WINDOW_UPDATE beyond two per DATA frame we sent
    /// (plus one per stream the peer opened and 16 at the start).
    public var maxControlFramesPerSecond: Int = 200
    /// Queued SETTINGS/PING ACKs a peer that does not read may cause before
    /// nghttp2 closes the session (its own flood guard).
    public var maxOutboundAcks: Int = 1_000
    /// Entries accepted in one SETTINGS frame.
    public var maxSettingsEntries: Int = 32
    /// A stream's response body bytes buffered in the session at or above which
    /// the proxy should stop reading from the upstream (see `bufferedBytes(stream:)`);
    /// `streamWritable` fires when the buffer drains below it again.
    public var streamSendBufferHighWater: Int = 64 * 1024
    /// Seconds without any open stream and without frames before `checkTimeouts`
    /// closes the connection with GOAWAY NO_ERROR. 0 turns it off.
    public var idleTimeoutSeconds: UInt32 = 60
    /// Seconds the peer has to acknowledge our SETTINGS (RFC 9113 §6.5.3) before
    /// `checkTimeouts` closes with GOAWAY SETTINGS_TIMEOUT. 0 turns it off.
    public var settingsTimeoutSeconds: UInt32 = 10

    /// The defaults above.
    public init() {}

    /// A one-line description of the first out-of-range value, for a fail-fast
    /// start-up message; nil when every value is usable.
    public func validationError() -> String? {
        if maxConcurrentStreams == 0 { return "http2 max concurrent streams must be at least 1" }
        if maxHeaderListSize < 1_024 { return "http2 max header list size must be at least 1024 bytes" }
        if initialStreamWindowSize > 0x7fff_ffff { return "http2 initial stream window must be at most 2^31-1" }
        if initialConnectionWindowSize < 65_535 || initialConnectionWindowSize > 0x7fff_ffff {
            return "http2 initial connection window must be between 65535 and 2^31-1"
        }
        if maxFrameSize < 16_384 || maxFrameSize > 16_777_215 { return "http2 max frame size must be between 16384 and 16777215" }
        if maxContinuations < 1 { return "http2 max continuations must be at least 1" }
        if maxResetsPerSecond < 1 { return "http2 max resets per second must be at least 1" }
        if maxControlFramesPerSecond < 1 { return "http2 max control frames per second must be at least 1" }
        if streamSendBufferHighWater < 1 { return "http2 stream send buffer high water must be at least 1" }
        return nil
    }
}

/// HTTP/2 error codes (RFC 9113 §7), as sent in RST_STREAM and GOAWAY.
public struct HTTP2ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noError = HTTP2ErrorCode(rawValue: 0x0)
    public static let protocolError = HTTP2ErrorCode(rawValue: 0x1)
    public static let internalError = HTTP2ErrorCode(rawValue: 0x2)
    public static let flowControlError = HTTP2ErrorCode(rawValue: 0x3)
    public static let settingsTimeout = HTTP2ErrorCode(rawValue: 0x4)
    public static let streamClosed = HTTP2ErrorCode(rawValue: 0x5)
    public static let frameSizeError = HTTP2ErrorCode(rawValue: 0x6)
    public static let refusedStream = HTTP2ErrorCode(rawValue: 0x7)
    public static let cancel = HTTP2ErrorCode(rawValue: 0x8)
    public static let compressionError = HTTP2ErrorCode(rawValue: 0x9)
    public static let connectError = HTTP2ErrorCode(rawValue: 0xa)
    public static let enhanceYourCalm = HTTP2ErrorCode(rawValue: 0xb)
    public static let inadequateSecurity = HTTP2ErrorCode(rawValue: 0xc)
    public static let http11Required = HTTP2ErrorCode(rawValue: 0xd)

    public var description: String {
        switch rawValue {
        case 0x0: return "NO_ERROR"
        case 0x1: return "PROTOCOL_ERROR"
        case 0x2: return "INTERNAL_ERROR"
        case 0x3: return "FLOW_CONTROL_ERROR"
        case 0x4: return "SETTINGS_TIMEOUT"
        case 0x5: return "STREAM_CLOSED"
        case 0x6: return "FRAME_SIZE_ERROR"
        case 0x7: return "REFUSED_STREAM"
        case 0x8: return "CANCEL"
        case 0x9: return "COMPRESSION_ERROR"
        case 0xa: return "CONNECT_ERROR"
        case 0xb: return "ENHANCE_YOUR_CALM"
        case 0xc: return "INADEQUATE_SECURITY"
        case 0xd: return "HTTP_1_1_REQUIRED"
        default: return "UNKNOWN(\(rawValue))"
        }
    }
}

/// Why a session decided the connection must close (after its output is flushed).
public enum HTTP2CloseReason: Sendable, Equatable {
    /// Rapid Reset: too many stream resets per second (GOAWAY ENHANCE_YOUR_CALM sent).
    case rapidReset
    /// Too many frames that carry no request per second: PING, SETTINGS,
    /// PRIORITY, unearned WINDOW_UPDATE, empty DATA... (GOAWAY ENHANCE_YOUR_CALM sent).
    case controlFrameFlood
    /// The peer did not acknowledge our SETTINGS in time (GOAWAY SETTINGS_TIMEOUT sent).
    case settingsTimeout
    /// No stream and no frame for the idle timeout (GOAWAY NO_ERROR sent).
    case idle
    /// The bytes were not HTTP/2 or broke the protocol beyond recovery; nghttp2
    /// queued a GOAWAY where one applies.
    case protocolError(HTTP2SessionError)
}

/// A fatal error from the session's input or output processing: write any
/// pending output (it may hold a GOAWAY), then close the connection.
public enum HTTP2SessionError: Error, Sendable, Equatable {
    /// The client's first bytes were not the HTTP/2 connection preface.
    case badClientPreface
    /// The peer flooded us (nghttp2's own guard, e.g. unread SETTINGS/PING ACKs).
    case flooded
    /// The session was already terminated (a previous error, or a GOAWAY we sent).
    case terminated
    /// Any other nghttp2 error, by its library code (negative `nghttp2_error`).
    case library(code: Int32)
    /// A frame the stream states of RFC 9113 §5.1, §5.1.1 or §6.3 forbid as a
    /// connection error (a HEADERS on a closed or skipped stream, PRIORITY on
    /// stream 0...): GOAWAY with this code was queued.
    case streamState(HTTP2ErrorCode)
}
