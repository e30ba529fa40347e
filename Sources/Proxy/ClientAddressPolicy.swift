import Reactor
import Routing

/// A request's header fields as the pipeline reads them, whatever the
/// framing: HTTP/1.1 head ranges or HTTP/2 field lists. Views are valid
/// during the call.
protocol RequestFieldList {
    var fieldCount: Int { get }
    /// Calls `body` with the name (as sent: any case for HTTP/1.1) and value
    /// of the field at `index`.
    func withField<Result>(at index: Int, _ body: (_ name: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) -> Result) -> Result
}

/// No fields (tests, and requests whose client address needs none).
struct NoFields: RequestFieldList {
    var fieldCount: Int { 0 }
    func withField<Result>(at index: Int, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Result) -> Result {
        preconditionFailure("no fields")
    }
}

/// The client-address settings compiled once per worker: the trusted
/// ranges as a merged interval set (`AddressRangeSet`: a binary search,
/// whatever the length of `proxy-real-ip-cidr`), the header name as bytes.
/// Immutable.
final class ClientAddressPolicy {
    let settings: ClientAddressSettings
    /// The realip step runs (`use-forwarded-headers`, `use-proxy-protocol` or `enable-real-ip`).
    let realIPEnabled: Bool
    /// Listeners require a PROXY protocol header.
    let useProxyProtocol: Bool
    /// Trusted peers' `X-Forwarded-Proto`, `-Host` and `-Port` pass through.
    let passesForwardedFields: Bool
    /// Trusted peers' `X-Forwarded-For` is appended to, not replaced.
    let appendsForwardedFor: Bool
    /// The client address comes from `forwardedForName` (not from PROXY protocol).
    let readsForwardedForField: Bool
    let trusted: AddressRangeSet
    /// `forwarded-for-header`, lower case.
    let forwardedForName: [UInt8]
    /// `forwarded-for-header` is `X-Forwarded-For` (the default): the
    /// fields it names are the ones the forwarding policy reads anyway.
    let forwardedForIsStandard: Bool
    let headerTimeoutMilliseconds: UInt64

    init(_ settings: ClientAddressSettings) {
        self.settings = settings
        realIPEnabled = settings.realIPEnabled
        useProxyProtocol = settings.useProxyProtocol
        passesForwardedFields = settings.useForwardedHeaders
        // ingress-nginx: `compute-full-forwarded-for` only with `use-forwarded-headers`.
        appendsForwardedFor = settings.useForwardedHeaders && settings.computeFullForwardedFor
        readsForwardedForField = settings.realIPEnabled && !settings.useProxyProtocol
        trusted = AddressRangeSet(settings.trustedRanges)
        forwardedForName = settings.forwardedForHeader.utf8.map { $0 >= 65 && $0 <= 90 ? $0 | 0x20 : $0 }
        forwardedForIsStandard = forwardedForName == Array("x-forwarded-for".utf8)
        headerTimeoutMilliseconds = settings.proxyProtocolHeaderTimeoutMilliseconds
    }

    /// The default: no realip step, no PROXY protocol.
    static let disabled = ClientAddressPolicy(ClientAddressSettings())

    /// True when `name` (any case) is `forwarded-for-header`.
    @inline(__always)
    func isForwardedForName(_ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count == forwardedForName.count else { return false }
        return forwardedForName.withUnsafeBytes { equalsIgnoringCase(name, lowercase: $0) }
    }

    /// nginx's realip module with `real_ip_recursive on`: the values of
    /// `forwarded-for-header` (lines in order, as one list) walked from the
    /// right, skipping trusted addresses; the first untrusted one is the
    /// client. When every element is trusted, the leftmost is; an element
    /// that is not an address ends the walk with the last one read (none
    /// read: nil, the peer stays the client).
    func forwardedClient<Fields: RequestFieldList>(in fields: Fields) -> ClientAddress? {
        var found: ClientAddress?
        var index = fields.fieldCount
        while index > 0 {
            index -= 1
            let step: WalkStep = fields.withField(at: index) { name, value in
                guard isForwardedForName(name) else { return .next }
                var end = value.count
                while true {
                    // Trailing separators, then the element before them.
                    while end > 0, value[end - 1] == 32 || value[end - 1] == 44 || value[end - 1] == 9 { end -= 1 }
                    var start = end
                    while start > 0, value[start - 1] != 32, value[start - 1] != 44, value[start - 1] != 9 { start -= 1 }
                    guard let address = AddressText.parseElement(UnsafeRawBufferPointer(rebasing: value[start..<end])) else {
                        return .stop
                    }
                    found = address
                    if !trusted.contains(address) { return .stop }
                    // Trusted: go on to the left, in this line or the one before.
                    end = start
                    var rest = end
                    while rest > 0, value[rest - 1] == 32 || value[rest - 1] == 44 || value[rest - 1] == 9 { rest -= 1 }
                    if rest == 0 { return .next }
                }
            }
            if step == .stop { break }
        }
        return found
    }

