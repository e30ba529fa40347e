import HTTP2
import Testing

/// RFC 9113 §8 reactions to malformed requests, sent as raw frames.
@Suite struct HTTP2ValidationTests {
    /// Sends one HEADERS frame (END_HEADERS | END_STREAM) with `block` on stream 1.
    static func reaction(to block: [UInt8], endStream: Bool = true) -> RawClient {
        let client = RawClient()
        client.send(Raw.start)
        client.send(Raw.headerFrames(stream: 1, block, endStream: endStream))
        return client
    }

    static let malformed: [(String, [UInt8])] = [
        ("uppercase field name", Raw.getBlock() + Raw.literal("X-Upper", "1")),
        ("connection field", Raw.getBlock() + Raw.literal("connection", "keep-alive")),
        ("keep-alive field", Raw.getBlock() + Raw.literal("keep-alive", "5")),
        ("proxy-connection field", Raw.getBlock() + Raw.literal("proxy-connection", "close")),
        ("transfer-encoding field", Raw.getBlock() + Raw.literal("transfer-encoding", "chunked")),
        ("upgrade field", Raw.getBlock() + Raw.literal("upgrade", "websocket")),
        ("te other than trailers", Raw.getBlock() + Raw.literal("te", "gzip")),
        ("missing :path", [0x82, 0x86] + Raw.literal(":authority", "a")),
        ("missing :method", [0x86, 0x84] + Raw.literal(":authority", "a")),
        ("missing :scheme", [0x82, 0x84] + Raw.literal(":authority", "a")),
        ("empty :path", [0x82, 0x86] + Raw.literal(":path", "") + Raw.literal(":authority", "a")),
        ("duplicate :method", Raw.getBlock() + [0x83]),
        ("unknown pseudo-header", Raw.getBlock() + Raw.literal(":foo", "bar")),
        ("response pseudo-header in a request", Raw.getBlock() + Raw.literal(":status", "200")),
        ("pseudo-header after a regular field", [0x82, 0x86] + Raw.literal("accept", "*/*") + [0x84] + Raw.literal(":authority", "a")),
        ("newline in a value", Raw.getBlock() + Raw.literal("x-a", "1\r\nx-b: 2")),
        ("leading space in a value", Raw.getBlock() + Raw.literal("x-a", " 1")),
        ("space in a field name", Raw.getBlock() + Raw.literal("x a", "1")),
        ("two different content-lengths", Raw.getBlock() + Raw.literal("content-length", "1") + Raw.literal("content-length", "2")),
        ("non-numeric content-length", Raw.getBlock() + Raw.literal("content-length", "1x")),
        ("host naming another entity than :authority", Raw.getBlock(authority: "a.example") + Raw.literal("host", "b.example")),
    ]

    @Test(arguments: malformed.map(\.0))
    func malformedRequestGetsRstStreamProtocolError(_ name: String) {
        let block = Self.malformed.first { $0.0 == name }!.1
        let client = Self.reaction(to: block)
        #expect(client.resetCode(stream: 1) == .protocolError, "\(name)")
        #expect(client.events.heads[1] == nil, "\(name): the proxy never sees it")
        #expect(client.goAwayCode == nil, "\(name): a stream error, not a connection error")
    }

    @Test func hostMatchingAuthorityIgnoringCaseIsAccepted() {
        let client = Self.reaction(to: Raw.getBlock(authority: "Example.com") + Raw.literal("host", "example.COM"))
        #expect(client.events.heads[1] != nil)
        #expect(client.resetCode(stream: 1) == nil)
    }

    @Test func hostAloneStandsInForAuthority() throws {
        let client = Self.reaction(to: [0x82, 0x86, 0x84] + Raw.literal("host", "example.org"))
        let head = try #require(client.events.heads[1])
        #expect(text(head.authority ?? []) == "example.org")
        #expect(head.authorityFromHost)
    }

    @Test func teTrailersIsAccepted() {
        let client = Self.reaction(to: Raw.getBlock() + Raw.literal("te", "trailers"))
        #expect(client.events.heads[1] != nil)
    }

    @Test func bodyLongerThanContentLengthIsAStreamError() {
        let client = Self.reaction(to: [0x83, 0x86, 0x84] + Raw.literal(":authority", "a") + Raw.literal("content-length", "3"), endStream: false)
        #expect(client.events.heads[1]?.contentLength == 3)
        client.send(Raw.frame(Raw.data, flags: Raw.endStream, stream: 1, Array("toolong".utf8)))
        #expect(client.resetCode(stream: 1) == .protocolError)
        #expect(client.events.closed[1] == .protocolError)
    }

    @Test func bodyShorterThanContentLengthIsAStreamError() {
        let client = Self.reaction(to: [0x83, 0x86, 0x84] + Raw.literal(":authority", "a") + Raw.literal("content-length", "10"), endStream: false)
        client.send(Raw.frame(Raw.data, flags: Raw.endStream, stream: 1, Array("short".utf8)))
        #expect(client.resetCode(stream: 1) == .protocolError)
    }

