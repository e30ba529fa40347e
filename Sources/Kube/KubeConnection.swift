import HTTP1
import Reactor
import TLS

/// Failures talking to the API server: the transport, or an HTTP status
/// with the API server's `Status` message.
public enum KubeAPIError: Error, CustomStringConvertible, Sendable {
    /// Could not connect, the connection broke, or a timeout passed.
    case transport(String)
    /// The server answered with a non-2xx status.
    case status(code: Int, reason: String, message: String)
    /// The response was not the JSON the API defines.
    case malformed(String)

    public var description: String {
        switch self {
        case let .transport(text): return "API server unreachable: \(text)"
        case let .status(code, reason, message): return "API server answered \(code) \(reason): \(message)"
        case let .malformed(text): return "API server response not understood: \(text)"
        }
    }

    /// HTTP status code, if the server answered.
    public var statusCode: Int? {
        if case let .status(code, _, _) = self { return code }
        return nil
    }
}

/// One blocking connection to the API server, plain or TLS. Used by one
/// controller thread at a time; `interrupt()` may be called from another
/// thread to wake a blocked read (stop, tests).
final class KubeConnection: @unchecked Sendable {
    private let fd: CInt
    private var tls: TLSConnection? = nil
    private var closed = false

    /// Connects and (for https) completes the TLS handshake.
    init(configuration: KubeClientConfiguration, tlsContext: TLSClientContext?, timeoutMilliseconds: Int32) throws {
        do {
            fd = try BlockingSocket.connect(host: configuration.host, port: configuration.port, timeoutMilliseconds: timeoutMilliseconds)
        } catch {
            throw KubeAPIError.transport("\(error)")
        }
        BlockingSocket.setTimeouts(fd, receiveMilliseconds: Int(timeoutMilliseconds), sendMilliseconds: Int(timeoutMilliseconds))
        guard let tlsContext else { return }
        // Every stored property is set: from here a throw runs deinit, which closes the socket once.
        let connection: TLSConnection
        do {
            connection = try TLSConnection(fd: fd, client: tlsContext, serverName: configuration.host)
        } catch {
            throw KubeAPIError.transport("TLS: \(error)")
        }
        tls = connection
        guard connection.handshake() == .bytes(0) else {
            let reason = connection.verificationFailure
            throw KubeAPIError.transport(
                "TLS handshake with \(configuration.serverDescription) failed" + (reason.isEmpty ? "" : ": certificate verify failed: \(reason)"))
        }
    }

    deinit { close() }

    /// Sets the receive timeout (a watch waits longer than a request).
    func setReceiveTimeout(milliseconds: Int) {
        BlockingSocket.setTimeouts(fd, receiveMilliseconds: milliseconds, sendMilliseconds: 10_000)
    }

    func write(_ bytes: [UInt8]) throws {
        let ok: Bool
        if let tls {
            var offset = 0
            var written = true
            while offset < bytes.count {
                let result = bytes.withUnsafeBytes { tls.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
                guard case let .bytes(count) = result, count > 0 else {
                    written = false
                    break
                }
                offset += count
            }
            ok = written
        } else {
            ok = bytes.withUnsafeBytes { BlockingSocket.writeAll(fd, $0) }
        }
        if !ok { throw KubeAPIError.transport("connection closed while sending") }
    }

    /// Reads some bytes (appended to `buffer`); 0 at end of stream.
    func read(into buffer: inout [UInt8]) throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        let count: Int? = chunk.withUnsafeMutableBytes { raw in
            if let tls {
                switch tls.read(into: raw) {
                case let .bytes(n): return n
                case .closed: return 0
                default: return nil
                }
            }
            return BlockingSocket.read(fd, into: raw)
        }
        guard let count else { throw KubeAPIError.transport("read failed or timed out") }
        buffer.append(contentsOf: chunk[0..<count])
        return count
    }

    /// Wakes a thread blocked in `read` (it sees end of stream).
    func interrupt() {
        BlockingSocket.shutdown(fd)
    }

    func close() {
        guard !closed else { return }
        closed = true
        Socket.close(fd)
    }
}

/// A response head as values (the parser's ranges resolved against the bytes).
struct KubeResponseHead {
    var status: Int
    var framing: HTTP1BodyFraming
    var headers: [(name: String, value: String)]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

extension KubeConnection {
    /// Reads until a full response head is parsed; returns it and leaves the
    /// bytes after it in `buffer`.
    func readHead(buffer: inout [UInt8]) throws -> KubeResponseHead {
        var head = HTTP1ResponseHead()
        while true {
            let result = buffer.withUnsafeBytes {
                HTTP1Parser.parseResponseHead($0, requestWasHEAD: false, limits: HTTP1Limits(), into: &head)
            }
            switch result {
            case .complete:
                let headers = head.fields.map { field in
                    (String(decoding: buffer[field.name], as: UTF8.self), String(decoding: buffer[field.value], as: UTF8.self))
                }
                let parsed = KubeResponseHead(status: head.status, framing: head.framing, headers: headers)
                buffer.removeFirst(head.headLength)
                if parsed.status >= 100 && parsed.status < 200 { continue }
                return parsed
            case .incomplete:
                if try read(into: &buffer) == 0 { throw KubeAPIError.transport("connection closed before a response") }
            case let .failed(error):
                throw KubeAPIError.malformed("response head: \(error)")
            }
        }
    }

    /// Reads a whole body (bounded by `limit` bytes).
    func readBody(framing: HTTP1BodyFraming, buffer: inout [UInt8], limit: Int) throws -> [UInt8] {
        switch framing {
        case .none:
            return []
        case let .contentLength(length):
            guard length <= UInt64(limit) else { throw KubeAPIError.malformed("body of \(length) bytes is over the limit") }
            while buffer.count < Int(length) {
                if try read(into: &buffer) == 0 { throw KubeAPIError.transport("connection closed inside the body") }
            }
            return Array(buffer[0..<Int(length)])
        case .untilClose:
            while try read(into: &buffer) > 0 {
                if buffer.count > limit { throw KubeAPIError.malformed("body over the limit") }
            }
            return buffer
        case .chunked:
            var decoder = HTTP1ChunkedDecoder()
            var body: [UInt8] = []
            while true {
                let event = buffer.withUnsafeBytes { decoder.next($0) }
                switch event {
                case let .data(range, consumed):
                    body.append(contentsOf: buffer[range])
                    buffer.removeFirst(consumed)
                    if body.count > limit { throw KubeAPIError.malformed("body over the limit") }
                case let .needMore(consumed):
                    buffer.removeFirst(consumed)
                    if try read(into: &buffer) == 0 { throw KubeAPIError.transport("connection closed inside the body") }
                case .end:
                    return body
                case let .failed(error):
                    throw KubeAPIError.malformed("chunked body: \(error)")
                }
            }
        }
    }
}
