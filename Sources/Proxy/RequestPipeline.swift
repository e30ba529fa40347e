import RouteModel
import Reactor
import Routing
import TLS
import Telemetry

/// What the pipeline reads of a client's TLS session. The transport's
/// `TLSSessionFacts` provides it; tests provide values.
protocol ClientTLSFacts {
    /// SNI (lower case, no trailing dot), empty when the client sent none.
    var serverName: [UInt8] { get }
    /// The context the handshake chose for that name.
    var selectedContext: TLSServerContext? { get }
    /// A client certificate was presented and verified on that context.
    var hasVerifiedClientCertificate: Bool { get }
}

/// The facts of one request, as its framing gives them. Byte views are
/// valid for the duration of `RequestPipeline.decide`.
struct RequestFacts {
    /// Host, `:authority`, or the authority of an absolute-form target,
    /// as sent (any case, port, trailing dot); empty when none.
    var authority: UnsafeRawBufferPointer
    /// The origin-form target (path and query), as sent.
    var target: UnsafeRawBufferPointer
    /// How many bytes of `target` are the path (up to `?`).
    var pathLength: Int
    /// Who is at the other end of the connection (TCP peer, PROXY
    /// protocol source, trust); the client address phase starts from it.
    var peer: ConnectionPeer
    /// The body length the request declares (Content-Length), nil when
    /// unknown (chunked, or an HTTP/2 stream without content-length).
    var declaredBodyLength: UInt64?
}

/// What the pipeline decided for one request. The protocol code only
/// translates it into its framing; metrics are counted here, so both
/// protocols count the same.
enum RequestOutcome {
    /// Answer with a generated response.
    case respond(ErrorResponse)
    /// Redirect to HTTPS: `https://` + `RequestPipeline.canonicalHost` +
    /// the public HTTPS port when it is not 443 or `namePort` says so
    /// (`use-port-in-redirects`) + the original target.
    case redirect(status: Int, namePort: Bool)
    /// Proxy to `cluster`; `rewrite` says which path to send.
    /// `passClientCertificate`: send `ssl-client-cert` / `ssl-client-verify`.
    /// `bodyLimit`: cut the request (413, or a reset once the response has
    /// begun) when its body grows past this many bytes (`UInt64.max`: no limit).
    case forward(cluster: CompiledCluster, rewrite: PathRewrite, passClientCertificate: Bool, bodyLimit: UInt64)
}

/// Every per-request decision, made once for HTTP/1.1 connections and
/// HTTP/2 streams alike, in named phases:
///
/// 0. **client address**: the TCP peer, or, for a peer inside
///    `proxy-real-ip-cidr` (when the realip step is on), the PROXY protocol
///    source or the address `forwarded-for-header` names (walked from the
///    right past trusted addresses, nginx's `real_ip_recursive on`). An
///    untrusted peer never sets it. Source ranges, `X-Real-IP` and
///    `X-Forwarded-For` all read this one address (`clientAddress`).
/// 1. **target**: a fragment, an encoded separator or NUL in the path is
///    refused (`RequestTargetPolicy`).
/// 2. **host**: the authority is canonicalised (`HostName`); an invalid
///    one (user information, a list, bad port, stray bytes) is refused.
/// 3. **https**: over TLS, a host served by another certificate than the
///    SNI chose gets 421, and a host that asks for client certificates is
///    served only on a connection whose handshake verified them exactly as
///    that host would (else 421 when SNI named another host, 400
///    otherwise). Over plain HTTP, once the table has routed the request:
///    the redirect the table compiled for its route (`ssl-redirect`,
///    `force-ssl-redirect` of the route's Ingress; the host's when no
///    route matched), only when an HTTPS listener exists; then a host that
///    requires a client certificate is refused.
/// 4. **route**: the routing table picks the cluster (404, 503, 414).
/// 5. **policy**: the chosen rule's `RoutePolicy`: a refused Ingress gets
///    503, a client outside its source ranges 403, a declared body over its
///    `proxy-body-size` 413; the limit goes with the forward outcome for
///    bodies of unknown length.
///
/// Every check reads the canonical host, so no two checks can disagree on
/// which host a request is for. Loop-bound (one per worker): the canonical
/// host of the last decision stays in `canonicalHost` until the next one.
final class RequestPipeline {
    private let hostStorage: UnsafeMutablePointer<UInt8>
    /// The canonical host of the last decision (empty when the request had none).
    private(set) var canonicalHost: UnsafeRawBufferPointer
    /// The public ports as text, for `X-Forwarded-Port` and redirects.
    let publicHTTPPortText: [UInt8]
    let publicHTTPSPortText: [UInt8]
    /// The public HTTPS port is 443, the scheme's default.
    private let publicHTTPSPortIsDefault: Bool
    /// Forwarded headers and PROXY protocol, compiled once per worker.
    private(set) var clientPolicy: ClientAddressPolicy
    /// The forwarding fields every forwarded request gets.
    private(set) var forwarding: ForwardingHeaderPolicy
    /// The client address of the last decision (phase 0), and its text.
    private(set) var clientAddress: ClientAddress?
    private let clientTextStorage: UnsafeMutableRawBufferPointer
    private(set) var clientText: UnsafeRawBufferPointer
    /// The `ConnectionPeer.serial` whose connection text `clientText` holds (0: none).
    private var textPeerSerial: UInt64 = 0
    /// The serial the next peer gets.
    private var nextPeerSerial: UInt64 = 0

