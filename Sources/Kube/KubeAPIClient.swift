import FoundationEssentials
import Support
import HTTP1
import TLS

/// A response from the API server.
public struct KubeResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
}

/// The API server's `Status` object (error responses and watch `ERROR` events).
public struct KubeStatus: Codable, Sendable, Equatable {
    public var status: String?
    public var message: String?
    public var reason: String?
    public var code: Int?

    public init(status: String? = "Failure", message: String? = nil, reason: String? = nil, code: Int? = nil) {
        self.status = status
        self.message = message
        self.reason = reason
        self.code = code
    }
}

/// A blocking client for the Kubernetes API on Postern's HTTP/1.1 codec and
/// OpenSSL. One connection per request (`Connection: close`); a watch keeps
/// its connection for the life of the stream.
///
/// Threading: thread-safe; every call blocks its caller (controller threads only).
public final class KubeAPIClient: @unchecked Sendable {
    public let configuration: KubeClientConfiguration
    private let tlsContext: TLSClientContext?
    /// Connect and per-read timeout of ordinary requests.
    public let requestTimeoutMilliseconds: Int32
    /// Largest response body accepted (a list page).
    public let maximumBodyBytes: Int
    /// `User-Agent` of every request; set before the first request (the
    /// replica identity goes here so API audit logs tell replicas apart).
    public var userAgent = "postern/0.1"
    private let tokenLock = Lock()
    private var cachedToken: (value: String, modified: Date?, size: Int)?

    /// Builds the TLS context once; fails fast on unusable certificates.
    public init(configuration: KubeClientConfiguration, requestTimeoutMilliseconds: Int32 = 10_000, maximumBodyBytes: Int = 256 << 20) throws {
        self.configuration = configuration
        self.requestTimeoutMilliseconds = requestTimeoutMilliseconds
        self.maximumBodyBytes = maximumBodyBytes
        if configuration.scheme == "https" {
            // Checked here, not left to TLSClientContext: its "no certificate"
            // failure path frees the context twice (reported to the TLS owner).
            if let authority = configuration.certificateAuthorityPEM,
               !String(decoding: authority, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") {
                throw KubeConfigurationError("API server CA: certificate-authority holds no PEM certificate")
            }
            do {
                tlsContext = try TLSClientContext(
                    verify: !configuration.insecureSkipTLSVerify, certificateAuthoritiesPEM: configuration.certificateAuthorityPEM,
                    clientCertificateChainPEM: configuration.clientCertificatePEM, clientPrivateKeyPEM: configuration.clientKeyPEM)
            } catch {
                throw KubeConfigurationError("API server TLS: \(error)")
            }
        } else {
            tlsContext = nil
        }
    }

    /// The bearer token: the fixed one, or the token file's current content
    /// (re-read whenever its modification time or size changes, so a rotated
    /// service-account token is used from the next request on).
    public func currentToken() -> String? {
        if let token = configuration.token { return token }
        guard let file = configuration.tokenFile else { return nil }
        let attributes = try? FileManager.default.attributesOfItem(atPath: file)
        let modified = attributes?[.modificationDate] as? Date
        let size = (attributes?[.size] as? any BinaryInteger).map { Int($0) } ?? -1
        return tokenLock.withLock {
            if let cached = cachedToken, cached.modified == modified, cached.size == size { return cached.value }
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return cachedToken?.value }
            let token = text.trimmingWhitespace()
            cachedToken = (token, modified, size)
            return token
        }
    }

    /// Forgets the cached token (after a 401, the file is read again).
    public func invalidateToken() {
        tokenLock.withLock { cachedToken = nil }
    }

    func requestHead(method: String, target: String, contentType: String?, bodyLength: Int, watch: Bool) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: \(configuration.host):\(configuration.port)\r\n"
        text += "User-Agent: \(userAgent)\r\nAccept: application/json\r\n"
        if let token = currentToken(), !token.isEmpty { text += "Authorization: Bearer \(token)\r\n" }
        if let contentType { text += "Content-Type: \(contentType)\r\nContent-Length: \(bodyLength)\r\n" }
        text += watch ? "\r\n" : "Connection: close\r\n\r\n"
        return Array(text.utf8)
    }

    func connect(timeoutMilliseconds: Int32? = nil) throws -> KubeConnection {
        try KubeConnection(configuration: configuration, tlsContext: tlsContext, timeoutMilliseconds: timeoutMilliseconds ?? requestTimeoutMilliseconds)
    }

    /// Sends one request and reads the whole response. Non-2xx statuses are
    /// returned, not thrown (callers decide what 404 or 409 mean).
    public func send(method: String, path: String, query: [(String, String)] = [], body: [UInt8]? = nil, contentType: String? = nil) throws -> KubeResponse {
        let target = KubeAPIClient.target(path: path, query: query)
        let connection = try connect()
        defer { connection.close() }
        try connection.write(requestHead(method: method, target: target, contentType: body == nil ? nil : (contentType ?? "application/json"), bodyLength: body?.count ?? 0, watch: false) + (body ?? []))
        var buffer: [UInt8] = []
        let head = try connection.readHead(buffer: &buffer)
        let responseBody = try connection.readBody(framing: head.framing, buffer: &buffer, limit: maximumBodyBytes)
        if head.status == 401 { invalidateToken() }
        return KubeResponse(status: head.status, body: responseBody)
    }

    /// `send`, throwing `KubeAPIError.status` for non-2xx answers.
    public func sendExpectingSuccess(method: String, path: String, query: [(String, String)] = [], body: [UInt8]? = nil, contentType: String? = nil) throws -> KubeResponse {
        let response = try send(method: method, path: path, query: query, body: body, contentType: contentType)
        guard (200..<300).contains(response.status) else { throw KubeAPIClient.statusError(response) }
        return response
    }

    static func statusError(_ response: KubeResponse) -> KubeAPIError {
        let status = try? JSONDecoder().decode(KubeStatus.self, from: Data(response.body))
        return .status(code: response.status, reason: status?.reason ?? "", message: status?.message ?? String(decoding: response.body.prefix(200), as: UTF8.self))
    }

    /// `path?name=value&...`, values percent-encoded.
    public static func target(path: String, query: [(String, String)]) -> String {
        guard !query.isEmpty else { return path }
        let pairs = query.map { name, value in
            "\(name)=\(TextEncoding.percentEncoded(value))"
        }
        return path + "?" + pairs.joined(separator: "&")
    }
}

