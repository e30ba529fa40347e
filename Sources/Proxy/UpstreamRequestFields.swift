import HTTP1
import HTTP2
import Reactor

/// What the forwarding policy needs of one request beyond its fields:
/// built by `RequestPipeline.forwardingContext` for either framing, used
/// while the upstream head is written.
struct ForwardingContext {
    var policy: ForwardingHeaderPolicy
    // unowned(unsafe): the connection holding the peer outlives the head
    // being written; a counted reference costs a retain and release per request.
    unowned(unsafe) var peer: ConnectionPeer
    /// The client address the pipeline settled on (phase 0), as text.
    var clientText: UnsafeRawBufferPointer
    var isTLS: Bool
    /// The public port of the listener, as text.
    var publicPort: [UInt8]
    /// The escaped client certificate to pass upstream (nil or empty: none).
    var clientCertificate: [UInt8]?
}

/// The header fields of an upstream request, for each pair of client and
/// upstream framing: the client's fields the policy lets through, then the
/// forwarding policy's fields. Free of sockets and connections, so tests
/// run one case table through every framing. Each returns how many client
/// fields were dropped for an `_` in their names (for the metric).
enum UpstreamRequestFields {
    /// HTTP/1.1 client → HTTP/1.1 upstream: `Name: value` lines, Host first
    /// when it came from an absolute-form target (or was missing). Framing
    /// (Content-Length, Transfer-Encoding, Expect), hop-by-hop fields and
    /// Upgrade are the caller's.
    static func http1(
        head: HTTP1RequestHead, bytes: UnsafeRawBufferPointer, host: Range<Int>?, hostFromTarget: Bool,
        context: ForwardingContext, requestIDs: inout RequestIDGenerator, into out: ByteBuffer
    ) -> Int {
        http1(
            fields: head.fields, hostField: head.host, bytes: bytes, host: host, hostFromTarget: hostFromTarget, context: context,
            requestIDs: &requestIDs, into: out)
    }

    /// `http1(head:...)` from the head's parts: `fields` and `hostField`
    /// (the Host field's value, nil when the request had none). The
    /// connection's call, which copies no head.
    static func http1(
        fields headFields: [HTTP1HeaderField], hostField: Range<Int>?, bytes: UnsafeRawBufferPointer, host: Range<Int>?,
        hostFromTarget: Bool, context: ForwardingContext, requestIDs: inout RequestIDGenerator, into out: ByteBuffer
    ) -> Int {
        var dropped = 0
        var scan = ForwardedFieldScan()
        let clientPolicy = context.peer.policy
        // Consecutive forwarded lines of the client's head, copied at once.
        var run = HeaderLineRun()
        for index in headFields.indices {
            let field = headFields[index]
            let name = UnsafeRawBufferPointer(rebasing: bytes[field.name])
            let role = context.policy.role(of: field.kind, name: name, hasUnderscore: field.nameHasUnderscore)
            // Every field is noted, hop-by-hop ones too: the policy reads the
            // client's forwarded fields as sent, whatever Connection lists.
            scan.note(role, at: index, name: name, valueIsEmpty: field.value.isEmpty, policy: clientPolicy)
            if field.isHopByHop { continue }
            switch field.kind {
            case .contentLength, .expect:
                // Framing is rewritten by the caller; Expect was answered by the proxy.
                continue
            case .host:
                if hostFromTarget { continue }
            default:
                break
            }
            switch role {
            case .forward:
                break
            case .dropUnderscore:
                dropped += 1
                continue
            case .drop, .forwardedFor, .forwardedHost, .forwardedPort, .forwardedProto, .requestID:
                // Set by the forwarding policy below, never taken as sent.
                continue
            }
            run.add(name: field.name, value: field.value, of: bytes, to: out)
        }
        run.flush(bytes, to: out)
        if let host, hostFromTarget || hostField == nil {
            out.append("Host: ")
            out.append(bytes, host)
            out.append("\r\n")
        }
        var sink = HTTP1FieldSink(out: out)
        context.policy.emit(
            fields: HTTP1RequestFields(fields: headFields, bytes: bytes), scan: scan,
            authority: host.map { UnsafeRawBufferPointer(rebasing: bytes[$0]) } ?? UnsafeRawBufferPointer(start: nil, count: 0),
            context: context, requestIDs: &requestIDs, into: &sink)
        return dropped
    }

