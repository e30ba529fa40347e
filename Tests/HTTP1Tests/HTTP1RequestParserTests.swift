import HTTP1
import Testing

@Suite struct RequestLineTests {
    @Test func parsesSimpleGetRequest() {
        let input = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
        let parsed = parseRequest(input)
        #expect(parsed.result == .complete)
        #expect(parsed.string(parsed.head.method) == "GET")
        #expect(parsed.string(parsed.head.target) == "/index.html?q=1")
        #expect(parsed.head.version == .http11)
        #expect(parsed.string(parsed.head.host) == "example.com")
        #expect(parsed.head.fields.count == 2)
        #expect(parsed.head.headLength == input.utf8.count)
        #expect(parsed.head.framing == .none)
        #expect(parsed.head.keepAlive)
        #expect(!parsed.head.isHEAD && !parsed.head.isCONNECT)
    }

    @Test func parsesHTTP10RequestWithoutHost() {
        let parsed = parseRequest("GET / HTTP/1.0\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.head.version == .http10)
        #expect(parsed.head.host == nil)
        #expect(!parsed.head.keepAlive)
    }

    @Test func flagsHEADAndCONNECTMethodsCaseSensitively() {
        #expect(parseRequest("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").head.isHEAD)
        #expect(parseRequest("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").head.isCONNECT)
        let lower = parseRequest("head / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(lower.result == .complete)
        #expect(!lower.head.isHEAD)
    }

    @Test(arguments: [
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        " GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    ])
    func rejectsRequestLineWithoutExactlyOneSpaceBetweenParts(input: String) {
        #expect(requestResult(input) == .failed(.badRequest(.malformedRequestLine)))
    }

    @Test func rejectsHTTP09RequestWithoutVersionAsBadRequest() {
        #expect(requestResult("GET /\r\n\r\n") == .failed(.badRequest(.malformedRequestLine)))
    }

    @Test(arguments: ["HTTP/2.0", "HTTP/3.1", "HTTP/1.2", "HTTP/0.9"])
    func answers505ForOtherHTTPVersions(version: String) {
        let result = requestResult("GET / \(version)\r\nHost: a\r\n\r\n")
        #expect(result == .failed(.versionNotSupported))
        #expect(HTTP1ParseError.versionNotSupported.statusCode == 505)
    }

    @Test(arguments: ["http/1.1", "HTTP/1", "HTTP/1.1.1", "HTTP/11", "HTTPS/1.1", "HTTP/a.b"])
    func rejectsMalformedVersionAsBadRequest(version: String) {
        #expect(requestResult("GET / \(version)\r\nHost: a\r\n\r\n") == .failed(.badRequest(.malformedRequestLine)))
    }

    @Test func rejectsMethodThatIsNotAToken() {
        #expect(requestResult("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n") == .failed(.badRequest(.malformedRequestLine)))
    }

    @Test(arguments: ["/a\u{0}b", "/a\u{7F}b", "/a\u{1}b"])
    func rejectsTargetWithControlCharacter(target: String) {
        #expect(requestResult("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n") == .failed(.badRequest(.malformedRequestLine)))
    }

    @Test func skipsLeadingEmptyLinesBeforeRequestLine() {
        let parsed = parseRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.string(parsed.head.method) == "GET")
        #expect(parsed.head.headLength == 31)
    }

    @Test func rejectsBareLineFeedLineEndings() {
        #expect(requestResult("GET / HTTP/1.1\nHost: a\n\n") == .failed(.badRequest(.bareLineFeed)))
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\n\r\n") == .failed(.badRequest(.bareLineFeed)))
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\n\n") == .failed(.badRequest(.bareLineFeed)))
        #expect(requestResult("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == .failed(.badRequest(.bareLineFeed)))
    }

    @Test func answers414AsSoonAsTargetExceedsLimitBeforeLineEnds() {
        let limits = HTTP1Limits(maxRequestTargetLength: 16)
        #expect(requestResult("GET /" + String(repeating: "a", count: 15), limits: limits) == .incomplete)
        #expect(requestResult("GET /" + String(repeating: "a", count: 16), limits: limits) == .failed(.uriTooLong))
        #expect(HTTP1ParseError.uriTooLong.statusCode == 414)
    }

    @Test func acceptsTargetExactlyAtLimit() {
        let limits = HTTP1Limits(maxRequestTargetLength: 16)
        let target = "/" + String(repeating: "a", count: 15)
        #expect(requestResult("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n", limits: limits) == .complete)
    }
}

@Suite struct HeaderLimitTests {
    @Test func answers431AsSoonAsHeadExceedsLimitWithoutTerminating() {
        let limits = HTTP1Limits(maxHeaderSectionBytes: 64)
        let start = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: "
        let under = start + String(repeating: "b", count: 64 - start.utf8.count)
        #expect(requestResult(under, limits: limits) == .incomplete)
        #expect(requestResult(under + "b", limits: limits) == .failed(.headerSectionTooLarge))
        #expect(HTTP1ParseError.headerSectionTooLarge.statusCode == 431)
    }

    @Test func acceptsHeadExactlyAtSizeLimit() {
        let input = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        let exact = HTTP1Limits(maxHeaderSectionBytes: input.utf8.count)
        #expect(requestResult(input + "body", limits: exact) == .complete)
        let smaller = HTTP1Limits(maxHeaderSectionBytes: input.utf8.count - 1)
        #expect(requestResult(input, limits: smaller) == .failed(.headerSectionTooLarge))
    }

    @Test func answers431WhenHeaderCountExceedsLimit() {
        let limits = HTTP1Limits(maxHeaderCount: 3)
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n", limits: limits) == .complete)
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n", limits: limits)
            == .failed(.headerSectionTooLarge))
    }
}

@Suite struct HeaderFieldTests {
    @Test func rejectsWhitespaceBeforeColon() {
        #expect(requestResult("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == .failed(.badRequest(.whitespaceBeforeColon)))
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 0\r\n\r\n")
            == .failed(.badRequest(.whitespaceBeforeColon)))
    }

    @Test func rejectsObsoleteLineFolding() {
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n") == .failed(.badRequest(.obsoleteLineFolding)))
        #expect(requestResult("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n") == .failed(.badRequest(.obsoleteLineFolding)))
    }

    @Test(arguments: ["X-A: b\rc", "X-A: b\u{0}c", "X-A: \u{1}", "X-A: b\u{7F}", "X-A: \u{1B}[31m"])
    func rejectsControlBytesInValue(line: String) {
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n") == .failed(.badRequest(.invalidHeaderValue)))
    }

    @Test func acceptsTabAndObsTextInValues() {
        let input: [UInt8] = bytes("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\tc ") + [0xC3, 0xA9, 0xFF] + bytes("\r\n\r\n")
        let parsed = parseRequest(input)
        #expect(parsed.result == .complete)
        #expect(Array(input[parsed.head.fields[1].value]) == bytes("b\tc ") + [0xC3, 0xA9, 0xFF])
    }

    @Test func trimsOptionalWhitespaceAroundValues() {
        let parsed = parseRequest("GET / HTTP/1.1\r\nHost:\t a \t\r\nX-A:  b c \t\r\nX-Empty:   \r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.field("host") == "a")
        #expect(parsed.field("x-a") == "b c")
        #expect(parsed.field("x-empty") == "")
    }

    @Test(arguments: [": a", "X(A): b", "X-A", "X\u{0}: a", "Ä: b"])
    func rejectsInvalidHeaderName(line: String) {
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n") == .failed(.badRequest(.invalidHeaderName)))
    }

    @Test func classifiesWellKnownHeaderNamesCaseInsensitively() {
        let names: [(String, HTTP1HeaderName)] = [
            ("cOnTeNt-LeNgTh", .contentLength), ("CONNECTION", .connection), ("keep-alive", .keepAlive),
            ("TE", .te), ("Trailer", .trailer), ("Upgrade", .upgrade), ("Proxy-Connection", .proxyConnection),
            ("Proxy-Authorization", .proxyAuthorization), ("Expect", .expect), ("X-Forwarded-For", .xForwardedFor),
            ("x-forwarded-proto", .xForwardedProto), ("X-Forwarded-Host", .xForwardedHost),
            ("X-Forwarded-Port", .xForwardedPort), ("X-Real-IP", .xRealIP), ("X-Request-Id", .xRequestID),
            ("X-Forwarded-Fox", .other), ("Hosts", .other), ("X^Real-IP", .other),
        ]
        var input = "POST / HTTP/1.1\r\nHOST: a\r\n"
        for (name, _) in names { input += "\(name): 1\r\n" }
        let parsed = parseRequest(input + "\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.head.fields[0].kind == .host)
        for (index, (name, kind)) in names.enumerated() {
            #expect(parsed.head.fields[index + 1].kind == kind, "\(name)")
        }
    }
}

@Suite struct RequestFramingTests {
    @Test func parsesContentLength() {
        #expect(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n").head.framing == .contentLength(42))
    }

    @Test func rejectsRequestWithContentLengthAndTransferEncoding() {
        let input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(requestResult(input) == .failed(.badRequest(.contentLengthAndTransferEncoding)))
    }

    @Test func rejectsRequestWithTwoDifferentContentLengths() {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
            == .failed(.badRequest(.conflictingContentLength)))
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n")
            == .failed(.badRequest(.conflictingContentLength)))
    }

    @Test func acceptsRepeatedIdenticalContentLengthsAsOneValue() {
        #expect(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n").head.framing
            == .contentLength(7))
        #expect(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 , 7,7\r\n\r\n").head.framing == .contentLength(7))
    }

