import COpenSSL

/// The outcome of a non-blocking TLS operation.
public enum TLSIOResult: Equatable, Sendable {
    /// Application bytes read or written.
    case bytes(Int)
    /// Wait until the socket is readable, then call again.
    case wantRead
    /// Wait until the socket is writable, then call again.
    case wantWrite
    /// The peer sent close_notify or closed the socket.
    case closed
    /// A protocol or socket error; the connection is unusable.
    case failed
}

/// A server-side TLS connection on a non-blocking socket, driven by the
/// event loop: every call returns at once and says what to wait for.
///
/// The handshake starts on the store's front context; the server-name
/// callback then switches to the certificate for the requested host.
/// Loop-bound: one thread uses a connection at a time.
public final class TLSConnection {
    private let ssl: OpaquePointer
    /// Server side: the certificates, kept alive for the connection's life
    /// (the server-name callback reads them during the handshake). Nil on
    /// the client side.
    public let store: TLSCertificateStore?
    /// Client side: the context, kept alive for the connection's life.
    private let clientContext: TLSClientContext?
    /// The context chosen for this connection's server name (set during the handshake).
    public private(set) var selectedContext: TLSServerContext?
    /// The SNI host name the client sent (lower-cased), once the handshake is done.
    public private(set) var serverName: [UInt8] = []
    /// The ALPN protocol agreed on (empty: none).
    public private(set) var applicationProtocol: [UInt8] = []
    /// With mTLS and `pass-certificate-to-upstream`: the client certificate
    /// as URL-encoded PEM (nginx's `$ssl_client_escaped_cert`), else empty.
    public private(set) var escapedClientCertificate: [UInt8] = []
    /// The client presented a certificate and it verified against the
    /// selected context's CAs (also true on a resumed session whose
    /// certificate did).
    public private(set) var hasVerifiedClientCertificate = false

