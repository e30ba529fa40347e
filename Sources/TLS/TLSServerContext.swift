import COpenSSL

/// One OpenSSL server context (`SSL_CTX`) holding one certificate chain and
/// its key, configured with the process's protocol and cipher policy.
///
/// Immutable after creation and shared by every worker: OpenSSL contexts
/// are safe to use from many threads once configured. Freed when the last
/// connection and store using it are gone.
public final class TLSServerContext: @unchecked Sendable {
    let context: OpaquePointer
    /// The leaf certificate (owned by `context`; kept for host checks).
    private let leaf: OpaquePointer?
    /// Wire-format ALPN list (length-prefixed names), read by the select callback.
    private let alpnWire: UnsafeMutableBufferPointer<UInt8>
    /// A name for logs: the Secret or "default" or "self-signed".
    public let name: String
    /// Connections on this context hand the client certificate to the upstream.
    public let passClientCertificate: Bool
    /// The client-certificate settings of the hosts this context serves
    /// (nil: none asked for). Requests are checked against them per request.
    public let clientVerification: TLSClientVerification?
    /// A handshake on this context fails without a verified client
    /// certificate (`auth-tls-verify-client: on`, or a CA Secret that is
    /// missing or empty, which fails closed).
    public let requiresClientCertificate: Bool
    /// The front context only: the session cache every connection stores in
    /// and looks up (OpenSSL's session context is the one a connection starts on).
    let sessionCache: TLSSessionCache?
    /// The OCSP state of this context's certificate (nil: not stapled).
    /// Set once by the store builder before the context is published.
    var ocspEntry: OCSPEntry?

    /// Creates a context without a certificate: the front context every
    /// connection starts on. Its client-hello callback switches to the
    /// context for the requested host before OpenSSL looks for a session to
    /// resume, so the session id context compared is the selected host's
    /// (client-certificate settings), never the front's; the server-name
    /// callback then confirms the choice.
    init(frontWithSettings settings: TLSServerSettings, sessionCache: TLSSessionCache? = nil) throws {
        (context, alpnWire) = try TLSServerContext.makeConfigured(settings)
        leaf = nil
        name = "front"
        passClientCertificate = false
        clientVerification = nil
        requiresClientCertificate = false
        self.sessionCache = sessionCache
        _ = postern_SSL_CTX_set_tlsext_servername_callback(context, serverNameSelected)
        SSL_CTX_set_client_hello_cb(context, clientHelloReceived, nil)
        sessionCache?.install(on: context)
    }

    /// Creates a context serving `certificateChainPEM` (leaf first, then
    /// intermediates) with `privateKeyPEM` (RSA or ECDSA).
    public init(
        name: String, certificateChainPEM: [UInt8], privateKeyPEM: [UInt8], settings: TLSServerSettings,
        clientVerification: TLSClientVerification? = nil
    ) throws {
        OpenSSLErrors.clear()
        let (context, alpnWire) = try TLSServerContext.makeConfigured(settings)
        self.context = context
        self.alpnWire = alpnWire
        self.name = name
        self.passClientCertificate = clientVerification?.passCertificateToUpstream ?? false
        self.clientVerification = clientVerification
        self.requiresClientCertificate = clientVerification.map { $0.required || $0.certificateAuthoritiesPEM.isEmpty } ?? false
        self.sessionCache = nil
        do {
            if let clientVerification { try TLSServerContext.requireClientCertificates(context, clientVerification, name: name) }
            let certificates = try PEM.readCertificates(certificateChainPEM)
            guard let leaf = certificates.first else { throw TLSError("\(name): tls.crt holds no certificate") }
            defer { certificates.dropFirst().forEach { X509_free($0) } }
            guard SSL_CTX_use_certificate(context, leaf) == 1 else {
                X509_free(leaf)
                throw TLSError.fromQueue("\(name): tls.crt is not usable")
            }
            // SSL_CTX_use_certificate took its own reference.
            X509_free(leaf)
            for intermediate in certificates.dropFirst() {
                guard postern_SSL_CTX_add1_chain_cert(context, intermediate) == 1 else {
                    throw TLSError.fromQueue("\(name): an intermediate certificate in tls.crt is not usable")
                }
            }
            let key = try PEM.readPrivateKey(privateKeyPEM, name: name)
            defer { EVP_PKEY_free(key) }
            guard X509_check_private_key(SSL_CTX_get0_certificate(context), key) == 1 else {
                OpenSSLErrors.clear()
                throw TLSError("\(name): tls.key does not match the certificate in tls.crt")
            }
            guard SSL_CTX_use_PrivateKey(context, key) == 1 else {
                throw TLSError.fromQueue("\(name): tls.key is not usable")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                throw TLSError.fromQueue("\(name): tls.key does not match the certificate in tls.crt")
            }
            self.leaf = SSL_CTX_get0_certificate(context)
        } catch {
            SSL_CTX_free(context)
            alpnWire.deallocate()
            throw error
        }
    }

