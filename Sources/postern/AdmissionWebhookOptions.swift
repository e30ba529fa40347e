import ArgumentParser
import Controller
import Kube
import Logging
import TLS
import FoundationEssentials
import Reactor

/// `postern run` options of the validating admission webhook (see
/// docs/deployment.md, "Admission webhook"). The serving certificate comes
/// either from files (cert-manager mounts its Secret) or from a Secret that
/// Postern manages itself: the leader creates it with a self-signed CA,
/// renews it and keeps the ValidatingWebhookConfiguration's caBundle set;
/// every replica serves what the Secret holds.
struct AdmissionWebhookOptions: ParsableArguments {
    @Option(help: "Serve the validating admission webhook (HTTPS, POST /validate-ingress) on HOST:PORT (default: off).")
    var admissionWebhookListen: String?

    @Option(help: "PEM certificate chain the admission webhook serves (e.g. from a cert-manager Secret).")
    var admissionWebhookCertificate: String?

    @Option(help: "PEM private key of that certificate.")
    var admissionWebhookKey: String?

    @Option(help: "Manage the webhook's certificate in this Secret of Postern's namespace (created by the leader with a self-signed CA; needs the Kubernetes API source).")
    var admissionWebhookSecret: String?

    @Option(help: "ValidatingWebhookConfiguration whose caBundle the leader keeps equal to the managed CA.")
    var admissionWebhookConfiguration: String?

    @Option(help: "The webhook's Service name in Postern's namespace: the managed certificate names NAME.NAMESPACE.svc.")
    var admissionWebhookService: String?

    @Option(help: "Another DNS name or IP address the managed certificate names (repeatable).")
    var admissionWebhookCertificateHost: [String] = []

    @Option(help: ArgumentHelp("Managed certificate: validity, Secret re-read period and CA validity (default 10x) in seconds.", visibility: .hidden))
    var admissionWebhookCertificateTiming = "31536000,30"

    /// Whether Postern manages the certificate (instead of reading files).
    var managesCertificate: Bool { admissionWebhookSecret != nil }

    /// Checks the flags; a problem is a one-line message naming the flag.
    func validate(kubernetesEnabled: Bool) throws {
        guard let admissionWebhookListen else {
            if admissionWebhookCertificate != nil || admissionWebhookKey != nil || admissionWebhookSecret != nil {
                throw SettingsError("--admission-webhook-certificate, --admission-webhook-key and --admission-webhook-secret need --admission-webhook-listen")
            }
            return
        }
        guard SocketAddress(parsing: admissionWebhookListen) != nil else {
            throw SettingsError("--admission-webhook-listen \(admissionWebhookListen): expected HOST:PORT with a numeric address")
        }
        let files = admissionWebhookCertificate != nil || admissionWebhookKey != nil
        if let admissionWebhookSecret {
            if files {
                throw SettingsError("--admission-webhook-secret and --admission-webhook-certificate/--admission-webhook-key: give one, not both")
            }
            guard kubernetesEnabled else {
                throw SettingsError("--admission-webhook-secret needs the Kubernetes API source (--kubeconfig or --in-cluster)")
            }
            try SettingsValidation.objectName(admissionWebhookSecret, "--admission-webhook-secret")
            if let admissionWebhookConfiguration {
                try SettingsValidation.objectName(admissionWebhookConfiguration, "--admission-webhook-configuration")
            }
            if let admissionWebhookService, !SettingsValidation.isLabel(Substring(admissionWebhookService)) {
                throw SettingsError("--admission-webhook-service \(admissionWebhookService): expected a Service name, e.g. postern-admission")
            }
            guard admissionWebhookService != nil || !admissionWebhookCertificateHost.isEmpty else {
                throw SettingsError("--admission-webhook-secret needs --admission-webhook-service or --admission-webhook-certificate-host: the names the certificate is for")
            }
            for host in admissionWebhookCertificateHost where !Self.isHost(host) {
                throw SettingsError("--admission-webhook-certificate-host \(host): expected a DNS name or an IP address")
            }
            _ = try certificateTiming()
        } else {
            guard admissionWebhookCertificate != nil, admissionWebhookKey != nil else {
                throw SettingsError("--admission-webhook-listen needs --admission-webhook-certificate and --admission-webhook-key, or --admission-webhook-secret")
            }
            if admissionWebhookConfiguration != nil || admissionWebhookService != nil || !admissionWebhookCertificateHost.isEmpty {
                throw SettingsError("--admission-webhook-configuration, --admission-webhook-service and --admission-webhook-certificate-host need --admission-webhook-secret")
            }
        }
    }

    /// (validity, re-read period, CA validity) of the managed certificate, in seconds.
    func certificateTiming() throws -> (validity: Int, period: Double, authorityValidity: Int) {
        let parts = admissionWebhookCertificateTiming.split(separator: ",")
        let problem = SettingsError(
            "--admission-webhook-certificate-timing \(admissionWebhookCertificateTiming): expected VALIDITY,PERIOD[,CA_VALIDITY] seconds, the CA's longer")
        guard parts.count == 2 || parts.count == 3, let validity = Int(parts[0]), let period = Double(parts[1]),
              (3...(10 * 365 * 86_400)).contains(validity), period > 0, period <= 3600
        else { throw problem }
        let authorityValidity = parts.count == 3 ? Int(parts[2]) : validity * 10
        guard let authorityValidity, authorityValidity > validity, authorityValidity <= 100 * 365 * 86_400 else { throw problem }
        return (validity, period, authorityValidity)
    }

