/// Appends HTTP/1.1 framing bytes to a caller's buffer. No Strings are built at
/// runtime: text comes from `StaticString` constants and digit loops.
public enum HTTP1Serializer {
    private static let hexDigits: StaticString = "0123456789abcdef"

    /// Appends the bytes of `s` (which must have a pointer representation, as literals do).
    @inline(__always)
    public static func append(_ s: StaticString, to out: inout [UInt8]) {
        precondition(s.hasPointerRepresentation, "HTTP1Serializer.append needs an ASCII StaticString literal")
        out.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends `"<lowercase hex size>\r\n"`, the line that starts a chunk.
    public static func appendChunkHeader(size: Int, to out: inout [UInt8]) {
        precondition(size >= 0, "chunk size must not be negative")
        appendHex(UInt64(size), to: &out)
        out.append(ByteClass.cr)
        out.append(ByteClass.lf)
    }

    /// Appends `"\r\n"`, which follows the data of each chunk.
    @inline(__always)
    public static func appendChunkTerminator(to out: inout [UInt8]) {
        out.append(ByteClass.cr)
        out.append(ByteClass.lf)
    }

    /// Appends `"0\r\n"`, the trailer field lines (each ending in CRLF, as `HTTP1ChunkedEvent.end`
    /// reports them) and the final `"\r\n"`.
    public static func appendLastChunk(trailers: UnsafeRawBufferPointer?, to out: inout [UInt8]) {
        append("0\r\n", to: &out)
        if let trailers, trailers.count > 0 { out.append(contentsOf: trailers) }
        out.append(ByteClass.cr)
        out.append(ByteClass.lf)
    }

    /// Appends `value` in decimal ASCII, without allocating.
    public static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        // Most significant digit first: find the largest power of ten not above value.
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor &*= 10 }
        var rest = value
        while true {
            out.append(UInt8(truncatingIfNeeded: rest / divisor) &+ 0x30)
            rest %= divisor
            if divisor == 1 { break }
            divisor /= 10
        }
    }

    /// Appends `value` in lowercase hexadecimal ASCII, without leading zeros.
    public static func appendHex(_ value: UInt64, to out: inout [UInt8]) {
        let digits = hexDigits.utf8Start
        var shift = 60
        while shift > 0 && (value >> UInt64(shift)) == 0 { shift -= 4 }
        while shift >= 0 {
            out.append(digits[Int((value >> UInt64(shift)) & 0xF)])
            shift -= 4
        }
    }

    /// Appends `"HTTP/1.1 <status> <reason>\r\n"`, the reason from `reasonPhrase(_:)`.
    public static func appendStatusLine(_ status: Int, to out: inout [UInt8]) {
        precondition(status >= 100 && status <= 999, "status code must have three digits")
        append("HTTP/1.1 ", to: &out)
        out.append(UInt8(truncatingIfNeeded: status / 100) &+ 0x30)
        out.append(UInt8(truncatingIfNeeded: status / 10 % 10) &+ 0x30)
        out.append(UInt8(truncatingIfNeeded: status % 10) &+ 0x30)
        out.append(ByteClass.sp)
        append(reasonPhrase(status), to: &out)
        out.append(ByteClass.cr)
        out.append(ByteClass.lf)
    }

    /// The standard reason phrase for `status` (RFC 9110 §15); empty for unregistered codes.
    public static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 103: return "Early Hints"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 203: return "Non-Authoritative Information"
        case 204: return "No Content"
        case 205: return "Reset Content"
        case 206: return "Partial Content"
        case 300: return "Multiple Choices"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 411: return "Length Required"
        case 412: return "Precondition Failed"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 416: return "Range Not Satisfiable"
        case 417: return "Expectation Failed"
        case 421: return "Misdirected Request"
        case 422: return "Unprocessable Content"
        case 425: return "Too Early"
        case 426: return "Upgrade Required"
        case 428: return "Precondition Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return ""
        }
    }
}