    @Test func trailersWithoutEndStreamAreAStreamError() {
        let client = Self.reaction(to: [0x83, 0x86, 0x84] + Raw.literal(":authority", "a"), endStream: false)
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders, stream: 1, Raw.literal("x-t", "1")))
        #expect(client.resetCode(stream: 1) == .protocolError)
    }

    @Test func headerListOverTheLimitGets431AndTheProxyNeverSeesIt() throws {
        let client = Self.reaction(to: Raw.getBlock() + Raw.literal("x-big", String(repeating: "a", count: 40_000)))
        #expect(client.events.heads[1] == nil)
        let headers = try #require(client.received.first { $0.type == Raw.headers && $0.stream == 1 })
        #expect(headers.flags & Raw.endStream != 0)
        // HPACK static table index 8 is ":status 200"; 431 is a literal with indexed name 8..14.
        #expect(text(headers.payload).contains("431"))
        #expect(client.goAwayCode == nil)
        // The connection keeps serving.
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 3, Raw.getBlock()))
        #expect(client.events.heads[3] != nil)
    }

    @Test func oversizedRequestStillSendingIsAnsweredThenResetWithNoError() {
        let client = Self.reaction(to: Raw.getBlock() + Raw.literal("x-big", String(repeating: "a", count: 40_000)), endStream: false)
        #expect(client.resetCode(stream: 1) == .noError)
        #expect(client.server.resetsCounted == 0)
    }

    @Test func dataAfterTheRequestEndedIsAStreamClosedError() {
        // RFC 9113 §5.1, half-closed (remote): DATA after END_STREAM.
        let client = Self.reaction(to: Raw.getBlock())
        client.send(Raw.frame(Raw.data, flags: Raw.endStream, stream: 1, Array("late".utf8)))
        let code = client.resetCode(stream: 1) ?? client.goAwayCode
        #expect(code == .streamClosed)
    }

    @Test func dataOnAFullyClosedStreamIsAConnectionStreamClosedError() {
        // RFC 9113 §5.1, closed: after END_STREAM both ways no DATA can be in
        // flight (the client ended its side itself), so it is an error
        // (h2spec http2/5.1/11). Frames after our RST_STREAM are still
        // ignored (HTTP2StreamStateTests).
        let client = Self.reaction(to: Raw.getBlock())
        client.server.submitResponse(stream: 1, status: 200, fields: HTTP2Fields(), hasBody: false)
        client.send([])
        client.send(Raw.frame(Raw.data, flags: Raw.endStream, stream: 1, Array("late".utf8)))
        #expect(client.goAwayCode == .streamClosed)
        #expect(client.server.closeReason == .protocolError(.streamState(.streamClosed)))
    }

    @Test func dataOnAnIdleStreamIsAConnectionProtocolError() {
        let client = RawClient()
        client.send(Raw.start)
        client.send(Raw.frame(Raw.data, stream: 5, Array("x".utf8)))
        #expect(client.goAwayCode == .protocolError)
    }

    @Test func windowUpdateOverflowIsAFlowControlError() {
        let client = RawClient()
        client.send(Raw.start)
        client.send(Raw.frame(Raw.windowUpdate, stream: 0, Raw.u32(0x7fff_ffff)))
        #expect(client.goAwayCode == .flowControlError)
    }

    @Test func streamWindowOverflowIsAStreamFlowControlError() {
        let client = Self.reaction(to: Raw.getBlock())
        client.send(Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(0x7fff_ffff)))
        #expect(client.resetCode(stream: 1) == .flowControlError || client.goAwayCode == .flowControlError)
    }

    @Test func dataBeyondTheAdvertisedWindowIsAFlowControlError() {
        var settings = HTTP2Settings()
        settings.initialStreamWindowSize = 16
        let client = RawClient(settings: settings)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders, stream: 1, [0x83, 0x86, 0x84] + Raw.literal(":authority", "a")))
        client.send(Raw.frame(Raw.data, stream: 1, [UInt8](repeating: 0x61, count: 100)))
        #expect(client.resetCode(stream: 1) == .flowControlError || client.goAwayCode == .flowControlError)
    }

    @Test func evenStreamIdFromAClientIsAConnectionError() {
        let client = RawClient()
        client.send(Raw.start)
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 2, Raw.getBlock()))
        #expect(client.goAwayCode == .protocolError)
    }

    @Test func garbageInsteadOfThePrefaceIsRejected() {
        let client = RawClient()
        client.send(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(client.thrown == .badClientPreface)
        #expect(client.server.connectionShouldClose)
    }

    @Test func brokenHPACKIsACompressionError() {
        let client = RawClient()
        client.send(Raw.start)
        // Index 0 does not exist (RFC 7541 §6.1).
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 1, [0x80]))
        #expect(client.goAwayCode == .compressionError)
    }
}
