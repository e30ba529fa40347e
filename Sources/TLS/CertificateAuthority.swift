import COpenSSL
import Glibc

/// A PEM certificate and its PEM private key.
public struct PEMKeyPair: Sendable, Equatable {
    public var certificatePEM: [UInt8]
    public var privateKeyPEM: [UInt8]

    public init(certificatePEM: [UInt8], privateKeyPEM: [UInt8]) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }
}

/// A small private certificate authority for Postern's own endpoints (the
/// admission webhook): a self-signed CA and server certificates it signs.
/// Keys are ECDSA P-256; what it makes passes Go's `crypto/x509` checks
/// (kube-apiserver): the CA has basicConstraints CA:TRUE and keyCertSign,
/// the server certificate names its hosts in subjectAltName only.
///
/// Threading: stateless; every function may be called from any thread.
public enum CertificateAuthority {
    /// A new self-signed CA valid for `validitySeconds` from now.
    public static func makeAuthority(commonName: String, validitySeconds: Int) throws -> PEMKeyPair {
        OpenSSLErrors.clear()
        guard let key = postern_EVP_EC_gen_P256() else { throw TLSError.fromQueue("cannot generate a CA key") }
        defer { EVP_PKEY_free(key) }
        let certificate = try makeCertificate(publicKey: key, commonName: commonName, validitySeconds: validitySeconds)
        defer { X509_free(certificate) }
        guard X509_set_issuer_name(certificate, X509_get_subject_name(certificate)) == 1 else {
            throw TLSError.fromQueue("cannot set the CA's issuer")
        }
        try addExtension(certificate, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")
        try addExtension(certificate, NID_key_usage, "critical,keyCertSign,cRLSign")
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else { throw TLSError.fromQueue("cannot sign the CA certificate") }
        return PEMKeyPair(certificatePEM: try pem(certificate: certificate), privateKeyPEM: try pem(privateKey: key))
    }

    /// A server certificate for `hosts` (DNS names, or IP addresses which
    /// become IP entries) signed by `authority`, valid for `validitySeconds`
    /// from now (never past the CA's own end).
    public static func issueServerCertificate(hosts: [String], authority: PEMKeyPair, validitySeconds: Int) throws -> PEMKeyPair {
        guard !hosts.isEmpty else { throw TLSError("a server certificate needs at least one host name") }
        OpenSSLErrors.clear()
        let authorityCertificates = try PEM.readCertificates(authority.certificatePEM)
        defer { authorityCertificates.forEach { X509_free($0) } }
        guard let authorityCertificate = authorityCertificates.first else { throw TLSError("the CA holds no certificate") }
        let authorityKey = try PEM.readPrivateKey(authority.privateKeyPEM, name: "CA")
        defer { EVP_PKEY_free(authorityKey) }
        guard let key = postern_EVP_EC_gen_P256() else { throw TLSError.fromQueue("cannot generate a key") }
        defer { EVP_PKEY_free(key) }
        let certificate = try makeCertificate(publicKey: key, commonName: hosts[0], validitySeconds: validitySeconds)
        defer { X509_free(certificate) }
        guard X509_set_issuer_name(certificate, X509_get_subject_name(authorityCertificate)) == 1 else {
            throw TLSError.fromQueue("cannot set the issuer")
        }
        // Never outlive the CA: a chain is only as valid as its shortest link.
        if ASN1_TIME_compare(X509_get0_notAfter(certificate), X509_get0_notAfter(authorityCertificate)) > 0 {
            _ = X509_set1_notAfter(certificate, X509_get0_notAfter(authorityCertificate))
        }
        let names = hosts.map { host in
            (host.contains(":") || host.split(separator: ".").count == 4 && host.allSatisfy { $0.isNumber || $0 == "." })
                ? "IP:\(host)" : "DNS:\(host)"
        }
        try addExtension(certificate, NID_basic_constraints, "critical,CA:FALSE")
        try addExtension(certificate, NID_key_usage, "critical,digitalSignature,keyEncipherment")
        try addExtension(certificate, NID_ext_key_usage, "serverAuth")
        try addExtension(certificate, NID_subject_alt_name, names.joined(separator: ","))
        guard X509_sign(certificate, authorityKey, EVP_sha256()) > 0 else { throw TLSError.fromQueue("cannot sign the certificate") }
        return PEMKeyPair(certificatePEM: try pem(certificate: certificate), privateKeyPEM: try pem(privateKey: key))
    }

    /// When the first certificate in `pem` becomes valid and when it
    /// expires, in seconds since the Unix epoch; nil when unreadable.
    public static func validity(ofCertificatePEM pem: [UInt8]) -> (notBefore: Int, notAfter: Int)? {
        guard let certificates = try? PEM.readCertificates(pem), let certificate = certificates.first else { return nil }
        defer { certificates.forEach { X509_free($0) } }
        guard let notBefore = date(X509_get0_notBefore(certificate)), let notAfter = date(X509_get0_notAfter(certificate)) else { return nil }
        return (notBefore, notAfter)
    }

    /// Whether the first certificate in `certificatePEM` was signed by one of
    /// the certificates in `authoritiesPEM` and names every one of `hosts`.
    public static func verifies(certificatePEM: [UInt8], authoritiesPEM: [UInt8], hosts: [String]) -> Bool {
        guard let certificates = try? PEM.readCertificates(certificatePEM), let leaf = certificates.first,
              let authorities = try? PEM.readCertificates(authoritiesPEM)
        else { return false }
        defer {
            certificates.forEach { X509_free($0) }
            authorities.forEach { X509_free($0) }
        }
        let signed = authorities.contains { authority in
            guard let key = X509_get0_pubkey(authority) else { return false }
            return X509_verify(leaf, key) == 1
        }
        defer { ERR_clear_error() }
        return signed && hosts.allSatisfy { host in
            if host.contains(":") || host.allSatisfy({ $0.isNumber || $0 == "." }) {
                return X509_check_ip_asc(leaf, host, 0) == 1
            }
            return X509_check_host(leaf, host, host.utf8.count, 0, nil) == 1
        }
    }

    // MARK: Internals

    private static func makeCertificate(publicKey key: OpaquePointer, commonName: String, validitySeconds: Int) throws -> OpaquePointer {
        guard let certificate = X509_new() else { throw TLSError.fromQueue("X509_new failed") }
        // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets.
        _ = ASN1_INTEGER_set_uint64(X509_get_serialNumber(certificate), UInt64.random(in: 1...UInt64(Int64.max)))
        let subject = X509_get_subject_name(certificate)
        _ = X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, "Postern", -1, -1, 0)
        _ = X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, String(commonName.prefix(64)), -1, -1, 0)
        // Back-dated a minute: a peer whose clock runs slightly behind still accepts it.
        guard X509_set_version(certificate, 2) == 1,
              X509_gmtime_adj(X509_getm_notBefore(certificate), -60) != nil,
              X509_gmtime_adj(X509_getm_notAfter(certificate), validitySeconds) != nil,
              X509_set_pubkey(certificate, key) == 1
        else {
            X509_free(certificate)
            throw TLSError.fromQueue("cannot fill in the certificate")
        }
        return certificate
    }

    private static func addExtension(_ certificate: OpaquePointer, _ nid: Int32, _ value: String) throws {
        guard let made = X509V3_EXT_conf_nid(nil, nil, nid, value) else { throw TLSError.fromQueue("cannot make the extension \(value)") }
        defer { X509_EXTENSION_free(made) }
        guard X509_add_ext(certificate, made, -1) == 1 else { throw TLSError.fromQueue("cannot add the extension \(value)") }
    }

    private static func pem(certificate: OpaquePointer) throws -> [UInt8] {
        try withOutputBIO { PEM_write_bio_X509($0, certificate) == 1 }
    }

    private static func pem(privateKey: OpaquePointer) throws -> [UInt8] {
        try withOutputBIO { PEM_write_bio_PrivateKey($0, privateKey, nil, nil, 0, nil, nil) == 1 }
    }

    private static func withOutputBIO(_ write: (OpaquePointer) -> Bool) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw TLSError.fromQueue("BIO_new failed") }
        defer { BIO_free(bio) }
        guard write(bio) else { throw TLSError.fromQueue("cannot write PEM") }
        var pointer: UnsafeMutablePointer<CChar>?
        let length = postern_BIO_get_mem_data(bio, &pointer)
        guard let pointer, length > 0 else { throw TLSError("PEM output is empty") }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Int? {
        guard let time else { return nil }
        var days: Int32 = 0
        var seconds: Int32 = 0
        // From now (nil) to `time`.
        let now = Glibc.time(nil)
        guard ASN1_TIME_diff(&days, &seconds, nil, time) == 1 else { return nil }
        return Int(now) + Int(days) * 86_400 + Int(seconds)
    }
}