    /// Creates a context from an already built certificate and key (the
    /// self-signed fallback). Takes no ownership of either.
    init(name: String, certificate: OpaquePointer, key: OpaquePointer, settings: TLSServerSettings) throws {
        (context, alpnWire) = try TLSServerContext.makeConfigured(settings)
        self.name = name
        self.passClientCertificate = false
        self.clientVerification = nil
        self.requiresClientCertificate = false
        self.sessionCache = nil
        guard SSL_CTX_use_certificate(context, certificate) == 1, SSL_CTX_use_PrivateKey(context, key) == 1,
            SSL_CTX_check_private_key(context) == 1
        else {
            SSL_CTX_free(context)
            alpnWire.deallocate()
            throw TLSError.fromQueue("\(name): generated certificate is not usable")
        }
        leaf = SSL_CTX_get0_certificate(context)
    }

    deinit {
        SSL_CTX_free(context)
        alpnWire.deallocate()
    }

    /// True when both contexts present the same leaf certificate (the same
    /// Secret can back more than one context).
    public func servesSameCertificate(as other: TLSServerContext) -> Bool {
        if self === other { return true }
        guard let leaf, let otherLeaf = other.leaf else { return false }
        return X509_cmp(leaf, otherLeaf) == 0
    }

    /// True when a client certificate verified on a connection of `other`
    /// was verified exactly as this context would verify it (same CAs,
    /// depth and requirement), or neither asks for one.
    public func verifiesClientsLike(_ other: TLSServerContext) -> Bool {
        self === other || clientVerification == other.clientVerification
    }

    /// True when the certificate's names (SANs, or CN without SANs) cover `host`.
    public func certificateCovers(host: String) -> Bool {
        guard let leaf else { return false }
        return host.withCString { X509_check_host(leaf, $0, host.utf8.count, 0, nil) } == 1
    }

    /// The type of the certificate's key (nil: the front context, or a type TLS 1.2 cannot use).
    public var keyType: TLSKeyType? {
        guard leaf != nil, let key = SSL_CTX_get0_privatekey(context) else { return nil }
        return TLSKeyType(key: key)
    }

    /// The certificate asks clients to require a stapled OCSP response
    /// (TLS feature extension, status_request: RFC 7633).
    public var mustStaple: Bool { leaf.map(OCSPSubject.isMustStaple) ?? false }

    /// The certificate's expiry as seconds since 1970 (for metrics and warnings).
    public var notAfter: Int? {
        guard let leaf, let time = X509_get0_notAfter(leaf) else { return nil }
        var tm = tm()
        guard ASN1_TIME_to_tm(time, &tm) == 1 else { return nil }
        return Int(timegm(&tm))
    }

