import HTTP1
import Reactor

/// A field the proxy sets on every forwarded request, with its spelling in
/// each framing.
enum ForwardedField: Int, CaseIterable {
    case requestID, realIP, forwardedFor, forwardedHost, forwardedPort, forwardedProto, scheme, originalForwardedFor
    case clientCertificate, clientVerify

    /// HTTP/1.1 spelling (ingress-nginx's).
    var http1Name: StaticString {
        switch self {
        case .requestID: return "X-Request-ID"
        case .realIP: return "X-Real-IP"
        case .forwardedFor: return "X-Forwarded-For"
        case .forwardedHost: return "X-Forwarded-Host"
        case .forwardedPort: return "X-Forwarded-Port"
        case .forwardedProto: return "X-Forwarded-Proto"
        case .scheme: return "X-Scheme"
        case .originalForwardedFor: return "X-Original-Forwarded-For"
        case .clientCertificate: return "ssl-client-cert"
        case .clientVerify: return "ssl-client-verify"
        }
    }

    /// HTTP/2 spelling (lower case, RFC 9113 §8.2.1).
    var http2Name: StaticString {
        switch self {
        case .requestID: return "x-request-id"
        case .realIP: return "x-real-ip"
        case .forwardedFor: return "x-forwarded-for"
        case .forwardedHost: return "x-forwarded-host"
        case .forwardedPort: return "x-forwarded-port"
        case .forwardedProto: return "x-forwarded-proto"
        case .scheme: return "x-scheme"
        case .originalForwardedFor: return "x-original-forwarded-for"
        case .clientCertificate: return "ssl-client-cert"
        case .clientVerify: return "ssl-client-verify"
        }
    }
}

/// Where the forwarding fields go: an HTTP/1.1 head or an HTTP/2 field list.
protocol ForwardingFieldSink {
    mutating func begin(_ field: ForwardedField)
    mutating func append(_ value: UnsafeRawBufferPointer)
    mutating func end()
}

extension ForwardingFieldSink {
    mutating func append(_ value: [UInt8]) { value.withUnsafeBytes { append($0) } }
    mutating func field(_ field: ForwardedField, _ value: UnsafeRawBufferPointer) {
        begin(field)
        append(value)
        end()
    }
    mutating func field(_ field: ForwardedField, _ value: [UInt8]) { value.withUnsafeBytes { self.field(field, $0) } }
}

/// `Name: value\r\n` lines into an upstream request head.
struct HTTP1FieldSink: ForwardingFieldSink {
    let out: ByteBuffer
    mutating func begin(_ field: ForwardedField) {
        out.append(field.http1Name)
        out.append(": ")
    }
    mutating func append(_ value: UnsafeRawBufferPointer) { out.append(value) }
    mutating func end() { out.append("\r\n") }
}

/// What a client field becomes upstream.
enum IncomingFieldRole: Equatable {
    /// Forwarded as it came.
    case forward
    /// Not forwarded: the proxy owns it (it sets it, or only it may vouch for it).
    case drop
    /// Not forwarded: its name holds `_` (counted).
    case dropUnderscore
    /// Read by the forwarding policy, which sets the field itself.
    case forwardedFor, forwardedHost, forwardedPort, forwardedProto, requestID
}

/// The one forwarding-header policy, for HTTP/1.1 and HTTP/2 (and gRPC /
/// h2c upstreams) alike, as ingress-nginx's template sets them:
///
/// - `X-Request-ID`: the client's, else a new random one.
/// - `X-Real-IP`: the client address (after the realip step).
/// - `X-Forwarded-For`: the client address; with `use-forwarded-headers`
///   and `compute-full-forwarded-for`, a trusted peer's list with the hop
///   (TCP peer, or PROXY source) appended.
/// - `X-Forwarded-Host`, `-Port`, `-Proto` (and `X-Scheme`): what the
///   request shows (Host as sent, the public port, the scheme); a trusted
///   peer's values pass through with `use-forwarded-headers`.
/// - `X-Original-Forwarded-For`: the client's `forwarded-for-header` as sent.
/// - `ssl-client-cert` / `ssl-client-verify` after a verified client certificate.
///
/// Client fields the proxy owns are dropped: the ones above, `Proxy`
/// (httpoxy), every `ssl-client-*`, and names with `_` unless
/// `enable-underscores-in-headers` (even then not those that read as a
/// field above). Framing and hop-by-hop fields are the framings' business.
struct ForwardingHeaderPolicy {
    let allowsUnderscores: Bool

    /// Fields whose meaning the proxy owns, lower case in their `-` spelling
    /// (also compared with `_` read as `-`).
    private static let proxyOwned: [[UInt8]] = [
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-real-ip", "x-request-id",
        "x-scheme", "x-original-forwarded-for", "proxy", "ssl-client-cert", "ssl-client-verify", "ssl-client-subject-dn",
        "ssl-client-issuer-dn", "content-length", "transfer-encoding", "host", "connection",
    ].map { Array($0.utf8) }

