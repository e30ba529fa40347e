import HTTP2
import Testing

/// Attack resistance: Rapid Reset, floods, timeouts.
@Suite struct HTTP2LimitTests {
    @Test func rapidResetGetsGoAwayEnhanceYourCalm() {
        var settings = HTTP2Settings()
        settings.maxResetsPerSecond = 100
        let clock = ManualClock()
        let client = RawClient(settings: settings, clock: clock.function)
        client.send(Raw.start)
        var burst: [UInt8] = []
        for index in 0..<150 {
            let stream = UInt32(1 + 2 * index)
            burst += Raw.frame(Raw.headers, flags: Raw.endHeaders, stream: stream, Raw.getBlock())
            burst += Raw.frame(Raw.rstStream, stream: stream, Raw.u32(HTTP2ErrorCode.cancel.rawValue))
        }
        client.send(burst)
        #expect(client.goAwayCode == .enhanceYourCalm)
        #expect(client.server.closeReason == .rapidReset)
        #expect(client.server.resetsCounted == 101)
        // No request above the cap reached the proxy.
        #expect(client.events.heads.count <= 101)
    }

    @Test func resetsSpreadBelowTheRateAreAllowed() {
        var settings = HTTP2Settings()
        settings.maxResetsPerSecond = 100
        let clock = ManualClock()
        let client = RawClient(settings: settings, clock: clock.function)
        client.send(Raw.start)
        var stream: UInt32 = 1
        for _ in 0..<5 {
            var burst: [UInt8] = []
            for _ in 0..<90 {
                burst += Raw.frame(Raw.headers, flags: Raw.endHeaders, stream: stream, Raw.getBlock())
                burst += Raw.frame(Raw.rstStream, stream: stream, Raw.u32(HTTP2ErrorCode.cancel.rawValue))
                stream += 2
            }
            client.send(burst)
            clock.advance(seconds: 1.1)
        }
        #expect(client.goAwayCode == nil)
        #expect(client.server.closeReason == nil)
        #expect(client.server.resetsCounted == 450)
    }