    /// Asks clients for certificates signed by the given CAs.
    private static func requireClientCertificates(_ context: OpaquePointer, _ verification: TLSClientVerification, name: String) throws {
        let authorities = verification.certificateAuthoritiesPEM.isEmpty ? [] : try PEM.readCertificates(verification.certificateAuthoritiesPEM)
        defer { authorities.forEach { X509_free($0) } }
        let store = SSL_CTX_get_cert_store(context)
        for authority in authorities {
            guard X509_STORE_add_cert(store, authority) == 1, SSL_CTX_add_client_CA(context, authority) == 1 else {
                throw TLSError.fromQueue("\(name): a CA certificate of the client-certificate Secret is not usable")
            }
        }
        // No CA means nothing can verify: require a certificate so that the
        // host refuses every client instead of accepting anonymous ones.
        let required = verification.required || authorities.isEmpty
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), nil)
        SSL_CTX_set_verify_depth(context, Int32(verification.verifyDepth))
        // A session resumes only on a context with the same client-certificate
        // settings: a session whose certificate was verified against another
        // host's CA (or never asked for) must not skip this host's check.
        var identifier = SessionContextIdentifier(verification)
        withUnsafeBytes(of: &identifier.bytes) { bytes in
            _ = SSL_CTX_set_session_id_context(context, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt32(bytes.count))
        }
    }

    private static func makeConfigured(_ settings: TLSServerSettings) throws -> (OpaquePointer, UnsafeMutableBufferPointer<UInt8>) {
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw TLSError.fromQueue("SSL_CTX_new failed")
        }
        func fail(_ what: String) -> TLSError {
            SSL_CTX_free(context)
            return TLSError.fromQueue(what)
        }
        guard postern_SSL_CTX_set_min_proto_version(context, settings.minimumVersion.openSSLValue) == 1,
            postern_SSL_CTX_set_max_proto_version(context, settings.maximumVersion.openSSLValue) == 1
        else { throw fail("ssl-protocols: cannot set the protocol range") }
        // No compression (CRIME), no renegotiation.
        SSL_CTX_set_options(context, postern_SSL_OP_NO_COMPRESSION() | postern_SSL_OP_NO_RENEGOTIATION())
        if settings.preferServerCiphers {
            // The server's cipher order, except that a client listing
            // ChaCha20 first (no AES instructions, typically a phone) gets it.
            SSL_CTX_set_options(context, postern_SSL_OP_CIPHER_SERVER_PREFERENCE() | postern_SSL_OP_PRIORITIZE_CHACHA())
        }
        _ = postern_SSL_CTX_set_mode(context, postern_SSL_MODE_proxy())
        // No cache of OpenSSL's own: the front context installs the shared
        // TLSSessionCache's callbacks. Every context still says "server
        // cache" because OpenSSL reads that flag on the context the
        // connection switched to when it decides to hand out a session id.
        _ = postern_SSL_CTX_set_session_cache_mode(
            context, settings.sessionCache ? postern_SSL_SESS_CACHE_SERVER_EXTERNAL() : postern_SSL_SESS_CACHE_OFF())
        // Lifetime of cached sessions and of tickets (as nginx's ssl_session_timeout).
        _ = SSL_CTX_set_timeout(context, settings.sessionTimeoutSeconds)
        if settings.sessionTickets {
            // One TLS 1.3 ticket per full handshake (OpenSSL sends two by
            // default): each costs a seal; one is enough for a client to resume.
            _ = SSL_CTX_set_num_tickets(context, 1)
        } else {
            SSL_CTX_set_options(context, postern_SSL_OP_NO_TICKET())
            // TLS 1.3 without tickets resumes through the cache: OpenSSL then
            // sends one stateful ticket, which is the session's cache id.
            _ = SSL_CTX_set_num_tickets(context, settings.sessionCache ? 1 : 0)
        }
        // Resumption with client certificates needs a session id context.
        let sessionContext: [UInt8] = Array("postern".utf8)
        _ = SSL_CTX_set_session_id_context(context, sessionContext, UInt32(sessionContext.count))
        guard SSL_CTX_set_cipher_list(context, settings.ciphers) == 1 else { throw fail("ssl-ciphers: '\(settings.ciphers)' selects no cipher") }
        guard SSL_CTX_set_ciphersuites(context, settings.cipherSuites) == 1 else {
            throw fail("ssl-ciphersuites: '\(settings.cipherSuites)' is not valid")
        }
        guard postern_SSL_CTX_set1_groups_list(context, settings.groups) == 1 else {
            throw fail("ssl-ecdh-curve: '\(settings.groups)' is not valid")
        }
        var wire: [UInt8] = []
        for name in settings.alpnProtocols where !name.isEmpty && name.utf8.count < 256 {
            wire.append(UInt8(name.utf8.count))
            wire.append(contentsOf: name.utf8)
        }
        let alpn = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(wire.count, 1))
        _ = alpn.initialize(from: wire)
        if wire.isEmpty { alpn[0] = 0 }
        SSL_CTX_set_alpn_select_cb(context, alpnSelect, UnsafeMutableRawPointer(alpn.baseAddress))
        return (context, alpn)
    }
}