    private enum WalkStep { case next, stop }
}

/// `bytes` equals `lowercase` ignoring ASCII case (same length assumed checked).
@inline(__always)
func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, lowercase: UnsafeRawBufferPointer) -> Bool {
    guard bytes.count == lowercase.count else { return false }
    for index in 0..<bytes.count {
        let byte = bytes[index]
        if (byte >= 65 && byte <= 90 ? byte | 0x20 : byte) != lowercase[index] { return false }
    }
    return true
}

/// Who is at the other end of one client connection, fixed for its life:
/// the TCP peer, the PROXY protocol header's source, and whether the peer
/// is trusted (`proxy-real-ip-cidr`, checked once per connection). Handed
/// from an HTTP/1.1 connection to the HTTP/2 connection that takes it over.
final class ConnectionPeer {
    /// The TCP peer (nil: unknown).
    let address: ClientAddress?
    let text: [UInt8]
    /// The PROXY header's source and destination port, when it named them.
    private(set) var proxied: ClientAddress?
    private(set) var proxiedText: [UInt8] = []
    private(set) var proxiedDestinationPortText: [UInt8] = []
    /// The realip step applies: enabled, and the TCP peer is trusted.
    private(set) var isTrusted: Bool
    /// Trusted, and `use-forwarded-headers` passes its X-Forwarded-* through.
    private(set) var passesForwardedFields: Bool
    /// The client address before any header is read: the PROXY source of a
    /// trusted peer, else the TCP peer.
    private(set) var connectionAddress: ClientAddress?
    private(set) var connectionText: [UInt8]
    /// The hop that `compute-full-forwarded-for` appends: the PROXY source
    /// when there is one (ingress-nginx's `$proxy_protocol_addr`), else the
    /// TCP peer (`$realip_remote_addr`).
    var hopText: [UInt8] { proxied != nil ? proxiedText : text }
    let policy: ClientAddressPolicy
    /// Set by the worker's pipeline (`RequestPipeline.peer`), unique on
    /// its loop: the pipeline keeps this peer's text between its requests
    /// instead of copying it each time. 0: not tracked.
    var serial: UInt64 = 0

    init(address: ClientAddress?, text: [UInt8], policy: ClientAddressPolicy) {
        self.address = address
        self.text = text
        self.policy = policy
        isTrusted = policy.realIPEnabled && address.map { policy.trusted.contains($0) } == true
        passesForwardedFields = isTrusted && policy.passesForwardedFields
        connectionAddress = address
        connectionText = text
    }

    /// From the socket's peer address.
    convenience init(peer: SocketAddress?, policy: ClientAddressPolicy) {
        let address = peer.flatMap { ClientAddress(bytes: $0.bytes) }
        var text: [UInt8]
        if let address {
            text = [UInt8](repeating: 0, count: AddressText.maximumLength)
            let count = text.withUnsafeMutableBytes { AddressText.write(address, into: $0) }
            text.removeLast(text.count - count)
        } else {
            text = Array("unknown".utf8)
        }
        self.init(address: address, text: text, policy: policy)
    }

    /// The connection's PROXY protocol header was read.
    func accept(_ header: ProxyProtocol.Header) {
        guard let source = header.source else { return }
        proxied = source
        var text = [UInt8](repeating: 0, count: AddressText.maximumLength)
        let count = text.withUnsafeMutableBytes { AddressText.write(source, into: $0) }
        text.removeLast(text.count - count)
        proxiedText = text
        // The connection's text may change below: the pipeline copies it afresh.
        serial = 0
        if let port = header.destinationPort { proxiedDestinationPortText = Array(String(port).utf8) }
        // nginx `real_ip_header proxy_protocol`: a trusted peer's header names the client.
        if isTrusted {
            connectionAddress = source
            connectionText = text
        }
    }

    /// `X-Forwarded-Port` from the PROXY header (the balancer's port the
    /// client used), when the peer is trusted and the header named one.
    var trustedDestinationPortText: [UInt8]? {
        isTrusted && !proxiedDestinationPortText.isEmpty ? proxiedDestinationPortText : nil
    }
}