    /// Wraps `fd` (owned by the caller, who closes it after `deinit`).
    public init(fd: Int32, store: TLSCertificateStore) throws {
        guard let ssl = SSL_new(store.front.context) else { throw TLSError.fromQueue("SSL_new failed") }
        self.ssl = ssl
        self.store = store
        self.clientContext = nil
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            throw TLSError.fromQueue("SSL_set_fd failed")
        }
        SSL_set_accept_state(ssl)
        // The handshake reads each client flight with one system call instead
        // of a header and a body per record (`endReadAhead` or
        // `tuneForMultiplexing` decides afterwards).
        SSL_set_read_ahead(ssl, 1)
        // The server-name callback finds this connection through app data (index 0).
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    /// A client connection on `fd` (connected, owned by the caller) to an
    /// upstream, sending `serverName` as SNI (and checking the certificate
    /// against it when the context verifies).
    public init(fd: Int32, client: TLSClientContext, serverName: String) throws {
        guard let ssl = SSL_new(client.context) else { throw TLSError.fromQueue("SSL_new failed") }
        self.ssl = ssl
        self.store = nil
        self.clientContext = client
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            throw TLSError.fromQueue("SSL_set_fd failed")
        }
        SSL_set_connect_state(ssl)
        if !serverName.isEmpty {
            _ = postern_SSL_set_tlsext_host_name(ssl, serverName)
            if client.verifies, SSL_set1_host(ssl, serverName) != 1 {
                SSL_free(ssl)
                throw TLSError.fromQueue("cannot check certificates against \(serverName)")
            }
        }
    }

    deinit {
        // A connection closed without close_notify keeps its session
        // resumable (RFC 5246 §7.2.1, as nginx): otherwise SSL_free drops it
        // from the session cache.
        SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN)
        SSL_free(ssl)
    }

    /// Client side: why the upstream's certificate was refused (empty when it was not).
    public var verificationFailure: String {
        let result = SSL_get_verify_result(ssl)
        guard result != Int(X509_V_OK), let text = X509_verify_cert_error_string(result) else { return "" }
        return String(cString: text)
    }

    @inline(__always)
    private func classify(_ returned: Int32) -> TLSIOResult {
        switch SSL_get_error(ssl, returned) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .closed
        case SSL_ERROR_SYSCALL:
            // EOF without close_notify, or a reset: the connection is over.
            ERR_clear_error()
            return .closed
        default:
            ERR_clear_error()
            return .failed
        }
    }

    /// Advances the handshake. `.bytes(0)` means it is complete.
    public func handshake() -> TLSIOResult {
        OpenSSLErrors.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            if let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) {
                var bytes: [UInt8] = []
                var pointer = name
                while pointer.pointee != 0 {
                    let byte = UInt8(bitPattern: pointer.pointee)
                    bytes.append(byte >= 65 && byte <= 90 ? byte | 0x20 : byte)
                    pointer += 1
                }
                // One trailing dot names the same host (as for Host).
                if bytes.count > 1, bytes.last == UInt8(ascii: ".") { bytes.removeLast() }
                serverName = bytes
            }
            var protocolName: UnsafePointer<UInt8>?
            var length: UInt32 = 0
            SSL_get0_alpn_selected(ssl, &protocolName, &length)
            if let protocolName, length > 0 {
                applicationProtocol = Array(UnsafeBufferPointer(start: protocolName, count: Int(length)))
            }
            if selectedContext == nil { selectedContext = store?.defaultContext }
            if selectedContext?.clientVerification != nil, let certificate = SSL_get1_peer_certificate(ssl) {
                X509_free(certificate)
                hasVerifiedClientCertificate = SSL_get_verify_result(ssl) == Int(X509_V_OK)
            }
            if selectedContext?.passClientCertificate == true { escapedClientCertificate = clientCertificateEscaped() }
            return .bytes(0)
        }
        return classify(result)
    }

    /// True when the client resumed a session (no full handshake).
    public var resumedSession: Bool { postern_SSL_session_reused(ssl) == 1 }

    /// The negotiated protocol version, e.g. "TLSv1.3".
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Decrypted bytes already buffered inside OpenSSL: readable without
    /// waiting for the socket (epoll does not report these).
    public var pendingBytes: Int { Int(SSL_pending(ssl)) }

    /// OpenSSL holds input not returned yet: decrypted bytes, or (with
    /// `readAhead`) whole records read from the socket. epoll does not report
    /// either, so a reader must keep reading while this is true.
    public var hasPendingInput: Bool { SSL_has_pending(ssl) == 1 }

    /// Back to reading one record at a time (after the handshake, for
    /// readers that pause for backpressure). Records already buffered stay
    /// readable: keep reading while `hasPendingInput`.
    public func endReadAhead() {
        SSL_set_read_ahead(ssl, 0)
    }

    /// Tunes a long-lived, busy connection (HTTP/2): read as much as the socket
    /// has in one system call instead of a header and a body per record
    /// (callers must then read while `hasPendingInput`), and keep the record
    /// buffers instead of freeing them whenever they empty.
    public func tuneForMultiplexing() {
        SSL_set_read_ahead(ssl, 1)
        _ = postern_SSL_keep_buffers(ssl)
    }

    /// Frees OpenSSL's record buffers (about 17 KiB each way, more with
    /// read-ahead) while the connection is idle; a no-op when they hold
    /// bytes. The next read or write allocates them again. HTTP/1.1
    /// connections mostly free them on their own (`SSL_MODE_RELEASE_BUFFERS`);
    /// HTTP/2 keeps them while busy (`tuneForMultiplexing`) and calls this
    /// when no stream is open and nothing is left to write.
    public func releaseIdleBuffers() {
        _ = SSL_free_buffers(ssl)
    }

    /// Reads decrypted bytes into `buffer`.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> TLSIOResult {
        OpenSSLErrors.clear()
        let count = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if count > 0 { return .bytes(Int(count)) }
        return classify(count)
    }

    /// Encrypts and writes `bytes` (partial writes allowed).
    @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) -> TLSIOResult {
        if bytes.isEmpty { return .bytes(0) }
        OpenSSLErrors.clear()
        let count = SSL_write(ssl, bytes.baseAddress, Int32(clamping: bytes.count))
        if count > 0 { return .bytes(Int(count)) }
        return classify(count)
    }

    /// TLS 1.3: schedules a KeyUpdate that also asks the peer to update its
    /// sending keys (RFC 8446 §4.6.3); it leaves with the next write. False
    /// when not possible (TLS 1.2, or a write still pending).
    public func requestKeyUpdate() -> Bool {
        OpenSSLErrors.clear()
        guard SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1 else {
            ERR_clear_error()
            return false
        }
        return true
    }

    /// Sends close_notify (best effort, never waits).
    public func shutdown() {
        OpenSSLErrors.clear()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// Switches to the context for `name` (called from the client-hello and server-name callbacks).
    func selectContext(forServerName name: String?) {
        guard let store else { return }
        let context = name.map { store.context(forServerName: $0) } ?? store.defaultContext
        selectedContext = context
        if SSL_set_SSL_CTX(ssl, context.context) == nil {
            ERR_clear_error()
        }
        // SSL_set_SSL_CTX swaps the certificate, not the client verification settings.
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(context.context), nil)
        SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(context.context))
    }

    /// The verified client certificate as URL-encoded PEM (empty: none).
    private func clientCertificateEscaped() -> [UInt8] {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return [] }
        defer { X509_free(certificate) }
        guard SSL_get_verify_result(ssl) == Int(X509_V_OK), let bio = BIO_new(BIO_s_mem()) else { return [] }
        defer { BIO_free(bio) }
        guard PEM_write_bio_X509(bio, certificate) == 1 else { return [] }
        var data: UnsafeMutablePointer<CChar>?
        let length = postern_BIO_get_mem_data(bio, &data)
        guard let data, length > 0 else { return [] }
        let pem = UnsafeRawBufferPointer(start: data, count: length)
        var escaped: [UInt8] = []
        escaped.reserveCapacity(length * 2)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in pem {
            // RFC 3986 unreserved characters stay; everything else is %XX.
            let unreserved = (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7a)
                || byte == 0x2d || byte == 0x2e || byte == 0x5f || byte == 0x7e
            if unreserved {
                escaped.append(byte)
            } else {
                escaped += [0x25, hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return escaped
    }
}

/// Server-name callback of the front context: picks the certificate for
/// the requested host (or the default) for every handshake, with or without SNI.
func serverNameSelected(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    let connection = Unmanaged<TLSConnection>.fromOpaque(raw).takeUnretainedValue()
    let name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
    connection.selectContext(forServerName: name)
    return SSL_TLSEXT_ERR_OK
}
