import COpenSSL

/// An OpenSSL client context for connections to upstreams
/// (`backend-protocol: HTTPS`). Shared by every worker; immutable once made.
public final class TLSClientContext: @unchecked Sendable {
    let context: OpaquePointer
    /// Whether the upstream's certificate is checked (`proxy-ssl-verify: on`).
    public let verifies: Bool

    /// - Parameters:
    ///   - certificateAuthoritiesPEM: trusted CAs (`proxy-ssl-secret`'s
    ///     `ca.crt`); nil with `verify` uses the system's trust store.
    ///   - verify: check the certificate chain and the host name; off by
    ///     default, as in ingress-nginx.
    public convenience init(verify: Bool, certificateAuthoritiesPEM: [UInt8]?) throws {
        try self.init(verify: verify, certificateAuthoritiesPEM: certificateAuthoritiesPEM, clientCertificateChainPEM: nil, clientPrivateKeyPEM: nil)
    }

    /// A context that also presents a client certificate (kubeconfig
    /// `client-certificate`/`client-key`) when both PEM inputs are given.
    public init(
        verify: Bool, certificateAuthoritiesPEM: [UInt8]?, clientCertificateChainPEM: [UInt8]?, clientPrivateKeyPEM: [UInt8]?
    ) throws {
        OpenSSLErrors.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new failed") }
        // Configure before the stored properties are set: a throw after them
        // would run deinit, which frees the context a second time.
        do {
            try TLSClientContext.configure(
                context, verify: verify, certificateAuthoritiesPEM: certificateAuthoritiesPEM,
                clientCertificateChainPEM: clientCertificateChainPEM, clientPrivateKeyPEM: clientPrivateKeyPEM)
        } catch {
            SSL_CTX_free(context)
            throw error
        }
        self.context = context
        self.verifies = verify
    }

    private static func configure(
        _ context: OpaquePointer, verify: Bool, certificateAuthoritiesPEM: [UInt8]?, clientCertificateChainPEM: [UInt8]?,
        clientPrivateKeyPEM: [UInt8]?
    ) throws {
        guard postern_SSL_CTX_set_min_proto_version(context, postern_TLS1_2_VERSION()) == 1 else {
            throw TLSError.fromQueue("cannot set the upstream protocol range")
        }
        SSL_CTX_set_options(context, postern_SSL_OP_NO_COMPRESSION() | postern_SSL_OP_NO_RENEGOTIATION())
        _ = postern_SSL_CTX_set_mode(context, postern_SSL_MODE_proxy())
        if verify {
            if let certificateAuthoritiesPEM {
                let authorities = try PEM.readCertificates(certificateAuthoritiesPEM)
                defer { authorities.forEach { X509_free($0) } }
                guard !authorities.isEmpty else { throw TLSError("proxy-ssl-secret: ca.crt holds no certificate") }
                let store = SSL_CTX_get_cert_store(context)
                for authority in authorities where X509_STORE_add_cert(store, authority) != 1 {
                    throw TLSError.fromQueue("proxy-ssl-secret: a CA certificate is not usable")
                }
            } else {
                _ = SSL_CTX_set_default_verify_paths(context)
            }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        }
        if let clientCertificateChainPEM, let clientPrivateKeyPEM {
            try useClientCertificate(context, chain: clientCertificateChainPEM, key: clientPrivateKeyPEM)
        }
    }

    private static func useClientCertificate(_ context: OpaquePointer, chain: [UInt8], key: [UInt8]) throws {
        let certificates = try PEM.readCertificates(chain)
        guard let leaf = certificates.first else { throw TLSError("client certificate: no certificate in the PEM data") }
        defer { certificates.forEach { X509_free($0) } }
        guard SSL_CTX_use_certificate(context, leaf) == 1 else {
            throw TLSError.fromQueue("client certificate: not usable")
        }
        for intermediate in certificates.dropFirst() where postern_SSL_CTX_add1_chain_cert(context, intermediate) != 1 {
            throw TLSError.fromQueue("client certificate: an intermediate certificate is not usable")
        }
        let privateKey = try PEM.readPrivateKey(key, name: "client key")
        defer { EVP_PKEY_free(privateKey) }
        guard SSL_CTX_use_PrivateKey(context, privateKey) == 1, SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError.fromQueue("client key: does not match the client certificate")
        }
    }

    deinit { SSL_CTX_free(context) }
}

extension TLSClientContext {
    /// Offers `names` with ALPN (e.g. `h2` for gRPC over TLS). Call once,
    /// right after creating the context and before sharing it.
    public func offerApplicationProtocols(_ names: [String]) throws {
        var wire: [UInt8] = []
        for name in names where !name.isEmpty && name.utf8.count < 256 {
            wire.append(UInt8(name.utf8.count))
            wire.append(contentsOf: name.utf8)
        }
        // SSL_CTX_set_alpn_protos returns 0 on success.
        guard SSL_CTX_set_alpn_protos(context, wire, UInt32(wire.count)) == 0 else {
            throw TLSError.fromQueue("cannot offer ALPN \(names)")
        }
    }
}