    @Test(arguments: ["+5", "-1", "5 5", "", "0x5", "5,", "1e3", "12345678901234567890", "\u{FF}"])
    func rejectsMalformedContentLength(value: String) {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(value)\r\n\r\n")
            == .failed(.badRequest(.invalidContentLength)))
    }

    @Test func acceptsNineteenDigitContentLength() {
        #expect(parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n").head.framing
            == .contentLength(9_999_999_999_999_999_999))
    }

    @Test func parsesChunkedTransferEncodingCaseInsensitively() {
        let parsed = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.head.framing == .chunked)
        #expect(parsed.head.fields[1].isHopByHop)
    }

    @Test(arguments: ["gzip", "chunked, gzip", "identity", "chunked;q=1, x"])
    func rejectsTransferEncodingNotEndingInChunked(value: String) {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \(value)\r\n\r\n")
            == .failed(.badRequest(.transferEncodingNotEndingInChunked)))
    }

    @Test(arguments: ["gzip, chunked", "deflate,chunked", "x-unknown , chunked"])
    func answers501ForOtherCodingBeforeChunked(value: String) {
        let result = requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \(value)\r\n\r\n")
        #expect(result == .failed(.unsupportedTransferCoding))
        #expect(HTTP1ParseError.unsupportedTransferCoding.statusCode == 501)
    }

    @Test func combinesTransferEncodingAcrossFields() {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
            == .failed(.unsupportedTransferCoding))
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n")
            == .failed(.badRequest(.chunkedAppliedTwice)))
    }

    @Test func rejectsChunkedAppliedTwice() {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n")
            == .failed(.badRequest(.chunkedAppliedTwice)))
    }

    @Test(arguments: ["", " , ", "chunked x", "\"chunked\""])
    func rejectsInvalidTransferEncodingList(value: String) {
        #expect(requestResult("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \(value)\r\n\r\n")
            == .failed(.badRequest(.invalidTransferEncoding)))
    }

    @Test func rejectsTransferEncodingInHTTP10Request() {
        #expect(requestResult("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")
            == .failed(.badRequest(.transferEncodingInHTTP10)))
    }

    @Test func rejectsHTTP11RequestWithoutHost() {
        #expect(requestResult("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n") == .failed(.badRequest(.missingHost)))
    }

    @Test(arguments: ["a b", "a/b", "a\\b", "a@b", "a\"b", "ex\u{E9}.com", "a?b", "a#b"])
    func rejectsHostWithCharactersOutsideAuthority(host: String) {
        #expect(requestResult("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n") == .failed(.badRequest(.invalidHost)))
    }

    @Test(arguments: ["example.com", "example.com:8080", "[::1]:443", "10.0.0.1", "xn--bcher-kva.example", "a_b.c~d", "%41b", ""])
    func acceptsHostsThatAreAuthorities(host: String) {
        let parsed = parseRequest("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(parsed.string(parsed.head.host) == host)
    }

    @Test func rejectsRequestWithTwoHostHeaders() {
        #expect(requestResult("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n") == .failed(.badRequest(.multipleHost)))
        #expect(requestResult("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n") == .failed(.badRequest(.multipleHost)))
    }
}

