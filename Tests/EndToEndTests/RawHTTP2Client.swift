import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// HTTP/2 frames written byte by byte (RFC 9113 §4.1), for clients no real
/// library would be: floods, stalls, half-sent header blocks.
enum H2Wire {
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let priority: UInt8 = 0x2
    static let settings: UInt8 = 0x4
    static let ping: UInt8 = 0x6
    static let goAway: UInt8 = 0x7
    static let windowUpdate: UInt8 = 0x8
    static let continuation: UInt8 = 0x9

    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4

    /// The client connection preface.
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
            + u32(stream & 0x7fff_ffff) + payload
    }

    static func u32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    /// Preface plus an empty SETTINGS frame.
    static var start: [UInt8] { preface + frame(settings) }

    /// SETTINGS with INITIAL_WINDOW_SIZE (0x4) = `window`.
    static func settings(initialWindow window: UInt32) -> [UInt8] {
        frame(settings, [0x00, 0x04] + u32(window))
    }

    static func windowUpdate(stream: UInt32, increment: UInt32) -> [UInt8] {
        frame(windowUpdate, stream: stream, u32(increment))
    }

    /// A HEADERS block of literal fields without indexing, new names (RFC 7541 §6.2.2).
    static func block(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields {
            out.append(0x00)
            out += string(Array(name.utf8))
            out += string(Array(value.utf8))
        }
        return out
    }

    private static func string(_ bytes: [UInt8]) -> [UInt8] {
        precondition(bytes.count < 127, "short strings only")
        return [UInt8(bytes.count)] + bytes
    }

    /// A GET request's header block.
    static func get(_ path: String, authority: String = "flood.example.com") -> [UInt8] {
        block([(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", authority)])
    }
}

/// One parsed frame from the proxy.
struct H2Frame {
    var type: UInt8
    var flags: UInt8
    var stream: UInt32
    var payload: [UInt8]

    /// The error code of a GOAWAY frame.
    var goAwayCode: UInt32? {
        guard type == H2Wire.goAway, payload.count >= 8 else { return nil }
        return payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

/// A loopback TCP connection speaking raw HTTP/2 frames (cleartext, prior
/// knowledge). Non-blocking reads so a test can interleave sending and
/// looking for the proxy's GOAWAY.
final class RawHTTP2Client {
    let fd: Int32
    private var input: [UInt8] = []
    /// Frames received so far, in order.
    private(set) var frames: [H2Frame] = []
    /// The proxy closed the connection (EOF or reset).
    private(set) var closedByPeer = false

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw HarnessError("connect to 127.0.0.1:\(port) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends all of `bytes`; false once the proxy closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 {
                closedByPeer = true
                return false
            }
            offset += count
        }
        return true
    }

    /// Reads what arrives within `milliseconds` (0: only what is there) and
    /// parses complete frames.
    func poll(milliseconds: Int32 = 0) {
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&waiter, 1, milliseconds) > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                input += chunk[0..<count]
                continue
            }
            if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { closedByPeer = true }
            break
        }
        while input.count >= 9 {
            let length = Int(input[0]) << 16 | Int(input[1]) << 8 | Int(input[2])
            guard input.count >= 9 + length else { break }
            let stream = input[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7fff_ffff
            frames.append(H2Frame(type: input[3], flags: input[4], stream: stream, payload: Array(input[9..<(9 + length)])))
            input.removeFirst(9 + length)
        }
    }

    /// The error code of the first GOAWAY received, if any.
    var goAwayCode: UInt32? { frames.lazy.compactMap(\.goAwayCode).first }

    /// Waits up to `seconds` for the proxy to close the connection; true if it did.
    func waitForClose(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !closedByPeer, Date() < deadline { poll(milliseconds: 50) }
        return closedByPeer
    }

    /// Takes the frames received so far, leaving none.
    func takeFrames() -> [H2Frame] {
        defer { frames.removeAll() }
        return frames
    }
}

/// RFC 9113 §7: ENHANCE_YOUR_CALM.
let enhanceYourCalm: UInt32 = 0xb
