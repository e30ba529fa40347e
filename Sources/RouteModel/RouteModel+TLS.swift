/// The certificates configuration asks for: values, produced by Translate
/// from Ingress `spec.tls` entries and their Secrets, consumed by the
/// executable to build the TLS certificate store. Sorted, so that the same
/// objects in any order give an equal model (and an unchanged one is not rebuilt).
public struct TLSModel: Sendable, Equatable {
    /// One entry per Secret in use, sorted by `secret`.
    public var certificates: [TLSCertificate]
    /// The `--default-ssl-certificate` Secret, when set and usable.
    public var defaultCertificate: TLSCertificate?

    public init(certificates: [TLSCertificate] = [], defaultCertificate: TLSCertificate? = nil) {
        self.certificates = certificates
        self.defaultCertificate = defaultCertificate
    }

    /// Every host with a certificate of its own (lower-case, sorted).
    public var hosts: [String] { certificates.flatMap(\.hosts).sorted() }
}

/// A `kubernetes.io/tls` Secret and the hosts it is served for.
public struct TLSCertificate: Sendable, Equatable {
    /// `namespace/name` of the Secret.
    public var secret: String
    /// Host names from `spec.tls[].hosts` (lower-case, sorted; `*.example.com` allowed).
    public var hosts: [String]
    /// `tls.crt`: the leaf certificate followed by intermediates, PEM.
    public var certificateChainPEM: [UInt8]
    /// `tls.key`, PEM.
    public var privateKeyPEM: [UInt8]
    /// The Ingresses (`namespace/name`) that reference it, sorted.
    public var ingresses: [String]
    /// Client-certificate verification for these hosts (nil: none).
    public var clientAuthentication: ClientAuthentication?

    public init(
        secret: String, hosts: [String], certificateChainPEM: [UInt8], privateKeyPEM: [UInt8], ingresses: [String],
        clientAuthentication: ClientAuthentication? = nil
    ) {
        self.secret = secret
        self.hosts = hosts
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.ingresses = ingresses
        self.clientAuthentication = clientAuthentication
    }
}

/// Mutual TLS for a host (`nginx.ingress.kubernetes.io/auth-tls-*`).
public struct ClientAuthentication: Sendable, Hashable {
    /// `auth-tls-verify-client`.
    public enum Mode: String, Sendable, Hashable {
        /// A client certificate signed by the CA is required.
        case required = "on"
        /// A certificate is requested; none is accepted, a bad one is refused.
        case optional
    }

    public var mode: Mode
    /// `ca.crt` of the `auth-tls-secret` Secret (PEM). Empty when that Secret
    /// is missing or invalid: then no client certificate verifies (fail closed).
    public var certificateAuthoritiesPEM: [UInt8]
    /// `auth-tls-verify-depth` (default 1).
    public var verifyDepth: Int
    /// `auth-tls-pass-certificate-to-upstream`: send the URL-encoded PEM in `ssl-client-cert`.
    public var passCertificateToUpstream: Bool
    /// `namespace/name` of the CA Secret, for logs.
    public var secret: String

    public init(mode: Mode, certificateAuthoritiesPEM: [UInt8], verifyDepth: Int, passCertificateToUpstream: Bool, secret: String) {
        self.mode = mode
        self.certificateAuthoritiesPEM = certificateAuthoritiesPEM
        self.verifyDepth = verifyDepth
        self.passCertificateToUpstream = passCertificateToUpstream
        self.secret = secret
    }
}
