import COpenSSL

/// The certificate served when no default certificate is configured:
/// generated at start-up (ECDSA P-256, or RSA-2048 when `ssl-ciphers` offers
/// TLS 1.2 suites for RSA keys only; valid one year), like ingress-nginx's
/// "Fake Certificate". Clients will not trust it; it only keeps TLS working.
enum SelfSignedCertificate {
    static let name = "self-signed"
    static let commonName = "Postern Self-Signed Certificate"

    /// `keyType` RSA when `ssl-ciphers` offers TLS 1.2 suites for RSA keys only.
    static func makeContext(settings: TLSServerSettings, keyType: TLSKeyType = .ecdsa) throws -> TLSServerContext {
        OpenSSLErrors.clear()
        let generated = keyType == .rsa ? postern_EVP_RSA_gen_2048() : postern_EVP_EC_gen_P256()
        guard let key = generated else { throw TLSError.fromQueue("cannot generate a \(keyType) key") }
        defer { EVP_PKEY_free(key) }
        guard let certificate = X509_new() else { throw TLSError.fromQueue("X509_new failed") }
        defer { X509_free(certificate) }
        let serial = UInt64.random(in: 1...UInt64(Int64.max))
        let serialNumber = X509_get_serialNumber(certificate)
        _ = ASN1_INTEGER_set_uint64(serialNumber, serial)
        guard X509_set_version(certificate, 2) == 1,
            postern_X509_set_notBefore_now(certificate) == 1,
            postern_X509_set_notAfter_days(certificate, 365) == 1,
            X509_set_pubkey(certificate, key) == 1
        else { throw TLSError.fromQueue("cannot fill in the self-signed certificate") }
        let subject = X509_get_subject_name(certificate)
        _ = X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC, "Postern", -1, -1, 0)
        _ = X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, commonName, -1, -1, 0)
        guard X509_set_issuer_name(certificate, subject) == 1 else { throw TLSError.fromQueue("cannot set the issuer") }
        if let extensionValue = X509V3_EXT_conf_nid(nil, nil, NID_subject_alt_name, "DNS:ingress.local") {
            _ = X509_add_ext(certificate, extensionValue, -1)
            X509_EXTENSION_free(extensionValue)
        }
        guard X509_sign(certificate, key, EVP_sha256()) > 0 else { throw TLSError.fromQueue("cannot sign the certificate") }
        return try TLSServerContext(name: name, certificate: certificate, key: key, settings: settings)
    }
}
