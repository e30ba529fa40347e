import Kube
import RouteModel

/// What `translateTLS` found: the certificates to serve and the problems.
public struct TLSTranslation: Sendable, Equatable {
    public var model: TLSModel
    public var diagnostics: [Diagnostic]
}

/// Turns the `spec.tls` entries of served Ingresses into a `TLSModel`.
///
/// - Each entry's Secret is looked up in the Ingress's namespace; it must
///   hold `tls.crt` and `tls.key` in PEM. A missing or malformed Secret is a
///   diagnostic on the Ingress (`MissingSecret`, `InvalidSecret`) and its hosts
///   fall back to the default certificate; nothing else changes.
/// - A host claimed by two Ingresses with different Secrets goes to the
///   oldest Ingress; the other gets `TLSHostConflict`.
/// - Whether the key matches the certificate, and whether the certificate
///   covers its hosts, is checked when the certificate is loaded (TLS target).
public func translateTLS(_ snapshot: ObjectSnapshot, options: TranslateOptions, defaultCertificateSecret: String? = nil) -> TLSTranslation {
    let classFilter = IngressClassFilter(options: options, classes: snapshot.ingressClasses)
    let served = IngressAge.sortedOldestFirst(snapshot.ingresses.filter { classFilter.serves($0) })
    var secrets: [String: Secret] = [:]
    for secret in snapshot.secrets {
        secrets["\(secret.metadata.namespace)/\(secret.metadata.name)"] = secret
    }
    let wanted = served.map { ingress -> IngressCertificates in
        var lookup = SecretLookup(secrets)
        return IngressCertificates(ingress, secrets: &lookup, global: options.global)
    }
    return IngressCertificates.assemble(
        wanted, defaultCertificateSecret: defaultCertificateSecret, defaultSecret: defaultCertificateSecret.flatMap { secrets[$0] })
}

/// What one Ingress asks for in TLS terms, read from the Ingress alone (and
/// the Secrets it names): client-certificate settings and certificate
/// entries (redirects are the routes': `IngressRoutes`). Whether an entry gets its hosts depends on the older
/// Ingresses: `assemble` decides that.
struct IngressCertificates: Equatable {
    /// One usable `spec.tls` entry.
    struct Entry: Equatable {
        var index: Int
        /// `namespace/name` of the Secret.
        var secret: String
        /// Lower-cased, without empty names.
        var hosts: [String]
        var certificate: [UInt8]
        var privateKey: [UInt8]
        var key: CertificateKey
    }

    /// `namespace/name`.
    var name: String
    var ingress: ObjectKey
    var diagnostics: [Diagnostic] = []
    var entries: [Entry] = []

    /// True when the Ingress adds nothing to the TLS model or its diagnostics.
    var isEmpty: Bool { diagnostics.isEmpty && entries.isEmpty }

    /// `global` is the settings' policy (the redirect annotations are read
    /// with the routes: `IngressRoutes`).
    init(_ ingress: Ingress, secrets: inout SecretLookup, global: GlobalPolicy) {
        name = "\(ingress.metadata.namespace)/\(ingress.metadata.name)"
        let key = ObjectKey(kind: "Ingress", namespace: ingress.metadata.namespace, name: ingress.metadata.name)
        self.ingress = key
        let annotations = ingress.metadata.annotations
        let clientAuthentication = ClientAuthenticationAnnotations.parse(
            annotations, ingress: key, secrets: &secrets, into: &diagnostics)
        for (index, entry) in ingress.spec.tls.enumerated() {
            guard let secretName = entry.secretName, !secretName.isEmpty else { continue }
            let secretKey = "\(ingress.metadata.namespace)/\(secretName)"
            let hosts = entry.hosts.map { $0.lowercased() }.filter { !$0.isEmpty }
            let hostList = hosts.isEmpty ? "no hosts" : hosts.joined(separator: ", ")
            guard let secret = secrets[secretKey] else {
                diagnostics.append(
                    Diagnostic(
                        .warning, key, reason: "MissingSecret",
                        message: "spec.tls[\(index)]: Secret \(secretKey) does not exist; \(hostList) use the default certificate"))
                continue
            }
            guard let certificate = secret.value(forKey: "tls.crt"), let privateKey = secret.value(forKey: "tls.key") else {
                diagnostics.append(
                    Diagnostic(
                        .warning, key, reason: "InvalidSecret",
                        message: "spec.tls[\(index)]: Secret \(secretKey) has no tls.crt or tls.key; \(hostList) use the default certificate"))
                continue
            }
            guard PEMShape.holds("CERTIFICATE", in: certificate), PEMShape.holds("PRIVATE KEY", in: privateKey) else {
                diagnostics.append(
                    Diagnostic(
                        .warning, key, reason: "InvalidSecret",
                        message: "spec.tls[\(index)]: Secret \(secretKey): tls.crt or tls.key is not PEM; \(hostList) use the default certificate"))
                continue
            }
            entries.append(Entry(
                index: index, secret: secretKey, hosts: hosts, certificate: certificate, privateKey: privateKey,
                key: CertificateKey(secret: secretKey, clientAuthentication: clientAuthentication)))
        }
    }

