import HTTP2
import Testing

@Suite struct HTTP2ExchangeTests {
    static func request(_ method: String = "GET", path: String = "/", authority: String = "example.com") -> HTTP2Fields {
        HTTP2Fields.request(method: method.utf8, scheme: "http".utf8, authority: authority.utf8, path: path.utf8)
    }

    @Test func detectsThePrefaceOfPriorKnowledgeHTTP2() {
        #expect(HTTP2Preface.matches(prefixOf: HTTP2Preface.bytes) == .yes)
        #expect(HTTP2Preface.matches(prefixOf: HTTP2Preface.bytes + [0, 0, 0]) == .yes)
        #expect(HTTP2Preface.matches(prefixOf: Array("PRI * HT".utf8)) == .needMore)
        #expect(HTTP2Preface.matches(prefixOf: [UInt8]()) == .needMore)
        #expect(HTTP2Preface.matches(prefixOf: Array("GET / HTTP/1.1\r\n".utf8)) == .no)
        #expect(HTTP2Preface.matches(prefixOf: Array("PRI * HTTP/1.1\r\n".utf8)) == .no)
        HTTP2Preface.bytes.withUnsafeBytes { #expect(HTTP2Preface.matches(prefixOf: $0) == .yes) }
    }

    @Test func deliversARequestWithBodyAndTrailersAndReturnsAResponseWithBodyAndTrailers() throws {
        let pair = Pair()
        var fields = Self.request("POST", path: "/upload?x=1")
        fields.append("content-type", value: "text/plain".utf8)
        fields.append("cookie", value: "a=1".utf8)
        fields.append("cookie", value: "b=2".utf8)
        fields.append("te", value: "trailers".utf8)
        let id = try #require(pair.client.submitRequest(fields: fields, hasBody: true))
        Array("hello ".utf8).withUnsafeBytes { _ = pair.client.submitData(stream: id, bytes: $0, endStream: false) }
        Array("world".utf8).withUnsafeBytes { _ = pair.client.submitData(stream: id, bytes: $0, endStream: false) }
        var requestTrailers = HTTP2Fields()
        requestTrailers.append("x-checksum", value: "abc".utf8)
        #expect(pair.client.submitTrailers(stream: id, fields: requestTrailers))
        try pair.pump()

        let head = try #require(pair.serverEvents.heads[id])
        #expect(text(head.method) == "POST")
        #expect(text(head.scheme ?? []) == "http")
        #expect(text(head.authority ?? []) == "example.com")
        #expect(text(head.path ?? []) == "/upload?x=1")
        #expect(head.fields.count == 4)
        #expect(text(head.fields.firstValue(named: "content-type") ?? []) == "text/plain")
        var cookie: [UInt8] = []
        #expect(head.fields.appendJoinedCookies(to: &cookie) == 2)
        #expect(text(cookie) == "a=1; b=2")
        #expect(text(pair.serverEvents.bodies[id] ?? []) == "hello world")
        #expect(text(pair.serverEvents.trailers[id]?.value(at: 0) ?? []) == "abc")

        var response = HTTP2Fields()
        response.append("content-type", value: "application/grpc".utf8)
        #expect(pair.server.submitResponse(stream: id, status: 200, fields: response, hasBody: true))
        Array("response body".utf8).withUnsafeBytes { _ = pair.server.submitData(stream: id, bytes: $0, endStream: false) }
        var trailers = HTTP2Fields()
        trailers.append("grpc-status", value: "0".utf8)
        trailers.append("grpc-message", value: "OK".utf8)
        #expect(pair.server.submitTrailers(stream: id, fields: trailers))
        try pair.pump()

        #expect(pair.clientEvents.heads[id]?.status == 200)
        #expect(text(pair.clientEvents.heads[id]?.fields.value(at: 0) ?? []) == "application/grpc")
        #expect(text(pair.clientEvents.bodies[id] ?? []) == "response body")
        #expect(text(pair.clientEvents.trailers[id]?.firstValue(named: "grpc-status") ?? []) == "0")
        #expect(text(pair.clientEvents.trailers[id]?.firstValue(named: "grpc-message") ?? []) == "OK")
        #expect(pair.clientEvents.closed[id] == .noError)
        #expect(pair.serverEvents.closed[id] == .noError)
        #expect(pair.server.openStreamCount == 0)
    }

    @Test func streamsABodySubmittedInPiecesAfterTheHead() throws {
        let pair = Pair()
        let id = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        #expect(pair.serverEvents.headEnded[id] == true)
        pair.server.submitResponse(stream: id, status: 200, fields: HTTP2Fields(), hasBody: true)
        try pair.pump()
        #expect(pair.clientEvents.heads[id]?.status == 200)
        for piece in 0..<10 {
            Array(repeating: UInt8(0x41 + piece), count: 1000).withUnsafeBytes {
                _ = pair.server.submitData(stream: id, bytes: $0, endStream: piece == 9)
            }
            try pair.pump()
        }
        #expect(pair.clientEvents.bodies[id]?.count == 10_000)
        #expect(pair.clientEvents.ended.contains(id))
        #expect(pair.clientEvents.closed[id] == .noError)
    }

    @Test func servesManyConcurrentStreamsOnOneConnection() throws {
        let pair = Pair()
        var ids: [Int32] = []
        for index in 0..<100 {
            ids.append(try #require(pair.client.submitRequest(fields: Self.request(path: "/item/\(index)"), hasBody: false)))
        }
        try pair.pump()
        #expect(pair.serverEvents.heads.count == 100)
        for id in ids {
            let path = text(pair.serverEvents.heads[id]?.path ?? [])
            var fields = HTTP2Fields()
            fields.append("content-type", value: "text/plain".utf8)
            pair.server.submitResponse(stream: id, status: 200, fields: fields, hasBody: true)
            Array(path.utf8).withUnsafeBytes { _ = pair.server.submitData(stream: id, bytes: $0, endStream: true) }
        }
        try pair.pump()
        for (index, id) in ids.enumerated() {
            #expect(text(pair.clientEvents.bodies[id] ?? []) == "/item/\(index)")
            #expect(pair.clientEvents.closed[id] == .noError)
        }
        #expect(pair.server.openStreamCount == 0 && pair.client.openStreamCount == 0)
    }

    @Test func requestsAboveTheServersConcurrencyLimitWaitInsideTheClient() throws {
        var settings = HTTP2Settings()
        settings.maxConcurrentStreams = 4
        let pair = Pair(serverSettings: settings)
        try pair.pump()  // SETTINGS exchanged: the client knows the limit.
        #expect(pair.client.remoteMaxConcurrentStreams == 4)
        var ids: [Int32] = []
        for _ in 0..<10 { ids.append(try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))) }
        try pair.pump()
        #expect(pair.serverEvents.heads.count == 4)
        var answered = Set<Int32>()
        while answered.count < 10 {
            for id in pair.serverEvents.heads.keys where !answered.contains(id) {
                pair.server.submitResponse(stream: id, status: 204, fields: HTTP2Fields(), hasBody: false)
                answered.insert(id)
            }
            try pair.pump()
        }
        #expect(ids.allSatisfy { pair.clientEvents.heads[$0]?.status == 204 })
        #expect(pair.serverEvents.closed.values.allSatisfy { $0 == .noError })
    }