    /// The role of a field from its name (any case).
    func role(ofName name: UnsafeRawBufferPointer) -> IncomingFieldRole {
        if name.contains(UInt8(ascii: "_")) {
            return Self.forwardsUnderscoreField(name, allowed: allowsUnderscores) ? .forward : .dropUnderscore
        }
        return Self.role(ofDashedName: name)
    }

    /// The role of an HTTP/1.1 field, from the kind the parser found (no
    /// comparison for the common fields).
    @inline(__always)
    func role(of kind: HTTP1HeaderName, name: UnsafeRawBufferPointer, hasUnderscore: Bool) -> IncomingFieldRole {
        if hasUnderscore {
            return Self.forwardsUnderscoreField(name, allowed: allowsUnderscores) ? .forward : .dropUnderscore
        }
        switch kind {
        case .xForwardedFor: return .forwardedFor
        case .xForwardedHost: return .forwardedHost
        case .xForwardedPort: return .forwardedPort
        case .xForwardedProto: return .forwardedProto
        case .xRequestID: return .requestID
        case .xRealIP: return .drop
        case .other: return Self.role(ofDashedName: name)
        default: return .forward
        }
    }

    /// Fields named without `_`: a length check first, so most names cost
    /// one comparison of their length.
    private static func role(ofDashedName name: UnsafeRawBufferPointer) -> IncomingFieldRole {
        switch name.count {
        case 5: return matches(name, "proxy") ? .drop : .forward
        case 8: return matches(name, "x-scheme") ? .drop : .forward
        case 9: return matches(name, "x-real-ip") ? .drop : .forward
        case 12: return matches(name, "x-request-id") ? .requestID : .forward
        case 15:
            if matches(name, "x-forwarded-for") { return .forwardedFor }
            return matches(name, "ssl-client-cert") ? .drop : .forward
        case 16:
            if matches(name, "x-forwarded-host") { return .forwardedHost }
            return matches(name, "x-forwarded-port") ? .forwardedPort : .forward
        case 17:
            if matches(name, "x-forwarded-proto") { return .forwardedProto }
            return matches(name, "ssl-client-verify") ? .drop : .forward
        case 20: return matches(name, "ssl-client-issuer-dn") ? .drop : .forward
        case 21: return matches(name, "ssl-client-subject-dn") ? .drop : .forward
        case 24: return matches(name, "x-original-forwarded-for") ? .drop : .forward
        default: return .forward
        }
    }