    /// The TLS model of `ingresses` (served ones, oldest first): a host
    /// claimed with different certificates goes to the oldest Ingress.
    /// `defaultSecret` is the `defaultCertificateSecret` Secret, when it exists.
    static func assemble(
        _ ingresses: [IngressCertificates], defaultCertificateSecret: String?, defaultSecret: Secret?
    ) -> TLSTranslation {
        var diagnostics: [Diagnostic] = []
        var hostOwner: [String: (entry: CertificateKey, ingress: String)] = [:]
        var bySecret: [CertificateKey: TLSCertificate] = [:]
        for wanted in ingresses {
            diagnostics += wanted.diagnostics
            for entry in wanted.entries {
                var accepted: [String] = []
                for host in entry.hosts {
                    if let owner = hostOwner[host], owner.entry != entry.key {
                        diagnostics.append(
                            Diagnostic(
                                .warning, wanted.ingress, reason: "TLSHostConflict",
                                message: "spec.tls[\(entry.index)]: host \(host) already uses Secret \(owner.entry.secret)"
                                    + " (with its client-certificate settings) from the older Ingress \(owner.ingress)"))
                        continue
                    }
                    hostOwner[host] = (entry.key, wanted.name)
                    accepted.append(host)
                }
                var entryModel = bySecret[entry.key] ?? TLSCertificate(
                    secret: entry.secret, hosts: [], certificateChainPEM: entry.certificate, privateKeyPEM: entry.privateKey,
                    ingresses: [], clientAuthentication: entry.key.clientAuthentication)
                entryModel.hosts = Array(Set(entryModel.hosts + accepted)).sorted()
                if !entryModel.ingresses.contains(wanted.name) { entryModel.ingresses = (entryModel.ingresses + [wanted.name]).sorted() }
                bySecret[entry.key] = entryModel
            }
        }
        var model = TLSModel(
            certificates: bySecret.values.filter { !$0.hosts.isEmpty }.sorted { ($0.secret, $0.hosts.joined(separator: ",")) < ($1.secret, $1.hosts.joined(separator: ",")) })
        if let defaultCertificateSecret {
            let parts = defaultCertificateSecret.split(separator: "/", maxSplits: 1).map(String.init)
            let key = ObjectKey(kind: "Secret", namespace: parts.first ?? "", name: parts.count == 2 ? parts[1] : "")
            if parts.count == 2, let secret = defaultSecret, let certificate = secret.value(forKey: "tls.crt"),
                let privateKey = secret.value(forKey: "tls.key"), PEMShape.holds("CERTIFICATE", in: certificate),
                PEMShape.holds("PRIVATE KEY", in: privateKey)
            {
                model.defaultCertificate = TLSCertificate(
                    secret: defaultCertificateSecret, hosts: [], certificateChainPEM: certificate, privateKeyPEM: privateKey, ingresses: [])
            } else {
                diagnostics.append(
                    Diagnostic(
                        .error, key, reason: "InvalidDefaultCertificate",
                        message: "--default-ssl-certificate \(defaultCertificateSecret): no Secret with PEM tls.crt and tls.key; the self-signed certificate is served"))
            }
        }
        return TLSTranslation(model: model, diagnostics: diagnostics.sorted())
    }
}

/// A cheap shape check before OpenSSL sees the bytes.
enum PEMShape {
    static func holds(_ label: String, in bytes: [UInt8]) -> Bool {
        let marker = Array("-----BEGIN ".utf8)
        let suffix = Array("\(label)-----".utf8)
        guard bytes.count > marker.count + suffix.count else { return false }
        var index = 0
        while index + marker.count <= bytes.count {
            if bytes[index..<index + marker.count].elementsEqual(marker) {
                // The label may be prefixed ("RSA PRIVATE KEY", "EC PRIVATE KEY").
                var end = index + marker.count
                while end < bytes.count, bytes[end] != 10 { end += 1 }
                var lineEnd = end
                if lineEnd > index + marker.count, bytes[lineEnd - 1] == 13 { lineEnd -= 1 }
                let line = bytes[(index + marker.count)..<lineEnd]
                if line.count >= suffix.count, line.suffix(suffix.count).elementsEqual(suffix) { return true }
                index = end
            } else {
                index += 1
            }
        }
        return false
    }
}

