import Routing

/// Client addresses read from and written as bytes, on the request path:
/// no `String`, no allocation. Parses what `X-Forwarded-For` elements and
/// PROXY protocol v1 headers carry; prints the RFC 5952 form that nginx's
/// `$remote_addr` shows.
enum AddressText {
    /// Longest printed address: `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`
    /// is never printed (mapped addresses print as IPv4), so 39 bytes of
    /// IPv6 or 15 of IPv4; 48 leaves room.
    static let maximumLength = 48

    /// An element of a forwarded-for list: `a.b.c.d`, `a.b.c.d:port`,
    /// an IPv6 address, `[ipv6]` or `[ipv6]:port` (as nginx's realip module
    /// reads it). nil for anything else (a name, `unknown`, garbage).
    static func parseElement(_ text: UnsafeRawBufferPointer) -> ClientAddress? {
        guard let first = text.first else { return nil }
        if first == UInt8(ascii: "[") {
            guard let close = text.firstIndex(of: UInt8(ascii: "]")), close > 1 else { return nil }
            let rest = UnsafeRawBufferPointer(rebasing: text[(close + 1)...])
            if !rest.isEmpty {
                guard rest[0] == UInt8(ascii: ":"), isPort(UnsafeRawBufferPointer(rebasing: rest[1...])) else { return nil }
            }
            return parseIPv6(UnsafeRawBufferPointer(rebasing: text[1..<close]))
        }
        var colons = 0
        var lastColon = 0
        var index = 0
        while index < text.count {
            if text[index] == UInt8(ascii: ":") {
                colons += 1
                lastColon = index
            }
            index += 1
        }
        if colons == 0 { return parseIPv4(text) }
        if colons == 1 {
            guard isPort(UnsafeRawBufferPointer(rebasing: text[(lastColon + 1)...])) else { return nil }
            return parseIPv4(UnsafeRawBufferPointer(rebasing: text[..<lastColon]))
        }
        return parseIPv6(text)
    }

    /// A bare address, IPv4 or IPv6 (PROXY v1 fields).
    static func parseAddress(_ text: UnsafeRawBufferPointer) -> ClientAddress? {
        text.contains(UInt8(ascii: ":")) ? parseIPv6(text) : parseIPv4(text)
    }

    /// 1 to 5 decimal digits, at most 65535.
    static func isPort(_ text: UnsafeRawBufferPointer) -> Bool {
        parsePort(text) != nil
    }

