import CNGHTTP2
#if canImport(Glibc)
import Glibc
#endif

/// The monotonic clock sessions use by default (injectable for tests).
public enum HTTP2Clock {
    /// CLOCK_MONOTONIC in nanoseconds.
    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}

/// Per-stream state owned by a session: the outbound body buffer (read by
/// nghttp2's data provider) and receive-side flow-control accounting.
/// Recycled by the session (`makeStream` / `recycle`): `reset` must put back
/// every property.
final class HTTP2StreamState {
    private(set) var id: Int32
    /// Body bytes submitted but not yet taken by nghttp2: `sendBuffer[sendOffset...]`.
    var sendBuffer: [UInt8] = []
    var sendOffset = 0
    /// No more body will be submitted (end of stream or trailers queued).
    var sendEnded = false
    /// Trailers to send when the body buffer drains.
    var trailers: HTTP2Fields?
    /// nghttp2 was told DEFERRED and waits for `nghttp2_session_resume_data`.
    var deferred = false
    /// Our HEADERS went out with a data provider that reads `sendBuffer`.
    var bodyProviderActive = false
    /// The final response (server) or the request (client) head was submitted.
    var headSubmitted = false
    /// Body bytes are dropped (HEAD request, 204, 304, or no body submitted).
    var discardBody = false
    /// Received body bytes handed to the delegate and not yet `consumed`.
    var unconsumed = 0
    /// The peer sent RST_STREAM.
    var peerReset = false
    /// The application asked for the reset (`resetStream`), not the peer's fault.
    var localReset = false
    /// RST_STREAM(NO_ERROR) goes out once our response's END_STREAM has
    /// been sent (RFC 9113 §8.1: a complete response before the request's
    /// end). Submitting it earlier would make nghttp2 drop the response.
    var resetWhenResponseEnds = false
    /// Our END_STREAM has been sent.
    var endSent = false
    /// Server: the request was HEAD, so the response has no body.
    var isHeadRequest = false
    /// Server: the session answered the request itself (431); the delegate never saw it.
    var rejected = false
    /// The buffer reached the high-water mark; `streamWritable` fires when it drains below.
    var aboveHighWater = false

    init(id: Int32) {
        self.id = id
    }

    /// A fresh stream `id`, keeping only the send buffer's capacity.
    func reset(id: Int32) {
        self.id = id
        sendBuffer.removeAll(keepingCapacity: true)
        sendOffset = 0
        sendEnded = false
        trailers = nil
        deferred = false
        bodyProviderActive = false
        headSubmitted = false
        discardBody = false
        unconsumed = 0
        peerReset = false
        localReset = false
        resetWhenResponseEnds = false
        endSent = false
        isHeadRequest = false
        rejected = false
        aboveHighWater = false
    }

    var bufferedBytes: Int { sendBuffer.count - sendOffset }
}

/// The shared engine behind `HTTP2ServerSession` and `HTTP2ClientSession`: owns
/// the `nghttp2_session`, the streams, the limits and the output.
///
/// Threading: not thread-safe; one event loop drives it. Delegate methods run
/// synchronously inside `receive`, `nextOutputChunk`/`produceOutput` and the
/// submit calls, and may call back into the session.
final class HTTP2SessionCore {
    enum Role { case server, client }
    enum Shutdown { case none, noticeSent, finalSent }

    let role: Role
    let settings: HTTP2Settings
    let clock: () -> UInt64
    /// The nghttp2 session; freed in deinit.
    var session: OpaquePointer!
    // unowned(unsafe): the delegate owns the session (a connection and its
    // session) or otherwise outlives it. A weak reference would give the
    // delegate a side table, which sends every retain and release of it down
    // the runtime's slow path: a quarter of the proxy's HTTP/2 instructions.
    unowned(unsafe) var serverDelegate: (any HTTP2ServerSessionDelegate)?
    unowned(unsafe) var clientDelegate: (any HTTP2ClientSessionDelegate)?

