import HTTP1
import Testing

@Suite struct ChunkedDecoderTests {
    static let body = "4\r\nWiki\r\n6;name=value\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"

    @Test func decodesChunkedBodyWithTrailers() {
        let decoded = decodeChunked(bytes(Self.body))
        #expect(String(decoding: decoded.body, as: UTF8.self) == "Wikipedia in \r\n\r\nchunks.")
        #expect(String(decoding: decoded.trailers, as: UTF8.self) == "Expires: never\r\nX-Sum: 1\r\n")
        #expect(decoded.outcome == .end(consumed: Self.body.utf8.count))
    }

    @Test func decodingOneByteAtATimeMatchesDecodingWhole() {
        let inputs = [
            Self.body,
            "0\r\n\r\n",
            "3 ; a = \"q\\\"x\" ;b\r\nabc\r\n0\r\n\r\n",
            "5\r\nabc",
            "3\r\nabcX",
            "3\r\nabc\r\n0\r\nBad Name: x\r\n\r\n",
            "1\n",
        ]
        for input in inputs {
            let whole = decodeChunked(bytes(input))
            let incremental = decodeChunked(bytes(input), step: 1)
            #expect(whole.body == incremental.body, "\(input)")
            #expect(whole.trailers == incremental.trailers, "\(input)")
            #expect(whole.outcome == incremental.outcome, "\(input)")
        }
    }

    @Test func returnsAllAvailableDataInOneEvent() {
        let decoded = decodeChunked(bytes("400\r\n" + String(repeating: "x", count: 1024) + "\r\n0\r\n\r\n"))
        #expect(decoded.dataEvents == 1)
        #expect(decoded.body.count == 1024)
    }

    @Test func consumesSizeLineEvenWithoutData() {
        var decoder = HTTP1ChunkedDecoder()
        let event = bytes("10\r\n").withUnsafeBytes { decoder.next($0) }
        #expect(event == .needMore(consumed: 4))
        let partial = bytes("1").withUnsafeBytes { decoder.next($0) }
        #expect(partial == .data(0..<1, consumed: 1))
    }

    @Test func reportsEmptyTrailersAndEndAfterLastChunk() {
        var decoder = HTTP1ChunkedDecoder()
        let event = bytes("0\r\n\r\nGET").withUnsafeBytes { decoder.next($0) }
        #expect(event == .end(trailers: 3..<3, consumed: 5))
        #expect(decoder.isFinished)
    }

    @Test(arguments: ["\r\n", ";a\r\n", " 5\r\n", "g\r\n"])
    func rejectsMissingOrNonHexChunkSize(line: String) {
        #expect(decodeChunked(bytes(line)).outcome == .failed(.badRequest(.invalidChunkSize)))
    }

    @Test func rejectsChunkSizeWithMoreThanSixteenDigits() {
        #expect(decodeChunked(bytes("00000000000000001\r\n")).outcome == .failed(.badRequest(.invalidChunkSize)))
        var decoder = HTTP1ChunkedDecoder()
        let event = bytes("ffffffffffffffff\r\nab").withUnsafeBytes { decoder.next($0) }
        #expect(event == .data(18..<20, consumed: 20))
    }

    @Test func rejectsTrailingWhitespaceAfterChunkSize() {
        #expect(decodeChunked(bytes("5 \r\nhello\r\n0\r\n\r\n")).outcome == .failed(.badRequest(.invalidChunkSize)))
    }

    @Test func acceptsChunkExtensionsWithWhitespaceAndQuotedValues() {
        let input = bytes("5 ;a=1; b = \"x y\";c\r\nhello\r\n0;last\r\n\r\n")
        let decoded = decodeChunked(input)
        #expect(decoded.body == bytes("hello"))
        #expect(decoded.outcome == .end(consumed: input.count))
    }

    @Test(arguments: ["5;\r\n", "5;=x\r\n", "5;a=\r\n", "5;a=\"x\r\n", "5;a b\r\n", "5;a=b c\r\n", "5;a=\"\u{1}\"\r\n"])
    func rejectsMalformedChunkExtension(line: String) {
        #expect(decodeChunked(bytes(line)).outcome == .failed(.badRequest(.invalidChunkExtension)))
    }

    @Test func rejectsChunkSizeLineLongerThanLimit() {
        let line = "5;a=" + String(repeating: "b", count: HTTP1ChunkedDecoder.maxChunkSizeLineLength)
        #expect(decodeChunked(bytes(line)).outcome == .failed(.badRequest(.chunkSizeLineTooLong)))
        #expect(decodeChunked(bytes(line), step: 100).outcome == .failed(.badRequest(.chunkSizeLineTooLong)))
    }

    @Test func rejectsBareLineFeedInChunkedBody() {
        #expect(decodeChunked(bytes("5\nhello\r\n0\r\n\r\n")).outcome == .failed(.badRequest(.bareLineFeed)))
        #expect(decodeChunked(bytes("5\r\nhello\n0\r\n\r\n")).outcome == .failed(.badRequest(.invalidChunkTerminator)))
        #expect(decodeChunked(bytes("0\r\n\n")).outcome == .failed(.badRequest(.invalidTrailer)))
    }

    @Test func rejectsChunkDataNotFollowedByCRLF() {
        let decoded = decodeChunked(bytes("3\r\nabcd\r\n0\r\n\r\n"))
        #expect(decoded.body == bytes("abc"))
        #expect(decoded.outcome == .failed(.badRequest(.invalidChunkTerminator)))
    }

    @Test(arguments: ["X : y", "X: a\u{0}", " folded", "NoColon"])
    func rejectsMalformedTrailer(line: String) {
        #expect(decodeChunked(bytes("0\r\n\(line)\r\n\r\n")).outcome == .failed(.badRequest(.invalidTrailer)))
    }

    @Test func rejectsOversizedTrailerSection() {
        let trailer = "X: " + String(repeating: "a", count: HTTP1ChunkedDecoder.maxTrailerSectionLength)
        #expect(decodeChunked(bytes("0\r\n" + trailer)).outcome == .failed(.badRequest(.trailerSectionTooLarge)))
    }

    @Test func keepsReportingFailureAfterAnError() {
        var decoder = HTTP1ChunkedDecoder()
        let first = bytes("z\r\n").withUnsafeBytes { decoder.next($0) }
        let second = bytes("0\r\n\r\n").withUnsafeBytes { decoder.next($0) }
        #expect(first == .failed(.badRequest(.invalidChunkSize)))
        #expect(second == first)
    }
}
