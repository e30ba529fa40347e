import HTTP1
import Reactor

/// Responses Postern generates itself, serialized once at start-up so that
/// answering an error costs a copy, not a String build.
///
/// Each carries a short plain-text body that says which failure it was, so
/// an operator reading `curl -v` knows whether the route, the endpoints or
/// the upstream connection failed.
public enum ErrorResponse: Int, CaseIterable, Sendable {
    case badRequest, notFound, requestTimeout, uriTooLong, headerTooLarge, notImplemented
    case badGateway, badGatewayMalformed, serviceUnavailable, gatewayTimeout, versionNotSupported
    case methodNotAllowed, misdirected, needsHTTP2
    case clientCertificateRequired, unsafeTarget, forbidden, contentTooLarge, routeRefused

    /// The status code sent.
    public var status: Int {
        switch self {
        case .badRequest, .clientCertificateRequired, .unsafeTarget: return 400
        case .notFound: return 404
        case .forbidden: return 403
        case .contentTooLarge: return 413
        case .routeRefused: return 503
        case .methodNotAllowed: return 405
        case .misdirected: return 421
        case .needsHTTP2: return 502
        case .requestTimeout: return 408
        case .uriTooLong: return 414
        case .headerTooLarge: return 431
        case .notImplemented: return 501
        case .badGateway, .badGatewayMalformed: return 502
        case .serviceUnavailable: return 503
        case .gatewayTimeout: return 504
        case .versionNotSupported: return 505
        }
    }

    /// The plain-text body.
    public var body: String {
        switch self {
        case .badRequest: return "400 bad request: the request is malformed\n"
        case .notFound: return "404 not found: no Ingress rule matches this host and path\n"
        case .clientCertificateRequired:
            return "400 bad request: this host requires a client certificate signed by its CA, over HTTPS with this host as SNI\n"
        case .unsafeTarget:
            return "400 bad request: the request target holds a fragment (#), a backslash, or an encoded slash, backslash or NUL in its path\n"
        case .forbidden: return "403 forbidden: this client's address may not use this route (source ranges)\n"
        case .contentTooLarge: return "413 content too large: the request body exceeds this route's proxy-body-size\n"
        case .routeRefused:
            return "503 service unavailable: this route's Ingress uses an annotation Postern does not honour, so it is not served (see postern check)\n"
        case .methodNotAllowed: return "405 method not allowed: CONNECT is not proxied\n"
        case .needsHTTP2: return "502 bad gateway: this backend speaks HTTP/2 (gRPC or H2C); connect with HTTP/2\n"
        case .misdirected: return "421 misdirected request: this connection's certificate does not serve the requested host\n"
        case .requestTimeout: return "408 request timeout: the request was not received in time\n"
        case .uriTooLong: return "414 URI too long: the request target exceeds the limit\n"
        case .headerTooLarge: return "431 request header fields too large\n"
        case .notImplemented: return "501 not implemented: unsupported transfer coding\n"
        case .badGateway: return "502 bad gateway: the upstream connection failed\n"
        case .badGatewayMalformed: return "502 bad gateway: the upstream sent a malformed response\n"
        case .serviceUnavailable: return "503 service unavailable: the service has no ready endpoints\n"
        case .gatewayTimeout: return "504 gateway timeout: the upstream did not answer in time\n"
        case .versionNotSupported: return "505 HTTP version not supported\n"
        }
    }

    /// Maps a parse error to the response that answers it.
    public init(_ error: HTTP1ParseError) {
        switch error {
        case .badRequest: self = .badRequest
        case .uriTooLong: self = .uriTooLong
        case .headerSectionTooLarge: self = .headerTooLarge
        case .unsupportedTransferCoding: self = .notImplemented
        case .versionNotSupported: self = .versionNotSupported
        }
    }

    /// The whole response, for a connection that stays open (`keepAlive`)
    /// or is closed after it.
    func serialized(keepAlive: Bool) -> [UInt8] {
        let text = "HTTP/1.1 \(status) \(HTTP1Serializer.reasonPhrase(status))\r\n"
            + "Content-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\n"
            + (keepAlive ? "" : "Connection: close\r\n")
            + "\r\n" + body
        return Array(text.utf8)
    }
}

/// All generated responses, serialized once per process.
final class ErrorResponseTable: Sendable {
    private let keepAlive: [[UInt8]]
    private let closing: [[UInt8]]
    /// Variants for HEAD requests: the same head, no body (RFC 9110 §9.3.2).
    private let headKeepAlive: [[UInt8]]
    private let headClosing: [[UInt8]]

    init() {
        keepAlive = ErrorResponse.allCases.map { $0.serialized(keepAlive: true) }
        closing = ErrorResponse.allCases.map { $0.serialized(keepAlive: false) }
        headKeepAlive = ErrorResponse.allCases.map { Array($0.serialized(keepAlive: true).dropLast($0.body.utf8.count)) }
        headClosing = ErrorResponse.allCases.map { Array($0.serialized(keepAlive: false).dropLast($0.body.utf8.count)) }
    }

    /// Appends the response to `buffer`.
    func append(_ response: ErrorResponse, keepAlive: Bool, isHEAD: Bool, to buffer: ByteBuffer) {
        let bytes: [UInt8]
        switch (keepAlive, isHEAD) {
        case (true, false): bytes = self.keepAlive[response.rawValue]
        case (false, false): bytes = closing[response.rawValue]
        case (true, true): bytes = headKeepAlive[response.rawValue]
        case (false, true): bytes = headClosing[response.rawValue]
        }
        buffer.append(bytes)
    }
}
