// Textual forms of addresses: parsing what Kubernetes objects carry
// (EndpointSlice addresses, Endpoints IPs) and printing them back for logs,
// `postern route` and diagnostics.

extension IPAddress {
    /// Parses a numeric IPv4 (`10.0.0.7`) or IPv6 (`fd00::7`, `::ffff:10.0.0.7`)
    /// address; nil for anything else, including host names (the data path
    /// never resolves DNS), zone identifiers (`fe80::1%eth0`) and IPv4 parts
    /// with leading zeros (ambiguous: octal in some parsers).
    public init?(parsing text: String) {
        if !text.utf8.contains(UInt8(ascii: ":")) {
            // IPv4, by far the most common: read the UTF-8 view in place.
            guard let bytes = IPAddress.parseIPv4(text.utf8) else { return nil }
            self = .v4(bytes.0, bytes.1, bytes.2, bytes.3)
            return
        }
        var utf8 = Array(text.utf8)
        guard let bytes = IPAddress.parseIPv6(&utf8) else { return nil }
        self = .v6(bytes)
    }

    private static func parseIPv4<Bytes: Sequence>(_ text: Bytes) -> (UInt8, UInt8, UInt8, UInt8)? where Bytes.Element == UInt8 {
        var parts: (UInt8, UInt8, UInt8) = (0, 0, 0)
        var count = 0
        var value = 0
        var digits = 0
        var leadingZero = false
        for byte in text {
            if byte == UInt8(ascii: ".") {
                guard digits > 0, count < 3 else { return nil }
                switch count {
                case 0: parts.0 = UInt8(value)
                case 1: parts.1 = UInt8(value)
                default: parts.2 = UInt8(value)
                }
                count += 1
                value = 0
                digits = 0
                leadingZero = false
            } else if byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                if digits == 1, value == 0 { leadingZero = true }
                guard !leadingZero else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
                digits += 1
                guard value <= 255 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, count == 3 else { return nil }
        return (parts.0, parts.1, parts.2, UInt8(value))
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(byte - UInt8(ascii: "A")) + 10
        default: return nil
        }
    }

    /// RFC 4291 §2.2 text forms: eight groups, at most one `::`, optionally
    /// ending in a dotted IPv4 address.
    private static func parseIPv6(_ text: inout [UInt8]) -> [UInt8]? {
        guard text.count >= 2 else { return nil }
        var groups: [UInt16] = []  // groups before and after "::", in order
        var gapIndex: Int? = nil   // position in `groups` where "::" stands
        var index = 0
        if text[0] == UInt8(ascii: ":") {
            guard text[1] == UInt8(ascii: ":") else { return nil }
            gapIndex = 0
            index = 2
            if index == text.count { return [UInt8](repeating: 0, count: 16) }
        }
        while index < text.count {
            // One group, or a trailing IPv4 address.
            var end = index
            while end < text.count, text[end] != UInt8(ascii: ":") { end += 1 }
            let field = text[index..<end]
            guard !field.isEmpty else { return nil }
            if field.contains(UInt8(ascii: ".")) {
                guard end == text.count, let v4 = parseIPv4(field) else { return nil }
                groups.append(UInt16(v4.0) << 8 | UInt16(v4.1))
                groups.append(UInt16(v4.2) << 8 | UInt16(v4.3))
                index = end
                break
            }
            guard field.count <= 4 else { return nil }
            var value = 0
            for byte in field {
                guard let digit = hexValue(byte) else { return nil }
                value = value << 4 | digit
            }
            groups.append(UInt16(value))
            if end == text.count {
                index = end
                break
            }
            // text[end] is ":"; a second one marks the gap.
            if end + 1 < text.count, text[end + 1] == UInt8(ascii: ":") {
                guard gapIndex == nil else { return nil }
                gapIndex = groups.count
                index = end + 2
                if index == text.count { break }
            } else {
                index = end + 1
                guard index < text.count else { return nil }  // trailing single ":"
            }
        }
        if let gapIndex {
            guard groups.count <= 7 else { return nil }
            let zeros = [UInt16](repeating: 0, count: 8 - groups.count)
            groups.insert(contentsOf: zeros, at: gapIndex)
        }
        guard groups.count == 8 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for group in groups {
            bytes.append(UInt8(group >> 8))
            bytes.append(UInt8(group & 0xff))
        }
        return bytes
    }
}

extension IPAddress: CustomStringConvertible {
    /// Dotted quad for IPv4; RFC 5952 canonical form for IPv6 (lower-case,
    /// no leading zeros, the longest run of two or more zero groups as `::`).
    public var description: String {
        switch self {
        case let .v4(a, b, c, d):
            return "\(a).\(b).\(c).\(d)"
        case let .v6(bytes):
            guard bytes.count == 16 else { return "invalid-ipv6" }
            var groups: [UInt16] = []
            for i in stride(from: 0, to: 16, by: 2) {
                groups.append(UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1]))
            }
            // RFC 5952 §4.2.3: the first longest run of zeros, length >= 2.
            var bestStart = -1, bestLength = 0, runStart = -1
            for i in 0...8 {
                if i < 8, groups[i] == 0 {
                    if runStart < 0 { runStart = i }
                } else if runStart >= 0 {
                    if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                    runStart = -1
                }
            }
            if bestLength < 2 { bestStart = -1 }
            var text = ""
            var i = 0
            while i < 8 {
                if i == bestStart {
                    text += "::"
                    i += bestLength
                    continue
                }
                if !text.isEmpty, !text.hasSuffix(":") { text += ":" }
                text += String(groups[i], radix: 16)
                i += 1
            }
            return text
        }
    }
}

extension Endpoint: CustomStringConvertible {
    /// `10.0.0.7:8080` or `[fd00::7]:8080`.
    public var description: String {
        switch address {
        case .v4: return "\(address):\(port)"
        case .v6: return "[\(address)]:\(port)"
        }
    }
}
