import FoundationEssentials
import Kube
import Support
import TLS

/// The admission webhook's serving certificate, managed by Postern in one
/// Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`, plus `ca.crt`, the CA
/// bundle the API server must trust, and `ca.key`).
///
/// Every `period` (and at once when leadership is gained):
/// - the leader creates the Secret when absent (a new CA, by default valid
///   ten times the server certificate's validity, and a server certificate for `hosts`
///   that it signs); renews the server certificate when less than a third
///   of its validity remains, when it does not name every host or was not
///   signed by the CA; renews the CA the same way, keeping the previous CA
///   in `ca.crt` while it is valid so that replicas still serving the old
///   certificate stay trusted; and sets every webhook's
///   `clientConfig.caBundle` in the ValidatingWebhookConfiguration to
///   `ca.crt` when it differs (a Helm upgrade that re-renders it empty is
///   repaired on the next round);
/// - every replica reads the Secret and serves its certificate from the
///   next handshake on (no restart).
///
/// Writes are replaces with the resourceVersion read (a concurrent change is
/// a 409 and the next round starts from the new object); a create that
/// loses to another replica is a 409 too.
///
/// Threading: one thread of its own; `onCertificate` is called there.
final class AdmissionCertificateManager: @unchecked Sendable {
    struct Configuration {
        var namespace: String
        var secretName: String
        var webhookConfigurationName: String?
        var hosts: [String]
        /// Validity of the server certificate.
        var validitySeconds: Int
        /// Validity of the CA (ten times the certificate's by default).
        var authorityValiditySeconds: Int
        var periodSeconds: Double
    }

    /// Counters for `/metrics`.
    struct Counts {
        var secretsCreated = 0
        var certificatesRenewed = 0
        var caBundlesPatched = 0
        var errors = 0
        var certificateNotAfter: Date?
    }

    let client: KubeAPIClient
    let configuration: Configuration
    private let isLeader: @Sendable () -> Bool
    private let onCertificate: @Sendable (PEMKeyPair) throws -> Void
    private let log: @Sendable (String, _ isError: Bool) -> Void
    private let condition = Condition()
    private var stopping = false
    private var finished = true
    private var wakeRequested = false
    private var served: PEMKeyPair?
    private var lastProblem: String?
    private var counts = Counts()

    init(
        client: KubeAPIClient, configuration: Configuration, isLeader: @escaping @Sendable () -> Bool,
        onCertificate: @escaping @Sendable (PEMKeyPair) throws -> Void, log: @escaping @Sendable (String, _ isError: Bool) -> Void
    ) {
        self.client = client
        self.configuration = configuration
        self.isLeader = isLeader
        self.onCertificate = onCertificate
        self.log = log
    }

    var secretPath: String { KubeAPIClient.secretPath(namespace: configuration.namespace, name: configuration.secretName) }

    var metrics: Counts { condition.withLock { counts } }