    @Test func requestBodyStopsAtTheWindowUntilTheProxyConsumesIt() throws {
        let pair = Pair()
        pair.serverEvents.autoConsume = false
        let id = try #require(pair.client.submitRequest(fields: Self.request("POST"), hasBody: true))
        let body = [UInt8](repeating: 0x61, count: 200_000)
        body.withUnsafeBytes { _ = pair.client.submitData(stream: id, bytes: $0, endStream: true) }
        try pair.pump()
        // RFC 9113 §6.9: the client may not send past the initial stream window.
        #expect(pair.serverEvents.bodies[id]?.count == 65_535)
        #expect(pair.client.bufferedBytes(stream: id) == 200_000 - 65_535)
        #expect(!pair.serverEvents.ended.contains(id))

        var rounds = 0
        while !pair.serverEvents.ended.contains(id), rounds < 100 {
            let delivered = pair.serverEvents.bodies[id]?.count ?? 0
            pair.server.consumed(stream: id, bytes: delivered)  // already-acknowledged bytes are clamped
            try pair.pump()
            rounds += 1
        }
        #expect(pair.serverEvents.bodies[id]?.count == 200_000)
        #expect(pair.client.bufferedBytes(stream: id) == 0)
    }

    @Test func responseBodyIsBufferedWhileTheClientWindowIsClosedAndReportsWritable() throws {
        var settings = HTTP2Settings()
        settings.streamSendBufferHighWater = 64 * 1024
        let pair = Pair(serverSettings: settings)
        pair.clientEvents.autoConsume = false
        let id = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        pair.server.submitResponse(stream: id, status: 200, fields: HTTP2Fields(), hasBody: true)
        let body = [UInt8](repeating: 0x62, count: 300_000)
        let buffered = body.withUnsafeBytes { pair.server.submitData(stream: id, bytes: $0, endStream: true) }
        #expect(buffered == 300_000)
        try pair.pump()
        #expect(pair.clientEvents.bodies[id]?.count == 65_535)
        #expect(pair.server.bufferedBytes(stream: id) == 300_000 - 65_535)
        #expect(pair.serverEvents.writable.isEmpty)

        var rounds = 0
        while !pair.clientEvents.ended.contains(id), rounds < 100 {
            pair.client.consumed(stream: id, bytes: pair.clientEvents.bodies[id]?.count ?? 0)
            try pair.pump()
            rounds += 1
        }
        #expect(pair.clientEvents.bodies[id]?.count == 300_000)
        #expect(pair.serverEvents.writable == [id])
    }