/// `nginx.ingress.kubernetes.io/ssl-redirect` and `force-ssl-redirect`:
/// booleans as ingress-nginx reads them; anything else is a diagnostic and
/// the default applies.
enum RedirectAnnotations {
    static let sslRedirect = "nginx.ingress.kubernetes.io/ssl-redirect"
    static let forceSSLRedirect = "nginx.ingress.kubernetes.io/force-ssl-redirect"
    static let usePortInRedirects = "nginx.ingress.kubernetes.io/use-port-in-redirects"

    /// The Ingress's redirect settings; `global` gives the defaults.
    static func parse(
        _ annotations: [String: String], global: GlobalPolicy, ingress: ObjectKey, into diagnostics: inout [Diagnostic]
    ) -> HTTPSRedirect {
        HTTPSRedirect(
            sslRedirect: flag(annotations[Self.sslRedirect], default: global.sslRedirect, ingress: ingress, into: &diagnostics),
            forceSSLRedirect: flag(annotations[Self.forceSSLRedirect], default: global.forceSSLRedirect, ingress: ingress, into: &diagnostics),
            usePortInRedirects: annotations[Self.usePortInRedirects].flatMap(GoBool.parse) == true)
    }

    static func flag(_ value: String?, default fallback: Bool, ingress: ObjectKey, into diagnostics: inout [Diagnostic]) -> Bool {
        guard let value else { return fallback }
        switch value.lowercased() {
        case "true": return true
        case "false": return false
        default:
            diagnostics.append(
                Diagnostic(.warning, ingress, reason: "InvalidAnnotation", message: "annotation ssl-redirect or force-ssl-redirect: value '\(value)' is not true or false; using \(fallback)"))
            return fallback
        }
    }
}

/// A certificate as served: the Secret plus its client-certificate settings
/// (the same Secret with and without mTLS needs two server contexts).
struct CertificateKey: Hashable, Equatable {
    var secret: String
    var clientAuthentication: ClientAuthentication?
}

/// `nginx.ingress.kubernetes.io/auth-tls-*`: client certificates for the
/// Ingress's TLS hosts. A CA Secret that is missing or has no `ca.crt` is a
/// diagnostic and verification fails closed (no client certificate passes).
enum ClientAuthenticationAnnotations {
    static let prefix = "nginx.ingress.kubernetes.io/"
    static let secret = prefix + "auth-tls-secret"
    static let verifyClient = prefix + "auth-tls-verify-client"
    static let verifyDepth = prefix + "auth-tls-verify-depth"
    static let passCertificate = prefix + "auth-tls-pass-certificate-to-upstream"

    static func parse(
        _ annotations: [String: String], ingress: ObjectKey, secrets: inout SecretLookup, into diagnostics: inout [Diagnostic]
    ) -> ClientAuthentication? {
        guard let secretName = annotations[secret], !secretName.isEmpty else { return nil }
        let mode: ClientAuthentication.Mode
        switch annotations[verifyClient]?.lowercased() ?? "on" {
        case "on": mode = .required
        case "optional", "optional_no_ca": mode = .optional
        case "off": return nil
        case let other:
            diagnostics.append(
                Diagnostic(
                    .warning, ingress, reason: "InvalidAnnotation",
                    message: "auth-tls-verify-client: '\(other)' is not on, optional or off; using on"))
            mode = .required
        }
        var depth = 1
        if let text = annotations[verifyDepth] {
            if let value = Int(text), value >= 1, value <= 10 {
                depth = value
            } else {
                diagnostics.append(
                    Diagnostic(.warning, ingress, reason: "InvalidAnnotation", message: "auth-tls-verify-depth: '\(text)' is not 1 to 10; using 1"))
            }
        }
        let pass = annotations[passCertificate]?.lowercased() == "true"
        // ingress-nginx writes NAMESPACE/NAME; a bare name means the Ingress's namespace.
        let key = secretName.contains("/") ? secretName : "\(ingress.namespace)/\(secretName)"
        var authorities: [UInt8] = []
        if let caSecret = secrets[key], let bundle = caSecret.value(forKey: "ca.crt"), PEMShape.holds("CERTIFICATE", in: bundle) {
            authorities = bundle
        } else {
            diagnostics.append(
                Diagnostic(
                    .error, ingress, reason: "MissingSecret",
                    message: "auth-tls-secret: Secret \(key) is missing or has no PEM ca.crt; no client certificate is accepted for this Ingress's TLS hosts"))
        }
        return ClientAuthentication(
            mode: mode, certificateAuthoritiesPEM: authorities, verifyDepth: depth, passCertificateToUpstream: pass, secret: key)
    }
}