    /// The names the managed certificate is for.
    func certificateHosts(namespace: String) -> [String] {
        var hosts: [String] = []
        if let service = admissionWebhookService {
            // kube-apiserver calls a `service` clientConfig as NAME.NAMESPACE.svc.
            hosts += ["\(service).\(namespace).svc", "\(service).\(namespace).svc.cluster.local"]
        }
        for host in admissionWebhookCertificateHost where !hosts.contains(host) { hosts.append(host) }
        return hosts
    }

    static func isHost(_ text: String) -> Bool {
        if SocketAddress(parsing: "\(text):1") != nil || SocketAddress(parsing: "[\(text)]:1") != nil { return true }
        let name = text.hasPrefix("*.") ? Substring(text.dropFirst(2)) : Substring(text)
        return SettingsValidation.isSubdomain(name)
    }
}

/// The running webhook: its HTTPS server and, with `--admission-webhook-secret`,
/// the certificate manager that feeds it.
final class AdmissionWebhookRuntime: @unchecked Sendable {
    let server: AdmissionServer
    let manager: AdmissionCertificateManager?

    var boundAddress: SocketAddress { server.boundAddress }

    init(server: AdmissionServer, manager: AdmissionCertificateManager?) {
        self.server = server
        self.manager = manager
    }

    func start() {
        server.start()
        manager?.start()
    }

    func stop() {
        manager?.stop()
        server.stop()
    }

    /// Prometheus text of the webhook's counters.
    func renderPrometheus() -> String {
        let counts = server.metrics
        var text = Self.family(
            "postern_admission_reviews_total", "counter", "AdmissionReviews answered by the validating webhook, by result.",
            [("{result=\"allowed\"}", counts.allowed), ("{result=\"denied\"}", counts.denied), ("{result=\"bad_request\"}", counts.badRequests)])
        text += Self.family(
            "postern_admission_connections_without_certificate_total", "counter",
            "Webhook connections closed because no serving certificate was available yet.", [("", counts.handshakesWithoutCertificate)])
        text += Self.family(
            "postern_admission_connections_refused_total", "counter",
            "Webhook connections closed at once because \(AdmissionServer.maximumConnections) were being served.", [("", counts.connectionsRefusedBusy)])
        text += Self.family(
            "postern_admission_certificate_reloads_total", "counter", "Serving certificates replaced without restart.", [("", counts.certificateReloads)])
        guard let manager else { return text }
        let managed = manager.metrics
        text += Self.family(
            "postern_admission_certificate_sync_errors_total", "counter",
            "Failed rounds of webhook certificate management (API errors, unusable Secret).", [("", managed.errors)])
        text += Self.family(
            "postern_admission_certificate_writes_total", "counter", "Writes of the managed certificate Secret and caBundle by this replica.",
            [
                ("{write=\"secret_created\"}", managed.secretsCreated), ("{write=\"secret_renewed\"}", managed.certificatesRenewed),
                ("{write=\"ca_bundle\"}", managed.caBundlesPatched),
            ])
        if let notAfter = managed.certificateNotAfter {
            text += Self.family(
                "postern_admission_certificate_expiry_timestamp_seconds", "gauge", "When the served webhook certificate expires.",
                [("", Int(notAfter.timeIntervalSince1970))])
        }
        return text
    }

    private static func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) -> String {
        var text = "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for sample in samples { text += "\(name)\(sample.labels) \(sample.value)\n" }
        return text
    }
}

extension AdmissionWebhookOptions {
    /// Builds the webhook (nil when `--admission-webhook-listen` is not
    /// given). Throws `SettingsError` for unreadable or unusable files.
    /// With a managed certificate, `leaderDuties`' elector decides who
    /// writes, and a change of leadership runs a round at once.
    /// `log` reports the certificate management's API problems (the Kubernetes
    /// problem log: a 403 is an error and shows in `/readyz`).
    func makeRuntime(
        reviewer: AdmissionReviewer, client: KubeAPIClient?, namespace: String?, leaderDuties: LeaderDuties?, logger: Logger,
        log: @escaping @Sendable (String, Logger.Level) -> Void
    ) throws -> AdmissionWebhookRuntime? {
        guard let listen = admissionWebhookListen, let address = SocketAddress(parsing: listen) else { return nil }
        let server = try AdmissionServer(address: address, reviewer: reviewer, logger: logger)
        guard let secret = admissionWebhookSecret else {
            let pair = try AdmissionServer.readFiles(certificatePath: admissionWebhookCertificate ?? "", keyPath: admissionWebhookKey ?? "")
            do {
                try server.useCertificate(pair)
            } catch {
                throw SettingsError("--admission-webhook-certificate \(admissionWebhookCertificate ?? ""): \(error)")
            }
            return AdmissionWebhookRuntime(server: server, manager: nil)
        }
        guard let client, let namespace, let leaderDuties else {
            throw SettingsError("--admission-webhook-secret needs the Kubernetes API source (--kubeconfig or --in-cluster)")
        }
        let timing = try certificateTiming()
        let elector = leaderDuties.elector
        let manager = AdmissionCertificateManager(
            client: client,
            configuration: .init(
                namespace: namespace, secretName: secret, webhookConfigurationName: admissionWebhookConfiguration,
                hosts: certificateHosts(namespace: namespace), validitySeconds: timing.validity,
                authorityValiditySeconds: timing.authorityValidity, periodSeconds: timing.period),
            isLeader: { elector.isLeader },
            onCertificate: { pair in
                try server.useCertificate(pair)
                logger.info("admission webhook: serving the certificate from Secret \(namespace)/\(secret)")
            },
            log: { text, isError in log(text, isError ? .error : .info) })
        let previous = elector.onChange
        elector.onChange = { [weak manager] leading in
            previous(leading)
            if leading { manager?.wake() }
        }
        return AdmissionWebhookRuntime(server: server, manager: manager)
    }
}
