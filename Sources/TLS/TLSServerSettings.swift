import COpenSSL

/// Protocol and cipher policy for every server context (`ssl-protocols`,
/// `ssl-ciphers`, `ssl-ciphersuites`, `ssl-ecdh-curve` in postern.yaml).
public struct TLSServerSettings: Sendable, Equatable {
    /// A TLS protocol version Postern can offer.
    public enum ProtocolVersion: String, Sendable, CaseIterable, Comparable {
        case tls12 = "TLSv1.2"
        case tls13 = "TLSv1.3"

        var openSSLValue: Int32 {
            switch self {
            case .tls12: return postern_TLS1_2_VERSION()
            case .tls13: return postern_TLS1_3_VERSION()
            }
        }

        public static func < (lhs: Self, rhs: Self) -> Bool { lhs.openSSLValue < rhs.openSSLValue }
    }

    /// Lowest and highest version offered. TLS 1.0 and 1.1 are never offered.
    public var minimumVersion: ProtocolVersion = .tls12
    public var maximumVersion: ProtocolVersion = .tls13
    /// TLS 1.2 cipher list (OpenSSL syntax): ECDHE with AEAD only, as in
    /// Mozilla's "intermediate" profile.
    public var ciphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// TLS 1.3 cipher suites.
    public var cipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    /// Key-exchange groups, most preferred first.
    public var groups = "X25519:P-256:P-384"
    /// Stateless session tickets (`ssl-session-tickets`): resumption without a
    /// full handshake. Off makes every handshake full.
    public var sessionTickets = true
    /// Server-side session cache (`ssl-session-cache`), shared by every
    /// worker: TLS 1.2 session-ID resumption, and TLS 1.3 resumption when
    /// tickets are off. On by default, as ingress-nginx's `shared:SSL:10m`.
    public var sessionCache = true
    /// Byte budget of the session cache (`ssl-session-cache-size`, nginx
    /// units: 10m is 10 MiB, about 40,000 sessions).
    public var sessionCacheBytes = 10 * 1024 * 1024
    /// Seconds a session (cached or ticket) stays resumable (`ssl-session-timeout`).
    public var sessionTimeoutSeconds = 600
    /// The server picks the cipher (`ssl-prefer-server-ciphers`), except that a
    /// client listing ChaCha20 first gets ChaCha20 (it likely lacks AES
    /// instructions). False: the client's order decides.
    public var preferServerCiphers = true
    /// OCSP stapling (`enable-ocsp`, off by default as in ingress-nginx).
    public var enableOCSP = false
    /// Refresh, retry and timeout of OCSP fetches (`ocsp-*`), used when `enableOCSP` is on.
    public var ocsp = OCSPSettings()
    /// ALPN protocols offered, most preferred first (`h2` joins with HTTP/2).
    public var alpnProtocols: [String] = ["http/1.1"]

    public init() {}

    /// Parses `ssl-protocols` ("TLSv1.2 TLSv1.3"): the lowest and highest listed.
    public mutating func setProtocols(_ text: String) throws {
        let names = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        var versions: [ProtocolVersion] = []
        for name in names {
            guard let version = ProtocolVersion(rawValue: name) else {
                throw TLSError("ssl-protocols: '\(name)' is not offered; use TLSv1.2 and/or TLSv1.3")
            }
            versions.append(version)
        }
        guard let low = versions.min(), let high = versions.max() else {
            throw TLSError("ssl-protocols: list at least one of TLSv1.2, TLSv1.3")
        }
        minimumVersion = low
        maximumVersion = high
    }
}
