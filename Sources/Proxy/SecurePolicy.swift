import TLS

/// What HTTPS means for the proxy at one moment: the certificate store new
/// handshakes use, which hosts plain-HTTP requests are redirected for, and
/// the HSTS header. Immutable; published to every worker like the routing table.
public final class SecurePolicy: @unchecked Sendable {
    /// Certificates for new handshakes.
    public let certificates: TLSCertificateStore
    /// Hosts whose plain-HTTP requests are redirected to HTTPS.
    let redirectHosts: HostSet
    /// `Strict-Transport-Security: ...\r\n`, or empty when HSTS is off.
    let strictTransportSecurity: [UInt8]
    /// The header's value alone (for HTTP/2 fields).
    let strictTransportSecurityValue: [UInt8]

    /// - Parameters:
    ///   - redirectHosts: exact hosts and `*.suffix` wildcards (ssl-redirect / force-ssl-redirect).
    ///   - hsts: the header value (e.g. `max-age=31536000; includeSubDomains`), nil for none.
    public init(certificates: TLSCertificateStore, redirectHosts: [String], hsts: String?) {
        self.certificates = certificates
        self.redirectHosts = HostSet(redirectHosts)
        self.strictTransportSecurity = hsts.map { Array("Strict-Transport-Security: \($0)\r\n".utf8) } ?? []
        self.strictTransportSecurityValue = hsts.map { Array($0.utf8) } ?? []
    }
}

extension SecurePolicy {
    /// RFC 9110 §15.5.20: a request whose host (Host or `:authority`, port
    /// ignored) is served by another certificate than the one the
    /// connection's SNI chose gets 421, so the client retries on a
    /// connection of its own. Without SNI the default certificate answered
    /// whatever the host, so nothing is misdirected; the same Secret can back
    /// two contexts, so certificates are compared, not objects.
    static func isMisdirected(host: UnsafeRawBufferPointer, tls: TLSConnection) -> Bool {
        var end = host.count
        if host.first != UInt8(ascii: "["), let colon = host.firstIndex(of: UInt8(ascii: ":")) { end = colon }
        let name = host[0..<end]
        // Host equal to SNI, the common case, needs no lookup.
        if tls.serverName.isEmpty || HostSet.equalIgnoringCase(tls.serverName, name) { return false }
        guard let store = tls.store, let selected = tls.selectedContext else { return false }
        return !store.context(forServerName: String(decoding: name, as: UTF8.self)).servesSameCertificate(as: selected)
    }
}

/// A set of host names (exact, or `*.suffix` matching one extra label)
/// looked up from request bytes without allocating: hosts are hashed
/// (case-insensitive, port ignored) and confirmed byte by byte.
struct HostSet {
    private var exact: [UInt64: [[UInt8]]] = [:]
    /// Wildcards keyed by the hash of their suffix (`.example.com`).
    private var suffixes: [UInt64: [[UInt8]]] = [:]

    init(_ hosts: [String]) {
        for host in hosts {
            let lower = Array(host.lowercased().utf8)
            if lower.starts(with: Array("*.".utf8)) {
                let suffix = Array(lower.dropFirst())
                suffixes[HostSet.hash(suffix[...]), default: []].append(suffix)
            } else {
                exact[HostSet.hash(lower[...]), default: []].append(lower)
            }
        }
    }

    var isEmpty: Bool { exact.isEmpty && suffixes.isEmpty }

    /// FNV-1a over lower-cased bytes.
    @inline(__always)
    static func hash<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            value = (value ^ UInt64(byte >= 65 && byte <= 90 ? byte | 0x20 : byte)) &* 0x100_0000_01b3
        }
        return value
    }

    @inline(__always)
    static func equalIgnoringCase(_ candidate: [UInt8], _ bytes: UnsafeRawBufferPointer.SubSequence) -> Bool {
        guard candidate.count == bytes.count else { return false }
        var index = bytes.startIndex
        for byte in candidate {
            let other = bytes[index]
            if (other >= 65 && other <= 90 ? other | 0x20 : other) != byte { return false }
            index += 1
        }
        return true
    }

    /// True when `host` (a Host header value, port allowed) is in the set.
    func contains(_ host: UnsafeRawBufferPointer) -> Bool {
        // Strip ":port"; an IPv6 literal keeps its brackets.
        var end = host.count
        if host.first == UInt8(ascii: "[") {
            if let close = host.firstIndex(of: UInt8(ascii: "]")) { end = close + 1 }
        } else if let colon = host.firstIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        let name = host[0..<end]
        if let candidates = exact[HostSet.hash(name)], candidates.contains(where: { HostSet.equalIgnoringCase($0, name) }) {
            return true
        }
        guard let dot = name.firstIndex(of: UInt8(ascii: ".")), dot > 0 else { return false }
        let suffix = name[dot...]
        if let candidates = suffixes[HostSet.hash(suffix)], candidates.contains(where: { HostSet.equalIgnoringCase($0, suffix) }) {
            return true
        }
        return false
    }
}