    init(publicHTTPPort: UInt16 = 80, publicHTTPSPort: UInt16 = 443) {
        hostStorage = .allocate(capacity: HostName.maximumLength)
        canonicalHost = UnsafeRawBufferPointer(start: hostStorage, count: 0)
        publicHTTPPortText = Array(String(publicHTTPPort).utf8)
        publicHTTPSPortText = Array(String(publicHTTPSPort).utf8)
        publicHTTPSPortIsDefault = publicHTTPSPort == 443
        clientPolicy = .disabled
        forwarding = ForwardingHeaderPolicy(allowsUnderscores: false)
        clientTextStorage = .allocate(byteCount: AddressText.maximumLength, alignment: 1)
        clientText = UnsafeRawBufferPointer(start: clientTextStorage.baseAddress, count: 0)
    }

    /// The pipeline of a worker with `configuration`: public ports,
    /// client-address settings, underscores.
    convenience init(configuration: ProxyConfiguration) {
        self.init(publicHTTPPort: configuration.publicHTTPPort, publicHTTPSPort: configuration.publicHTTPSPort)
        configure(configuration)
    }

    /// Compiles the client-address and forwarding settings.
    func configure(_ configuration: ProxyConfiguration) {
        clientPolicy = ClientAddressPolicy(configuration.clientAddress)
        forwarding = ForwardingHeaderPolicy(allowsUnderscores: configuration.allowUnderscoresInHeaders)
    }

    /// The peer of a new client connection, trusted or not by the worker's client-address settings.
    @inline(__always)
    func peer(_ socketPeer: SocketAddress?) -> ConnectionPeer {
        let peer = ConnectionPeer(peer: socketPeer, policy: clientPolicy)
        nextPeerSerial += 1
        peer.serial = nextPeerSerial
        return peer
    }

    /// What the forwarding-header policy needs of the last decision and its
    /// connection, for either framing: the client address of phase 0, the
    /// public port, and the client certificate when the https phase passes it.
    @inline(__always)
    func forwardingContext(peer: ConnectionPeer, tls: TLSSessionFacts?, passClientCertificate: Bool) -> ForwardingContext {
        let isTLS = tls != nil
        return ForwardingContext(
            policy: forwarding, peer: peer, clientText: clientText, isTLS: isTLS, publicPort: forwardedPort(isTLS: isTLS),
            clientCertificate: passClientCertificate ? tls?.escapedClientCertificate : nil)
    }

    /// `X-Forwarded-Port`: the public port of the listener the request came on.
    @inline(__always)
    func forwardedPort(isTLS: Bool) -> [UInt8] { isTLS ? publicHTTPSPortText : publicHTTPPortText }

