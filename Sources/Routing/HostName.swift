/// The one host canonicaliser: every per-request decision that depends on
/// the host (routing, HTTPS redirects, 421, SNI comparison, client
/// certificates) reads its output, whichever form the host came in: an
/// HTTP/1.1 `Host` field, the authority of an absolute-form target, or an
/// HTTP/2 `:authority`. Two spellings of one host (`TLS.Test.:443` and
/// `tls.test`) give the same canonical bytes, so no check can see one
/// host where another sees a different one.
///
/// Canonical form: the host name in lower case, one trailing dot removed,
/// without the port; an IPv6 literal keeps its brackets. Allocation-free.
public enum HostName {
    /// Longest canonical host (RFC 1035 allows 253 characters; brackets
    /// and an IPv6 literal fit too).
    public static let maximumLength = 255

    /// What `canonicalize` found.
    public enum Parsed: Equatable, Sendable {
        /// No host at all (an empty `Host`, allowed by RFC 9112 §3.2 when
        /// the target has no authority).
        case empty
        /// `count` canonical bytes were written; `port` is the port given
        /// (nil: none).
        case host(count: Int, port: UInt16?)
        /// Not a valid `uri-host [ ":" port ]`: the request gets 400.
        case invalid
    }

    /// Writes the canonical form of `authority` to `output` (room for
    /// `maximumLength` bytes).
    ///
    /// Refused (RFC 3986 §3.2, RFC 9110 §7.2): user information (`@`), a
    /// list (`,`), percent-encoding, any byte outside letters, digits,
    /// `-`, `.`, `_` and `~` in a name; an empty label (`a..b`, `.a`); more
    /// than one trailing dot; a port that is not 1 to 5 digits up to 65535;
    /// an IPv6 literal with anything but hex digits, `:` and `.`; a name
    /// longer than `maximumLength`.
    public static func canonicalize(_ authority: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) -> Parsed {
        let count = authority.count
        guard count > 0, let base = authority.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return .empty }
        var nameEnd = 0
        var written = 0
        if base[0] == UInt8(ascii: "[") {
            // IP-literal = "[" IPv6address "]" (no zone identifiers, no IPvFuture).
            var index = 1
            while index < count, base[index] != UInt8(ascii: "]") {
                let byte = base[index]
                let allowed = isHexDigit(byte) || byte == UInt8(ascii: ":") || byte == UInt8(ascii: ".")
                guard allowed else { return .invalid }
                index += 1
            }
            guard index < count, index >= 3, index + 1 <= maximumLength else { return .invalid }
            nameEnd = index + 1
            for offset in 0..<nameEnd { output[offset] = lower(base[offset]) }
            written = nameEnd
        } else {
            // One pass over a class table (one load and one compare per
            // byte in the common case): copy lower-cased, stop at ":", refuse
            // any byte outside the name set and any empty label.
            let classes = HostName.byteClasses.utf8Start
            var index = 0
            var previous = UInt8(ascii: ".")
            let end = min(count, maximumLength + 1)
            while index < end {
                let byte = base[index]
                let kind = classes[Int(byte)]
                if kind == UInt8(ascii: "a") {
                    output[index] = byte
                } else if kind == UInt8(ascii: "A") {
                    output[index] = byte | 0x20
                } else if kind == UInt8(ascii: ".") {
                    guard previous != UInt8(ascii: ".") else { return .invalid }
                    output[index] = byte
                } else if kind == UInt8(ascii: ":") {
                    break
                } else {
                    return .invalid
                }
                previous = byte
                index += 1
            }
            guard index <= maximumLength else { return .invalid }
            nameEnd = index
            guard nameEnd > 0 else { return .invalid }
            written = nameEnd
            // One trailing dot names the same host (RFC 1034 §3.1, fully
            // qualified form); the check above refused "a..".
            if previous == UInt8(ascii: ".") { written -= 1 }
            guard written > 0 else { return .invalid }
        }
        guard nameEnd < count else { return .host(count: written, port: nil) }
        guard base[nameEnd] == UInt8(ascii: ":") else { return .invalid }
        // port = 1*5 DIGIT; an empty port (RFC 3986 allows it) names the default.
        let digits = count - nameEnd - 1
        guard digits <= 5 else { return .invalid }
        if digits == 0 { return .host(count: written, port: nil) }
        var port: UInt32 = 0
        for index in (nameEnd + 1)..<count {
            let digit = base[index] &- UInt8(ascii: "0")
            guard digit < 10 else { return .invalid }
            port = port * 10 + UInt32(digit)
        }
        guard port <= 65535 else { return .invalid }
        return .host(count: written, port: UInt16(port))
    }

    /// The canonical form of `authority` as a String, nil when invalid
    /// (tests, `postern route`; never per request).
    public static func canonical(_ authority: String) -> String? {
        var text = authority
        return text.withUTF8 { bytes -> String? in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maximumLength) { buffer in
                switch canonicalize(UnsafeRawBufferPointer(bytes), into: buffer.baseAddress!) {
                case .empty: return ""
                case .invalid: return nil
                case let .host(count, _): return String(decoding: UnsafeBufferPointer(start: buffer.baseAddress, count: count), as: UTF8.self)
                }
            }
        }
    }

    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 { byte &- 0x41 < 26 ? byte | 0x20 : byte }

    @inline(__always)
    static func isHexDigit(_ byte: UInt8) -> Bool {
        byte &- 0x30 < 10 || (byte | 0x20) &- 0x61 < 6
    }

    /// The class of each byte in a host name: `a` kept as is (lower-case
    /// letters, digits, `-`, `_`, `~`: RFC 3986 unreserved; `_` is common in
    /// internal names), `A` an upper-case letter, `.` and `:` themselves, `x`
    /// refused. A literal, so reading it costs no initialisation check.
    static let byteClasses: StaticString = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxa.xaaaaaaaaaa:xxxxxxAAAAAAAAAAAAAAAAAAAAAAAAAAxxxxaxaaaaaaaaaaaaaaaaaaaaaaaaaaxxxaxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
}
