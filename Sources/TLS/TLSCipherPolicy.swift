import COpenSSL

/// The kind of key a certificate holds, as TLS 1.2 cipher suites name the
/// authentication (`aRSA`, `aECDSA`). TLS 1.3 suites work with any key.
public enum TLSKeyType: String, Sendable, Hashable, CustomStringConvertible {
    /// RSA (and RSA-PSS) keys: `ECDHE-RSA-*` and static `RSA` suites.
    case rsa = "RSA"
    /// ECDSA and EdDSA keys: `ECDHE-ECDSA-*` suites.
    case ecdsa = "ECDSA"

    public var description: String { rawValue }

    /// The type of `key` (an `EVP_PKEY`), nil for a type TLS 1.2 cannot use.
    init?(key: OpaquePointer) {
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_RSA, EVP_PKEY_RSA_PSS: self = .rsa
        case EVP_PKEY_EC, EVP_PKEY_ED25519, EVP_PKEY_ED448: self = .ecdsa
        default: return nil
        }
    }
}

/// What `ssl-protocols`, `ssl-ciphers` and `ssl-ciphersuites` leave usable,
/// worked out once from the settings at start-up.
///
/// Postern loads no Diffie-Hellman parameters (`ssl-dh-param` is not
/// supported), so DHE suites can never be chosen: they are reported as
/// unused instead of silently dropped. Only ECDHE and static-RSA key
/// exchange with RSA or ECDSA authentication can complete a TLS 1.2
/// handshake here.
public struct TLSCipherPolicy: Sendable, Equatable {
    /// Key types with at least one usable TLS 1.2 suite (empty when TLS 1.2 is off).
    public let tls12KeyTypes: Set<TLSKeyType>
    /// TLS 1.2 suites the list selects that can never be negotiated, with the reason.
    public let unusableSuites: [String]
    /// TLS 1.2 is offered (`ssl-protocols`).
    public let offersTLS12: Bool

    /// Works out the policy; throws a one-line error naming the setting when
    /// a protocol that is offered has no usable suite at all.
    public init(_ settings: TLSServerSettings) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError.fromQueue("SSL_CTX_new failed") }
        defer { SSL_CTX_free(context) }
        offersTLS12 = settings.minimumVersion <= .tls12
        let offersTLS13 = settings.maximumVersion >= .tls13
        guard SSL_CTX_set_cipher_list(context, settings.ciphers) == 1 else {
            OpenSSLErrors.clear()
            throw TLSError("ssl-ciphers: '\(settings.ciphers)' selects no cipher suite OpenSSL knows")
        }
        guard SSL_CTX_set_ciphersuites(context, settings.cipherSuites) == 1 else {
            OpenSSLErrors.clear()
            throw TLSError("ssl-ciphersuites: '\(settings.cipherSuites)' is not valid")
        }
        var keyTypes: Set<TLSKeyType> = []
        var unusable: [String] = []
        var tls13Count = 0
        for index in 0..<postern_SSL_CTX_cipher_count(context) {
            guard let cipher = postern_SSL_CTX_cipher_at(context, index) else { continue }
            let name = String(cString: SSL_CIPHER_get_name(cipher))
            let exchange = SSL_CIPHER_get_kx_nid(cipher)
            // TLS 1.3 suites name neither key exchange nor authentication.
            if exchange == NID_kx_any {
                tls13Count += 1
                continue
            }
            let authentication = SSL_CIPHER_get_auth_nid(cipher)
            guard exchange == NID_kx_ecdhe || exchange == NID_kx_rsa else {
                unusable.append(
                    exchange == NID_kx_dhe
                        ? "\(name) (DHE needs Diffie-Hellman parameters, which Postern does not load)"
                        : "\(name) (its key exchange needs a pre-shared key or parameters Postern does not have)")
                continue
            }
            switch authentication {
            case NID_auth_rsa: keyTypes.insert(.rsa)
            case NID_auth_ecdsa: keyTypes.insert(.ecdsa)
            default: unusable.append("\(name) (no certificate authenticates it)")
            }
        }
        tls12KeyTypes = offersTLS12 ? keyTypes : []
        unusableSuites = offersTLS12 ? unusable : []
        if offersTLS12, keyTypes.isEmpty {
            throw TLSError(
                "ssl-ciphers: '\(settings.ciphers)' leaves TLS 1.2 without a usable suite"
                    + (unusable.isEmpty ? "" : ": " + unusable.joined(separator: "; "))
                    + "; list ECDHE suites (e.g. ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256) or set ssl-protocols: TLSv1.3")
        }
        if offersTLS13, tls13Count == 0 {
            throw TLSError("ssl-ciphersuites: '\(settings.cipherSuites)' leaves TLS 1.3 without a suite")
        }
    }

    /// Whether TLS 1.2 clients can complete a handshake with a certificate
    /// of `keyType` (always true when TLS 1.2 is not offered).
    public func coversTLS12(_ keyType: TLSKeyType?) -> Bool {
        guard offersTLS12 else { return true }
        guard let keyType else { return false }
        return tls12KeyTypes.contains(keyType)
    }
}
