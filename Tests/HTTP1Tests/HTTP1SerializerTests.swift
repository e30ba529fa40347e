import HTTP1
import Testing

@Suite struct SerializerTests {
    @Test func appendsChunkFraming() {
        var out: [UInt8] = []
        HTTP1Serializer.appendChunkHeader(size: 0x1a2f, to: &out)
        out += bytes("data")
        HTTP1Serializer.appendChunkTerminator(to: &out)
        HTTP1Serializer.appendChunkHeader(size: 0, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "1a2f\r\ndata\r\n0\r\n")
    }

    @Test func appendsLastChunkWithAndWithoutTrailers() {
        var out: [UInt8] = []
        HTTP1Serializer.appendLastChunk(trailers: nil, to: &out)
        bytes("X: 1\r\n").withUnsafeBytes { HTTP1Serializer.appendLastChunk(trailers: $0, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "0\r\n\r\n0\r\nX: 1\r\n\r\n")
    }

    @Test func roundTripsChunkedFramingThroughTheDecoder() {
        var out: [UInt8] = []
        for piece in ["hello", String(repeating: "z", count: 300)] {
            HTTP1Serializer.appendChunkHeader(size: piece.utf8.count, to: &out)
            out += bytes(piece)
            HTTP1Serializer.appendChunkTerminator(to: &out)
        }
        HTTP1Serializer.appendLastChunk(trailers: nil, to: &out)
        let decoded = decodeChunked(out, step: 7)
        #expect(decoded.body == bytes("hello" + String(repeating: "z", count: 300)))
        #expect(decoded.outcome == .end(consumed: out.count))
    }

    @Test(arguments: [UInt64(0), 7, 10, 99, 100, 1234567890, UInt64.max])
    func appendsDecimalNumbers(value: UInt64) {
        var out: [UInt8] = []
        HTTP1Serializer.appendDecimal(value, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == String(value))
    }

    @Test func appendsStatusLineFromStaticTable() {
        var out: [UInt8] = []
        HTTP1Serializer.appendStatusLine(404, to: &out)
        HTTP1Serializer.appendStatusLine(299, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 404 Not Found\r\nHTTP/1.1 299 \r\n")
        #expect(HTTP1Serializer.reasonPhrase(431).description == "Request Header Fields Too Large")
    }

    @Test func appendsStaticStrings() {
        var out: [UInt8] = []
        HTTP1Serializer.append("Content-Length: ", to: &out)
        HTTP1Serializer.appendDecimal(12, to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "Content-Length: 12")
    }

    @Test func mapsErrorsToStatusCodes() {
        #expect(HTTP1ParseError.badRequest(.missingHost).statusCode == 400)
        #expect(HTTP1ParseError.uriTooLong.statusCode == 414)
        #expect(HTTP1ParseError.headerSectionTooLarge.statusCode == 431)
        #expect(HTTP1ParseError.unsupportedTransferCoding.statusCode == 501)
        #expect(HTTP1ParseError.versionNotSupported.statusCode == 505)
        #expect(HTTP1Violation.missingHost.reason.description == "missing Host header")
    }
}