    @Test func headRequestsAnd204And304NeverCarryABody() throws {
        let pair = Pair()
        let head = try #require(pair.client.submitRequest(fields: Self.request("HEAD"), hasBody: false))
        let noContent = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        var fields = HTTP2Fields()
        fields.append("content-length", value: "5".utf8)
        pair.server.submitResponse(stream: head, status: 200, fields: fields, hasBody: true)
        Array("hello".utf8).withUnsafeBytes { _ = pair.server.submitData(stream: head, bytes: $0, endStream: true) }
        pair.server.submitResponse(stream: noContent, status: 204, fields: HTTP2Fields(), hasBody: true)
        try pair.pump()
        #expect(pair.clientEvents.heads[head]?.status == 200)
        #expect(pair.clientEvents.bodies[head] == nil)
        #expect(pair.clientEvents.closed[head] == .noError)
        #expect(pair.clientEvents.bodies[noContent] == nil)
        #expect(pair.clientEvents.closed[noContent] == .noError)
    }

    @Test func gracefulShutdownLetsOpenStreamsFinishThenFinishes() throws {
        let pair = Pair()
        let first = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        pair.server.beginGracefulShutdown()
        try pair.pump()
        // GOAWAY 2^31-1 first, then (after the PING round trip) the last stream processed.
        #expect(pair.clientEvents.goAways.map(\.0) == [Int32.max, first])
        #expect(pair.clientEvents.goAways.allSatisfy { $0.1 == .noError })
        #expect(pair.client.submitRequest(fields: Self.request(), hasBody: false) == nil)
        #expect(!pair.server.isFinished)

        pair.server.submitResponse(stream: first, status: 200, fields: HTTP2Fields(), hasBody: true)
        Array("done".utf8).withUnsafeBytes { _ = pair.server.submitData(stream: first, bytes: $0, endStream: true) }
        try pair.pump()
        #expect(text(pair.clientEvents.bodies[first] ?? []) == "done")
        #expect(pair.clientEvents.closed[first] == .noError)
        #expect(pair.server.isFinished)
    }

    @Test func clientSeesRefusedStreamForRequestsAboveTheLastStreamOfAGoAway() throws {
        let pair = Pair()
        let first = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        pair.server.submitGoAway(lastStream: 0, errorCode: .noError)
        try pair.pump()
        #expect(pair.clientEvents.closed[first] == .refusedStream)
    }

    @Test func resetFromTheProxyReachesTheClientAndIsNotChargedAsARapidReset() throws {
        let pair = Pair()
        let id = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        pair.server.resetStream(stream: id, errorCode: .internalError)
        try pair.pump()
        #expect(pair.clientEvents.closed[id] == .internalError)
        #expect(pair.serverEvents.closed[id] == .internalError)
        #expect(pair.server.resetsCounted == 0)
    }

