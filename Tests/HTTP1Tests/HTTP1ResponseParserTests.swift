import HTTP1
import Testing

@Suite struct ResponseParserTests {
    @Test func parsesResponseWithContentLength() {
        let parsed = parseResponse("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nServer: x\r\n\r\nnot found")
        #expect(parsed.result == .complete)
        #expect(parsed.head.status == 404)
        #expect(parsed.head.version == .http11)
        #expect(text(parsed.buffer, parsed.head.reason) == "Not Found")
        #expect(parsed.head.framing == .contentLength(9))
        #expect(parsed.head.keepAlive)
        #expect(parsed.head.fields.count == 2)
        #expect(parsed.head.headLength == parsed.buffer.count - 9)
    }

    @Test func readsResponsesWithoutLengthUntilClose() {
        let parsed = parseResponse("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n")
        #expect(parsed.head.framing == .untilClose)
        #expect(!parsed.head.keepAlive)
    }

    @Test func parsesChunkedResponse() {
        let parsed = parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(parsed.head.framing == .chunked)
        #expect(parsed.head.keepAlive)
    }

    @Test func givesResponsesToHEADNoBody() {
        let parsed = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", requestWasHEAD: true)
        #expect(parsed.head.framing == .none)
        #expect(parsed.head.keepAlive)
    }

    @Test(arguments: [100, 101, 103, 204, 304])
    func givesInformationalNoContentAndNotModifiedResponsesNoBody(status: Int) {
        let parsed = parseResponse("HTTP/1.1 \(status) X\r\nContent-Length: 10\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.head.framing == .none)
    }

    @Test func returns100ContinueAsCompleteHeadBeforeFinalResponse() {
        let buffer = bytes("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        var head = HTTP1ResponseHead()
        var offset = 0
        var statuses: [Int] = []
        repeat {
            let result = buffer.withUnsafeBytes {
                HTTP1Parser.parseResponseHead(UnsafeRawBufferPointer(rebasing: $0[offset...]), requestWasHEAD: false, limits: HTTP1Limits(), into: &head)
            }
            #expect(result == .complete)
            guard result == .complete else { return }
            statuses.append(head.status)
            offset += head.headLength
        } while head.status < 200
        #expect(statuses == [100, 201])
        #expect(head.framing == .contentLength(0))
        #expect(offset == buffer.count)
    }

    @Test func rejectsResponseWithContentLengthAndTransferEncoding() {
        let parsed = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(parsed.result == .failed(.badRequest(.contentLengthAndTransferEncoding)))
    }

    @Test(arguments: ["gzip", "gzip, chunked", "chunked, gzip"])
    func rejectsResponseWithCodingOtherThanChunked(value: String) {
        #expect(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: \(value)\r\n\r\n").result == .failed(.unsupportedTransferCoding))
    }

    @Test(arguments: ["HTTP/1.1 600 X", "HTTP/1.1 099 X", "HTTP/1.1 20x OK", "HTTP/1.1  200 OK", "HTTP/1.1 2000 OK", "http/1.1 200 OK", "HTTP/1.1 200 O\u{1}K"])
    func rejectsMalformedStatusLine(line: String) {
        #expect(parseResponse("\(line)\r\n\r\n").result == .failed(.badRequest(.malformedStatusLine)))
    }

    @Test func acceptsStatusLineWithoutReason() {
        let withSpace = parseResponse("HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n")
        #expect(withSpace.result == .complete)
        #expect(withSpace.head.reason.isEmpty)
        #expect(withSpace.head.version == .http10)
        #expect(!withSpace.head.keepAlive)
        #expect(parseResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").result == .complete)
    }

    @Test func answers505ForOtherResponseVersions() {
        #expect(parseResponse("HTTP/2.0 200 OK\r\n\r\n").result == .failed(.versionNotSupported))
    }

    @Test func appliesFieldRulesToResponses() {
        #expect(parseResponse("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n").result == .failed(.badRequest(.obsoleteLineFolding)))
        #expect(parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").result
            == .failed(.badRequest(.conflictingContentLength)))
        #expect(parseResponse("HTTP/1.1 200 OK\nX: a\r\n\r\n").result == .failed(.badRequest(.bareLineFeed)))
    }

    @Test func answers431ForOversizedResponseHead() {
        let limits = HTTP1Limits(maxHeaderSectionBytes: 32)
        #expect(parseResponse("HTTP/1.1 200 OK\r\nX: " + String(repeating: "a", count: 40), limits: limits).result
            == .failed(.headerSectionTooLarge))
    }

    @Test func parsingResponseOneByteAtATimeMatchesParsingWhole() {
        let buffer = bytes("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc")
        var head = HTTP1ResponseHead()
        var result = HTTP1HeadResult.incomplete
        for length in 0...buffer.count where result == .incomplete {
            result = buffer.withUnsafeBytes {
                HTTP1Parser.parseResponseHead(UnsafeRawBufferPointer(rebasing: $0[..<length]), requestWasHEAD: false, limits: HTTP1Limits(), into: &head)
            }
        }
        #expect(result == .complete)
        #expect(head.headLength == buffer.count - 3)
        #expect(head.framing == .contentLength(3))
        #expect(!head.keepAlive)
        #expect(head.fields.filter(\.isHopByHop).count == 1)
    }
}
