/// Byte classification and comparison helpers shared by the parsers.
/// Internal: the grammar lives in RFC 9110 §5.6 and RFC 9112.
enum ByteClass {
    static let cr: UInt8 = 0x0D
    static let lf: UInt8 = 0x0A
    static let sp: UInt8 = 0x20
    static let htab: UInt8 = 0x09
    static let colon: UInt8 = 0x3A
    static let comma: UInt8 = 0x2C
    static let semicolon: UInt8 = 0x3B

    // RFC 9110 §5.6.2 tchar, as bit sets over 0–63 and 64–127.
    private static let tokenLow: UInt64 = 0x03ff_6cfa_0000_0000
    private static let tokenHigh: UInt64 = 0x57ff_ffff_c7ff_fffe

    /// `tchar` without `_`: the field-name scan takes `_` on its slow path,
    /// so noting an underscore costs nothing for names without one.
    @inline(__always)
    static func isTokenOtherThanUnderscore(_ b: UInt8) -> Bool {
        if b < 64 { return (tokenLow >> UInt64(b)) & 1 == 1 }
        if b < 128 { return (0x57ff_ffff_47ff_fffe >> UInt64(b &- 64)) & 1 == 1 }
        return false
    }

    static let underscore = UInt8(ascii: "_")

    /// `tchar`: ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``.
    @inline(__always)
    static func isToken(_ b: UInt8) -> Bool {
        if b < 64 { return (tokenLow >> UInt64(b)) & 1 == 1 }
        if b < 128 { return (tokenHigh >> UInt64(b &- 64)) & 1 == 1 }
        return false
    }

    /// SP or HTAB (OWS / BWS).
    @inline(__always)
    static func isWhitespace(_ b: UInt8) -> Bool { b == sp || b == htab }

    /// field-vchar or SP/HTAB: everything except CTLs (but HTAB) and DEL; obs-text allowed.
    @inline(__always)
    static func isFieldValueByte(_ b: UInt8) -> Bool { (b >= 0x20 && b != 0x7F) || b == htab }

    /// A request-target byte: visible, no SP, no CTL, no DEL (obs-text is tolerated).
    @inline(__always)
    static func isTargetByte(_ b: UInt8) -> Bool { b > 0x20 && b != 0x7F }

    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    // RFC 3986 unreserved, sub-delims, "%" (pct-encoded), ":" (port) and "[" "]" (IP-literal).
    private static let hostLow: UInt64 = 0x2fff_7ff2_0000_0000
    private static let hostHigh: UInt64 = 0x47ff_fffe_afff_fffe

    /// Whether `bytes[range]` only holds bytes allowed in `uri-host [ ":" port ]`.
    /// An empty Host is allowed (RFC 9112 §3.2: no authority in the target).
    static func isHostValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        for index in range {
            let b = bytes[index]
            let allowed = b < 64 ? (hostLow >> UInt64(b)) & 1 == 1 : b < 128 && (hostHigh >> UInt64(b &- 64)) & 1 == 1
            if !allowed { return false }
        }
        return true
    }

    /// Value of a hex digit, or nil.
    @inline(__always)
    static func hexValue(_ b: UInt8) -> UInt64? {
        if b &- 0x30 < 10 { return UInt64(b &- 0x30) }
        let folded = b | 0x20
        if folded &- 0x61 < 6 { return UInt64(folded &- 0x61 &+ 10) }
        return nil
    }

    /// ASCII lowercase of a letter; other bytes unchanged.
    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b &- 0x41 < 26 ? b | 0x20 : b }

    /// Whether `bytes[range]` equals the lowercase ASCII `literal`, ignoring ASCII case.
    @inline(__always)
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard range.count == count else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < count {
            if lower(bytes[range.lowerBound &+ i]) != lit[i] { return false }
            i &+= 1
        }
        return true
    }

    /// Whether `bytes[range]` equals `literal` exactly (case-sensitive).
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard range.count == count else { return false }
        let lit = literal.utf8Start
        var i = 0
        while i < count {
            if bytes[range.lowerBound &+ i] != lit[i] { return false }
            i &+= 1
        }
        return true
    }

    /// Whether two ranges of the same buffer hold the same bytes, ignoring ASCII case.
    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var i = 0
        while i < a.count {
            if lower(bytes[a.lowerBound &+ i]) != lower(bytes[b.lowerBound &+ i]) { return false }
            i &+= 1
        }
        return true
    }

    /// Calls `body` with each comma-separated list member of `bytes[range]`, OWS trimmed.
    /// Empty members are passed too (RFC 9110 §5.6.1 lets recipients ignore them; callers decide).
    /// Stops early when `body` returns false.
    @inline(__always)
    static func forEachListMember(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ body: (Range<Int>) -> Bool) {
        var start = range.lowerBound
        while true {
            var end = start
            while end < range.upperBound && bytes[end] != comma { end &+= 1 }
            var lo = start
            var hi = end
            while lo < hi && isWhitespace(bytes[lo]) { lo &+= 1 }
            while hi > lo && isWhitespace(bytes[hi &- 1]) { hi &-= 1 }
            if !body(lo..<hi) { return }
            if end >= range.upperBound { return }
            start = end &+ 1
        }
    }
}