    var streams = HTTP2StreamMap<HTTP2StreamState>()
    /// Closed streams' states kept for the next streams (bounded).
    var spareStreams: [HTTP2StreamState] = []

    // The header block being decoded. HEADERS + CONTINUATION of one block are
    // contiguous on a connection (RFC 9113 §6.10), so one scratch list serves all streams.
    var scratch = HTTP2Fields(byteCapacity: 1_024, fieldCapacity: 32)
    var blockBytes = 0
    var blockTooLarge = false
    var pseudoMethod: Range<Int>?
    var pseudoScheme: Range<Int>?
    var pseudoAuthority: Range<Int>?
    var pseudoPath: Range<Int>?
    var pseudoProtocol: Range<Int>?
    var pseudoStatus: Int?
    var hostValue: Range<Int>?
    var contentLength: Int64?

    var nameValueScratch: [nghttp2_nv] = []
    var writableStreams: [Int32] = []

    var closeReason: HTTP2CloseReason?
    var rateWindowStart: UInt64
    var resetsInWindow = 0
    var controlFramesInWindow = 0
    var settingsSentAt: UInt64?
    var lastActivity: UInt64
    var shutdown = Shutdown.none
    /// Counters for metrics and tests.
    var resetsCounted = 0
    var controlFramesCounted = 0

    // Inbound frame accounting (`accountInboundFrames`): a frame-header
    // scanner that runs ahead of nghttp2. nghttp2 does not call back for the
    // frames it drops (PRIORITY under SETTINGS_NO_RFC7540_PRIORITIES, unknown
    // types), and counting first keeps a flood from reaching nghttp2 at all.
    /// Connection preface bytes still to skip (the client's magic, server only).
    var scanPrefaceRemaining: Int
    /// Payload bytes of the current inbound frame still to skip.
    var scanPayloadRemaining = 0
    /// A frame header split across reads: its first `scanHeaderCount` bytes.
    var scanHeader: (UInt64, UInt64) = (0, 0)
    var scanHeaderCount = 0
    /// WINDOW_UPDATE frames the peer may send without being charged to the
    /// control-frame budget: earned by the DATA frames we send and the
    /// streams the peer opens (see `HTTP2Settings.maxControlFramesPerSecond`).
    var windowUpdateCredit = HTTP2SessionCore.initialWindowUpdateCredit
    /// PRIORITY payload being read by the scanner (server only): its first
    /// 4 bytes name the stream it depends on (`checkStreamState`).
    var scanPriorityActive = false
    var scanPriorityStream: UInt32 = 0
    var scanPriorityDependency: UInt32 = 0
    var scanPriorityCollected = 0
    var scanPriorityOffset = 0

    // Stream states (HTTP2SessionCore+StreamStates.swift), server only.
    /// Frames of the bytes being received to check before nghttp2 sees them (reused).
    var frameChecks: [HTTP2FrameCheck] = []
    /// How recent client streams closed (direct-mapped; empty until the first close).
    var closedStreams: [UInt32] = []
    /// The highest stream ID the client opened (or tried to) with HEADERS.
    var highestClientStream: UInt32 = 0

    /// Free WINDOW_UPDATEs at the start of a connection (a client enlarging
    /// its connection and first streams' windows).
    static let initialWindowUpdateCredit = 16
    /// Free WINDOW_UPDATEs per DATA frame we send: one for the stream and one
    /// for the connection, the most a client acknowledging every frame sends.
    static let windowUpdateCreditPerDataFrame = 2
    /// Most free WINDOW_UPDATEs a connection can bank: far more DATA frames
    /// than any client leaves unacknowledged, few enough that a banked flood
    /// costs milliseconds.
    static let maxWindowUpdateCredit = 65_536