    @Test func malformedRequestsProvokingResetsCountAsRapidReset() {
        var settings = HTTP2Settings()
        settings.maxResetsPerSecond = 20
        let client = RawClient(settings: settings, clock: ManualClock().function)
        client.send(Raw.start)
        var burst: [UInt8] = []
        for index in 0..<30 {
            burst += Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: UInt32(1 + 2 * index),
                               Raw.getBlock() + Raw.literal("connection", "close"))
        }
        client.send(burst)
        #expect(client.goAwayCode == .enhanceYourCalm)
        #expect(client.server.closeReason == .rapidReset)
    }

    @Test func pingFloodGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start)
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.ping, stream: 0, [UInt8](repeating: 1, count: 8)) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
        #expect(client.server.closeReason == .controlFrameFlood)
    }

    @Test func settingsFloodGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start)
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.settings) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func emptyDataFloodGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start)
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders, stream: 1, [0x83, 0x86, 0x84] + Raw.literal(":authority", "a")))
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.data, stream: 1) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func windowUpdateFloodOnTheConnectionGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.windowUpdate, stream: 0, Raw.u32(1)) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
        #expect(client.server.closeReason == .controlFrameFlood)
    }

    @Test func windowUpdateFloodOnAnOpenStreamGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 1, Raw.getBlock()))
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(1)) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func priorityFloodGetsGoAwayEnhanceYourCalm() {
        // nghttp2 drops PRIORITY without a callback (we announce
        // SETTINGS_NO_RFC7540_PRIORITIES): the frame scanner counts them.
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(Raw.priority, stream: 3, [0, 0, 0, 0, 15]) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func unknownFrameTypeFloodGetsGoAwayEnhanceYourCalm() {
        let client = RawClient(clock: ManualClock().function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        var flood: [UInt8] = []
        for _ in 0..<300 { flood += Raw.frame(0xfa, stream: 0, [1, 2, 3, 4]) }
        client.send(flood)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func framesSplitAcrossReadsAreCountedOnce() {
        // Byte by byte: the scanner keeps its place in headers and payloads.
        let client = RawClient(clock: ManualClock().function)
        var bytes = Raw.start + Raw.frame(Raw.settings, flags: Raw.ack)
        for _ in 0..<150 { bytes += Raw.frame(Raw.priority, stream: 3, [0, 0, 0, 0, 15]) }
        bytes += Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 1, Raw.getBlock())
        for byte in bytes { client.send([byte]) }
        #expect(client.goAwayCode == nil)
        #expect(client.events.heads.count == 1)
        // SETTINGS, its ACK and the 150 PRIORITY frames.
        #expect(client.server.controlFramesCounted == 152)
    }

    @Test func windowUpdatesAcknowledgingOurDataAreFree() {
        // A client that acknowledges every DATA frame on the stream and on
        // the connection sends two WINDOW_UPDATEs per frame, without limit.
        var settings = HTTP2Settings()
        settings.maxControlFramesPerSecond = 20
        let client = RawClient(settings: settings, clock: ManualClock().function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 1, Raw.getBlock()))
        client.server.submitResponse(stream: 1, status: 200, fields: HTTP2Fields(), hasBody: true)
        let chunk = [UInt8](repeating: 0x61, count: 1_000)
        var dataFrames = 0
        for _ in 0..<500 {
            chunk.withUnsafeBytes { _ = client.server.submitData(stream: 1, bytes: $0, endStream: false) }
            let frames = client.send([]).filter { $0.type == Raw.data }
            var acknowledgements: [UInt8] = []
            for frame in frames {
                dataFrames += 1
                acknowledgements += Raw.frame(Raw.windowUpdate, stream: 1, Raw.u32(UInt32(frame.payload.count)))
                acknowledgements += Raw.frame(Raw.windowUpdate, stream: 0, Raw.u32(UInt32(frame.payload.count)))
            }
            client.send(acknowledgements)
        }
        #expect(dataFrames >= 500)
        #expect(client.goAwayCode == nil)
        #expect(client.server.closeReason == nil)
        // Past its credit (16 at the start, 1 for the stream: 17 left) the
        // same client is counted: 43 unearned updates, over the 20 allowed.
        var extra: [UInt8] = []
        for _ in 0..<60 { extra += Raw.frame(Raw.windowUpdate, stream: 0, Raw.u32(1)) }
        client.send(extra)
        #expect(client.goAwayCode == .enhanceYourCalm)
    }

    @Test func continuationFloodClosesTheConnection() {
        let client = RawClient()
        client.send(Raw.start)
        var flood = Raw.frame(Raw.headers, stream: 1, [0x82, 0x86, 0x84])
        for _ in 0..<20 { flood += Raw.frame(Raw.continuation, stream: 1, Raw.literal("x-a", "1")) }
        client.send(flood)
        #expect(client.thrown != nil || client.goAwayCode != nil)
        #expect(client.server.connectionShouldClose || client.server.isFinished)
        #expect(client.events.heads.isEmpty)
    }

    @Test func streamsAboveTheConcurrencyLimitAreRefused() {
        var settings = HTTP2Settings()
        settings.maxConcurrentStreams = 2
        let client = RawClient(settings: settings)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        var burst: [UInt8] = []
        for stream in [UInt32(1), 3, 5] {
            burst += Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: stream, Raw.getBlock())
        }
        client.send(burst)
        #expect(client.events.heads.count == 2)
        let code = client.resetCode(stream: 5) ?? client.goAwayCode
        #expect(code == .refusedStream || code == .protocolError)
    }

    @Test func missingSettingsAckTimesOut() {
        var settings = HTTP2Settings()
        settings.settingsTimeoutSeconds = 10
        let clock = ManualClock()
        let client = RawClient(settings: settings, clock: clock.function)
        client.send(Raw.start)
        clock.advance(seconds: 5)
        #expect(client.server.checkTimeouts() == nil)
        clock.advance(seconds: 6)
        #expect(client.server.checkTimeouts() == .settingsTimeout)
        client.send([])
        #expect(client.goAwayCode == .settingsTimeout)
    }

    @Test func acknowledgedSettingsNeverTimeOut() {
        let clock = ManualClock()
        let client = RawClient(clock: clock.function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        clock.advance(seconds: 30)
        client.send(Raw.frame(Raw.ping, stream: 0, [UInt8](repeating: 0, count: 8)))
        #expect(client.server.checkTimeouts() == nil)
    }

    @Test func idleConnectionIsClosedWithGoAwayNoError() {
        var settings = HTTP2Settings()
        settings.idleTimeoutSeconds = 60
        let clock = ManualClock()
        let client = RawClient(settings: settings, clock: clock.function)
        client.send(Raw.start + Raw.frame(Raw.settings, flags: Raw.ack))
        client.send(Raw.frame(Raw.headers, flags: Raw.endHeaders | Raw.endStream, stream: 1, Raw.getBlock()))
        clock.advance(seconds: 120)
        // An open stream keeps the connection alive.
        #expect(client.server.checkTimeouts() == nil)
        client.server.submitResponse(stream: 1, status: 204, fields: HTTP2Fields(), hasBody: false)
        client.send([])
        clock.advance(seconds: 61)
        #expect(client.server.checkTimeouts() == .idle)
        client.send([])
        #expect(client.goAwayCode == .noError)
        #expect(client.received.last { $0.type == Raw.goAway }?.goAwayLastStream == 1)
    }

    @Test func settingsOutOfRangeAreReportedByName() {
        var settings = HTTP2Settings()
        #expect(settings.validationError() == nil)
        settings.maxFrameSize = 100
        #expect(settings.validationError()?.contains("max frame size") == true)
    }
}
