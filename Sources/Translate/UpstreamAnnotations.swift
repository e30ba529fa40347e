import Kube
import RouteModel

/// `nginx.ingress.kubernetes.io/backend-protocol` and the upstream TLS
/// annotations (`proxy-ssl-verify`, `proxy-ssl-secret`, `proxy-ssl-name`),
/// read as ingress-nginx reads them. A bad value keeps the default here;
/// `AnnotationReview` reports it and refuses the Ingress.
enum UpstreamAnnotations {
    static let prefix = "nginx.ingress.kubernetes.io/"
    static let backendProtocol = prefix + "backend-protocol"
    static let verify = prefix + "proxy-ssl-verify"
    static let secret = prefix + "proxy-ssl-secret"
    static let serverName = prefix + "proxy-ssl-name"

    static func parse(_ ingress: Ingress, secrets: inout SecretLookup, into diagnostics: inout [Diagnostic]) -> UpstreamSettings {
        let annotations = ingress.metadata.annotations
        var settings = UpstreamSettings.http
        // An invalid value keeps the default; `AnnotationReview` refuses the Ingress.
        if let text = annotations[backendProtocol], let parsed = UpstreamSettings.WireProtocol(rawValue: text.uppercased()) {
            settings.wireProtocol = parsed
        }
        guard settings.wireProtocol == .https || settings.wireProtocol == .grpcs else { return settings }
        let verifies = ["on", "true"].contains(annotations[verify]?.lowercased() ?? "off")
        var authorities: [UInt8]?
        if let name = annotations[secret], !name.isEmpty {
            let key = name.contains("/") ? name : "\(ingress.metadata.namespace)/\(name)"
            if let bundle = secrets[key]?.value(forKey: "ca.crt"), PEMShape.holds("CERTIFICATE", in: bundle) {
                authorities = bundle
            } else {
                // Fail closed: verifying against nothing refuses every endpoint.
                authorities = []
                diagnostics.append(
                    Diagnostic(
                        .error, ingress.key, field: IngressAnnotations.field(secret), reason: "MissingSecret",
                        message: "proxy-ssl-secret: Secret \(key) is missing or has no PEM ca.crt; no endpoint certificate will verify"))
            }
        }
        let name = annotations[serverName] ?? ""
        settings.tls = UpstreamTLS(serverName: name, verify: verifies, certificateAuthoritiesPEM: authorities)
        return settings
    }

    /// Told apart in the cluster name, since one Service port can be reached
    /// over HTTP by one Ingress and over TLS by another.
    static func nameSuffix(_ upstream: UpstreamSettings) -> String {
        guard upstream != .http else { return "" }
        var suffix = " via \(upstream.wireProtocol.rawValue)"
        if let tls = upstream.tls {
            suffix += " (sni \(tls.serverName)\(tls.verify ? ", verified" : ""))"
            if let authorities = tls.certificateAuthoritiesPEM {
                var hash: UInt32 = 2_166_136_261
                for byte in authorities { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
                suffix += " ca \(String(hash, radix: 16))"
            }
        }
        return suffix
    }
}
