import HTTP2
import Testing

/// Records a server session's events; answers nothing unless told.
final class ServerRecorder: HTTP2ServerSessionDelegate {
    var heads: [Int32: HTTP2RequestHead] = [:]
    var headEnded: [Int32: Bool] = [:]
    var bodies: [Int32: [UInt8]] = [:]
    var ended: Set<Int32> = []
    var trailers: [Int32: HTTP2Fields] = [:]
    var closed: [Int32: HTTP2ErrorCode] = [:]
    var goAways: [(Int32, HTTP2ErrorCode)] = []
    var writable: [Int32] = []
    /// Acknowledge body bytes as soon as they arrive.
    var autoConsume = true
    weak var session: HTTP2ServerSession?
    var onHead: ((Int32, HTTP2RequestHead, Bool) -> Void)?

    func requestHead(stream: Int32, head: HTTP2RequestHead, endStream: Bool) {
        heads[stream] = head
        headEnded[stream] = endStream
        if endStream { ended.insert(stream) }
        onHead?(stream, head, endStream)
    }
    func requestData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) {
        bodies[stream, default: []].append(contentsOf: bytes)
        if endStream { ended.insert(stream) }
        if autoConsume { session?.consumed(stream: stream, bytes: bytes.count) }
    }
    func requestTrailers(stream: Int32, fields: HTTP2Fields) {
        trailers[stream] = fields
        ended.insert(stream)
    }
    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode) { closed[stream] = errorCode }
    func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode) { goAways.append((lastStream, errorCode)) }
    func streamWritable(stream: Int32) { writable.append(stream) }
}

/// Records a client session's events.
final class ClientRecorder: HTTP2ClientSessionDelegate {
    var heads: [Int32: HTTP2ResponseHead] = [:]
    var bodies: [Int32: [UInt8]] = [:]
    var ended: Set<Int32> = []
    var trailers: [Int32: HTTP2Fields] = [:]
    var closed: [Int32: HTTP2ErrorCode] = [:]
    var goAways: [(Int32, HTTP2ErrorCode)] = []
    var writable: [Int32] = []
    var autoConsume = true
    weak var session: HTTP2ClientSession?

    func responseHead(stream: Int32, head: HTTP2ResponseHead, endStream: Bool) {
        heads[stream] = head
        if endStream { ended.insert(stream) }
    }
    func responseData(stream: Int32, bytes: UnsafeRawBufferPointer, endStream: Bool) {
        bodies[stream, default: []].append(contentsOf: bytes)
        if endStream { ended.insert(stream) }
        if autoConsume { session?.consumed(stream: stream, bytes: bytes.count) }
    }
    func responseTrailers(stream: Int32, fields: HTTP2Fields) {
        trailers[stream] = fields
        ended.insert(stream)
    }
    func streamClosed(stream: Int32, errorCode: HTTP2ErrorCode) { closed[stream] = errorCode }
    func goAwayReceived(lastStream: Int32, errorCode: HTTP2ErrorCode) { goAways.append((lastStream, errorCode)) }
    func streamWritable(stream: Int32) { writable.append(stream) }
}

/// A client session and a server session wired back to back in memory.
final class Pair {
    let serverEvents = ServerRecorder()
    let clientEvents = ClientRecorder()
    let server: HTTP2ServerSession
    let client: HTTP2ClientSession
    /// Bytes the client sent to the server, in order (for frame inspection).
    var clientToServer: [UInt8] = []
    var serverToClient: [UInt8] = []

    init(serverSettings: HTTP2Settings = HTTP2Settings(), clientSettings: HTTP2Settings = HTTP2Settings(),
         clock: @escaping () -> UInt64 = HTTP2Clock.monotonicNanoseconds) {
        server = HTTP2ServerSession(settings: serverSettings, delegate: serverEvents, clock: clock)
        client = HTTP2ClientSession(settings: clientSettings, delegate: clientEvents, clock: clock)
        serverEvents.session = server
        clientEvents.session = client
    }

    /// Moves bytes both ways until neither side has output.
    func pump(rounds: Int = 1_000) throws {
        for _ in 0..<rounds {
            var toServer: [UInt8] = []
            client.produceOutput(into: &toServer)
            var toClient: [UInt8] = []
            server.produceOutput(into: &toClient)
            if toServer.isEmpty && toClient.isEmpty { return }
            clientToServer += toServer
            serverToClient += toClient
            try toServer.withUnsafeBytes { try server.receive($0) }
            try toClient.withUnsafeBytes { try client.receive($0) }
        }
    }
}

/// A frame as parsed from raw output.
struct RawFrame {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]

    var errorCode: UInt32? {
        switch type {
        case 0x3 where payload.count >= 4: return Self.u32(payload, 0)
        case 0x7 where payload.count >= 8: return Self.u32(payload, 4)
        default: return nil
        }
    }
    var goAwayLastStream: UInt32? { type == 0x7 ? Self.u32(payload, 0) & 0x7fff_ffff : nil }

    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }
}