    @Test func clientCancelReachesTheServerDelegate() throws {
        let pair = Pair()
        let id = try #require(pair.client.submitRequest(fields: Self.request("POST"), hasBody: true))
        try pair.pump()
        pair.client.resetStream(stream: id, errorCode: .cancel)
        try pair.pump()
        #expect(pair.serverEvents.closed[id] == .cancel)
        #expect(pair.server.resetsCounted == 1)
        #expect(pair.server.closeReason == nil)
    }

    @Test func unacknowledgedBytesOfAClosedStreamAreReturnedToTheConnectionWindow() throws {
        var settings = HTTP2Settings()
        settings.initialConnectionWindowSize = 65_535
        let pair = Pair(serverSettings: settings)
        pair.serverEvents.autoConsume = false
        let first = try #require(pair.client.submitRequest(fields: Self.request("POST"), hasBody: true))
        [UInt8](repeating: 1, count: 65_535).withUnsafeBytes { _ = pair.client.submitData(stream: first, bytes: $0, endStream: false) }
        try pair.pump()
        #expect(pair.serverEvents.bodies[first]?.count == 65_535)
        // The proxy gives up on the stream without acknowledging its bytes.
        pair.server.resetStream(stream: first, errorCode: .cancel)
        try pair.pump()
        let second = try #require(pair.client.submitRequest(fields: Self.request("POST"), hasBody: true))
        [UInt8](repeating: 2, count: 40_000).withUnsafeBytes { _ = pair.client.submitData(stream: second, bytes: $0, endStream: true) }
        try pair.pump()
        #expect(pair.serverEvents.bodies[second]?.count == 40_000)
    }

    @Test func grpcTrailersOnlyResponseEndsTheStreamInItsHead() throws {
        let pair = Pair()
        var fields = Self.request("POST", path: "/echo.Echo/Unary")
        fields.append("content-type", value: "application/grpc".utf8)
        fields.append("te", value: "trailers".utf8)
        let id = try #require(pair.client.submitRequest(fields: fields, hasBody: true))
        [UInt8](repeating: 0, count: 5).withUnsafeBytes { _ = pair.client.submitData(stream: id, bytes: $0, endStream: true) }
        try pair.pump()
        var response = HTTP2Fields()
        response.append("content-type", value: "application/grpc".utf8)
        response.append("grpc-status", value: "14".utf8)
        response.append("grpc-message", value: "no healthy upstream".utf8)
        pair.server.submitResponse(stream: id, status: 200, fields: response, hasBody: false)
        try pair.pump()
        #expect(pair.clientEvents.ended.contains(id))
        #expect(text(pair.clientEvents.heads[id]?.fields.firstValue(named: "grpc-status") ?? []) == "14")
        #expect(pair.clientEvents.closed[id] == .noError)
    }

    @Test func connectionSpecificFieldInAnUpstreamResponseResetsTheClientStream() throws {
        let pair = Pair()
        let id = try #require(pair.client.submitRequest(fields: Self.request(), hasBody: false))
        try pair.pump()
        var response = HTTP2Fields()
        response.append("connection", value: "close".utf8)
        pair.server.submitResponse(stream: id, status: 200, fields: response, hasBody: false)
        try pair.pump()
        #expect(pair.clientEvents.heads[id] == nil)
        #expect(pair.clientEvents.closed[id] == .protocolError)
    }

    @Test func fieldHelpersLowercaseNamesAndSpotConnectionSpecificFields() {
        var fields = HTTP2Fields()
        Array("Content-Type".utf8).withUnsafeBytes { name in
            Array("text/html".utf8).withUnsafeBytes { value in fields.append(lowercasingName: name, value: value) }
        }
        #expect(text(fields.name(at: 0)) == "content-type")
        for name in ["Connection", "keep-alive", "Proxy-Connection", "Transfer-Encoding", "upgrade"] {
            Array(name.utf8).withUnsafeBytes { #expect(HTTP2Fields.isConnectionSpecific(name: $0), "\(name)") }
        }
        for name in ["te", "content-length", "host", "connections"] {
            Array(name.utf8).withUnsafeBytes { #expect(!HTTP2Fields.isConnectionSpecific(name: $0), "\(name)") }
        }
        var none: [UInt8] = []
        #expect(fields.appendJoinedCookies(to: &none) == 0)
    }
}
