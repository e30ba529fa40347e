/// The certificates configuration asks for: values, produced by Translate
/// from Ingress `spec.tls` entries and their Secrets, consumed by the
/// executable to build the TLS certificate store. Sorted, so that the same
/// objects in any order give an equal model (and an unchanged one is not rebuilt).
public struct TLSModel: Sendable, Equatable {
    /// One entry per Secret in use, sorted by `secret`.
    public var certificates: [TLSCertificate]
    /// The `--default-ssl-certificate` Secret, when set and usable.
    public var defaultCertificate: TLSCertificate?
    /// Hosts whose plain-HTTP requests are redirected to HTTPS (sorted):
    /// hosts in a `spec.tls` entry unless `ssl-redirect: "false"`, and every
    /// rule host of an Ingress with `force-ssl-redirect: "true"`.
    public var redirectHosts: [String]

    public init(certificates: [TLSCertificate] = [], defaultCertificate: TLSCertificate? = nil, redirectHosts: [String] = []) {
        self.certificates = certificates
        self.defaultCertificate = defaultCertificate
        self.redirectHosts = redirectHosts
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

    public init(secret: String, hosts: [String], certificateChainPEM: [UInt8], privateKeyPEM: [UInt8], ingresses: [String]) {
        self.secret = secret
        self.hosts = hosts
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.ingresses = ingresses
    }
}