/// ALPN: the first of the server's protocols that the client offers (server
/// preference). No overlap is a fatal `no_application_protocol` alert, as
/// RFC 7301 §3.2 and nginx do.
private func alpnSelect(
    _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLength: UnsafeMutablePointer<UInt8>?,
    _ client: UnsafePointer<UInt8>?, _ clientLength: UInt32, _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let argument, let out, let outLength, let client else { return SSL_TLSEXT_ERR_NOACK }
    let server = argument.assumingMemoryBound(to: UInt8.self)
    // The list's length is not stored: walk the length-prefixed entries.
    var serverLength = 0
    while server[serverLength] != 0 { serverLength += Int(server[serverLength]) + 1 }
    if serverLength == 0 { return SSL_TLSEXT_ERR_NOACK }
    var selected: UnsafeMutablePointer<UInt8>?
    let result = SSL_select_next_proto(&selected, outLength, server, UInt32(serverLength), client, clientLength)
    guard result == OPENSSL_NPN_NEGOTIATED, let selected else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    out.pointee = UnsafePointer(selected)
    return SSL_TLSEXT_ERR_OK
}

/// Client-hello callback of the front context: selects the host's context
/// from the SNI in the ClientHello before OpenSSL looks for a session to
/// resume. Switching here also switches the session id context, so a
/// session (cached or ticket) resumes only where client certificates are
/// verified as in the handshake that made it.
private func clientHelloReceived(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return postern_SSL_CLIENT_HELLO_SUCCESS() }
    let connection = Unmanaged<TLSConnection>.fromOpaque(raw).takeUnretainedValue()
    var data: UnsafePointer<UInt8>?
    var length = 0
    var name: String?
    if SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_server_name), &data, &length) == 1, let data {
        name = ServerNameExtension.hostName(UnsafeRawBufferPointer(start: data, count: length))
    }
    connection.selectContext(forServerName: name)
    return postern_SSL_CLIENT_HELLO_SUCCESS()
}

/// The server_name extension (RFC 6066 §3).
enum ServerNameExtension {
    /// The first host_name entry, or nil when there is none or the bytes are malformed.
    static func hostName(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count >= 2 else { return nil }
        let listLength = Int(bytes[0]) << 8 | Int(bytes[1])
        guard listLength == bytes.count - 2 else { return nil }
        var offset = 2
        while offset + 3 <= bytes.count {
            let type = bytes[offset]
            let length = Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
            offset += 3
            guard offset + length <= bytes.count else { return nil }
            if type == 0 {
                let name = UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + length])
                guard !name.isEmpty, !name.contains(0) else { return nil }
                return String(decoding: name, as: UTF8.self)
            }
            offset += length
        }
        return nil
    }
}

/// PEM decoding from memory.
enum PEM {
    /// Every certificate in `bytes`, in order (caller frees them).
    static func readCertificates(_ bytes: [UInt8]) throws -> [OpaquePointer] {
        try withMemoryBIO(bytes) { bio in
            var certificates: [OpaquePointer] = []
            while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) {
                certificates.append(certificate)
            }
            // Reading stops with a "no start line" error at the end: expected.
            ERR_clear_error()
            return certificates
        }
    }

    /// The first private key in `bytes` (caller frees it).
    static func readPrivateKey(_ bytes: [UInt8], name: String) throws -> OpaquePointer {
        try withMemoryBIO(bytes) { bio in
            guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
                throw TLSError.fromQueue("\(name): tls.key holds no readable private key")
            }
            return key
        }
    }

    static func withMemoryBIO<R>(_ bytes: [UInt8], _ body: (OpaquePointer) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else {
                throw TLSError.fromQueue("BIO_new_mem_buf failed")
            }
            defer { BIO_free(bio) }
            return try body(bio)
        }
    }
}

/// 32 bytes naming one set of client-certificate settings (FNV-1a of the
/// CA bundle, depth and requirement, four times with different seeds),
/// used as the OpenSSL session id context.
private struct SessionContextIdentifier {
    var bytes: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    init(_ verification: TLSClientVerification) {
        func hash(seed: UInt64) -> UInt64 {
            var value: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
            for byte in verification.certificateAuthoritiesPEM { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
            value = (value ^ UInt64(truncatingIfNeeded: verification.verifyDepth)) &* 0x100_0000_01b3
            value = (value ^ (verification.required ? 1 : 2)) &* 0x100_0000_01b3
            return value
        }
        bytes = (hash(seed: 1), hash(seed: 2), hash(seed: 3), hash(seed: 4))
    }
}