@Suite struct ConnectionTests {
    @Test func keepsHTTP11AliveUnlessConnectionClose() {
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n").head.keepAlive)
        #expect(!parseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, CLOSE\r\n\r\n").head.keepAlive)
    }

    @Test func keepsHTTP10AliveOnlyWithKeepAlive() {
        #expect(!parseRequest("GET / HTTP/1.0\r\n\r\n").head.keepAlive)
        #expect(parseRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head.keepAlive)
    }

    @Test func marksHopByHopFieldsIncludingThoseNamedInConnection() {
        let input = "GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: 5\r\nX-Secret: 1\r\nConnection: x-secret\r\n"
            + "Proxy-Connection: keep-alive\r\nTE: trailers\r\nAccept: */*\r\nProxy-Authorization: b\r\n\r\n"
        let parsed = parseRequest(input)
        #expect(parsed.result == .complete)
        let hopByHop = parsed.head.fields.filter(\.isHopByHop).map { text(parsed.buffer, $0.name) }
        #expect(hopByHop == ["Keep-Alive", "X-Secret", "Connection", "Proxy-Connection", "TE", "Proxy-Authorization"])
    }

    @Test func neverMarksContentLengthOrHostHopByHopThroughConnection() {
        let parsed = parseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: content-length, host\r\n\r\n")
        #expect(parsed.result == .complete)
        #expect(!parsed.head.fields[0].isHopByHop)
        #expect(!parsed.head.fields[1].isHopByHop)
        #expect(parsed.head.framing == .contentLength(2))
    }