    @inline(__always)
    private static func matches(_ name: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        equalsIgnoringCase(name, lowercase: UnsafeRawBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount))
    }

    /// Whether a client field whose name holds `_` goes upstream.
    ///
    /// CGI, WSGI and Rack backends map `-` and `_` to one variable, so
    /// `X_Forwarded_For` would reach them as the field the proxy sets. By
    /// default (`enable-underscores-in-headers: false`, as in ingress-nginx)
    /// every such field is dropped; when allowed, those that read as a field
    /// the proxy owns are dropped still. Only called for names with `_`.
    static func forwardsUnderscoreField(_ name: UnsafeRawBufferPointer, allowed: Bool) -> Bool {
        guard allowed else { return false }
        for candidate in proxyOwned where candidate.count == name.count {
            var same = true
            for (index, byte) in name.enumerated() {
                var folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
                if folded != candidate[index] {
                    same = false
                    break
                }
            }
            if same { return false }
        }
        return true
    }

    /// What one request contributes to its forwarding fields.
    struct Request<Fields: RequestFieldList> {
        /// The client's fields (read for the incoming forwarded values).
        var fields: Fields
        var peer: ConnectionPeer
        /// The client address the pipeline settled on, as text.
        var clientText: UnsafeRawBufferPointer
        /// Host / `:authority` as sent (empty: none).
        var authority: UnsafeRawBufferPointer
        var isTLS: Bool
        /// The listener's public port, as text.
        var publicPort: [UInt8]
        /// The escaped client certificate to pass (empty: none).
        var clientCertificate: [UInt8]
    }

    /// Emits the forwarding fields of `request` into `sink`, in ingress-nginx's order.
    func emit<Fields: RequestFieldList, Sink: ForwardingFieldSink>(
        _ request: Request<Fields>, requestIDs: inout RequestIDGenerator, into sink: inout Sink
    ) {
        let peer = request.peer
        let policy = peer.policy
        let fields = request.fields
        // One pass over the client's fields for what the policy reads.
        var requestID = -1
        var forwardedHost = -1
        var forwardedPort = -1
        var forwardedProto = -1
        var forwardedForCount = 0
        var originalCount = 0
        for index in 0..<fields.fieldCount {
            fields.withField(at: index) { name, value in
                if policy.isForwardedForName(name) {
                    if !value.isEmpty {
                        originalCount += 1
                        if name.count == 15, Self.role(ofDashedName: name) == .forwardedFor { forwardedForCount += 1 }
                    }
                    return
                }
                guard name.count >= 12, name.count <= 17, !value.isEmpty else { return }
                switch Self.role(ofDashedName: name) {
                case .requestID: if requestID < 0 { requestID = index }
                case .forwardedHost: if forwardedHost < 0 { forwardedHost = index }
                case .forwardedPort: if forwardedPort < 0 { forwardedPort = index }
                case .forwardedProto: if forwardedProto < 0 { forwardedProto = index }
                case .forwardedFor: forwardedForCount += 1
                default: break
                }
            }
        }
        // X-Request-ID.
        if requestID >= 0 {
            fields.withField(at: requestID) { _, value in sink.field(.requestID, value) }
        } else {
            sink.begin(.requestID)
            var hex: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &hex) { raw in
                Self.writeHex(requestIDs.next(), into: raw, at: 0)
                Self.writeHex(requestIDs.next(), into: raw, at: 16)
                sink.append(UnsafeRawBufferPointer(rebasing: raw[0..<32]))
            }
            sink.end()
        }
        // X-Real-IP and X-Forwarded-For.
        sink.field(.realIP, request.clientText)
        sink.begin(.forwardedFor)
        if policy.appendsForwardedFor, peer.isTrusted {
            appendValues(of: fields, where: { equalsIgnoringCase($0, lowercase: Self.xForwardedFor) }, count: forwardedForCount, into: &sink)
            if forwardedForCount > 0 { sink.append(Self.commaSpace) }
            sink.append(peer.hopText)
        } else {
            sink.append(request.clientText)
        }
        sink.end()
        // X-Forwarded-Host, -Port, -Proto, X-Scheme.
        let passes = peer.passesForwardedFields
        if passes, forwardedHost >= 0 {
            fields.withField(at: forwardedHost) { _, value in sink.field(.forwardedHost, value) }
        } else if !request.authority.isEmpty {
            sink.field(.forwardedHost, request.authority)
        }
        if passes, forwardedPort >= 0 {
            fields.withField(at: forwardedPort) { _, value in sink.field(.forwardedPort, value) }
        } else if let port = peer.trustedDestinationPortText {
            sink.field(.forwardedPort, port)
        } else {
            sink.field(.forwardedPort, request.publicPort)
        }
        if passes, forwardedProto >= 0 {
            fields.withField(at: forwardedProto) { _, value in
                sink.field(.forwardedProto, value)
                sink.field(.scheme, value)
            }
        } else {
            sink.field(.forwardedProto, request.isTLS ? Self.https : Self.http)
            sink.field(.scheme, request.isTLS ? Self.https : Self.http)
        }
        // X-Original-Forwarded-For: the client's list as sent.
        if originalCount > 0 {
            appendValues(of: fields, where: { policy.isForwardedForName($0) }, count: originalCount, into: &sink, field: .originalForwardedFor)
        }
        if !request.clientCertificate.isEmpty {
            sink.field(.clientCertificate, request.clientCertificate)
            sink.field(.clientVerify, Self.success)
        }
    }

    /// The non-empty values of the fields `matching`, joined with ", ";
    /// inside an open field, or as `field` when given.
    private func appendValues<Fields: RequestFieldList, Sink: ForwardingFieldSink>(
        of fields: Fields, where matching: (UnsafeRawBufferPointer) -> Bool, count: Int, into sink: inout Sink,
        field: ForwardedField? = nil
    ) {
        guard count > 0 else { return }
        if let field { sink.begin(field) }
        var first = true
        for index in 0..<fields.fieldCount {
            fields.withField(at: index) { name, value in
                guard !value.isEmpty, matching(name) else { return }
                if !first { sink.append(Self.commaSpace) }
                sink.append(value)
                first = false
            }
        }
        if field != nil { sink.end() }
    }

    private static let xForwardedForStorage: StaticString = "x-forwarded-for"
    private static var xForwardedFor: UnsafeRawBufferPointer { bytes(xForwardedForStorage) }
    private static let commaSpaceStorage: StaticString = ", "
    private static var commaSpace: UnsafeRawBufferPointer { bytes(commaSpaceStorage) }
    private static let httpsStorage: StaticString = "https"
    private static var https: UnsafeRawBufferPointer { bytes(httpsStorage) }
    private static let httpStorage: StaticString = "http"
    private static var http: UnsafeRawBufferPointer { bytes(httpStorage) }
    private static let successStorage: StaticString = "SUCCESS"
    private static var success: UnsafeRawBufferPointer { bytes(successStorage) }

    @inline(__always)
    private static func bytes(_ text: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    private static func writeHex(_ value: UInt64, into raw: UnsafeMutableRawBufferPointer, at offset: Int) {
        let digits: StaticString = "0123456789abcdef"
        for index in 0..<16 {
            raw[offset + index] = digits.utf8Start[Int(value >> UInt64(60 - index * 4) & 0xf)]
        }
    }
}