    /// `https://host[:port]target` for an HTTPS redirect: the canonical host
    /// of the last decision, the public HTTPS port when it is not 443 or
    /// `namePort` asks for it.
    func httpsLocation(target: UnsafeRawBufferPointer, namePort: Bool) -> [UInt8] {
        var location = Array("https://".utf8)
        location.reserveCapacity(location.count + canonicalHost.count + 6 + target.count)
        location += canonicalHost
        if namePort || !publicHTTPSPortIsDefault {
            location.append(UInt8(ascii: ":"))
            location += publicHTTPSPortText
        }
        location += target
        return location
    }

    deinit {
        hostStorage.deallocate()
        clientTextStorage.deallocate()
    }

    /// Decides what happens to one request against the pinned `table` and
    /// `secure` policy.
    @inline(__always)
    func decide<TLSFacts: ClientTLSFacts, Fields: RequestFieldList>(
        _ request: RequestFacts, fields: Fields, tls: TLSFacts?, table: RoutingTable, secure: SecurePolicy?,
        rewriteInto: UnsafeMutableRawBufferPointer, metrics: WorkerMetrics, redirectStatus: Int
    ) -> RequestOutcome {
        // Phase 0: client address.
        decideClientAddress(peer: request.peer, fields: fields)
        // Phase 1: target.
        if RequestTargetPolicy.violation(request.target) != nil {
            metrics.count(.unsafeTarget)
            return .respond(.unsafeTarget)
        }
        // Phase 2: host.
        switch HostName.canonicalize(request.authority, into: hostStorage) {
        case .invalid:
            canonicalHost = UnsafeRawBufferPointer(start: hostStorage, count: 0)
            metrics.count(.badRequest)
            return .respond(.badRequest)
        case .empty:
            canonicalHost = UnsafeRawBufferPointer(start: hostStorage, count: 0)
        case let .host(count, _):
            canonicalHost = UnsafeRawBufferPointer(start: hostStorage, count: count)
        }
        let host = canonicalHost
        // Phase 3: https (over TLS: 421 and client certificates, from the
        // certificates in service).
        var passClientCertificate = false
        var requiresCertificate = false
        var mayRedirect = false
        if let secure {
            let requirement = secure.clientCertificateHosts.isEmpty ? nil : secure.clientCertificateHosts.value(for: host)
            if let tls {
                switch checkTLSHost(host, tls: tls, requirement: requirement, secure: secure) {
                case let .refused(response):
                    metrics.count(response == .misdirected ? .misdirected : .clientCertificate)
                    return .respond(response)
                case let .allowed(pass):
                    passClientCertificate = pass
                }
            } else {
                requiresCertificate = requirement == .required
                mayRedirect = secure.redirectsToHTTPS
            }
        }
        // Phase 4: route.
        let path = UnsafeRawBufferPointer(rebasing: request.target[0..<request.pathLength])
        let routed = table.route(
            canonicalHost: host, path: path.isEmpty ? RequestPipeline.rootPath : path, rewriteInto: rewriteInto)
        // Phase 3, plain HTTP: the redirect the routing table compiled for
        // the route (or the host, when no route matched), before anything
        // the route would answer; then a host that requires a client
        // certificate is refused.
        let redirectRule = routed.httpsRedirect
        if mayRedirect, !redirectRule.isNone, let namePort = table.httpsRedirect(redirectRule, canonicalHost: host) {
            metrics.httpsRedirects.add()
            return .redirect(status: redirectStatus, namePort: namePort)
        }
        if requiresCertificate {
            metrics.count(.clientCertificate)
            return .respond(.clientCertificateRequired)
        }
        switch routed.decision {
        case .notFound:
            metrics.count(.noRoute)
            return .respond(.notFound)
        case let .cluster(found):
            // Phase 5: policy. A refused route is never served, whatever
            // state its backend is in.
            let policy = routed.policy
            if let policy, policy.isRefused {
                metrics.count(.routeRefused)
                return .respond(.routeRefused)
            }
            if found.endpoints.isEmpty {
                metrics.count(.noEndpoints)
                return .respond(.serviceUnavailable)
            }
            if case .tooLong = routed.rewrite {
                metrics.count(.uriTooLong)
                return .respond(.uriTooLong)
            }
            var bodyLimit = UInt64.max
            if let policy {
                if !policy.admits(clientAddress) {
                    metrics.count(.forbidden)
                    return .respond(.forbidden)
                }
                if let limit = policy.maximumBodySize {
                    if let declared = request.declaredBodyLength, declared > limit {
                        metrics.count(.bodyTooLarge)
                        return .respond(.contentTooLarge)
                    }
                    bodyLimit = limit
                }
            }
            return .forward(
                cluster: found, rewrite: routed.rewrite, passClientCertificate: passClientCertificate, bodyLimit: bodyLimit)
        }
    }