    /// HTTP/2 client → HTTP/1.1 upstream: Host from `:authority`, the
    /// fields, cookie crumbs joined into one Cookie line (RFC 9113 §8.2.3),
    /// the forwarding fields. Framing is the caller's.
    static func http2ToHTTP1(
        fields: HTTP2Fields, authority: ArraySlice<UInt8>, context: ForwardingContext, requestIDs: inout RequestIDGenerator,
        into out: ByteBuffer
    ) -> Int {
        var dropped = 0
        out.append("Host: ")
        authority.withUnsafeBytes { out.append($0) }
        out.append("\r\n")
        var scan = ForwardedFieldScan()
        for index in 0..<fields.count {
            let name = fields.name(at: index)
            if equals(name, "host") || equals(name, "te") || equals(name, "cookie") || equals(name, "content-length") { continue }
            guard forwards(fields, at: index, context, scan: &scan, dropped: &dropped) else { continue }
            name.withUnsafeBytes { out.append($0) }
            out.append(": ")
            fields.value(at: index).withUnsafeBytes { out.append($0) }
            out.append("\r\n")
        }
        // RFC 9113 §8.2.3: the cookie crumbs become one Cookie line, written
        // straight into the head (no array per request).
        var cookies = 0
        for index in 0..<fields.count where equals(fields.name(at: index), "cookie") {
            if cookies == 0 { out.append("Cookie: ") } else { out.append("; ") }
            fields.value(at: index).withUnsafeBytes { out.append($0) }
            cookies += 1
        }
        if cookies > 0 { out.append("\r\n") }
        var sink = HTTP1FieldSink(out: out)
        emit(fields: fields, scan: scan, authority: authority, context: context, requestIDs: &requestIDs, into: &sink)
        return dropped
    }

    /// HTTP/2 client → HTTP/2 upstream (gRPC, h2c): the regular fields after
    /// the pseudo-headers already in `upstream`.
    static func http2ToHTTP2(
        fields: HTTP2Fields, authority: ArraySlice<UInt8>, context: ForwardingContext, requestIDs: inout RequestIDGenerator,
        into upstream: inout HTTP2Fields
    ) -> Int {
        var dropped = 0
        var scan = ForwardedFieldScan()
        for index in 0..<fields.count {
            let name = fields.name(at: index)
            if equals(name, "host") { continue }
            guard forwards(fields, at: index, context, scan: &scan, dropped: &dropped) else { continue }
            upstream.append(name: name, value: fields.value(at: index))
        }
        // Taken out while the sink fills it, so the storage stays uniquely
        // referenced (no copy).
        var sink = HTTP2FieldSink(fields: upstream)
        upstream = HTTP2Fields()
        emit(fields: fields, scan: scan, authority: authority, context: context, requestIDs: &requestIDs, into: &sink)
        upstream = sink.fields
        return dropped
    }

    @inline(__always)
    private static func emit<Sink: ForwardingFieldSink>(
        fields: HTTP2Fields, scan: ForwardedFieldScan, authority: ArraySlice<UInt8>, context: ForwardingContext,
        requestIDs: inout RequestIDGenerator, into sink: inout Sink
    ) {
        authority.withUnsafeBytes { authorityBytes in
            context.policy.emit(
                fields: HTTP2RequestFields(fields: fields), scan: scan, authority: authorityBytes, context: context,
                requestIDs: &requestIDs, into: &sink)
        }
    }

    /// Whether client field `index` goes upstream as sent; notes it for the
    /// forwarding policy on the way (one classification per field).
    @inline(__always)
    private static func forwards(
        _ fields: HTTP2Fields, at index: Int, _ context: ForwardingContext, scan: inout ForwardedFieldScan, dropped: inout Int
    ) -> Bool {
        let role = fields.name(at: index).withUnsafeBytes { name in
            let role = context.policy.role(ofName: name)
            scan.note(role, at: index, name: name, valueIsEmpty: fields.value(at: index).isEmpty, policy: context.peer.policy)
            return role
        }
        switch role {
        case .forward:
            return true
        case .dropUnderscore:
            dropped += 1
            return false
        case .drop, .forwardedFor, .forwardedHost, .forwardedPort, .forwardedProto, .requestID:
            return false
        }
    }

    @inline(__always)
    private static func equals(_ slice: ArraySlice<UInt8>, _ name: StaticString) -> Bool {
        slice.count == name.utf8CodeUnitCount
            && slice.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
    }
}

/// The fields of an HTTP/1.1 request head, for the pipeline and the
/// forwarding policy.
struct HTTP1RequestFields: RequestFieldList {
    let fields: [HTTP1HeaderField]
    let bytes: UnsafeRawBufferPointer

    var fieldCount: Int { fields.count }

    @inline(__always)
    func withField<Result>(at index: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Result) -> Result {
        let field = fields[index]
        return body(UnsafeRawBufferPointer(rebasing: bytes[field.name]), UnsafeRawBufferPointer(rebasing: bytes[field.value]))
    }
}

/// The fields of an HTTP/2 request, for the pipeline and the forwarding policy.
struct HTTP2RequestFields: RequestFieldList {
    let fields: HTTP2Fields

    var fieldCount: Int { fields.count }

    @inline(__always)
    func withField<Result>(at index: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Result) -> Result {
        fields.name(at: index).withUnsafeBytes { name in fields.value(at: index).withUnsafeBytes { value in body(name, value) } }
    }
}

/// Forwarding fields into an HTTP/2 field list (gRPC and h2c upstreams),
/// written straight into its storage: nothing allocated per request once
/// the list has grown.
struct HTTP2FieldSink: ForwardingFieldSink {
    var fields: HTTP2Fields

    init(fields: HTTP2Fields) { self.fields = fields }

    @inline(__always)
    mutating func begin(_ field: ForwardedField) { fields.openField(field.http2Name) }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) { fields.appendToOpenField(bytes) }

    @inline(__always)
    mutating func end() { fields.closeField() }
}