/// Builds raw frames for inputs a well-behaved client library would never send.
enum Raw {
    static let data: UInt8 = 0x0, headers: UInt8 = 0x1, priority: UInt8 = 0x2, rstStream: UInt8 = 0x3
    static let settings: UInt8 = 0x4, ping: UInt8 = 0x6, goAway: UInt8 = 0x7, windowUpdate: UInt8 = 0x8, continuation: UInt8 = 0x9
    static let endStream: UInt8 = 0x1, endHeaders: UInt8 = 0x4, ack: UInt8 = 0x1

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    /// A header block as HEADERS plus CONTINUATION frames of at most 16 KiB each.
    static func headerFrames(stream: UInt32, _ block: [UInt8], endStream: Bool) -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        repeat {
            let end = min(offset + 16_384, block.count)
            let last = end == block.count
            let type = offset == 0 ? headers : continuation
            var flags: UInt8 = last ? endHeaders : 0
            if offset == 0, endStream { flags |= Self.endStream }
            out += frame(type, flags: flags, stream: stream, Array(block[offset..<end]))
            offset = end
        } while offset < block.count
        return out
    }

    /// Preface plus an empty SETTINGS frame.
    static var start: [UInt8] { HTTP2Preface.bytes + frame(settings) }

    /// HPACK integer with an N-bit prefix (RFC 7541 §5.1).
    static func integer(_ value: Int, prefixBits: Int, first: UInt8) -> [UInt8] {
        let limit = (1 << prefixBits) - 1
        if value < limit { return [first | UInt8(value)] }
        var out: [UInt8] = [first | UInt8(limit)]
        var rest = value - limit
        while rest >= 128 { out.append(UInt8(rest & 0x7f | 0x80)); rest >>= 7 }
        out.append(UInt8(rest))
        return out
    }

    /// Literal header field without indexing, new name (RFC 7541 §6.2.2).
    static func literal(_ name: String, _ value: String) -> [UInt8] {
        literal(Array(name.utf8), Array(value.utf8))
    }
    static func literal(_ name: [UInt8], _ value: [UInt8]) -> [UInt8] {
        [0x00] + integer(name.count, prefixBits: 7, first: 0) + name + integer(value.count, prefixBits: 7, first: 0) + value
    }

    /// A valid GET's header block: :method GET, :scheme http, :path /, :authority.
    static func getBlock(authority: String = "example.com") -> [UInt8] {
        [0x82, 0x86, 0x84] + literal(":authority", authority)
    }

    static func u32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    static func parse(_ bytes: [UInt8]) -> [RawFrame] {
        var frames: [RawFrame] = []
        var offset = 0
        while offset + 9 <= bytes.count {
            let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            guard offset + 9 + length <= bytes.count else { break }
            let stream = RawFrame.u32(bytes, offset + 5) & 0x7fff_ffff
            frames.append(RawFrame(type: bytes[offset + 3], flags: bytes[offset + 4], stream: stream,
                                   payload: Array(bytes[(offset + 9)..<(offset + 9 + length)])))
            offset += 9 + length
        }
        return frames
    }
}

/// A server session fed raw bytes by a test; its output parsed into frames.
final class RawClient {
    let events = ServerRecorder()
    let server: HTTP2ServerSession
    var received: [RawFrame] = []
    var thrown: HTTP2SessionError?

    init(settings: HTTP2Settings = HTTP2Settings(), clock: @escaping () -> UInt64 = HTTP2Clock.monotonicNanoseconds) {
        server = HTTP2ServerSession(settings: settings, delegate: events, clock: clock)
        events.session = server
    }

    /// Sends bytes, collects everything the server writes back.
    @discardableResult
    func send(_ bytes: [UInt8]) -> [RawFrame] {
        do {
            try bytes.withUnsafeBytes { try server.receive($0) }
        } catch let error as HTTP2SessionError {
            thrown = error
        } catch {
            Issue.record("unexpected error \(error)")
        }
        var output: [UInt8] = []
        server.produceOutput(into: &output)
        let frames = Raw.parse(output)
        received += frames
        return frames
    }

    func resetCode(stream: UInt32) -> HTTP2ErrorCode? {
        received.last { $0.type == Raw.rstStream && $0.stream == stream }.flatMap { $0.errorCode }.map(HTTP2ErrorCode.init(rawValue:))
    }
    var goAwayCode: HTTP2ErrorCode? {
        received.last { $0.type == Raw.goAway }.flatMap { $0.errorCode }.map(HTTP2ErrorCode.init(rawValue:))
    }
}

func text(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }

/// A clock the test moves by hand.
final class ManualClock {
    var now: UInt64 = 1_000_000_000
    func advance(seconds: Double) { now += UInt64(seconds * 1_000_000_000) }
    var function: () -> UInt64 { { self.now } }
}