    /// Phase 0: the client address and its text, from the connection's
    /// peer and, for a trusted peer, `forwarded-for-header`.
    @inline(__always)
    func decideClientAddress<Fields: RequestFieldList>(peer: ConnectionPeer, fields: Fields) {
        if peer.isTrusted, peer.policy.readsForwardedForField, let found = peer.policy.forwardedClient(in: fields) {
            clientAddress = found
            clientText = UnsafeRawBufferPointer(start: clientTextStorage.baseAddress, count: AddressText.write(found, into: clientTextStorage))
            textPeerSerial = 0
            return
        }
        clientAddress = peer.connectionAddress
        // The same connection's next request (keep-alive): its text is in
        // the buffer already.
        if peer.serial != 0, peer.serial == textPeerSerial { return }
        let count = min(peer.connectionText.count, clientTextStorage.count)
        peer.connectionText.withUnsafeBytes { text in
            clientTextStorage.baseAddress!.copyMemory(from: text.baseAddress!, byteCount: count)
        }
        clientText = UnsafeRawBufferPointer(start: clientTextStorage.baseAddress, count: count)
        textPeerSerial = peer.serial
    }

    private static let rootPathStorage: StaticString = "/"
    static var rootPath: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: rootPathStorage.utf8Start, count: 1)
    }

    private enum TLSHostCheck {
        case allowed(passClientCertificate: Bool)
        case refused(ErrorResponse)
    }

    /// The https phase for a request over TLS.
    @inline(__always)
    private func checkTLSHost<TLSFacts: ClientTLSFacts>(
        _ host: UnsafeRawBufferPointer, tls: TLSFacts, requirement: ClientCertificateRequirement?, secure: SecurePolicy
    ) -> TLSHostCheck {
        let asksForCertificate = requirement == .optional || requirement == .required
        let serverName = tls.serverName
        // The common case: the request names the host the handshake was for
        // and that host asks nothing of the client's certificate.
        let sameAsServerName = !serverName.isEmpty && serverName.elementsEqual(host)
        // Without SNI nothing is misdirected; a host that asks nothing of
        // the client's certificate needs no lookup then either.
        if host.isEmpty || (!asksForCertificate && (sameAsServerName || serverName.isEmpty)) {
            return .allowed(passClientCertificate: false)
        }
        guard let store = secure.certificates, let selected = tls.selectedContext else {
            return asksForCertificate ? .refused(.clientCertificateRequired) : .allowed(passClientCertificate: false)
        }
        // The current store, not the handshake's: a host that gained client
        // certificates (or new CAs) since is checked by its new settings.
        let hostContext = store.context(forCanonicalHost: host)
        // RFC 9110 §15.5.20: another certificate serves this host, so the
        // client retries on a connection of its own. Without SNI the default
        // certificate answered whatever the host: not misdirected.
        if !serverName.isEmpty, !sameAsServerName, !hostContext.servesSameCertificate(as: selected) {
            return .refused(.misdirected)
        }
        guard asksForCertificate else { return .allowed(passClientCertificate: false) }
        // The host asks for client certificates: its context must too (a
        // certificate that failed to load left the host on the default
        // context, which asks nothing: fail closed), and this connection's
        // handshake must have verified them as that context would.
        guard hostContext.clientVerification != nil, selected.verifiesClientsLike(hostContext) else {
            return .refused(serverName.isEmpty || sameAsServerName ? .clientCertificateRequired : .misdirected)
        }
        let verified = tls.hasVerifiedClientCertificate
        if !verified, requirement == .required || hostContext.requiresClientCertificate {
            return .refused(.clientCertificateRequired)
        }
        return .allowed(passClientCertificate: verified && hostContext.passClientCertificate)
    }
}
