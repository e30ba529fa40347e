import Routing

/// The PROXY protocol header a load balancer sends before a connection's
/// first byte (HAProxy's specification, versions 1 and 2): who the client
/// is, as the balancer saw it. Parsed from bytes alone, so the parser is
/// tested without sockets; reads are bounded by `maximumV1Length` and
/// `maximumV2Length`.
enum ProxyProtocol {
    /// What a complete header says.
    struct Header: Equatable {
        /// The client's address; nil when the header names none (v1
        /// `UNKNOWN`, v2 `LOCAL`, v2 `UNSPEC` or `UNIX`): the TCP peer is
        /// the client then.
        var source: ClientAddress?
        /// The port the client connected to on the balancer (nil with no address).
        var destinationPort: UInt16?
    }

    enum ParseResult: Equatable {
        /// Every byte so far can start a header; `atMost` more bytes may
        /// belong to it (so reading them cannot take bytes behind it).
        case needMore(atMost: Int)
        /// A header of `length` bytes.
        case complete(Header, length: Int)
        /// Not a PROXY header, or a malformed one.
        case invalid
    }

    /// v1: "PROXY" ... CRLF, 107 bytes at most (the specification's bound).
    static let maximumV1Length = 107
    /// v2: the 16-byte preamble and up to this much address and TLV data.
    /// Balancers send tens of bytes of TLVs; more is refused.
    static let maximumV2PayloadLength = 2048
    static let maximumV2Length = 16 + maximumV2PayloadLength

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    private static let v1Prefix: [UInt8] = Array("PROXY ".utf8)

    /// Parses the start of a connection's bytes.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> ParseResult {
        guard let first = bytes.first else { return .needMore(atMost: 16) }
        if first == v2Signature[0] { return parseV2(bytes) }
        if first == v1Prefix[0] { return parseV1(bytes) }
        return .invalid
    }

    // MARK: Version 1

    private static func parseV1(_ bytes: UnsafeRawBufferPointer) -> ParseResult {
        let prefix = min(bytes.count, v1Prefix.count)
        for index in 0..<prefix where bytes[index] != v1Prefix[index] { return .invalid }
        var end = -1
        for index in 0..<min(bytes.count, maximumV1Length) where bytes[index] == 10 {
            end = index
            break
        }
        if end < 0 {
            if bytes.count >= maximumV1Length { return .invalid }
            return .needMore(atMost: maximumV1Length - bytes.count)
        }
        // "\r\n" ends the line; a bare LF is malformed.
        guard end >= 1, bytes[end - 1] == 13 else { return .invalid }
        let line = UnsafeRawBufferPointer(rebasing: bytes[v1Prefix.count..<(end - 1)])
        guard let header = parseV1Fields(line) else { return .invalid }
        return .complete(header, length: end + 1)
    }

    /// "TCP4 src dst sport dport", "TCP6 ...", or "UNKNOWN[ anything]".
    private static func parseV1Fields(_ line: UnsafeRawBufferPointer) -> Header? {
        if line.starts(with: "UNKNOWN".utf8) {
            guard line.count == 7 || line[7] == UInt8(ascii: " ") else { return nil }
            return Header(source: nil, destinationPort: nil)
        }
        // Exactly five fields separated by single spaces.
        var fields: (Range<Int>, Range<Int>, Range<Int>, Range<Int>, Range<Int>) = (0..<0, 0..<0, 0..<0, 0..<0, 0..<0)
        var count = 0
        var start = 0
        for index in 0...line.count {
            guard index == line.count || line[index] == UInt8(ascii: " ") else { continue }
            guard index > start, count < 5 else { return nil }
            let range = start..<index
            switch count {
            case 0: fields.0 = range
            case 1: fields.1 = range
            case 2: fields.2 = range
            case 3: fields.3 = range
            default: fields.4 = range
            }
            count += 1
            start = index + 1
        }
        guard count == 5 else { return nil }
        let family = UnsafeRawBufferPointer(rebasing: line[fields.0])
        let isV4: Bool
        if family.elementsEqual("TCP4".utf8) {
            isV4 = true
        } else if family.elementsEqual("TCP6".utf8) {
            isV4 = false
        } else {
            return nil
        }
        let sourceText = UnsafeRawBufferPointer(rebasing: line[fields.1])
        let destinationText = UnsafeRawBufferPointer(rebasing: line[fields.2])
        guard let source = isV4 ? AddressText.parseIPv4(sourceText) : AddressText.parseIPv6(sourceText),
            (isV4 ? AddressText.parseIPv4(destinationText) : AddressText.parseIPv6(destinationText)) != nil,
            AddressText.parsePort(UnsafeRawBufferPointer(rebasing: line[fields.3])) != nil,
            let destinationPort = AddressText.parsePort(UnsafeRawBufferPointer(rebasing: line[fields.4]))
        else { return nil }
        // TCP6 must carry IPv6 text (an IPv4-mapped one reads as IPv4, as the peer would).
        if !isV4, !sourceText.contains(UInt8(ascii: ":")) { return nil }
        return Header(source: source, destinationPort: destinationPort)
    }

    // MARK: Version 2

    private static func parseV2(_ bytes: UnsafeRawBufferPointer) -> ParseResult {
        let prefix = min(bytes.count, v2Signature.count)
        for index in 0..<prefix where bytes[index] != v2Signature[index] { return .invalid }
        if bytes.count >= 13 {
            // Version 2; command LOCAL (0) or PROXY (1).
            let versionCommand = bytes[12]
            guard versionCommand >> 4 == 2, versionCommand & 0x0F <= 1 else { return .invalid }
        }
        guard bytes.count >= 16 else { return .needMore(atMost: 16 - bytes.count) }
        let payloadLength = Int(bytes[14]) << 8 | Int(bytes[15])
        guard payloadLength <= maximumV2PayloadLength else { return .invalid }
        let length = 16 + payloadLength
        guard bytes.count >= length else { return .needMore(atMost: length - bytes.count) }
        let isLocal = bytes[12] & 0x0F == 0
        let family = bytes[13] >> 4
        let transport = bytes[13] & 0x0F
        let payload = UnsafeRawBufferPointer(rebasing: bytes[16..<length])
        if isLocal {
            // A health check of the balancer itself: the addresses (if any) are ignored.
            return .complete(Header(source: nil, destinationPort: nil), length: length)
        }
        // A stream listener takes STREAM (or UNSPEC); DGRAM is not for it.
        guard transport <= 1 else { return .invalid }
        switch family {
        case 0:
            return .complete(Header(source: nil, destinationPort: nil), length: length)
        case 1:
            guard transport == 1, payload.count >= 12 else { return .invalid }
            var value: UInt32 = 0
            for index in 0..<4 { value = value << 8 | UInt32(payload[index]) }
            let port = UInt16(payload[10]) << 8 | UInt16(payload[11])
            return .complete(Header(source: AddressText.address(v4: value), destinationPort: port), length: length)
        case 2:
            guard transport == 1, payload.count >= 36 else { return .invalid }
            var value: UInt128 = 0
            for index in 0..<16 { value = value << 8 | UInt128(payload[index]) }
            let port = UInt16(payload[34]) << 8 | UInt16(payload[35])
            return .complete(Header(source: AddressText.address(v6: value), destinationPort: port), length: length)
        case 3:
            // AF_UNIX: 108 + 108 bytes of paths; no IP address to take.
            guard payload.count >= 216 else { return .invalid }
            return .complete(Header(source: nil, destinationPort: nil), length: length)
        default:
            return .invalid
        }
    }
}