extension HTTP1HeaderName {
    /// Classifies the field name `bytes[range]` (a validated token).
    @inline(__always)
    static func classify(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTP1HeaderName {
        // Dispatch on length first: most names are rejected by one compare.
        switch range.count {
        case 2: return ByteClass.equalsIgnoringCase(bytes, range, "te") ? .te : .other
        case 4: return ByteClass.equalsIgnoringCase(bytes, range, "host") ? .host : .other
        case 6: return ByteClass.equalsIgnoringCase(bytes, range, "expect") ? .expect : .other
        case 7:
            if ByteClass.equalsIgnoringCase(bytes, range, "upgrade") { return .upgrade }
            if ByteClass.equalsIgnoringCase(bytes, range, "trailer") { return .trailer }
            return .other
        case 9: return ByteClass.equalsIgnoringCase(bytes, range, "x-real-ip") ? .xRealIP : .other
        case 10:
            if ByteClass.equalsIgnoringCase(bytes, range, "connection") { return .connection }
            if ByteClass.equalsIgnoringCase(bytes, range, "keep-alive") { return .keepAlive }
            return .other
        case 12: return ByteClass.equalsIgnoringCase(bytes, range, "x-request-id") ? .xRequestID : .other
        case 14: return ByteClass.equalsIgnoringCase(bytes, range, "content-length") ? .contentLength : .other
        case 15: return ByteClass.equalsIgnoringCase(bytes, range, "x-forwarded-for") ? .xForwardedFor : .other
        case 16:
            if ByteClass.equalsIgnoringCase(bytes, range, "x-forwarded-host") { return .xForwardedHost }
            if ByteClass.equalsIgnoringCase(bytes, range, "x-forwarded-port") { return .xForwardedPort }
            if ByteClass.equalsIgnoringCase(bytes, range, "proxy-connection") { return .proxyConnection }
            return .other
        case 17:
            if ByteClass.equalsIgnoringCase(bytes, range, "transfer-encoding") { return .transferEncoding }
            if ByteClass.equalsIgnoringCase(bytes, range, "x-forwarded-proto") { return .xForwardedProto }
            return .other
        case 19: return ByteClass.equalsIgnoringCase(bytes, range, "proxy-authorization") ? .proxyAuthorization : .other
        default: return .other
        }
    }

    /// Hop-by-hop by definition (RFC 9110 §7.6.1, plus Proxy-Connection and Proxy-Authorization).
    var isAlwaysHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .te, .trailer, .transferEncoding, .upgrade, .proxyConnection, .proxyAuthorization:
            return true
        default:
            return false
        }
    }
}
