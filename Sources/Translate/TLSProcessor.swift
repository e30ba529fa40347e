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
    let served = snapshot.ingresses.filter { classFilter.serves($0) }.sorted(by: IngressAge.isOlder)
    var secrets: [String: Secret] = [:]
    for secret in snapshot.secrets {
        secrets["\(secret.metadata.namespace)/\(secret.metadata.name)"] = secret
    }
    var diagnostics: [Diagnostic] = []
    var hostOwner: [String: (secret: String, ingress: String)] = [:]
    var bySecret: [String: TLSCertificate] = [:]
    var redirectHosts: Set<String> = []
    for ingress in served {
        let ingressName = "\(ingress.metadata.namespace)/\(ingress.metadata.name)"
        let key = ObjectKey(kind: "Ingress", namespace: ingress.metadata.namespace, name: ingress.metadata.name)
        let annotations = ingress.metadata.annotations
        let sslRedirect = RedirectAnnotations.flag(annotations[RedirectAnnotations.sslRedirect], default: true, ingress: key, into: &diagnostics)
        let forceRedirect = RedirectAnnotations.flag(annotations[RedirectAnnotations.forceSSLRedirect], default: false, ingress: key, into: &diagnostics)
        if sslRedirect {
            for entry in ingress.spec.tls { redirectHosts.formUnion(entry.hosts.map { $0.lowercased() }.filter { !$0.isEmpty }) }
        }
        if forceRedirect {
            redirectHosts.formUnion(ingress.spec.rules.compactMap { $0.host?.lowercased() }.filter { !$0.isEmpty })
        }
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
            var accepted: [String] = []
            for host in hosts {
                if let owner = hostOwner[host], owner.secret != secretKey {
                    diagnostics.append(
                        Diagnostic(
                            .warning, key, reason: "TLSHostConflict",
                            message: "spec.tls[\(index)]: host \(host) already uses Secret \(owner.secret) from the older Ingress \(owner.ingress)"))
                    continue
                }
                hostOwner[host] = (secretKey, ingressName)
                accepted.append(host)
            }
            var entryModel = bySecret[secretKey] ?? TLSCertificate(
                secret: secretKey, hosts: [], certificateChainPEM: certificate, privateKeyPEM: privateKey, ingresses: [])
            entryModel.hosts = Array(Set(entryModel.hosts + accepted)).sorted()
            if !entryModel.ingresses.contains(ingressName) { entryModel.ingresses = (entryModel.ingresses + [ingressName]).sorted() }
            bySecret[secretKey] = entryModel
        }
    }
    var model = TLSModel(
        certificates: bySecret.values.filter { !$0.hosts.isEmpty }.sorted { $0.secret < $1.secret },
        redirectHosts: redirectHosts.sorted())
    if let defaultSecret = defaultCertificateSecret {
        let parts = defaultSecret.split(separator: "/", maxSplits: 1).map(String.init)
        let key = ObjectKey(kind: "Secret", namespace: parts.first ?? "", name: parts.count == 2 ? parts[1] : "")
        if parts.count == 2, let secret = secrets[defaultSecret], let certificate = secret.value(forKey: "tls.crt"),
            let privateKey = secret.value(forKey: "tls.key"), PEMShape.holds("CERTIFICATE", in: certificate),
            PEMShape.holds("PRIVATE KEY", in: privateKey)
        {
            model.defaultCertificate = TLSCertificate(
                secret: defaultSecret, hosts: [], certificateChainPEM: certificate, privateKeyPEM: privateKey, ingresses: [])
        } else {
            diagnostics.append(
                Diagnostic(
                    .error, key, reason: "InvalidDefaultCertificate",
                    message: "--default-ssl-certificate \(defaultSecret): no Secret with PEM tls.crt and tls.key; the self-signed certificate is served"))
        }
    }
    return TLSTranslation(model: model, diagnostics: diagnostics.sorted())
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