    func start() {
        condition.withLock { finished = false }
        let thread = Thread { [self] in
            while !condition.withLock({ stopping }) {
                synchronize()
                condition.withLock {
                    let deadline = Date().addingTimeInterval(configuration.periodSeconds)
                    while !stopping && !wakeRequested && Date() < deadline { _ = condition.wait(until: deadline) }
                    wakeRequested = false
                }
            }
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-admission-certificate"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    /// Runs a round now (leadership changed).
    func wake() {
        condition.withLock {
            wakeRequested = true
            condition.broadcast()
        }
    }

    /// One round: the leader's upkeep, then every replica's read.
    func synchronize() {
        do {
            var secret = try client.getJSONObject(path: secretPath)
            if isLeader() {
                secret = try maintainSecret(secret)
                if let secret, let name = configuration.webhookConfigurationName,
                   let bundle = Self.value(secret, "ca.crt") {
                    try maintainCABundle(name: name, bundle: bundle)
                }
            }
            if let secret { try serve(secret) }
            report(nil)
        } catch {
            condition.withLock { counts.errors += 1 }
            report("admission webhook certificate: \(error)")
        }
    }

    // MARK: Leader

    private func maintainSecret(_ existing: [String: Any]?) throws -> [String: Any]? {
        let now = Date()
        let caValidity = configuration.authorityValiditySeconds
        let hosts = configuration.hosts
        let nowSeconds = Int(now.timeIntervalSince1970)
        func stale(_ pem: [UInt8]?, validity: Int) -> Bool {
            guard let pem, let dates = CertificateAuthority.validity(ofCertificatePEM: pem) else { return true }
            // Less than a third left, or not valid yet by more than clock skew explains.
            return dates.notAfter - nowSeconds < validity / 3 || dates.notBefore > nowSeconds + 300
        }
        let caBundle = existing.flatMap { Self.value($0, "ca.crt") }
        let caKey = existing.flatMap { Self.value($0, "ca.key") }
        let certificate = existing.flatMap { Self.value($0, "tls.crt") }
        let key = existing.flatMap { Self.value($0, "tls.key") }
        var authority: PEMKeyPair
        var bundle: [UInt8]
        var changed: [String] = []
        if let caBundle, let caKey, !stale(Self.firstCertificate(caBundle), validity: caValidity) {
            authority = PEMKeyPair(certificatePEM: Self.firstCertificate(caBundle), privateKeyPEM: caKey)
            // A previous CA leaves the bundle once it expired (nothing it signed is valid any more).
            let blocks = Self.certificates(in: caBundle)
            let kept = [blocks[0]] + blocks.dropFirst().filter { block in
                (CertificateAuthority.validity(ofCertificatePEM: block)?.notAfter ?? 0) > nowSeconds
            }
            bundle = kept.flatMap { $0 }
            if kept.count != blocks.count { changed.append("expired CA removed from ca.crt") }
        } else {
            authority = try CertificateAuthority.makeAuthority(commonName: "Postern admission webhook CA", validitySeconds: caValidity)
            bundle = authority.certificatePEM
            // The previous CA stays trusted while it is valid: replicas still serve what it signed.
            if let previous = caBundle.map(Self.firstCertificate), let dates = CertificateAuthority.validity(ofCertificatePEM: previous),
               dates.notAfter > nowSeconds {
                bundle += previous
            }
            changed.append(existing == nil ? "created" : "new CA")
        }
        var serving = PEMKeyPair(certificatePEM: certificate ?? [], privateKeyPEM: key ?? [])
        if changed.contains("new CA") || certificate == nil || key == nil || stale(certificate, validity: configuration.validitySeconds)
            || !CertificateAuthority.verifies(certificatePEM: serving.certificatePEM, authoritiesPEM: authority.certificatePEM, hosts: hosts)
        {
            serving = try CertificateAuthority.issueServerCertificate(hosts: hosts, authority: authority, validitySeconds: configuration.validitySeconds)
            if changed.isEmpty { changed.append("renewed") }
        }
        guard !changed.isEmpty else { return existing }
        let data: [String: String] = [
            "tls.crt": Data(serving.certificatePEM).base64EncodedString(), "tls.key": Data(serving.privateKeyPEM).base64EncodedString(),
            "ca.crt": Data(bundle).base64EncodedString(), "ca.key": Data(authority.privateKeyPEM).base64EncodedString(),
        ]
        let stored: [String: Any]
        if var secret = existing {
            secret["data"] = data
            secret["stringData"] = nil
            stored = try client.replaceJSONObject(path: secretPath, object: secret)
            condition.withLock { counts.certificatesRenewed += 1 }
        } else {
            let object: [String: Any] = [
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": [
                    "name": configuration.secretName, "namespace": configuration.namespace,
                    "labels": ["app.kubernetes.io/managed-by": "postern"],
                ] as [String: Any],
                "data": data,
            ]
            stored = try client.createJSONObject(collectionPath: "/api/v1/namespaces/\(configuration.namespace)/secrets", object: object)
            condition.withLock { counts.secretsCreated += 1 }
        }
        log("admission webhook certificate \(changed.joined(separator: ", ")) in Secret \(configuration.namespace)/\(configuration.secretName) for \(hosts.joined(separator: ", "))", false)
        return stored
    }

    private func maintainCABundle(name: String, bundle: [UInt8]) throws {
        let path = KubeAPIClient.validatingWebhookConfigurationPath(name: name)
        guard var configuration = try client.getJSONObject(path: path) else {
            throw KubeAPIError.status(code: 404, reason: "NotFound", message: "ValidatingWebhookConfiguration \(name) does not exist (--admission-webhook-configuration)")
        }
        let encoded = Data(bundle).base64EncodedString()
        var webhooks = configuration["webhooks"] as? [[String: Any]] ?? []
        var changed = false
        for index in webhooks.indices {
            var clientConfig = webhooks[index]["clientConfig"] as? [String: Any] ?? [:]
            if clientConfig["caBundle"] as? String != encoded {
                clientConfig["caBundle"] = encoded
                webhooks[index]["clientConfig"] = clientConfig
                changed = true
            }
        }
        guard changed else { return }
        configuration["webhooks"] = webhooks
        try client.replaceJSONObject(path: path, object: configuration)
        condition.withLock { counts.caBundlesPatched += 1 }
        log("admission webhook caBundle set in ValidatingWebhookConfiguration \(name)", false)
    }

    // MARK: Every replica

    /// Serves the Secret's certificate when it changed; an unusable one is
    /// an error of this round (the previous certificate stays in service,
    /// and the next round tries again).
    private func serve(_ secret: [String: Any]) throws {
        let name = "Secret \(configuration.namespace)/\(configuration.secretName)"
        guard let certificate = Self.value(secret, "tls.crt"), let key = Self.value(secret, "tls.key") else {
            throw TLSError("\(name) has no tls.crt and tls.key")
        }
        let pair = PEMKeyPair(certificatePEM: certificate, privateKeyPEM: key)
        guard condition.withLock({ served != pair }) else { return }
        do {
            try onCertificate(pair)
        } catch {
            throw TLSError("\(name): the certificate is not usable: \(error)")
        }
        condition.withLock {
            served = pair
            counts.certificateNotAfter = CertificateAuthority.validity(ofCertificatePEM: certificate).map { Date(timeIntervalSince1970: Double($0.notAfter)) }
        }
    }

    /// Logs a problem once (and its end), not every round.
    private func report(_ problem: String?) {
        let previous = condition.withLock { () -> String? in
            let previous = lastProblem
            lastProblem = problem
            return previous
        }
        if let problem, problem != previous { log(problem, true) }
        if problem == nil, previous != nil { log("admission webhook certificate: recovered", false) }
    }

    static func value(_ secret: [String: Any], _ key: String) -> [UInt8]? {
        guard let encoded = (secret["data"] as? [String: String])?[key], let data = Data(base64Encoded: encoded) else { return nil }
        return Array(data)
    }

    /// The first PEM block of `bundle` (the current CA).
    static func firstCertificate(_ bundle: [UInt8]) -> [UInt8] {
        certificates(in: bundle).first ?? []
    }

    /// Every PEM certificate block of `bundle`, each ending in a newline.
    static func certificates(in bundle: [UInt8]) -> [[UInt8]] {
        let text = String(decoding: bundle, as: UTF8.self)
        var blocks: [[UInt8]] = []
        var rest = Substring(text)
        while let begin = rest.firstRange(of: "-----BEGIN CERTIFICATE-----"), let end = rest[begin.upperBound...].firstRange(of: "-----END CERTIFICATE-----") {
            blocks.append(Array((String(rest[begin.lowerBound..<end.upperBound]) + "\n").utf8))
            rest = rest[end.upperBound...]
        }
        return blocks
    }
}
