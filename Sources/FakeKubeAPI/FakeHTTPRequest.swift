import Foundation
import Reactor
import TLS

/// One HTTP/1.1 request read from a blocking socket (the fake serves one
/// request per connection and answers `Connection: close`).
struct FakeHTTPRequest {
    var method: String
    var path: String
    var query: [String: String]
    var headers: [String: String]
    var body: [UInt8]

    var queryDictionary: [String: String] { query }

    static func read(_ fd: FakeIO) -> FakeHTTPRequest? {
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int? = nil
        while headEnd == nil {
            guard let count = chunk.withUnsafeMutableBytes({ fd.read(into: $0) }), count > 0 else { return nil }
            buffer += chunk[0..<count]
            if buffer.count > 64 * 1024 { return nil }
            if buffer.count >= 4 {
                for index in 0...(buffer.count - 4) where Array(buffer[index..<(index + 4)]) == terminator {
                    headEnd = index
                    break
                }
            }
        }
        guard let end = headEnd else { return nil }
        let headText = String(decoding: buffer[0..<end], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2] == "HTTP/1.1" else { return nil }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(buffer[(end + 4)...])
        let length = Int(headers["content-length"] ?? "0") ?? 0
        while body.count < length {
            guard let count = chunk.withUnsafeMutableBytes({ fd.read(into: $0) }), count > 0 else { return nil }
            body += chunk[0..<count]
        }
        let target = String(requestLine[1])
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let pieces = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(pieces[0]).removingPercentEncoding ?? String(pieces[0])
                let value = pieces.count == 2 ? (String(pieces[1]).removingPercentEncoding ?? String(pieces[1])) : ""
                query[name] = value
            }
        }
        return FakeHTTPRequest(
            method: String(requestLine[0]), path: String(parts[0]), query: query, headers: headers, body: Array(body.prefix(length)))
    }

    /// 400 when a query parameter outside `allowed` is present.
    func requireOnly(_ allowed: Set<String>) throws {
        for name in query.keys where !allowed.contains(name) && name != "pretty" {
            throw HTTPFailure(400, "BadRequest", "unknown query parameter \"\(name)\"")
        }
    }

    /// 415 unless the Content-Type (without parameters) is one of `types`.
    func requireContentType(_ types: [String]) throws {
        let given = (headers["content-type"] ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard types.contains(given) else {
            throw HTTPFailure(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: \(types.joined(separator: ", "))")
        }
    }

    func jsonBody() throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw HTTPFailure(400, "BadRequest", "the request body is not a JSON object")
        }
        return object
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 409: return "Conflict"
        case 410: return "Gone"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Entity"
        default: return "Internal Server Error"
        }
    }
}

/// One accepted connection, plain or TLS (blocking socket).
final class FakeIO {
    let fd: CInt
    let tls: TLSConnection?

    /// Completes the TLS handshake when `tls` is given; nil when it fails.
    init?(fd: CInt, tls store: TLSCertificateStore?) {
        self.fd = fd
        if let store {
            guard let connection = try? TLSConnection(fd: fd, store: store), connection.handshake() == .bytes(0) else { return nil }
            tls = connection
        } else {
            tls = nil
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let tls else { return BlockingSocket.read(fd, into: buffer) }
        switch tls.read(into: buffer) {
        case let .bytes(count): return count
        case .closed: return 0
        default: return nil
        }
    }

    func writeAll(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let tls else { return BlockingSocket.writeAll(fd, bytes) }
        var offset = 0
        while offset < bytes.count {
            guard case let .bytes(count) = tls.write(UnsafeRawBufferPointer(rebasing: bytes[offset...])), count > 0 else { return false }
            offset += count
        }
        return true
    }
}