    /// Opaque data of the PING sent with the shutdown notice; its ACK (one
    /// round trip later, RFC 9113 §6.8) triggers the final GOAWAY.
    static let shutdownPing: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x50, 0x53, 0x54, 0x52, 0x4e, 0x53, 0x48, 0x44)

    init(role: Role, settings: HTTP2Settings, clock: @escaping () -> UInt64) {
        precondition(settings.validationError() == nil, "HTTP2Settings must be valid: \(settings.validationError() ?? "")")
        self.role = role
        self.settings = settings
        self.clock = clock
        let now = clock()
        rateWindowStart = now
        lastActivity = now
        scanPrefaceRemaining = role == .server ? HTTP2Preface.bytes.count : 0

        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0, "nghttp2 callbacks allocation must succeed")
        defer { nghttp2_session_callbacks_del(callbacks) }
        NGHTTP2.installCallbacks(callbacks)

        var option: OpaquePointer?
        precondition(nghttp2_option_new(&option) == 0, "nghttp2 option allocation must succeed")
        defer { nghttp2_option_del(option) }
        // The proxy acknowledges body bytes only once it forwarded them (backpressure).
        nghttp2_option_set_no_auto_window_update(option, 1)
        nghttp2_option_set_no_closed_streams(option, 1)
        nghttp2_option_set_max_continuations(option, settings.maxContinuations)
        nghttp2_option_set_max_outbound_ack(option, settings.maxOutboundAcks)
        nghttp2_option_set_max_settings(option, settings.maxSettingsEntries)
        nghttp2_option_set_max_deflate_dynamic_table_size(option, settings.maxEncoderTableSize)
        // nghttp2's own RST_STREAM token bucket (GOAWAY INTERNAL_ERROR) stays as a
        // backstop looser than ours, so ours (ENHANCE_YOUR_CALM) fires first.
        let cap = UInt64(settings.maxResetsPerSecond)
        nghttp2_option_set_stream_reset_rate_limit(option, max(1_000, cap * 4), max(33, cap))

        var created: OpaquePointer?
        let userData = Unmanaged.passUnretained(self).toOpaque()
        let rv: Int32
        switch role {
        case .server: rv = nghttp2_session_server_new2(&created, callbacks, userData, option)
        case .client: rv = nghttp2_session_client_new2(&created, callbacks, userData, option)
        }
        precondition(rv == 0 && created != nil, "nghttp2 session allocation must succeed")
        session = created

        var entries: [nghttp2_settings_entry] = [
            .init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: settings.maxConcurrentStreams),
            .init(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: settings.initialStreamWindowSize),
            .init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_FRAME_SIZE.rawValue), value: settings.maxFrameSize),
            .init(settings_id: Int32(NGHTTP2_SETTINGS_HEADER_TABLE_SIZE.rawValue), value: settings.headerTableSize),
            .init(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: settings.maxHeaderListSize),
        ]
        switch role {
        case .server:
            // RFC 9218 §2.1: we do not use the RFC 7540 priority tree (also
            // removes its CPU cost, CVE-2019-9513).
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES.rawValue), value: 1))
        case .client:
            entries.append(.init(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0))
        }
        let submitted = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), entries, entries.count)
        precondition(submitted == 0, "initial SETTINGS must be accepted by nghttp2")
        settingsSentAt = now
        if settings.initialConnectionWindowSize > 65_535 {
            _ = nghttp2_session_set_local_window_size(
                session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, Int32(settings.initialConnectionWindowSize))
        }
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: Input and output

    func receive(_ bytes: UnsafeRawBufferPointer) throws(HTTP2SessionError) {
        if let reason = closeReason {
            if case .protocolError(let error) = reason { throw error }
            return  // Closing by our decision: the rest of the peer's input is ignored.
        }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        accountInboundFrames(bytes)
        // A flood found in these bytes: nghttp2 never does its work.
        if closeReason != nil {
            frameChecks.removeAll(keepingCapacity: true)
            return
        }
        if role == .server {
            try receiveCheckingStreamStates(bytes)
            deliverWritable()
            return
        }
        let processed = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if processed < 0 {
            let error = Self.sessionError(Int32(truncatingIfNeeded: processed))
            if closeReason == nil { closeReason = .protocolError(error) }
            throw error
        }
        deliverWritable()
    }

    func nextOutputChunk() -> UnsafeRawBufferPointer {
        var data: UnsafePointer<UInt8>?
        let produced = nghttp2_session_mem_send(session, &data)
        if produced < 0 {
            if closeReason == nil { closeReason = .protocolError(Self.sessionError(Int32(truncatingIfNeeded: produced))) }
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        let chunk = UnsafeRawBufferPointer(start: data, count: produced)
        deliverWritable()
        return chunk
    }

    func produceOutput(into buffer: inout [UInt8], maxBytes: Int) -> Int {
        var total = 0
        while total < maxBytes {
            let chunk = nextOutputChunk()
            if chunk.isEmpty { break }
            buffer.append(contentsOf: chunk)
            total += chunk.count
        }
        return total
    }

    var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
    var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }

    static func sessionError(_ code: Int32) -> HTTP2SessionError {
        switch code {
        case NGHTTP2_ERR_BAD_CLIENT_MAGIC.rawValue: return .badClientPreface
        case NGHTTP2_ERR_FLOODED.rawValue: return .flooded
        default: return .library(code: code)
        }
    }

    // MARK: Submitting

    /// Builds the nghttp2 name/value array for `fields` (with `:status` first
    /// when given) and calls `body` with it. nghttp2 copies what it keeps.
    func withNameValues<Result>(
        status: Int?, fields: HTTP2Fields,
        _ body: (UnsafePointer<nghttp2_nv>?, Int) -> Result
    ) -> Result {
        var list = nameValueScratch
        nameValueScratch = []
        defer {
            list.removeAll(keepingCapacity: true)
            nameValueScratch = list
        }
        let statusName: StaticString = ":status"
        var digits: (UInt8, UInt8, UInt8) = (0x30, 0x30, 0x30)
        if let status {
            precondition((100...999).contains(status), "an HTTP status must have three digits")
            digits = (UInt8(0x30 + status / 100), UInt8(0x30 + status / 10 % 10), UInt8(0x30 + status % 10))
        }
        return withUnsafeMutableBytes(of: &digits) { digitBytes in
            fields.bytes.withUnsafeBufferPointer { storage in
                // A zero-length field still needs a non-null pointer.
                let base = UnsafeMutablePointer(mutating: storage.baseAddress ?? statusName.utf8Start)
                let flags = UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                if status != nil {
                    list.append(nghttp2_nv(
                        name: UnsafeMutablePointer(mutating: statusName.utf8Start), value: digitBytes.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        namelen: statusName.utf8CodeUnitCount, valuelen: 3, flags: flags))
                }
                for entry in fields.entries {
                    list.append(nghttp2_nv(
                        name: base + entry.name.lowerBound, value: base + entry.value.lowerBound,
                        namelen: entry.name.count, valuelen: entry.value.count, flags: flags))
                }
                return list.withUnsafeBufferPointer { body($0.baseAddress, $0.count) }
            }
        }
    }

    func makeStream(id: Int32) -> HTTP2StreamState {
        let stream: HTTP2StreamState
        if let spare = spareStreams.popLast() {
            spare.reset(id: id)
            stream = spare
        } else {
            stream = HTTP2StreamState(id: id)
        }
        streams[id] = stream
        return stream
    }

    /// Keeps a closed stream's state (and its buffer's capacity) for the next
    /// stream; only states nothing else references (the session hands them to nobody).
    func recycle(_ stream: HTTP2StreamState) {
        guard spareStreams.count < 16, stream.sendBuffer.capacity <= 256 * 1024 else { return }
        stream.trailers = nil
        spareStreams.append(stream)
    }

    static func dataProvider() -> nghttp2_data_provider {
        nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: NGHTTP2.readBody)
    }

    /// Queues body bytes; returns the stream's buffered byte count, or nil when
    /// the stream is gone or its body already ended.
    func submitData(stream id: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) -> Int? {
        guard let stream = streams[id], !stream.sendEnded else { return nil }
        if !stream.discardBody { stream.sendBuffer.append(contentsOf: bytes) }
        if endStream { stream.sendEnded = true }
        if stream.bufferedBytes >= settings.streamSendBufferHighWater { stream.aboveHighWater = true }
        resumeIfDeferred(stream)
        return stream.bufferedBytes
    }

    func submitTrailers(stream id: Int32, fields: HTTP2Fields) -> Bool {
        guard let stream = streams[id], !stream.sendEnded else { return false }
        stream.sendEnded = true
        if stream.discardBody { return true }
        stream.trailers = fields
        resumeIfDeferred(stream)
        return true
    }

    func resumeIfDeferred(_ stream: HTTP2StreamState) {
        guard stream.deferred, stream.bodyProviderActive else { return }
        stream.deferred = false
        _ = nghttp2_session_resume_data(session, stream.id)
    }

    func resetStream(_ id: Int32, errorCode: HTTP2ErrorCode) {
        guard let stream = streams[id] else { return }
        stream.localReset = true
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, errorCode.rawValue)
    }

    /// Resets the stream with NO_ERROR once the response submitted for it
    /// has been sent whole: the client stops sending a request body nobody
    /// reads, and still receives the response.
    func resetStreamAfterResponse(_ id: Int32) {
        guard let stream = streams[id], !stream.localReset else { return }
        if stream.endSent {
            stream.localReset = true
            _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), id, HTTP2ErrorCode.noError.rawValue)
        } else {
            stream.resetWhenResponseEnds = true
        }
    }

    /// A frame left (nghttp2's on_frame_send): the deferred reset follows
    /// the END_STREAM of a response.
    func frameSent(_ frame: UnsafePointer<nghttp2_frame>) -> Int32 {
        let header = frame.pointee.hd
        guard header.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
            header.type == UInt8(NGHTTP2_HEADERS.rawValue) || header.type == UInt8(NGHTTP2_DATA.rawValue),
            let stream = streams[header.stream_id]
        else { return 0 }
        stream.endSent = true
        guard stream.resetWhenResponseEnds, !stream.localReset else { return 0 }
        stream.localReset = true
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), header.stream_id, HTTP2ErrorCode.noError.rawValue)
        return 0
    }

    func consumed(stream id: Int32, bytes: Int) {
        guard let stream = streams[id], bytes > 0 else { return }
        let count = min(bytes, stream.unconsumed)
        guard count > 0 else { return }
        stream.unconsumed -= count
        _ = nghttp2_session_consume(session, id, count)
    }

    func bufferedBytes(stream id: Int32) -> Int { streams[id]?.bufferedBytes ?? 0 }

    func submitGoAway(lastStream: Int32, errorCode: HTTP2ErrorCode) {
        shutdown = .finalSent
        _ = nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStream, errorCode.rawValue, nil, 0)
    }

    func beginGracefulShutdown() {
        guard shutdown == .none else { return }
        guard role == .server else { finishGracefulShutdown(); return }
        shutdown = .noticeSent
        _ = nghttp2_submit_shutdown_notice(session)
        var ping = Self.shutdownPing
        withUnsafeBytes(of: &ping) { opaque in
            _ = nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), opaque.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    func finishGracefulShutdown() {
        guard shutdown != .finalSent else { return }
        submitGoAway(lastStream: nghttp2_session_get_last_proc_stream_id(session), errorCode: .noError)
    }

    // MARK: Limits

    func terminate(_ code: HTTP2ErrorCode, reason: HTTP2CloseReason) {
        guard closeReason == nil else { return }
        closeReason = reason
        shutdown = .finalSent
        _ = nghttp2_session_terminate_session(session, code.rawValue)
    }

    func rollRateWindow() {
        let now = clock()
        if now &- rateWindowStart >= 1_000_000_000 {
            rateWindowStart = now
            resetsInWindow = 0
            controlFramesInWindow = 0
        }
    }

    /// Rapid Reset (CVE-2023-44487): a reset the peer caused.
    func countReset() {
        guard role == .server else { return }
        resetsCounted += 1
        rollRateWindow()
        resetsInWindow += 1
        if resetsInWindow > settings.maxResetsPerSecond { terminate(.enhanceYourCalm, reason: .rapidReset) }
    }

    /// Frames that cost us work and carry no request (see `chargeInboundFrame`).
    func countControlFrame() {
        controlFramesCounted += 1
        rollRateWindow()
        controlFramesInWindow += 1
        if controlFramesInWindow > settings.maxControlFramesPerSecond { terminate(.enhanceYourCalm, reason: .controlFrameFlood) }
    }

    /// Walks the frame headers in `bytes` (RFC 9113 §4.1: 9 bytes, then the
    /// payload, skipped) and charges each frame. Keeps its place across calls;
    /// stops at the first frame that closes the connection. No allocation.
    func accountInboundFrames(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        let count = bytes.count
        // A PRIORITY payload that began in an earlier read: its frame starts before these bytes.
        scanPriorityOffset = 0
        if scanPrefaceRemaining > 0 {
            let skipped = min(scanPrefaceRemaining, count)
            scanPrefaceRemaining -= skipped
            index = skipped
        }
        while index < count {
            if scanPayloadRemaining > 0 {
                if scanPriorityActive { collectPriorityDependency(bytes, from: index) }
                let skipped = min(scanPayloadRemaining, count - index)
                scanPayloadRemaining -= skipped
                index += skipped
                continue
            }
            let length: Int
            let type: UInt8
            let flags: UInt8
            let stream: UInt32
            let frameStart: Int
            if scanHeaderCount == 0, count - index >= 9 {
                (length, type, flags, stream) = Self.frameHeader(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + 9)]))
                frameStart = index
                index += 9
            } else {
                // The header began in an earlier read (or ends in a later one, below).
                frameStart = 0
                let taken = min(9 - scanHeaderCount, count - index)
                withUnsafeMutableBytes(of: &scanHeader) { header in
                    header.baseAddress!.advanced(by: scanHeaderCount)
                        .copyMemory(from: bytes.baseAddress!.advanced(by: index), byteCount: taken)
                }
                scanHeaderCount += taken
                index += taken
                guard scanHeaderCount == 9 else { return }
                scanHeaderCount = 0
                (length, type, flags, stream) = withUnsafeBytes(of: &scanHeader) { Self.frameHeader(UnsafeRawBufferPointer(rebasing: $0[0..<9])) }
            }
            scanPayloadRemaining = length
            chargeInboundFrame(type: type, flags: flags, stream: stream, length: length)
            if closeReason != nil { return }
            if role == .server { noteStateCheck(frameStart: frameStart, type: type, stream: stream, length: length) }
        }
    }

    /// Queues the frame for the stream-state check (server only): DATA,
    /// HEADERS and WINDOW_UPDATE on a stream, and every PRIORITY (once the
    /// stream it depends on is read).
    @inline(__always)
    func noteStateCheck(frameStart: Int, type: UInt8, stream: UInt32, length: Int) {
        switch type {
        case 0x0, 0x1, 0x8:
            if stream != 0 { noteFrameForStateCheck(offset: frameStart, type: type, stream: stream, length: length, dependency: nil) }
        case 0x2:
            if length == 5 {
                scanPriorityActive = true
                scanPriorityStream = stream
                scanPriorityDependency = 0
                scanPriorityCollected = 0
                scanPriorityOffset = frameStart
            } else {
                // nghttp2 answers the wrong length (FRAME_SIZE_ERROR); stream 0 is still ours to refuse.
                noteFrameForStateCheck(offset: frameStart, type: type, stream: stream, length: length, dependency: nil)
            }
        default:
            break
        }
    }

    /// Reads the PRIORITY payload's stream dependency (RFC 9113 §6.3: E bit
    /// and 31 bits) as it arrives, possibly over several reads, from the
    /// payload bytes at `index` (the caller then skips the payload).
    func collectPriorityDependency(_ bytes: UnsafeRawBufferPointer, from index: Int) {
        var position = index
        while scanPriorityCollected < 4, position < bytes.count {
            scanPriorityDependency = scanPriorityDependency << 8 | UInt32(bytes[position])
            scanPriorityCollected += 1
            position += 1
        }
        guard scanPriorityCollected == 4 else { return }
        scanPriorityActive = false
        noteFrameForStateCheck(
            offset: scanPriorityOffset, type: 0x2, stream: scanPriorityStream, length: 5,
            dependency: scanPriorityDependency & 0x7fff_ffff)
    }

    @inline(__always)
    func earnWindowUpdateCredit(_ amount: Int) {
        windowUpdateCredit = min(windowUpdateCredit + amount, Self.maxWindowUpdateCredit)
    }

    @inline(__always)
    static func frameHeader(_ header: UnsafeRawBufferPointer) -> (length: Int, type: UInt8, flags: UInt8, stream: UInt32) {
        let length = Int(header[0]) << 16 | Int(header[1]) << 8 | Int(header[2])
        let stream = (UInt32(header[5]) << 24 | UInt32(header[6]) << 16 | UInt32(header[7]) << 8 | UInt32(header[8])) & 0x7fff_ffff
        return (length, header[3], header[4], stream)
    }

    /// The accounting rule (docs/http2.md): a frame that carries a request,
    /// body bytes or a reset is free (resets have their own budget); one
    /// that only costs work counts against `maxControlFramesPerSecond`:
    /// SETTINGS, PING, PRIORITY, GOAWAY, PUSH_PROMISE, unknown types, DATA
    /// without bytes and without END_STREAM, HEADERS or CONTINUATION without
    /// a header block, and WINDOW_UPDATE beyond the credit our own DATA
    /// frames earned (`windowUpdateCreditPerDataFrame` each).
    @inline(__always)
    func chargeInboundFrame(type: UInt8, flags: UInt8, stream: UInt32, length: Int) {
        switch type {
        case 0x0:  // DATA
            if length == 0, flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) == 0 { countControlFrame() }
        case 0x1:  // HEADERS: a stream the peer may then acknowledge our DATA on.
            if length == 0 { countControlFrame() } else { earnWindowUpdateCredit(1) }
        case 0x3:  // RST_STREAM: counted by `countReset` once nghttp2 parsed it.
            break
        case 0x8:  // WINDOW_UPDATE
            if windowUpdateCredit > 0 { windowUpdateCredit -= 1 } else { countControlFrame() }
        case 0x9:  // CONTINUATION (their number per block is nghttp2's `maxContinuations`)
            if length == 0 { countControlFrame() }
        default:  // PRIORITY, SETTINGS, PUSH_PROMISE, PING, GOAWAY, unknown types
            countControlFrame()
        }
    }

    func checkTimeouts() -> HTTP2CloseReason? {
        guard closeReason == nil else { return closeReason }
        let now = clock()
        if settings.settingsTimeoutSeconds > 0, let sent = settingsSentAt,
           now &- sent > UInt64(settings.settingsTimeoutSeconds) * 1_000_000_000 {
            terminate(.settingsTimeout, reason: .settingsTimeout)
        } else if settings.idleTimeoutSeconds > 0, streams.isEmpty,
                  now &- lastActivity > UInt64(settings.idleTimeoutSeconds) * 1_000_000_000 {
            closeReason = .idle
            finishGracefulShutdown()
        }
        return closeReason
    }

    func deliverWritable() {
        guard !writableStreams.isEmpty else { return }
        var ready = writableStreams
        writableStreams = []
        for id in ready where streams[id] != nil {
            switch role {
            case .server: serverDelegate?.streamWritable(stream: id)
            case .client: clientDelegate?.streamWritable(stream: id)
            }
        }
        ready.removeAll(keepingCapacity: true)
        if writableStreams.isEmpty { writableStreams = ready }
    }
}
