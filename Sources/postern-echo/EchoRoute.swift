import Glibc
import HTTP1

/// What a request asks the echo server to do, decided from the path bytes
/// alone (no String is built for the fixed endpoints).
enum EchoRoute: Equatable {
    /// Default: answer with the request as JSON.
    case echo
    /// `/bytes/N`: N pattern bytes, Content-Length framing.
    case bytes(UInt64)
    /// `/chunked/N`: N pattern bytes, chunked framing and a trailer.
    case chunked(UInt64)
    /// `/truncated/N`: `Content-Length: N`, then only N/2 pattern bytes and
    /// a close: an upstream that dies in the middle of a body.
    case truncated(UInt64)
    /// `/status/CODE`: an empty body with that status.
    case status(Int)
    /// `/sleep/MS`: the echo answer after MS milliseconds.
    case sleep(UInt64)
    /// `/close`: the echo answer with `Connection: close`, then close.
    case close
    /// `/reset`: close without answering (RST).
    case reset
    /// `/malformed`: an invalid status line, then close.
    case malformed
    /// `/stats`: process-wide counters.
    case stats
    /// `/sink`: discard the body, report its size.
    case sink
    /// A known prefix with an unusable parameter (`/status/abc`): 400.
    case invalid

    /// Whether the echo JSON (and so the first 64 KiB of the body) is needed.
    var echoesRequest: Bool {
        switch self {
        case .echo, .sleep, .close: return true
        default: return false
        }
    }

    /// Longest sleep accepted, so a typo cannot park a connection for days.
    static let maxSleepMilliseconds: UInt64 = 600_000

    /// Routes a request-target (path and optional query).
    static func route(target: UnsafeRawBufferPointer) -> EchoRoute {
        var pathEnd = 0
        while pathEnd < target.count && target[pathEnd] != UInt8(ascii: "?") { pathEnd += 1 }
        let path = UnsafeRawBufferPointer(rebasing: target[0..<pathEnd])
        if let n = number(after: "/bytes/", in: path) { return n.map { .bytes($0) } ?? .invalid }
        if let n = number(after: "/chunked/", in: path) { return n.map { .chunked($0) } ?? .invalid }
        if let n = number(after: "/truncated/", in: path) { return n.map { .truncated($0) } ?? .invalid }
        if let n = number(after: "/status/", in: path) {
            guard let code = n, code >= 200 && code <= 599 else { return .invalid }
            return .status(Int(code))
        }
        if let n = number(after: "/sleep/", in: path) {
            guard let ms = n, ms <= maxSleepMilliseconds else { return .invalid }
            return .sleep(ms)
        }
        if equals(path, "/close") { return .close }
        if equals(path, "/reset") { return .reset }
        if equals(path, "/malformed") { return .malformed }
        if equals(path, "/stats") { return .stats }
        if equals(path, "/sink") { return .sink }
        return .echo
    }

    /// nil when `path` does not start with `prefix`; `.some(nil)` when it does
    /// but the rest is not a decimal number of at most 18 digits.
    private static func number(after prefix: StaticString, in path: UnsafeRawBufferPointer) -> UInt64?? {
        let count = prefix.utf8CodeUnitCount
        guard path.count >= count, memcmp(path.baseAddress!, prefix.utf8Start, count) == 0 else { return nil }
        let digits = path.count - count
        guard digits >= 1 && digits <= 18 else { return .some(nil) }
        var value: UInt64 = 0
        for index in count..<path.count {
            let byte = path[index]
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return .some(nil) }
            value = value * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return .some(value)
    }

    private static func equals(_ path: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
        path.count == literal.utf8CodeUnitCount && (path.count == 0 || memcmp(path.baseAddress!, literal.utf8Start, path.count) == 0)
    }
}

/// The parts of a request head the JSON echo reports, copied out of the input
/// buffer before the buffer moves on to the body.
struct EchoRequestInfo {
    var method: String
    var target: String
    var version: HTTP1Version
    /// Lower-cased names in first-seen order; repeated names joined with ", ".
    var headers: [(name: String, value: String)]

    init(head: HTTP1RequestHead, bytes: UnsafeRawBufferPointer) {
        method = String(decoding: bytes[head.method], as: UTF8.self)
        target = String(decoding: bytes[head.target], as: UTF8.self)
        version = head.version
        headers = []
        headers.reserveCapacity(head.fields.count)
        for field in head.fields {
            // Field names are tokens (ASCII), so byte-wise lower-casing is exact.
            let name = String(decoding: bytes[field.name].lazy.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
            let value = String(decoding: bytes[field.value], as: UTF8.self)
            if let index = headers.firstIndex(where: { $0.name == name }) {
                headers[index].value += ", " + value
            } else {
                headers.append((name, value))
            }
        }
    }
}

/// Builds JSON text by hand (no Foundation): the echo body is the only
/// per-request String work in the server.
enum JSONText {
    /// Appends `text` as a quoted, escaped JSON string (RFC 8259 §7).
    static func appendString(_ text: String, to out: inout String) {
        out.append("\"")
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out.append("\\\"")
            case "\\": out.append("\\\\")
            case "\n": out.append("\\n")
            case "\r": out.append("\\r")
            case "\t": out.append("\\t")
            case "\u{08}": out.append("\\b")
            case "\u{0C}": out.append("\\f")
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex: [Character] = Array("0123456789abcdef")
                    out.append("\\u00")
                    out.append(hex[Int(scalar.value >> 4)])
                    out.append(hex[Int(scalar.value & 0xF)])
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }

    /// The echo body: one JSON object describing the request.
    static func echo(
        serverName: String, request: EchoRequestInfo, bodyBytes: UInt64, bodyPrefix: [UInt8],
        connection: Int, requestOnConnection: Int
    ) -> String {
        var out = "{\"name\":"
        out.reserveCapacity(256 + bodyPrefix.count)
        appendString(serverName, to: &out)
        out.append(",\"method\":")
        appendString(request.method, to: &out)
        out.append(",\"path\":")
        appendString(request.target, to: &out)
        out.append(",\"protocol\":")
        out.append(request.version == .http10 ? "\"HTTP/1.0\"" : "\"HTTP/1.1\"")
        out.append(",\"headers\":{")
        for (index, header) in request.headers.enumerated() {
            if index > 0 { out.append(",") }
            appendString(header.name, to: &out)
            out.append(":")
            appendString(header.value, to: &out)
        }
        out.append("},\"body_bytes\":")
        out.append(String(bodyBytes))
        out.append(",\"body\":")
        // Lossy: invalid UTF-8 becomes U+FFFD.
        appendString(String(decoding: bodyPrefix, as: UTF8.self), to: &out)
        out.append(",\"connection\":")
        out.append(String(connection))
        out.append(",\"request_on_connection\":")
        out.append(String(requestOnConnection))
        out.append("}\n")
        return out
    }
}