/// An open watch stream: one JSON event per line in a chunked body.
public final class KubeWatchStream: @unchecked Sendable {
    private let connection: KubeConnection
    private var buffer: [UInt8] = []
    private var decoder = HTTP1ChunkedDecoderBox()
    private var pendingLine: [UInt8] = []
    private let chunked: Bool

    init(connection: KubeConnection, buffer: [UInt8], chunked: Bool) {
        self.connection = connection
        self.buffer = buffer
        self.chunked = chunked
    }

    /// The next event's JSON line; nil when the server ended the stream
    /// (the watch timed out normally). Throws on a broken connection.
    public func nextLine() throws -> [UInt8]? {
        while true {
            if let newline = pendingLine.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pendingLine[0..<newline])
                pendingLine.removeFirst(newline + 1)
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                return line
            }
            if pendingLine.count > 64 << 20 { throw KubeAPIError.malformed("watch event over 64 MiB") }
            if chunked {
                switch try decoder.next(&buffer) {
                case let .data(bytes): pendingLine.append(contentsOf: bytes)
                case .needMore:
                    if try connection.read(into: &buffer) == 0 { throw KubeAPIError.transport("watch connection closed inside a chunk") }
                case .end:
                    return nil
                }
            } else {
                if !buffer.isEmpty {
                    pendingLine.append(contentsOf: buffer)
                    buffer.removeAll()
                    continue
                }
                if try connection.read(into: &buffer) == 0 { return nil }
            }
        }
    }

    /// Ends the stream from any thread (a blocked `nextLine` returns or throws).
    public func cancel() { connection.interrupt() }

    /// Closes the connection.
    public func close() { connection.close() }
}

/// Wraps the chunked decoder for a growing byte array.
struct HTTP1ChunkedDecoderBox {
    enum Step {
        case data([UInt8])
        case needMore
        case end
    }

    var decoder = HTTP1ChunkedDecoder()

    mutating func next(_ buffer: inout [UInt8]) throws -> Step {
        let event = buffer.withUnsafeBytes { decoder.next($0) }
        switch event {
        case let .data(range, consumed):
            let bytes = Array(buffer[range])
            buffer.removeFirst(consumed)
            return .data(bytes)
        case let .needMore(consumed):
            buffer.removeFirst(consumed)
            return .needMore
        case .end:
            return .end
        case let .failed(error):
            throw KubeAPIError.malformed("watch stream: \(error)")
        }
    }
}

extension KubeAPIClient {
    /// Opens a watch (`GET path?watch=1&...`). Throws `KubeAPIError.status`
    /// when the server refuses it (a 410 here means relist).
    public func openWatch(path: String, query: [(String, String)], idleTimeoutMilliseconds: Int) throws -> KubeWatchStream {
        let connection = try connect()
        do {
            try connection.write(requestHead(method: "GET", target: KubeAPIClient.target(path: path, query: query), contentType: nil, bodyLength: 0, watch: true))
            var buffer: [UInt8] = []
            let head = try connection.readHead(buffer: &buffer)
            guard head.status == 200 else {
                let body = try connection.readBody(framing: head.framing, buffer: &buffer, limit: 1 << 20)
                if head.status == 401 { invalidateToken() }
                throw KubeAPIClient.statusError(KubeResponse(status: head.status, body: body))
            }
            connection.setReceiveTimeout(milliseconds: idleTimeoutMilliseconds)
            let chunked: Bool
            switch head.framing {
            case .chunked: chunked = true
            case .untilClose: chunked = false
            default: throw KubeAPIError.malformed("watch response is neither chunked nor delimited by close")
            }
            return KubeWatchStream(connection: connection, buffer: buffer, chunked: chunked)
        } catch {
            connection.close()
            throw error
        }
    }
}
