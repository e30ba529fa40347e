import RouteModel
import TLS

/// What HTTPS means for the proxy at one moment: the certificate store new
/// handshakes use and which hosts ask for client certificates. Immutable;
/// published to every worker with the routing table.
///
/// Redirects to HTTPS and HSTS are the routing table's (per route, as
/// ingress-nginx applies `ssl-redirect` per location): only what is tied
/// to a certificate stays here. Client-certificate requirements do,
/// because they follow the certificate store (a host's `auth-tls-*` comes
/// with its `spec.tls` entry and is checked against the server context
/// the handshake chose), not a route.
///
/// Exists even without an HTTPS listener (then `certificates` is nil), so
/// that a host that requires a client certificate is refused over plain
/// HTTP instead of served without one; `redirectsToHTTPS` is false then
/// (there is nothing to redirect to: it would loop).
public final class SecurePolicy: @unchecked Sendable {
    /// Certificates for new handshakes (nil: no HTTPS listener).
    public let certificates: TLSCertificateStore?
    /// An HTTPS listener serves these certificates, so plain-HTTP requests
    /// may be redirected to it (the routes say which).
    let redirectsToHTTPS: Bool
    /// Hosts that ask for client certificates, as configuration says,
    /// whether or not their certificate loaded (`auth-tls-*`).
    let clientCertificateHosts: HostTable<ClientCertificateRequirement>

    /// - Parameters:
    ///   - certificates: the store for handshakes, nil without an HTTPS listener.
    ///   - model: the client-certificate settings of each TLS host.
    public init(certificates: TLSCertificateStore?, model: TLSModel) {
        self.certificates = certificates
        // Without an HTTPS listener there is nothing to redirect to (TLS ends
        // in front of the proxy, if anywhere): redirecting would loop.
        self.redirectsToHTTPS = certificates != nil
        var clientHosts: [(String, ClientCertificateRequirement)] = []
        for certificate in model.certificates {
            guard let authentication = certificate.clientAuthentication else { continue }
            // A CA Secret that is missing or empty fails closed: required.
            let required = authentication.mode == .required || authentication.certificateAuthoritiesPEM.isEmpty
            for host in certificate.hosts { clientHosts.append((host, required ? .required : .optional)) }
        }
        // Hosts with a certificate of their own but no client settings
        // shadow a wildcard that has them, as they do in the store.
        for certificate in model.certificates where certificate.clientAuthentication == nil {
            for host in certificate.hosts where !host.hasPrefix("*.") { clientHosts.append((host, .none)) }
        }
        self.clientCertificateHosts = HostTable(clientHosts)
    }
}

extension TLSCertificateInput {
    /// The store's input for one certificate of the TLS model.
    public init(_ certificate: TLSCertificate) {
        self.init(
            name: certificate.secret, hosts: certificate.hosts, certificateChainPEM: certificate.certificateChainPEM,
            privateKeyPEM: certificate.privateKeyPEM,
            clientVerification: certificate.clientAuthentication.map {
                TLSClientVerification(
                    required: $0.mode == .required, certificateAuthoritiesPEM: $0.certificateAuthoritiesPEM,
                    verifyDepth: $0.verifyDepth, passCertificateToUpstream: $0.passCertificateToUpstream)
            })
    }
}

/// What a host asks of a client's certificate.
enum ClientCertificateRequirement {
    /// Nothing (a host with a certificate of its own and no client
    /// settings: it shadows a wildcard that has them).
    case none
    /// Requested; none is accepted, a bad one is refused.
    case optional
    /// A certificate verified against the host's CAs is required.
    case required
}

/// Host names (exact, or `*.suffix` matching one extra label) mapped to a
/// value, looked up from canonical host bytes (`HostName`) without
/// allocating. An exact name wins over a wildcard, as in the certificate
/// store.
struct HostTable<Value> {
    private var exact: [UInt64: [(name: [UInt8], value: Value)]] = [:]
    /// Wildcards keyed by the hash of their suffix (`.example.com`).
    private var suffixes: [UInt64: [(name: [UInt8], value: Value)]] = [:]

    init(_ entries: [(String, Value)]) {
        for (host, value) in entries {
            var lower = Array(host.lowercased().utf8)
            if lower.count > 1, lower.last == UInt8(ascii: ".") { lower.removeLast() }
            if lower.starts(with: Array("*.".utf8)) {
                let suffix = Array(lower.dropFirst())
                let hash = HostTable.hash(suffix[...])
                if suffixes[hash]?.contains(where: { $0.name == suffix }) != true { suffixes[hash, default: []].append((suffix, value)) }
            } else {
                let hash = HostTable.hash(lower[...])
                if exact[hash]?.contains(where: { $0.name == lower }) != true { exact[hash, default: []].append((lower, value)) }
            }
        }
    }

    var isEmpty: Bool { exact.isEmpty && suffixes.isEmpty }

    /// FNV-1a.
    @inline(__always)
    static func hash<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return value
    }

    /// The value for `host` (canonical: lower case, no port, no trailing dot).
    func value(for host: UnsafeRawBufferPointer) -> Value? {
        if let candidates = exact[HostTable.hash(host)] {
            for candidate in candidates where candidate.name.elementsEqual(host) { return candidate.value }
        }
        guard let dot = host.firstIndex(of: UInt8(ascii: ".")), dot > 0 else { return nil }
        let suffix = host[dot...]
        if let candidates = suffixes[HostTable.hash(suffix)] {
            for candidate in candidates where candidate.name.elementsEqual(suffix) { return candidate.value }
        }
        return nil
    }
}

/// Case-insensitive comparison of a lower-case literal with request bytes.
@inline(__always)
func equalIgnoringCase(_ candidate: [UInt8], _ bytes: UnsafeRawBufferPointer.SubSequence) -> Bool {
    guard candidate.count == bytes.count else { return false }
    var index = bytes.startIndex
    for byte in candidate {
        let other = bytes[index]
        if (other >= 65 && other <= 90 ? other | 0x20 : other) != byte { return false }
        index += 1
    }
    return true
}
