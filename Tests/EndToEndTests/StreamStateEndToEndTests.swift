import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Raw HTTP/2 frames over TLS (ALPN h2): `openssl s_client` carries the
/// bytes, the test writes frames to its standard input and parses its
/// standard output. For clients no real library would be, on the HTTPS listener.
final class TLSRawHTTP2Client {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffer: [UInt8] = []
    private(set) var frames: [H2Frame] = []
    private(set) var closedByPeer = false

    init(port: UInt16, serverName: String) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        // -quiet: no session printout, and end of input does not end the connection.
        process.arguments = ["s_client", "-connect", "127.0.0.1:\(port)", "-servername", serverName, "-alpn", "h2", "-quiet"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let fd = output.fileHandleForReading.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        guard !closedByPeer else { return false }
        let fd = input.fileHandleForWriting.fileDescriptor
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if count <= 0 { return false }
            offset += count
        }
        return true
    }

    func poll(milliseconds: Int32 = 0) {
        let fd = output.fileHandleForReading.fileDescriptor
        var waiter = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&waiter, 1, milliseconds) > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer += chunk[0..<count]
                continue
            }
            if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { closedByPeer = true }
            break
        }
        while buffer.count >= 9 {
            let length = Int(buffer[0]) << 16 | Int(buffer[1]) << 8 | Int(buffer[2])
            guard buffer.count >= 9 + length else { break }
            let stream = buffer[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7fff_ffff
            frames.append(H2Frame(type: buffer[3], flags: buffer[4], stream: stream, payload: Array(buffer[9..<(9 + length)])))
            buffer.removeFirst(9 + length)
        }
    }
}

/// What the stream-state tests need of a raw frame connection, cleartext or TLS.
protocol RawFrameConnection: AnyObject {
    @discardableResult func send(_ bytes: [UInt8]) -> Bool
    func poll(milliseconds: Int32)
    var frames: [H2Frame] { get }
    var closedByPeer: Bool { get }
}

extension RawHTTP2Client: RawFrameConnection {}
extension TLSRawHTTP2Client: RawFrameConnection {}

extension RawFrameConnection {
    /// Polls until a frame matching `predicate` arrived or `seconds` passed.
    func waitForFrame(seconds: Double = 5, _ predicate: (H2Frame) -> Bool) -> H2Frame? {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let frame = frames.first(where: predicate) { return frame }
            if closedByPeer || Date() >= deadline { return nil }
            poll(milliseconds: 20)
        }
    }

    /// Polls until the proxy closed the connection or `seconds` passed.
    func waitForClose(seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !closedByPeer, Date() < deadline { poll(milliseconds: 20) }
        return closedByPeer
    }
}

extension H2Frame {
    /// The error code of a RST_STREAM frame.
    var resetCode: UInt32? {
        guard type == 0x3, payload.count == 4 else { return nil }
        return payload.reduce(0) { $0 << 8 | UInt32($1) }
    }
}

extension EndToEndTests {
    /// RFC 9113 stream states on both listeners: the seven h2spec cases of
    /// issue 21 (http2/5.1/8, 5.1/9, 5.1/11, 5.1/12, 5.1.1/2, 5.3.1/2,
    /// 6.3/1), each answered with the exact error frame and code.
    @Suite struct StreamStates {
        enum Listener: String, CaseIterable, CustomTestStringConvertible {
            case h2c, tls
            var testDescription: String { rawValue }
        }

        enum Case: String, CaseIterable, CustomTestStringConvertible {
            case dataAfterClientReset = "5.1/8"
            case headersAfterClientReset = "5.1/9"
            case dataAfterEndStreamBothWays = "5.1/11"
            case headersAfterEndStreamBothWays = "5.1/12"
            case decreasingStreamID = "5.1.1/2"
            case priorityDependingOnItself = "5.3.1/2"
            case priorityOnStreamZero = "6.3/1"
            var testDescription: String { "http2/\(rawValue)" }

            /// RST_STREAM on stream 1 (a stream error), else GOAWAY (a connection error).
            var expected: (resetStream: Bool, code: UInt32) {
                switch self {
                case .dataAfterClientReset, .headersAfterClientReset: return (true, 0x5)  // STREAM_CLOSED
                case .dataAfterEndStreamBothWays, .headersAfterEndStreamBothWays: return (false, 0x5)
                // 5.3.1/2 names an idle stream, which no RST_STREAM may name (RFC 9113 §6.4).
                case .decreasingStreamID, .priorityDependingOnItself, .priorityOnStreamZero: return (false, 0x1)  // PROTOCOL_ERROR
                }
            }
        }