    @Test func reportsUpgradeOnlyWhenConnectionListsUpgrade() {
        let upgrading = parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        #expect(upgrading.string(upgrading.head.upgrade) == "websocket")
        #expect(upgrading.head.fields[1].isHopByHop)
        #expect(parseRequest("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n").head.upgrade == nil)
    }

    @Test func detectsExpect100ContinueCaseInsensitively() {
        #expect(parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").head.expectsContinue)
        #expect(!parseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n").head.expectsContinue)
        #expect(!parseRequest("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").head.expectsContinue)
    }
}

@Suite struct PipeliningAndIncrementalityTests {
    @Test func parsesTwoPipelinedRequestsBackToBack() {
        let first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        let second = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
        let buffer = bytes(first + second)
        var head = HTTP1RequestHead()
        var offset = 0
        var targets: [String] = []
        while offset < buffer.count {
            let result = buffer.withUnsafeBytes {
                HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: $0[offset...]), limits: HTTP1Limits(), into: &head)
            }
            #expect(result == .complete)
            guard result == .complete else { return }
            targets.append(text(Array(buffer[offset...]), head.target))
            var bodyLength = 0
            if case .contentLength(let length) = head.framing { bodyLength = Int(length) }
            offset += head.headLength + bodyLength
        }
        #expect(targets == ["/a", "/b"])
        #expect(offset == buffer.count)
    }

    @Test func parsesPipelinedRequestAfterChunkedBody() {
        let buffer = bytes("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n")
        let first = parseRequest(buffer)
        #expect(first.head.framing == .chunked)
        let body = decodeChunked(Array(buffer[first.head.headLength...]))
        #expect(body.body == bytes("abc"))
        guard case .end(let consumed) = body.outcome else {
            Issue.record("chunked body did not end")
            return
        }
        let second = parseRequest(Array(buffer[(first.head.headLength + consumed)...]))
        #expect(second.result == .complete)
        #expect(second.string(second.head.target) == "/b")
    }

    @Test(arguments: [
        "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close, x-a\r\nX-A: 1\r\n\r\n",
        "\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET /" + String(repeating: "a", count: 40) + " HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "b", count: 80) + "\r\n\r\n",
        "GET / HTTP/1.1\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n",
    ])
    func parsingOneByteAtATimeMatchesParsingWhole(input: String) {
        let limits = HTTP1Limits(maxRequestTargetLength: 32, maxHeaderSectionBytes: 96, maxHeaderCount: 3)
        let whole = parseRequest(input, limits: limits)
        let incremental = parseRequestIncrementally(bytes(input), limits: limits)
        #expect(whole.result == incremental.result)
        #expect(whole.head.fields == incremental.head.fields)
        #expect(whole.head.headLength == incremental.head.headLength)
        #expect(whole.head.framing == incremental.head.framing)
    }

    @Test func gatingReparsesOnLineFeedsGivesTheSameResultWithLinearWork() {
        let limits = HTTP1Limits(maxHeaderSectionBytes: 256)
        let inputs = [
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + String(repeating: "b", count: 100) + "\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{0}" + String(repeating: "b", count: 100) + "\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: " + String(repeating: "b", count: 300),
        ]
        for input in inputs.map(bytes) {
            let whole = parseRequest(input, limits: limits).result
            var head = HTTP1RequestHead()
            var parsedAt = 0
            var parses = 0
            var result = HTTP1HeadResult.incomplete
            for length in 1...input.count where result == .incomplete {
                input.withUnsafeBytes { all in
                    let prefix = UnsafeRawBufferPointer(rebasing: all[..<length])
                    guard HTTP1Parser.shouldReparse(prefix, previousCount: parsedAt, limits: limits) else { return }
                    result = HTTP1Parser.parseRequestHead(prefix, limits: limits, into: &head)
                    parsedAt = length
                    parses += 1
                }
            }
            #expect(result == whole)
            #expect(parses <= 6)
        }
    }

    @Test func reusesFieldCapacityAcrossRequests() {
        let buffer = bytes("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        var head = HTTP1RequestHead()
        _ = buffer.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, limits: HTTP1Limits(), into: &head) }
        let capacity = head.fields.capacity
        for _ in 0..<10 {
            let result = buffer.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, limits: HTTP1Limits(), into: &head) }
            #expect(result == .complete)
        }
        #expect(head.fields.count == 4)
        #expect(head.fields.capacity == capacity)
    }
}
