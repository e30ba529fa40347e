import HTTP1
import Reactor

/// A field the proxy sets on every forwarded request, with its spelling in
/// each framing.
enum ForwardedField: Int, CaseIterable {
    case requestID, realIP, forwardedFor, forwardedHost, forwardedPort, forwardedProto, scheme, originalForwardedFor
    case clientCertificate, clientVerify

    /// HTTP/1.1 spelling (ingress-nginx's) with the `: ` that follows it,
    /// so a field line is three appends (name, value, CRLF).
    var http1NameAndSeparator: StaticString {
        switch self {
        case .requestID: return "X-Request-ID: "
        case .realIP: return "X-Real-IP: "
        case .forwardedFor: return "X-Forwarded-For: "
        case .forwardedHost: return "X-Forwarded-Host: "
        case .forwardedPort: return "X-Forwarded-Port: "
        case .forwardedProto: return "X-Forwarded-Proto: "
        case .scheme: return "X-Scheme: "
        case .originalForwardedFor: return "X-Original-Forwarded-For: "
        case .clientCertificate: return "ssl-client-cert: "
        case .clientVerify: return "ssl-client-verify: "
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
    /// `X-Forwarded-Proto` and `X-Scheme` of a request the proxy describes
    /// itself (`http` or `https`).
    mutating func schemeFields(isTLS: Bool)
}

extension ForwardingFieldSink {
    @inline(__always)
    mutating func append(_ value: [UInt8]) { value.withUnsafeBytes { append($0) } }
    @inline(__always)
    mutating func field(_ field: ForwardedField, _ value: UnsafeRawBufferPointer) {
        begin(field)
        append(value)
        end()
    }
    @inline(__always)
    mutating func field(_ field: ForwardedField, _ value: [UInt8]) { value.withUnsafeBytes { self.field(field, $0) } }

    @inline(__always)
    mutating func schemeFields(isTLS: Bool) {
        let scheme: StaticString = isTLS ? "https" : "http"
        let value = UnsafeRawBufferPointer(start: scheme.utf8Start, count: scheme.utf8CodeUnitCount)
        field(.forwardedProto, value)
        field(.scheme, value)
    }
}

/// `Name: value\r\n` lines into an upstream request head.
struct HTTP1FieldSink: ForwardingFieldSink {
    let out: ByteBuffer
    @inline(__always)
    mutating func begin(_ field: ForwardedField) { out.append(field.http1NameAndSeparator) }
    @inline(__always)
    mutating func append(_ value: UnsafeRawBufferPointer) { out.append(value) }
    @inline(__always)
    mutating func end() {
        out.append(byte: 13)
        out.append(byte: 10)
    }
    /// Both lines in one append.
    @inline(__always)
    mutating func schemeFields(isTLS: Bool) {
        out.append(isTLS ? "X-Forwarded-Proto: https\r\nX-Scheme: https\r\n" : "X-Forwarded-Proto: http\r\nX-Scheme: http\r\n")
    }
}

/// Where the fields the forwarding policy reads are among a request's
/// fields. The framings fill it while they copy the client's fields (one
/// classification per field), so `emit` does not walk them again.
struct ForwardedFieldScan {
    /// Index of the first non-empty `X-Request-ID`, -1 when none.
    var requestID = -1
    var forwardedHost = -1
    var forwardedPort = -1
    var forwardedProto = -1
    /// Non-empty `X-Forwarded-For` fields, and the first of them.
    var forwardedForCount = 0
    var firstForwardedFor = -1
    /// Non-empty fields named by `forwarded-for-header`, and the first of them.
    var originalCount = 0
    var firstOriginal = -1

    /// Notes field `index` of `role`; `name` is read only when the
    /// `forwarded-for-header` is not `X-Forwarded-For`.
    @inline(__always)
    mutating func note(
        _ role: IncomingFieldRole, at index: Int, name: UnsafeRawBufferPointer, valueIsEmpty: Bool, policy: ClientAddressPolicy
    ) {
        guard !valueIsEmpty else { return }
        if !policy.forwardedForIsStandard, policy.isForwardedForName(name) {
            if originalCount == 0 { firstOriginal = index }
            originalCount += 1
            return
        }
        switch role {
        case .forwardedFor:
            if forwardedForCount == 0 { firstForwardedFor = index }
            forwardedForCount += 1
            if policy.forwardedForIsStandard {
                if originalCount == 0 { firstOriginal = index }
                originalCount += 1
            }
        case .requestID: if requestID < 0 { requestID = index }
        case .forwardedHost: if forwardedHost < 0 { forwardedHost = index }
        case .forwardedPort: if forwardedPort < 0 { forwardedPort = index }
        case .forwardedProto: if forwardedProto < 0 { forwardedProto = index }
        case .forward, .drop, .dropUnderscore: break
        }
    }
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

    /// Emits the forwarding fields of one request into `sink`, in
    /// ingress-nginx's order. `scan` says where the fields it reads are
    /// (filled by the framing); `authority` is Host / `:authority` as sent
    /// (empty: none).
    @inline(__always)
    func emit<Fields: RequestFieldList, Sink: ForwardingFieldSink>(
        fields: Fields, scan: ForwardedFieldScan, authority: UnsafeRawBufferPointer, context: ForwardingContext,
        requestIDs: inout RequestIDGenerator, into sink: inout Sink
    ) {
        let peer = context.peer
        let policy = peer.policy
        // X-Request-ID.
        if scan.requestID >= 0 {
            fields.withField(at: scan.requestID) { _, value in sink.field(.requestID, value) }
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
        sink.field(.realIP, context.clientText)
        sink.begin(.forwardedFor)
        if policy.appendsForwardedFor, peer.isTrusted {
            appendValues(
                of: fields, where: { equalsIgnoringCase($0, lowercase: Self.xForwardedFor) }, count: scan.forwardedForCount,
                first: scan.firstForwardedFor, into: &sink)
            if scan.forwardedForCount > 0 { sink.append(Self.commaSpace) }
            sink.append(peer.hopText)
        } else {
            sink.append(context.clientText)
        }
        sink.end()
        // X-Forwarded-Host, -Port, -Proto, X-Scheme.
        let passes = peer.passesForwardedFields
        if passes, scan.forwardedHost >= 0 {
            fields.withField(at: scan.forwardedHost) { _, value in sink.field(.forwardedHost, value) }
        } else if !authority.isEmpty {
            sink.field(.forwardedHost, authority)
        }
        if passes, scan.forwardedPort >= 0 {
            fields.withField(at: scan.forwardedPort) { _, value in sink.field(.forwardedPort, value) }
        } else if let port = peer.trustedDestinationPortText {
            sink.field(.forwardedPort, port)
        } else {
            sink.field(.forwardedPort, context.publicPort)
        }
        if passes, scan.forwardedProto >= 0 {
            fields.withField(at: scan.forwardedProto) { _, value in
                sink.field(.forwardedProto, value)
                sink.field(.scheme, value)
            }
        } else {
            sink.schemeFields(isTLS: context.isTLS)
        }
        // X-Original-Forwarded-For: the client's list as sent.
        if scan.originalCount > 0 {
            sink.begin(.originalForwardedFor)
            appendValues(
                of: fields, where: { policy.isForwardedForName($0) }, count: scan.originalCount, first: scan.firstOriginal,
                into: &sink)
            sink.end()
        }
        if let certificate = context.clientCertificate, !certificate.isEmpty {
            sink.field(.clientCertificate, certificate)
            sink.field(.clientVerify, Self.success)
        }
    }

    /// The non-empty values of the `count` fields `matching` (the first at
    /// index `first`), joined with ", ", inside an open field. One field
    /// (the common case) is written without a walk.
    @inline(__always)
    private func appendValues<Fields: RequestFieldList, Sink: ForwardingFieldSink>(
        of fields: Fields, where matching: (UnsafeRawBufferPointer) -> Bool, count: Int, first: Int, into sink: inout Sink
    ) {
        guard count > 0 else { return }
        if count == 1 {
            fields.withField(at: first) { _, value in sink.append(value) }
            return
        }
        var written = 0
        for index in first..<fields.fieldCount {
            fields.withField(at: index) { name, value in
                guard !value.isEmpty, matching(name) else { return }
                if written > 0 { sink.append(Self.commaSpace) }
                sink.append(value)
                written += 1
            }
            if written == count { break }
        }
    }

    private static let xForwardedForStorage: StaticString = "x-forwarded-for"
    private static var xForwardedFor: UnsafeRawBufferPointer { bytes(xForwardedForStorage) }
    private static let commaSpaceStorage: StaticString = ", "
    private static var commaSpace: UnsafeRawBufferPointer { bytes(commaSpaceStorage) }
    private static let successStorage: StaticString = "SUCCESS"
    private static var success: UnsafeRawBufferPointer { bytes(successStorage) }

    @inline(__always)
    private static func bytes(_ text: StaticString) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// The 16 lower-case hex digits of `value`, most significant first, at
    /// `raw[offset..<offset + 16]`: each nibble is spread into a byte of
    /// its own and turned into a digit eight at a time (no per-digit loop).
    @inline(__always)
    private static func writeHex(_ value: UInt64, into raw: UnsafeMutableRawBufferPointer, at offset: Int) {
        raw.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: value >> 32)), toByteOffset: offset, as: UInt64.self)
        raw.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: value)), toByteOffset: offset + 8, as: UInt64.self)
    }

    /// Eight hex digits of `value` as the bytes of a UInt64 in memory order.
    @inline(__always)
    static func hexDigits(_ value: UInt32) -> UInt64 {
        // Byte k (little-endian) gets nibble k.
        var x = UInt64(value)
        x = (x | x << 16) & 0x0000_ffff_0000_ffff
        x = (x | x << 8) & 0x00ff_00ff_00ff_00ff
        x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f
        // 1 in each byte whose nibble is 10 or more: those become 'a'...'f'.
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        x = x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
        // The most significant nibble comes first in the text.
        return UInt64(bigEndian: x)
    }
}
