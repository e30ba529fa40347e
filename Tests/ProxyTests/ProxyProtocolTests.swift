import RouteModel
import Routing
import SeededRandom
import Testing

@testable import Proxy

/// PROXY protocol v1 and v2 headers, parsed from bytes alone.
@Suite struct ProxyProtocolParsing {
    private static func parse(_ bytes: [UInt8]) -> ProxyProtocol.ParseResult {
        bytes.withUnsafeBytes { ProxyProtocol.parse($0) }
    }

    private static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> ClientAddress { ClientAddress(bytes: [a, b, c, d])! }

    /// A v2 header: command (0 LOCAL, 1 PROXY), family/transport byte, payload.
    static func v2(command: UInt8 = 1, familyTransport: UInt8, payload: [UInt8]) -> [UInt8] {
        ProxyProtocol.v2Signature + [0x20 | command, familyTransport, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)] + payload
    }

    static let v2Inet: [UInt8] = v2(familyTransport: 0x11, payload: [203, 0, 113, 7, 10, 0, 0, 1, 0xC3, 0x50, 0x01, 0xBB])
    static let v2Inet6: [UInt8] = v2(
        familyTransport: 0x21,
        payload: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9] + [0xfd] + [UInt8](repeating: 0, count: 14) + [1]
            + [0x30, 0x39, 0x00, 0x50])

    @Test func validHeadersNameTheClientAndTheirLength() throws {
        let tail = Array("\u{16}\u{03}\u{01}rest of a ClientHello".utf8)
        let cases: [([UInt8], ClientAddress?, UInt16?)] = [
            (Array("PROXY TCP4 203.0.113.7 10.0.0.1 50000 443\r\n".utf8), Self.v4(203, 0, 113, 7), 443),
            (Array("PROXY TCP6 2001:db8::9 fd00::1 12345 80\r\n".utf8), ClientAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9]), 80),
            (Array("PROXY TCP6 ::ffff:198.51.100.2 ::1 1 65535\r\n".utf8), Self.v4(198, 51, 100, 2), 65535),
            (Array("PROXY UNKNOWN\r\n".utf8), nil, nil),
            (Array("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n".utf8), nil, nil),
            (Self.v2Inet, Self.v4(203, 0, 113, 7), 443),
            (Self.v2Inet6, ClientAddress(bytes: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9]), 80),
            // LOCAL (a balancer's health check): addresses ignored, the TCP peer is the client.
            (Self.v2(command: 0, familyTransport: 0x11, payload: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]), nil, nil),
            (Self.v2(command: 0, familyTransport: 0x00, payload: []), nil, nil),
            // UNSPEC under PROXY: no address to take.
            (Self.v2(familyTransport: 0x00, payload: []), nil, nil),
            // TLVs after the addresses are skipped (AWS's VPC endpoint id, PP2_TYPE_ALPN...).
            (Self.v2(familyTransport: 0x11, payload: [192, 0, 2, 1, 10, 0, 0, 1, 0, 9, 0, 80] + [0xEA, 0, 3, 1, 2, 3, 0x01, 0, 2, 0x68, 0x32]), Self.v4(192, 0, 2, 1), 80),
            // AF_UNIX: 216 bytes of paths, no IP address.
            (Self.v2(familyTransport: 0x31, payload: [UInt8](repeating: 0x2f, count: 216)), nil, nil),
        ]
        for (header, source, port) in cases {
            let expected = ProxyProtocol.ParseResult.complete(ProxyProtocol.Header(source: source, destinationPort: port), length: header.count)
            #expect(Self.parse(header) == expected, "\(header.prefix(40))")
            // Bytes behind the header are never part of it.
            #expect(Self.parse(header + tail) == expected)
            // Every strict prefix asks for more, never past the header's end.
            for cut in 0..<header.count {
                guard case let .needMore(atMost) = Self.parse(Array(header[0..<cut])) else {
                    Issue.record("prefix of \(cut) bytes of \(header.prefix(20)) is not incomplete")
                    continue
                }
                #expect(atMost >= 1)
                if header.first == 0x0D, cut >= 16 { #expect(cut + atMost == header.count, "v2 knows its length") }
                if header.first == 0x0D, cut < 16 { #expect(cut + atMost <= header.count) }
                if header.first == UInt8(ascii: "P") { #expect(cut + atMost <= ProxyProtocol.maximumV1Length) }
            }
        }
    }

    /// Fuzz-like table: each of these is refused as a whole.
    @Test func malformedHeadersAreRefused() {
        let v1: [String] = [
            "GET / HTTP/1.1\r\n",  // no header at all
            "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  // case matters
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  // bare LF
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
            "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  // double space
            "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",  // a field missing
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",  // one too many
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",  // trailing space
            "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",  // IPv6 under TCP4
            "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",  // IPv4 under TCP6
            "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",
            "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",  // zone identifiers are not addresses here
            "PROXY UNKNOWNX\r\n",
            "PROXY \r\n",
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + String(repeating: " ", count: 80) + "\r\n",  // past 107 bytes
            "PROXY " + String(repeating: "A", count: 120),  // no line end within the bound
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u{0}\r\n",
            "XPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ]
        for text in v1 {
            #expect(Self.parse(Array(text.utf8)) == .invalid, "\(text.debugDescription)")
        }
        let inet: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]
        let v2: [[UInt8]] = [
            Array(ProxyProtocol.v2Signature.dropLast()) + [0x0B, 0x21, 0x11, 0, 12] + inet,  // signature's last byte wrong
            ProxyProtocol.v2Signature + [0x11, 0x11, 0, 12] + inet,  // version 1 in the binary form
            ProxyProtocol.v2Signature + [0x22, 0x11, 0, 12] + inet,  // command 2
            ProxyProtocol.v2Signature + [0x2F, 0x11, 0, 12] + inet,
            Self.v2(familyTransport: 0x41, payload: inet),  // family 4
            Self.v2(familyTransport: 0x12, payload: inet),  // DGRAM on a stream listener
            Self.v2(familyTransport: 0x13, payload: inet),
            Self.v2(familyTransport: 0x10, payload: inet),  // INET with UNSPEC transport
            Self.v2(familyTransport: 0x11, payload: Array(inet.prefix(11))),  // addresses cut short
            Self.v2(familyTransport: 0x21, payload: inet),  // INET6 needs 36 bytes
            Self.v2(familyTransport: 0x31, payload: [UInt8](repeating: 0, count: 100)),
            ProxyProtocol.v2Signature + [0x21, 0x11, 0x08, 0x01],  // 2049 bytes of payload announced
            ProxyProtocol.v2Signature + [0x21, 0x11, 0xFF, 0xFF],
            [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B],
            [0x16, 0x03, 0x01, 0x00, 0xA5],  // a TLS ClientHello with no header before it
            [0x00],
        ]
        for bytes in v2 {
            #expect(Self.parse(bytes) == .invalid, "\(bytes.prefix(20))")
        }
    }

    /// Random mutations and truncations of valid headers, and random bytes:
    /// the parser never reads past its input nor claims more than it was
    /// given, and anything it accepts re-parses the same from its own length.
    @Test func mutatedHeadersNeverConfuseTheParser() {
        var random = SplitMix64(seed: 0x9407_0c01)
        let seeds: [[UInt8]] = [
            Array("PROXY TCP4 203.0.113.7 10.0.0.1 50000 443\r\n".utf8), Array("PROXY TCP6 2001:db8::9 fd00::1 12345 80\r\n".utf8),
            Array("PROXY UNKNOWN\r\n".utf8), Self.v2Inet, Self.v2Inet6,
        ]
        var outcomes = (complete: 0, needMore: 0, invalid: 0)
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 10 == 0 {
                bytes = (0..<random.upTo(64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = random.pick(seeds)
                for _ in 0..<(1 + random.below(3)) {
                    guard !bytes.isEmpty else { break }
                    switch random.below(4) {
                    case 0: bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                    case 1: bytes.remove(at: random.below(bytes.count))
                    case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: random.below(bytes.count + 1))
                    default: bytes.removeLast(random.below(bytes.count))
                    }
                }
            }
            switch Self.parse(bytes) {
            case let .complete(header, length):
                outcomes.complete += 1
                #expect(length <= bytes.count && length >= 15)
                #expect(Self.parse(Array(bytes[0..<length])) == .complete(header, length: length))
            case let .needMore(atMost):
                outcomes.needMore += 1
                #expect(atMost >= 1 && bytes.count + atMost <= ProxyProtocol.maximumV2Length)
            case .invalid:
                outcomes.invalid += 1
            }
        }
        #expect(outcomes.complete > 100 && outcomes.needMore > 100 && outcomes.invalid > 1000, "\(outcomes)")
    }
}

/// Addresses read from and printed as bytes with no allocation.
@Suite struct AddressTextTests {
    private static func parse(_ text: String) -> ClientAddress? {
        var text = text
        return text.withUTF8 { AddressText.parseElement(UnsafeRawBufferPointer($0)) }
    }

    private static func print(_ address: ClientAddress) -> String {
        var bytes = [UInt8](repeating: 0, count: AddressText.maximumLength)
        let count = bytes.withUnsafeMutableBytes { AddressText.write(address, into: $0) }
        return String(decoding: bytes[0..<count], as: UTF8.self)
    }

    @Test func forwardedForElementsReadAsNginxReadsThem() {
        let cases: [(String, String?)] = [
            ("203.0.113.9", "203.0.113.9"), ("203.0.113.9:443", "203.0.113.9"), ("0.0.0.0", "0.0.0.0"),
            ("2001:db8::1", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:8443", "2001:db8::1"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"), ("::", "::"), ("::1", "::1"), ("1::", "1::"),
            ("::ffff:192.0.2.1", "192.0.2.1"), ("64:ff9b::192.0.2.1", "64:ff9b::c000:201"), ("1:0:0:1:0:0:0:1", "1:0:0:1::1"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"), ("fe80::1:0:0:0", "fe80::1:0:0:0"), ("fe80:0:0:1::", "fe80:0:0:1::"),
            ("unknown", nil), ("", nil), ("1.2.3.4.5", nil), ("1.2.3", nil), ("256.0.0.1", nil), ("1.2.3.4:", nil),
            ("1.2.3.4:99999", nil), ("1.2.3.4:80:80", nil), ("[1.2.3.4]", nil), ("[::1", nil), ("[::1]x", nil),
            ("1:2:3:4:5:6:7:8:9", nil), ("1::2::3", nil), (":1", nil), ("1:", nil), ("12345::", nil), ("g::", nil),
            ("::1.2.3.4.5", nil), ("1:2:3:4:5:6:7:1.2.3.4", nil), ("_gateway", nil),
        ]
        for (text, expected) in cases {
            #expect(Self.parse(text).map(Self.print) == expected, "\(text)")
        }
    }

    /// Printing agrees with `IPAddress`'s RFC 5952 form, and reading the
    /// print gives the address back, for random addresses with zero runs.
    @Test func printingAndParsingRoundTrip() throws {
        var random = SplitMix64(seed: 0xadd2e55)
        for _ in 0..<5_000 {
            let v6 = random.chance(70)
            var bytes = (0..<(v6 ? 16 : 4)).map { _ in random.chance(40) ? 0 : UInt8(truncatingIfNeeded: random.next()) }
            if v6, bytes.prefix(12).allSatisfy({ $0 == 0 }) { bytes[0] = 0x20 }
            if v6, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { bytes[0] = 1 }
            let address = try #require(ClientAddress(bytes: bytes))
            let text = Self.print(address)
            let expected = v6 ? IPAddress.v6(bytes).description : IPAddress.v4(bytes[0], bytes[1], bytes[2], bytes[3]).description
            #expect(text == expected)
            #expect(Self.parse(text) == address, "\(text)")
        }
    }
}
