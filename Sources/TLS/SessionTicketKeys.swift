import COpenSSL
import Glibc
import Synchronization

/// Keys for stateless session tickets (RFC 5077 / TLS 1.3 tickets): one
/// ring per process, shared by every worker, rotated in memory.
///
/// New tickets are sealed with the current key; tickets sealed with the
/// previous key are still accepted (and re-issued) for one more rotation
/// period, so rotation never forces a full handshake on a recent client.
/// Keys never leave the process: a restart invalidates all tickets.
public final class SessionTicketKeys: Sendable {
    struct Key {
        var name: (UInt64, UInt64)
        var aesKey: [UInt8]
        var hmacKey: [UInt8]
        var createdAt: UInt64
    }

    private struct Ring {
        var current: Key
        var previous: Key?
    }

    private let ring: Mutex<Ring>
    /// Seconds a key seals new tickets before the next one takes over.
    public let rotationSeconds: UInt64

    public init(rotationSeconds: UInt64 = 12 * 3600) {
        self.rotationSeconds = rotationSeconds
        ring = Mutex(Ring(current: SessionTicketKeys.makeKey(), previous: nil))
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec)
    }

    private static func random(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&bytes, Int32(count)) == 1, "RAND_bytes failed: no entropy for session ticket keys")
        return bytes
    }

    private static func makeKey() -> Key {
        let name = random(16)
        let words = name.withUnsafeBytes { ($0.load(as: UInt64.self), $0.load(fromByteOffset: 8, as: UInt64.self)) }
        return Key(name: words, aesKey: random(32), hmacKey: random(32), createdAt: now())
    }

    /// Forces a rotation now (tests, or an operator's request).
    public func rotate() {
        ring.withLock { ring in
            ring.previous = ring.current
            ring.current = SessionTicketKeys.makeKey()
        }
    }

    /// The key to seal a new ticket with (rotating first when due).
    func sealingKey() -> Key {
        ring.withLock { ring in
            if SessionTicketKeys.now() &- ring.current.createdAt >= rotationSeconds {
                ring.previous = ring.current
                ring.current = SessionTicketKeys.makeKey()
            }
            return ring.current
        }
    }

    /// The key named `name`, and whether it is the current one.
    func openingKey(named name: (UInt64, UInt64)) -> (Key, isCurrent: Bool)? {
        ring.withLock { ring in
            if ring.current.name == name { return (ring.current, true) }
            if let previous = ring.previous, previous.name == name { return (previous, false) }
            return nil
        }
    }

    /// Installs the ticket callback on a context.
    func install(on context: OpaquePointer) {
        _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(context, sessionTicketKeyCallback)
    }
}

private let macKeyName = UnsafeRawPointer(("key" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
private let macDigestName = UnsafeRawPointer(("digest" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)

/// OpenSSL's ticket key callback: seal (`encrypt` = 1) with the current
/// key, or open (`encrypt` = 0) with the named one (1: valid, 2: valid but
/// renew, 0: unknown key, full handshake).
private func sessionTicketKeyCallback(
    _ ssl: OpaquePointer?, _ keyName: UnsafeMutablePointer<UInt8>?, _ iv: UnsafeMutablePointer<UInt8>?,
    _ cipher: OpaquePointer?, _ mac: OpaquePointer?, _ encrypt: Int32
) -> Int32 {
    guard let ssl, let keyName, let iv, let cipher, let mac, let raw = SSL_get_ex_data(ssl, 0) else { return -1 }
    let connection = Unmanaged<TLSConnection>.fromOpaque(raw).takeUnretainedValue()
    guard let keys = connection.store?.ticketKeys else { return -1 }
    let key: SessionTicketKeys.Key
    var result: Int32 = 1
    if encrypt == 1 {
        key = keys.sealingKey()
        withUnsafeBytes(of: key.name) { keyName.update(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 16) }
        guard RAND_bytes(iv, 16) == 1 else { return -1 }
    } else {
        let name = UnsafeRawPointer(keyName)
        let words = (name.loadUnaligned(as: UInt64.self), name.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard let (found, isCurrent) = keys.openingKey(named: words) else { return 0 }
        key = found
        result = isCurrent ? 1 : 2
    }
    var hmacKey = key.hmacKey
    var digest: [CChar] = Array("SHA256".utf8CString)
    let macOK = hmacKey.withUnsafeMutableBytes { keyBytes in
        digest.withUnsafeMutableBufferPointer { digestName in
            // OSSL_PARAM keeps the name pointers: they must outlive the call,
            // so they point at static strings, not at temporary C strings.
            var parameters = [
                OSSL_PARAM_construct_octet_string(macKeyName, keyBytes.baseAddress, keyBytes.count),
                OSSL_PARAM_construct_utf8_string(macDigestName, digestName.baseAddress, 0),
                OSSL_PARAM_construct_end(),
            ]
            return EVP_MAC_CTX_set_params(mac, &parameters) == 1
        }
    }
    guard macOK else { return -1 }
    let cipherOK = key.aesKey.withUnsafeBufferPointer { aes in
        encrypt == 1
            ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv) == 1
            : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nil, aes.baseAddress, iv) == 1
    }
    return cipherOK ? result : -1
}