        final class Fixture: @unchecked Sendable {
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init() throws {
                backend = try EchoBackend(name: "streams")
                manifests = try ManifestFolder()
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write(
                    "app.yaml", Manifests.service("app", ports: [backend.port]) + Manifests.ingress("any", rules: [(nil, "/", "Prefix", "app")]))
                postern = try PosternProcess(manifests: manifests, workers: 1)
            }

            func connect(_ listener: Listener) throws -> any RawFrameConnection {
                switch listener {
                case .h2c: return try RawHTTP2Client(port: postern.port)
                case .tls: return try TLSRawHTTP2Client(port: postern.httpsPort, serverName: "streams.example.com")
                }
            }
        }

        static func request(stream: UInt32, endStream: Bool, scheme: String) -> [UInt8] {
            let block = H2Wire.block([(":method", "GET"), (":scheme", scheme), (":path", "/ok"), (":authority", "streams.example.com")])
            return H2Wire.frame(H2Wire.headers, flags: H2Wire.endHeaders | (endStream ? H2Wire.endStream : 0), stream: stream, block)
        }

        static let cancel = H2Wire.frame(0x3, stream: 1, H2Wire.u32(0x8))
        static let lateData = H2Wire.frame(H2Wire.data, flags: H2Wire.endStream, stream: 1, Array("test".utf8))

        @Test(arguments: Case.allCases, Listener.allCases)
        func forbiddenFrameGetsTheExactErrorFrame(_ testCase: Case, _ listener: Listener) throws {
            let fixture = try Fixture()
            let client = try fixture.connect(listener)
            let scheme = listener == .tls ? "https" : "http"
            #expect(client.send(H2Wire.start + H2Wire.frame(H2Wire.settings, flags: H2Wire.ack)))
            switch testCase {
            case .dataAfterClientReset:
                client.send(Self.request(stream: 1, endStream: false, scheme: scheme) + Self.cancel + Self.lateData)
            case .headersAfterClientReset:
                client.send(Self.request(stream: 1, endStream: false, scheme: scheme) + Self.cancel + Self.request(stream: 1, endStream: true, scheme: scheme))
            case .dataAfterEndStreamBothWays, .headersAfterEndStreamBothWays:
                client.send(Self.request(stream: 1, endStream: true, scheme: scheme))
                let end = client.waitForFrame(seconds: 10) { $0.stream == 1 && ($0.type == H2Wire.data || $0.type == H2Wire.headers) && $0.flags & H2Wire.endStream != 0 }
                try #require(end != nil, "the response to stream 1 ended")
                client.send(testCase == .dataAfterEndStreamBothWays ? Self.lateData : Self.request(stream: 1, endStream: true, scheme: scheme))
            case .decreasingStreamID:
                client.send(Self.request(stream: 5, endStream: true, scheme: scheme) + Self.request(stream: 3, endStream: true, scheme: scheme))
            case .priorityDependingOnItself:
                client.send(H2Wire.frame(H2Wire.priority, stream: 1, H2Wire.u32(1) + [255]))
            case .priorityOnStreamZero:
                client.send(H2Wire.frame(H2Wire.priority, stream: 0, H2Wire.u32(0) + [255]))
            }
            let expected = testCase.expected
            if expected.resetStream {
                let reset = client.waitForFrame { $0.type == 0x3 && $0.stream == 1 }
                #expect(reset?.resetCode == expected.code, "RST_STREAM on stream 1 with code \(expected.code)")
                // A stream error: the connection keeps serving.
                client.send(Self.request(stream: 3, endStream: true, scheme: scheme))
                #expect(client.waitForFrame { $0.type == H2Wire.headers && $0.stream == 3 } != nil, "stream 3 is answered")
                #expect(client.frames.first { $0.type == H2Wire.goAway } == nil, "no GOAWAY")
            } else {
                let goAway = client.waitForFrame { $0.type == H2Wire.goAway }
                #expect(goAway?.goAwayCode == expected.code, "GOAWAY with code \(expected.code)")
                #expect(client.waitForClose(), "the proxy closes the connection after its GOAWAY")
            }
            #expect(client.frames.first { $0.type == 0x3 && $0.stream == 3 } == nil, "no reset of an unrelated stream")
        }
    }
}