    /// A decimal port, 0 to 65535, 1 to 5 digits.
    static func parsePort(_ text: UnsafeRawBufferPointer) -> UInt16? {
        guard !text.isEmpty, text.count <= 5 else { return nil }
        var value = 0
        for byte in text {
            guard byte >= 48, byte <= 57 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value <= 65535 ? UInt16(value) : nil
    }

    /// Dotted quad; each part 0-255, 1-3 digits.
    static func parseIPv4(_ text: UnsafeRawBufferPointer) -> ClientAddress? {
        guard let value = parseIPv4Value(text) else { return nil }
        return address(v4: value)
    }

    private static func parseIPv4Value(_ text: UnsafeRawBufferPointer) -> UInt32? {
        var value: UInt32 = 0
        var part = 0
        var digits = 0
        var parts = 0
        var index = 0
        while index < text.count {
            let byte = text[index]
            index += 1
            if byte == UInt8(ascii: ".") {
                guard digits > 0, parts < 3 else { return nil }
                value = value << 8 | UInt32(part)
                parts += 1
                part = 0
                digits = 0
                continue
            }
            guard byte >= 48, byte <= 57, digits < 3 else { return nil }
            part = part * 10 + Int(byte - 48)
            digits += 1
            guard part <= 255 else { return nil }
        }
        guard digits > 0, parts == 3 else { return nil }
        return value << 8 | UInt32(part)
    }

    /// RFC 4291 §2.2 text: groups of 1-4 hex digits, one `::`, an IPv4 tail.
    /// No zone identifiers.
    static func parseIPv6(_ text: UnsafeRawBufferPointer) -> ClientAddress? {
        guard text.count >= 2, text.count <= 45 else { return nil }
        // Fixed storage: 8 groups, and where `::` stood.
        var storage: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var gap = -1
        var index = 0
        let bytes = text
        if bytes[0] == UInt8(ascii: ":") {
            guard bytes[1] == UInt8(ascii: ":") else { return nil }
            gap = 0
            index = 2
            if index == bytes.count { return address(v6Groups: storage, count: 0, gap: 0) }
        }
        return withUnsafeMutableBytes(of: &storage) { raw -> ClientAddress? in
            let slots = raw.bindMemory(to: UInt16.self)
            while index < bytes.count {
                // An IPv4 tail: the rest holds a dot before any colon.
                var look = index
                var sawDot = false
                while look < bytes.count, bytes[look] != UInt8(ascii: ":") {
                    if bytes[look] == UInt8(ascii: ".") { sawDot = true }
                    look += 1
                }
                if sawDot {
                    guard look == bytes.count, count <= 6,
                        let v4 = parseIPv4Value(UnsafeRawBufferPointer(rebasing: bytes[index...]))
                    else { return nil }
                    slots[count] = UInt16(v4 >> 16)
                    slots[count + 1] = UInt16(v4 & 0xffff)
                    count += 2
                    index = bytes.count
                    break
                }
                let length = look - index
                guard length >= 1, length <= 4, count < 8 else { return nil }
                var group: UInt16 = 0
                for position in index..<look {
                    guard let digit = hexValue(bytes[position]) else { return nil }
                    group = group << 4 | UInt16(digit)
                }
                slots[count] = group
                count += 1
                index = look
                if index == bytes.count { break }
                // At a colon: `::` marks the gap (once), `:` separates.
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: ":") {
                    guard gap < 0 else { return nil }
                    gap = count
                    index += 1
                    if index == bytes.count { break }
                } else if index == bytes.count {
                    return nil  // a trailing single colon
                }
            }
            if gap < 0 {
                guard count == 8 else { return nil }
            } else {
                guard count <= 7 else { return nil }
            }
            var copy: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16) = (0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &copy) { target in
                let out = target.bindMemory(to: UInt16.self)
                for position in 0..<count { out[position] = slots[position] }
            }
            return address(v6Groups: copy, count: count, gap: gap < 0 ? count : gap)
        }
    }

    @inline(__always)
    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 48...57: return byte - 48
        case 97...102: return byte - 87
        case 65...70: return byte - 55
        default: return nil
        }
    }

    /// `count` parsed groups with the zeros of `::` standing at `gap`.
    private static func address(
        v6Groups groups: (UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16, UInt16), count: Int, gap: Int
    ) -> ClientAddress? {
        var groups = groups
        var value: UInt128 = 0
        withUnsafeBytes(of: &groups) { raw in
            let parsed = raw.bindMemory(to: UInt16.self)
            let zeros = 8 - count
            for slot in 0..<8 {
                let group: UInt16
                if slot < gap {
                    group = parsed[slot]
                } else if slot < gap + zeros {
                    group = 0
                } else {
                    group = parsed[slot - zeros]
                }
                value = value << 16 | UInt128(group)
            }
        }
        return address(v6: value)
    }

    @inline(__always)
    static func address(v4 value: UInt32) -> ClientAddress? { ClientAddress(v4: value) }

    @inline(__always)
    static func address(v6 value: UInt128) -> ClientAddress? { ClientAddress(v6: value) }

    /// Writes `address` into `out` (at least `maximumLength` bytes) and
    /// returns the count: dotted quad, or RFC 5952 (lower case, no leading
    /// zeros, the first longest run of two or more zero groups as `::`).
    static func write(_ address: ClientAddress, into out: UnsafeMutableRawBufferPointer) -> Int {
        precondition(out.count >= maximumLength)
        var length = 0
        @inline(__always) func put(_ byte: UInt8) {
            out[length] = byte
            length += 1
        }
        @inline(__always) func decimal(_ value: Int) {
            if value >= 100 { put(UInt8(48 + value / 100)) }
            if value >= 10 { put(UInt8(48 + value / 10 % 10)) }
            put(UInt8(48 + value % 10))
        }
        if address.family == .v4 {
            let value = UInt32(truncatingIfNeeded: address.value)
            decimal(Int(value >> 24))
            put(UInt8(ascii: "."))
            decimal(Int(value >> 16 & 0xff))
            put(UInt8(ascii: "."))
            decimal(Int(value >> 8 & 0xff))
            put(UInt8(ascii: "."))
            decimal(Int(value & 0xff))
            return length
        }
        @inline(__always) func group(_ index: Int) -> UInt16 {
            UInt16(truncatingIfNeeded: address.value >> UInt128((7 - index) * 16))
        }
        var bestStart = -1
        var bestLength = 0
        var runStart = -1
        for index in 0...8 {
            if index < 8, group(index) == 0 {
                if runStart < 0 { runStart = index }
            } else if runStart >= 0 {
                if index - runStart > bestLength {
                    bestStart = runStart
                    bestLength = index - runStart
                }
                runStart = -1
            }
        }
        if bestLength < 2 { bestStart = -1 }
        let hex: StaticString = "0123456789abcdef"
        var index = 0
        while index < 8 {
            if index == bestStart {
                put(UInt8(ascii: ":"))
                put(UInt8(ascii: ":"))
                index += bestLength
                continue
            }
            if index > 0, !(bestStart >= 0 && index == bestStart + bestLength) { put(UInt8(ascii: ":")) }
            let value = group(index)
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let digit = Int(value >> UInt16(shift) & 0xf)
                if digit != 0 || started || shift == 0 {
                    put(hex.utf8Start[digit])
                    started = true
                }
            }
            index += 1
        }
        return length
    }
}
