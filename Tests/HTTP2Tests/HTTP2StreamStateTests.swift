import HTTP2
import Testing

/// RFC 9113 §5.1, §5.1.1, §5.3.1 and §6.3: frames on streams whose state
/// forbids them, sent as raw frames (the h2spec cases http2/5.1/8, 5.1/9,
/// 5.1/11, 5.1/12, 5.1.1/2, 5.3.1/2, 6.3/1 and their neighbours).
@Suite struct HTTP2StreamStateTests {
    static let data = Raw.frame(Raw.data, flags: Raw.endStream, stream: 1, Array("test".utf8))
    static var headersEnded: [UInt8] { Raw.headerFrames(stream: 1, Raw.getBlock(), endStream: true) }
    static var headersOpen: [UInt8] { Raw.headerFrames(stream: 1, Raw.getBlock(), endStream: false) }
    static let cancel = Raw.frame(Raw.rstStream, stream: 1, Raw.u32(HTTP2ErrorCode.cancel.rawValue))

    /// PRIORITY on `stream`, depending on `dependency`, weight 256.
    static func priority(stream: UInt32, dependsOn dependency: UInt32) -> [UInt8] {
        Raw.frame(Raw.priority, stream: stream, Raw.u32(dependency) + [255])
    }

    /// A client whose stream 1 is closed by END_STREAM both ways (a GET and its 204).
    static func clientWithStreamOneEndedBothWays() -> RawClient {
        let client = RawClient()
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack) + headersEnded)
        client.server.submitResponse(stream: 1, status: 204, fields: HTTP2Fields(), hasBody: false)
        client.send([])
        #expect(client.events.closed[1] == .noError, "stream 1 closed normally")
        return client
    }

    // MARK: After the client's RST_STREAM (RFC 9113 §5.1, closed)

    @Test func dataAfterTheClientsResetGetsRstStreamStreamClosed() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen + Self.cancel + Self.data)
        #expect(client.resetCode(stream: 1) == .streamClosed)
        #expect(client.goAwayCode == nil, "a stream error, not a connection error")
    }

    @Test func headersAfterTheClientsResetGetsRstStreamStreamClosed() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen)
        client.send(Self.cancel)
        client.send(Self.headersEnded)
        #expect(client.resetCode(stream: 1) == .streamClosed)
        #expect(client.goAwayCode == nil)
        #expect(client.events.heads.count == 1, "the second HEADERS is no new request")
    }

    @Test func lateDataWhoseHeaderIsSplitAcrossReadsIsStillAnswered() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen + Self.cancel + Array(Self.data[0..<4]))
        #expect(client.resetCode(stream: 1) == nil)
        client.send(Array(Self.data[4...]))
        #expect(client.resetCode(stream: 1) == .streamClosed)
        #expect(client.goAwayCode == nil)
    }

    @Test func onlyOneResetAnswersLateFramesOnAStream() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen + Self.cancel + Self.data + Self.data + Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(1)))
        #expect(client.received.filter { $0.type == Raw.rstStream }.count == 1)
        #expect(client.goAwayCode == nil)
    }

    // MARK: After END_STREAM both ways (RFC 9113 §5.1, closed)

    @Test func dataAfterEndStreamBothWaysGetsGoAwayStreamClosed() {
        let client = Self.clientWithStreamOneEndedBothWays()
        client.send(Self.data)
        #expect(client.goAwayCode == .streamClosed)
        #expect(client.thrown == .streamState(.streamClosed))
        #expect(client.server.connectionShouldClose)
    }

    @Test func headersAfterEndStreamBothWaysGetsGoAwayStreamClosed() {
        let client = Self.clientWithStreamOneEndedBothWays()
        client.send(Self.headersEnded)
        #expect(client.goAwayCode == .streamClosed)
        #expect(client.events.heads.count == 1)
    }

    @Test func windowUpdateResetAndPriorityAfterEndStreamBothWaysAreAccepted() {
        // They may cross our END_STREAM on the wire (RFC 9113 §5.1).
        let client = Self.clientWithStreamOneEndedBothWays()
        client.send(Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(100)) + Self.cancel + Self.priority(stream: 1, dependsOn: 0))
        #expect(client.goAwayCode == nil)
        #expect(client.resetCode(stream: 1) == nil)
        #expect(!client.server.connectionShouldClose)
    }

    // MARK: After our RST_STREAM: frames in flight are ignored

    @Test func framesAfterOurResetAreIgnored() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen)
        client.server.resetStream(stream: 1, errorCode: .cancel)
        client.send([])
        #expect(client.resetCode(stream: 1) == .cancel)
        client.send(Self.data + Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(1)) + Raw.headerFrames(stream: 1, Raw.literal("x-trailer", "1"), endStream: true))
        #expect(client.received.filter { $0.type == Raw.rstStream }.count == 1, "no second reset")
        #expect(client.goAwayCode == nil)
        // And the connection still serves.
        client.send(Raw.headerFrames(stream: 3, Raw.getBlock(), endStream: true))
        #expect(client.events.heads[3] != nil)
    }

    // MARK: Stream identifiers (RFC 9113 §5.1.1)

    @Test func headersOnALowerStreamIDThanTheLastGetsGoAwayProtocolError() {
        let client = RawClient()
        client.send(Raw.start + Raw.headerFrames(stream: 5, Raw.getBlock(), endStream: true) + Raw.headerFrames(stream: 3, Raw.getBlock(), endStream: true))
        #expect(client.goAwayCode == .protocolError)
        #expect(client.received.last { $0.type == Raw.goAway }?.goAwayLastStream == 5, "stream 5 was processed")
        #expect(client.events.heads[3] == nil)
    }

    @Test func dataOnASkippedStreamGetsRstStreamStreamClosed() {
        let client = RawClient()
        client.send(Raw.start + Raw.headerFrames(stream: 5, Raw.getBlock(), endStream: true))
        client.send(Raw.frame(Raw.data, flags: Raw.endStream, stream: 3, [1]))
        #expect(client.resetCode(stream: 3) == .streamClosed)
        #expect(client.goAwayCode == nil)
    }

    @Test func increasingStreamIDsWithGapsAreServed() {
        let client = RawClient()
        for id: UInt32 in [1, 7, 9, 301, 1001] {
            client.send((id == 1 ? Raw.start : []) + Raw.headerFrames(stream: id, Raw.getBlock(), endStream: true))
        }
        #expect(client.events.heads.count == 5)
        #expect(client.goAwayCode == nil)
    }

    // MARK: PRIORITY (RFC 9113 §5.3.1, §6.3)

    @Test func priorityOnStreamZeroGetsGoAwayProtocolError() {
        let client = RawClient()
        client.send(Raw.start + Self.priority(stream: 0, dependsOn: 0))
        #expect(client.goAwayCode == .protocolError)
        #expect(client.thrown == .streamState(.protocolError))
    }

    @Test func priorityOnAnIdleStreamDependingOnItselfGetsGoAwayProtocolError() {
        // No RST_STREAM may name an idle stream (§6.4): the stream error becomes a connection error.
        let client = RawClient()
        client.send(Raw.start + Self.priority(stream: 1, dependsOn: 1))
        #expect(client.goAwayCode == .protocolError)
    }

    @Test func priorityOnAnOpenStreamDependingOnItselfGetsRstStreamProtocolError() {
        let client = RawClient()
        client.send(Raw.start + Self.headersOpen + Self.priority(stream: 1, dependsOn: 1))
        #expect(client.resetCode(stream: 1) == .protocolError)
        #expect(client.goAwayCode == nil)
        #expect(client.events.closed[1] != nil, "the proxy is told the stream is gone")
    }

    @Test func priorityDependingOnItselfIsFoundWhenSplitAcrossReads() {
        let client = RawClient()
        let frame = Self.priority(stream: 0, dependsOn: 0)
        client.send(Raw.start + Array(frame[0..<7]))
        client.send(Array(frame[7..<11]))
        #expect(client.goAwayCode == nil)
        client.send(Array(frame[11...]))
        #expect(client.goAwayCode == .protocolError)

        let other = RawClient()
        let selfDependent = Self.priority(stream: 1, dependsOn: 1)
        other.send(Raw.start + Self.headersOpen + Array(selfDependent[0..<11]))
        other.send(Array(selfDependent[11...]))
        #expect(other.resetCode(stream: 1) == .protocolError)
    }

    @Test func ordinaryPriorityFramesAreAccepted() {
        let client = RawClient()
        client.send(Raw.start + Self.priority(stream: 3, dependsOn: 0) + Self.headersEnded + Self.priority(stream: 1, dependsOn: 3))
        #expect(client.goAwayCode == nil)
        #expect(client.resetCode(stream: 1) == nil)
        #expect(client.events.heads[1] != nil)
    }
}
