import ArgumentParser
import Controller
import Dispatch
import FoundationEssentials
import Glibc
import Kube
import Logging
import Proxy
import Reactor
import RouteModel
import Routing
import Support
import TLS
import Telemetry
import Translate

/// The `postern` command line.
@main
struct PosternCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postern",
        abstract: "Kubernetes ingress controller and HTTP reverse proxy.",
        subcommands: [Run.self, Check.self, RouteRequest.self, Version.self])

    /// The version printed by `postern version`.
    static let version = "0.1.0"

    /// Parses and runs the command. A command line that does not parse
    /// (an unknown flag, a missing or malformed value) is one line naming
    /// the flag and exit status 2, as for a bad value of a known flag;
    /// `--help` prints help and exits 0.
    static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            guard exitCode(for: error) != .success else { exit(withError: error) }
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            StandardError.write("postern: \(message)\n")
            Glibc.exit(2)
        }
        do {
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// `postern version`.
struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version.")

    func run() {
        print("postern \(PosternCommand.version)")
    }
}

/// `postern run`: serve Ingress manifests from a directory.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy on the Ingress manifests in a directory (watched for changes).")

    @Option(help: "Directory of Kubernetes manifests (*.yaml, *.yml). Overrides `manifests` in the config file.")
    var manifests: String?

    @Option(help: "Proxy settings file (YAML); see docs/configuration.md.")
    var config: String?

    @Option(help: "Settings ConfigMap NAMESPACE/NAME, as ingress-nginx's --configmap: the keys of the settings file; flags > ConfigMap > settings file. Policy and hsts keys apply on change; the others at restart.")
    var configmap: String?

    @Option(help: "HTTP listen address HOST:PORT (default 0.0.0.0:8080; port 0 picks a free port).")
    var httpListen: String?

    @Option(help: "HTTPS listen address HOST:PORT (default 0.0.0.0:8443; 'off' disables HTTPS).")
    var httpsListen: String?

    @Option(help: "TLS Secret NAMESPACE/NAME served to clients without a matching certificate (default: a self-signed one).")
    var defaultSSLCertificate: String?

    // `.unconditional`: a negative number is this option's (refused) value,
    // not an unknown flag.
    @Option(parsing: .unconditional, help: "Status of the HTTP to HTTPS redirect: 301, 302, 307 or 308 (default 308).")
    var httpRedirectCode: Int?

    @Option(parsing: .unconditional, help: "Port clients use for HTTP (the Service's port; default 80): X-Forwarded-Port.")
    var publicHTTPPort: Int?

    @Option(parsing: .unconditional, help: "Port clients use for HTTPS (the Service's port; default 443): redirects and X-Forwarded-Port.")
    var publicHTTPSPort: Int?

    @Option(help: "Admin listen address for /metrics, /healthz and /readyz (default 127.0.0.1:10254).")
    var adminListen: String?

    @Option(parsing: .unconditional, help: "Worker event loops (default 0: one per CPU the cgroup's CPU quota allows, rounded up).")
    var workers: Int?

    @Option(parsing: .unconditional, help: "Seconds to let in-flight requests finish after SIGTERM/SIGINT (default 30).")
    var drainTimeout: Double?

    @Option(parsing: .unconditional, help: "Seconds after SIGTERM during which /readyz answers 503 and new connections are still served, before draining (default 0).")
    var shutdownGracePeriod: Double?

    @Option(help: ArgumentHelp("The cgroup v2 cpu.max file read for the default worker count.", visibility: .hidden))
    var cgroupCPUMax: String?

    @Option(help: "Log format: text or json (default text).")
    var logFormat: String?

    @Option(help: "Service NAMESPACE/NAME answering requests no rule matches (default: 404).")
    var defaultBackendService: String?

    @Option(help: "spec.controller of the IngressClasses to serve (default postern.dev/ingress-controller).")
    var controllerClass: String?

    @Option(help: "Legacy kubernetes.io/ingress.class value to serve (default postern).")
    var ingressClass: String?

    @Flag(help: "Serve Ingresses that name no class.")
    var watchIngressWithoutClass = false

    @OptionGroup(title: "Admission webhook")
    var admissionWebhook: AdmissionWebhookOptions

    @OptionGroup(title: "Kubernetes API source")
    var kubernetes: KubernetesOptions

    /// The settings: `postern.yaml`, then the ConfigMap's `data` (when
    /// given), then the flags: flags > ConfigMap > settings file.
    /// `file`: the settings file as read at start-up (so that a ConfigMap
    /// change never re-reads it); nil reads it now.
    func validatedSettings(configMapData: [String: String]? = nil, file: Settings? = nil) throws -> Settings {
        var settings = try file ?? config.map(Settings.load(path:)) ?? Settings()
        if let configmap { try SettingsValidation.namespacedName(configmap, "--configmap") }
        if let configMapData { try settings.apply(configMapData: configMapData, source: "ConfigMap \(configmap ?? "")") }
        if let manifests { settings.manifests = manifests }
        if let httpListen { settings.httpListen = httpListen }
        if let adminListen { settings.adminListen = adminListen }
        if let httpsListen { settings.httpsListen = httpsListen }
        if let defaultSSLCertificate { settings.defaultSSLCertificate = defaultSSLCertificate }
        if let httpRedirectCode {
            guard [301, 302, 307, 308].contains(httpRedirectCode) else {
                throw SettingsError("--http-redirect-code \(httpRedirectCode): expected 301, 302, 307 or 308")
            }
            settings.httpRedirectCode = httpRedirectCode
        }
        for (flag, value) in [("--public-http-port", publicHTTPPort), ("--public-https-port", publicHTTPSPort)] {
            if let value, !(1...65535).contains(value) { throw SettingsError("\(flag) \(value): expected a port from 1 to 65535") }
        }
        if let publicHTTPPort {
            settings.publicHTTPPort = publicHTTPPort
            settings.publicHTTPPortSource = "--public-http-port"
        }
        if let publicHTTPSPort {
            settings.publicHTTPSPort = publicHTTPSPort
            settings.publicHTTPSPortSource = "--public-https-port"
        }
        if let workers {
            guard (0...Settings.maximumWorkers).contains(workers) else {
                throw SettingsError("--workers \(workers): expected 0 (one per CPU) to \(Settings.maximumWorkers)")
            }
            settings.workers = workers
        }
        if let drainTimeout {
            guard drainTimeout >= 0, drainTimeout <= 86_400 else {
                throw SettingsError("--drain-timeout \(drainTimeout): expected seconds between 0 and 86400")
            }
            settings.drainTimeoutSeconds = drainTimeout
        }
        if let shutdownGracePeriod {
            guard shutdownGracePeriod >= 0, shutdownGracePeriod <= Settings.maximumShutdownGracePeriod else {
                throw SettingsError(
                    "--shutdown-grace-period \(shutdownGracePeriod): expected seconds between 0 and \(Int(Settings.maximumShutdownGracePeriod))")
            }
            settings.shutdownGracePeriodSeconds = shutdownGracePeriod
        }
        if let cgroupCPUMax { settings.cgroupCPUMaxPath = cgroupCPUMax }
        if let logFormat {
            guard let format = LogFormat(rawValue: logFormat) else {
                throw SettingsError("--log-format \(logFormat): expected text or json")
            }
            settings.logFormat = format
        }
        if let defaultSSLCertificate { try SettingsValidation.namespacedName(defaultSSLCertificate, "--default-ssl-certificate") }
        try settings.applySelectionFlags(
            controllerClass: controllerClass, ingressClass: ingressClass, watchIngressWithoutClass: watchIngressWithoutClass,
            defaultBackendService: defaultBackendService)
        try admissionWebhook.validate(kubernetesEnabled: kubernetes.isEnabled)
        try kubernetes.validate(manifests: settings.manifests)
        if kubernetes.isEnabled { return settings }
        guard let directory = settings.manifests else {
            throw SettingsError("--manifests: required (or `manifests:` in the config file)")
        }
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory else {
            throw SettingsError("--manifests \(directory): not a readable directory")
        }
        return settings
    }

    func run() throws {
        let settings: Settings
        var proxyConfiguration: ProxyConfiguration
        let adminAddress: SocketAddress
        let kubeClient: KubeAPIClient?
        let startupConfigMap: ConfigMap?
        let fileSettings: Settings
        do {
            let file = try config.map(Settings.load(path:)) ?? Settings()
            fileSettings = file
            let fileAndFlags = try validatedSettings(file: file)
            kubeClient = try kubernetes.isEnabled ? kubernetes.makeClient() : nil
            startupConfigMap = try readConfigMap(client: kubeClient, manifests: fileAndFlags.manifests)
            settings = try startupConfigMap.map { try validatedSettings(configMapData: $0.data, file: file) } ?? fileAndFlags
            proxyConfiguration = try settings.proxyConfiguration()
            guard let address = SocketAddress(parsing: settings.adminListen) else {
                throw SettingsError("--admin-listen \(settings.adminListen): expected HOST:PORT with a numeric address")
            }
            adminAddress = address
        } catch let error as SettingsError {
            StandardError.write("postern: \(error.description)\n")
            throw ExitCode(2)
        }
        LoggingSetup.bootstrap(format: settings.logFormat)
        let logger = Logger(label: "postern")
        let publicPorts = resolvePublicPorts(settings: settings, client: kubeClient, logger: logger)
        proxyConfiguration.publicHTTPPort = UInt16(publicPorts.http)
        proxyConfiguration.publicHTTPSPort = UInt16(publicPorts.https)
        // Before any thread starts: every thread inherits the mask, so only
        // the main thread's sigwait sees SIGTERM/SIGINT.
        Socket.ignoreSIGPIPE()
        WorkerThread.blockTerminationSignals()

        let metrics = MetricsRegistry(workerCount: proxyConfiguration.workers)
        let workerCount = proxyConfiguration.workers
        metrics.addCollector {
            "# HELP postern_worker_threads Worker event loops serving traffic.\n# TYPE postern_worker_threads gauge\n"
                + "postern_worker_threads \(workerCount)\n"
        }
        let publisher = TablePublisher(metrics: metrics, logger: logger, settings: settings)
        if let stapler = publisher.ocspStapler { metrics.addCollector { stapler.renderPrometheus() } }
        let configMapStatus = ConfigMapStatus()
        if configmap != nil { metrics.addCollector { configMapStatus.renderPrometheus() } }
        let follower = configmap.map { reference in
            ConfigMapSettings(
                command: self, file: fileSettings, running: settings, reference: reference, startup: startupConfigMap,
                status: configMapStatus, logger: logger)
                .follower()
        }
        let shutdown = ShutdownState()
        let kubeHealth = KubeAPIHealth()
        let kubeLog = KubeProblemLog(logger: logger, health: kubeHealth)
        let kubeSource = kubeClient.map { client in
            KubernetesSource(
                client: client, namespaces: kubernetes.watchNamespace, publishService: kubernetes.publishServiceReference,
                configMap: follower.map { ($0.namespace, $0.name) },
                watchTimeoutSeconds: kubernetes.watchTimeout,
                log: { text in kubeLog.log(text, level: .warning) })
        }
        let leaderDuties = try kubeSource.map { source in
            try kubernetes.makeLeaderDuties(source: source, options: settings.translateOptions, log: { text in kubeLog.log(text, level: .info) })
        }
        if let kubeSource, let leaderDuties {
            metrics.addCollector { KubernetesMetrics.render(source: kubeSource, duties: leaderDuties) + kubeHealth.renderPrometheus() }
            kubeLog.watchLeadership(of: leaderDuties.elector, shutdown: shutdown)
        }
        let controller: ControllerLoop
        if let kubeSource {
            controller = ControllerLoop(
                store: kubeSource.store, options: settings.translateOptions,
                defaultCertificateSecret: settings.defaultSSLCertificate, configMap: follower,
                publishSnapshot: { publication in publisher.publish(publication) },
                report: { diagnostics in
                    publisher.report(diagnostics)
                    leaderDuties?.record(diagnostics)
                })
        } else {
            controller = ControllerLoop(
                directory: settings.manifests ?? ".", options: settings.translateOptions,
                defaultCertificateSecret: settings.defaultSSLCertificate, configMap: follower,
                publishSnapshot: { publication in publisher.publish(publication) },
                report: { diagnostics in publisher.report(diagnostics) })
        }
        publisher.controller = controller
        let translateOptions = settings.translateOptions
        if let kubeSource {
            publisher.skippedIngresses = { SkippedIngresses(kubeSource.store.snapshot(of: [.ingress, .ingressClass]), options: translateOptions) }
        } else if let directory = settings.manifests {
            publisher.skippedIngresses = { SkippedIngresses(ManifestDirectory(path: directory).load().snapshot, options: translateOptions) }
        }
        leaderDuties?.setDiagnosticsProvider { controller.currentDiagnostics }
        // The API source publishes its first table itself, after every initial list.
        let initial = kubeSource == nil
            ? controller.loadInitialConfiguration()
            : (table: RoutingTable(model: RouteModel(), generation: 0), model: RouteModel(), tls: TLSModel(), diagnostics: [])
        publisher.report(initial.diagnostics)
        publisher.recordPublished(initial.table, model: initial.model)
        let initialSecure: SecurePolicy?
        do {
            initialSecure = try publisher.securePolicy(for: initial.tls, withCertificates: proxyConfiguration.httpsListen != nil)
        } catch {
            StandardError.write("postern: TLS: \(error)\n")
            throw ExitCode(2)
        }
        // A certificate configured at start-up that TLS 1.2 clients could
        // never reach with these ciphers is a configuration error; one that
        // arrives later is served with a warning (TLS 1.3 clients reach it).
        if let uncovered = publisher.lastCertificateProblems.first(where: { $0.reason == TLSCertificateProblem.noCipherSuiteForKey }) {
            StandardError.write("postern: \(uncovered)\n")
            throw ExitCode(2)
        }
        if proxyConfiguration.httpsListen != nil, let policy = try? TLSCipherPolicy(settings.tls) {
            for suite in policy.unusableSuites { logger.warning("ssl-ciphers: \(suite) is never negotiated") }
        }

        let admission: AdmissionWebhookRuntime?
        do {
            let reviewer = AdmissionReviewer(
                snapshot: {
                    if let kubeSource { return kubeSource.store.snapshot() }
                    return ManifestDirectory(path: settings.manifests ?? ".").load().snapshot
                },
                options: settings.translateOptions)
            admission = try admissionWebhook.makeRuntime(
                reviewer: reviewer, client: kubeSource?.client, namespace: kubeSource.map { kubernetes.leaseNamespace($0.client) },
                leaderDuties: leaderDuties, logger: logger, log: { text, level in kubeLog.log(text, level: level) })
        } catch let error as SettingsError {
            StandardError.write("postern: \(error.description)\n")
            throw ExitCode(2)
        }
        if let admission { metrics.addCollector { admission.renderPrometheus() } }
        admission?.start()

        let server: ProxyServer
        let admin: AdminServer
        do {
            server = try ProxyServer(
                configuration: proxyConfiguration, initialTable: initial.table, secure: initialSecure, metrics: metrics)
            admin = try AdminServer(
                address: adminAddress,
                status: .init(
                    metrics: metrics, routesJSON: { publisher.routesJSON() }, notReadyReason: { shutdown.readinessReason },
                    readinessNotes: { kubeHealth.details }))
            try server.start()
            try admin.start()
        } catch {
            StandardError.write("postern: cannot start: \(error)\n")
            throw ExitCode(1)
        }
        publisher.server = server
        if kubeSource == nil { metrics.ready.store(true, ordering: .relaxed) }
        controller.start()
        kubeSource?.start()
        leaderDuties?.start()
        logger.info(
            "serving",
            metadata: [
                "http": "\(server.boundAddress)", "https": "\(server.boundHTTPSAddress.map { "\($0)" } ?? "off")",
                "admin": "\(admin.boundAddress)",
                "workers": .stringConvertible(proxyConfiguration.workers), "manifests": "\(settings.manifests ?? "")",
                "routes": .stringConvertible(initial.model.virtualHosts.reduce(0) { $0 + $1.routes.count }),
            ])
        // Ingresses of other classes change no table, so nothing else would
        // mention them: look again whenever the objects changed.
        // The manifest files are checked for unknown fields at the same pace.
        let manifestDirectory = kubeSource == nil ? settings.manifests : nil
        let objectsWatch = ObjectChangeWatch {
            // Counting before every initial list completed would report partial numbers.
            guard let kubeSource else { return UInt64(controller.reloads) }
            return kubeSource.store.isSynced ? kubeSource.store.changeSequence : nil
        } action: {
            publisher.logSkippedIfChanged()
            if let manifestDirectory { publisher.logUnknownFields(in: manifestDirectory) }
        }
        objectsWatch.start()
        // Tests and scripts read this line to learn the bound port.
        print("listening on \(server.boundAddress)")
        if let https = server.boundHTTPSAddress { print("https listening on \(https)") }
        print("public ports: http \(proxyConfiguration.publicHTTPPort), https \(proxyConfiguration.publicHTTPSPort) (redirects, X-Forwarded-Port)")
        print(publicPorts.sourceLine)
        print("admin listening on \(admin.boundAddress)")
        if let admission { print("admission webhook listening on \(admission.boundAddress)") }
        fflush(stdout)

        var received = WorkerThread.waitForSignal()
        while received == SIGHUP {
            logger.info("SIGHUP ignored: the manifest directory is watched for changes")
            received = WorkerThread.waitForSignal()
        }
        logger.info("shutting down", metadata: ["signal": .stringConvertible(Int(received))])
        shutdown.begin(gracePeriodSeconds: settings.shutdownGracePeriodSeconds)
        if settings.shutdownGracePeriodSeconds > 0 {
            logger.info(
                "shutting down: /readyz answers 503, new connections are still served until the grace period ends",
                metadata: ["grace_period_seconds": .stringConvertible(settings.shutdownGracePeriodSeconds)])
            if shutdown.waitForGracePeriodOrSignal(seconds: settings.shutdownGracePeriodSeconds) {
                logger.info("second signal: grace period cut short")
            }
        }
        logger.info("draining", metadata: ["timeout_seconds": .stringConvertible(settings.drainTimeoutSeconds)])
        // Listeners close and idle connections go first; the controller
        // threads (Lease release, status clean-up) stop while requests drain.
        server.drain(timeoutMilliseconds: UInt64(settings.drainTimeoutSeconds * 1000))
        leaderDuties?.stop()
        kubeSource?.stop()
        controller.stop()
        server.wait()
        admission?.stop()
        admin.stop()
        logger.info("stopped")
    }
}

/// Connects the controller's output to the proxy and to metrics and logs.
/// Called on the controller thread (and once on the main thread at start-up).
final class TablePublisher: @unchecked Sendable {
    let metrics: MetricsRegistry
    let logger: Logger
    var server: ProxyServer?
    weak var controller: ControllerLoop?
    let settings: Settings
    /// Builds certificate stores; replaced when the default certificate changes.
    private var builder: TLSStoreBuilder?
    private var builderDefault: TLSCertificate??
    /// The problems of the last certificate store built (start-up refuses some).
    private(set) var lastCertificateProblems: [TLSCertificateProblem] = []
    /// OCSP stapling, shared by every store builder so fetched responses
    /// survive a change of the default certificate (nil: `enable-ocsp` off).
    let ocspStapler: OCSPStapler?

    init(metrics: MetricsRegistry, logger: Logger, settings: Settings) {
        self.metrics = metrics
        self.logger = logger
        self.settings = settings
        ocspStapler = settings.tls.enableOCSP
            ? OCSPStapler(settings: settings.tls.ocsp) { [logger] entry in
                let level: Logger.Level = entry.level == .error ? .error : entry.level == .warning ? .warning : .info
                logger.log(level: level, "\(entry.message)", metadata: ["secret": "\(entry.certificate)"])
            }
            : nil
    }

    /// TLS settings with ALPN as configured (`use-http2`).
    var tlsSettings: TLSServerSettings {
        var tls = settings.tls
        tls.alpnProtocols = settings.useHTTP2 ? ["h2", "http/1.1"] : ["http/1.1"]
        return tls
    }

    /// The certificate store and client-certificate hosts for `model`. Certificates
    /// that fail to load are logged as problems of the Ingresses using them;
    /// their hosts get the default certificate.
    func securePolicy(for model: TLSModel, withCertificates: Bool) throws -> SecurePolicy {
        // Without an HTTPS listener, the policy still refuses plain HTTP to
        // hosts that require client certificates.
        guard withCertificates else { return SecurePolicy(certificates: nil, model: model) }
        if builder == nil || builderDefault != .some(model.defaultCertificate) {
            let input = model.defaultCertificate.map {
                TLSCertificateInput(name: $0.secret, hosts: [], certificateChainPEM: $0.certificateChainPEM, privateKeyPEM: $0.privateKeyPEM)
            }
            // Sessions stay resumable when the default certificate changes.
            let sessions = builder?.sessionCache
            do {
                builder = try TLSStoreBuilder(settings: tlsSettings, defaultCertificate: input, sessionCache: sessions, ocspStapler: ocspStapler)
            } catch {
                logger.error(
                    "default certificate unusable; serving a self-signed one until the Secret holds a PEM certificate and key",
                    metadata: ["error": "\(error)", "secret": "\(settings.defaultSSLCertificate ?? "-")"])
                builder = try TLSStoreBuilder(settings: tlsSettings, defaultCertificate: nil, sessionCache: sessions, ocspStapler: ocspStapler)
            }
            builderDefault = .some(model.defaultCertificate)
            if builder?.defaultIsSelfSigned == true {
                if let secret = settings.defaultSSLCertificate {
                    logger.warning(
                        "default certificate Secret \(secret) is missing or has no PEM tls.crt and tls.key: clients whose SNI matches no host get a self-signed certificate until it does",
                        metadata: ["fix": "kubectl create secret tls \(secret.split(separator: "/").last ?? "NAME") --cert=FILE --key=FILE -n \(secret.split(separator: "/").first ?? "NAMESPACE")"])
                } else {
                    logger.info(
                        "clients whose SNI matches no host get a self-signed certificate generated at start-up; to serve your own, give a TLS Secret with --default-ssl-certificate NAMESPACE/NAME")
                }
            }
        }
        guard let builder else { throw TLSError("no certificate store") }
        let inputs = model.certificates.map(TLSCertificateInput.init)
        let (store, problems) = builder.build(inputs)
        lastCertificateProblems = problems
        let users = Dictionary(model.certificates.map { ($0.secret, $0.ingresses) }, uniquingKeysWith: { $0 + $1 })
        for problem in problems {
            logger.log(
                level: problem.severity == .error ? .error : .warning, "\(problem.message)",
                metadata: [
                    "reason": "\(problem.reason)",
                    "secret": "\(problem.certificate)",
                    "ingresses": "\((users[problem.certificate] ?? []).joined(separator: ","))",
                ])
        }
        return SecurePolicy(certificates: store, model: model)
    }

    /// Publishes one controller round (controller thread): the certificate
    /// store is built here, off the worker loops, then the table and the
    /// certificates go to every worker in one task each, so that no request
    /// sees a new table with old certificates. When the certificates cannot
    /// be built, the table is not published either: the last good snapshot
    /// stays whole.
    func publish(_ publication: ControllerPublication) {
        guard let server else { return }
        var secure: SecurePolicy? = nil
        if let model = publication.tls {
            do {
                secure = try securePolicy(for: model, withCertificates: server.boundHTTPSAddress != nil)
            } catch {
                logger.error("configuration not published; the previous one stays in service", metadata: ["error": "\(error)"])
                return
            }
        }
        server.publish(table: publication.table, secure: secure)
        if let model = publication.tls {
            logger.info("certificates published", metadata: ["certificates": .stringConvertible(model.certificates.count)])
        }
        if let table = publication.table { published(table, model: publication.model) }
    }

    /// Metrics and the log line of a table now in service.
    private func published(_ table: RoutingTable, model: RouteModel) {
        metrics.ready.store(true, ordering: .relaxed)
        metrics.configReloads.add()
        recordPublished(table, model: model)
        // The controller reports the same round's diagnostics right after
        // this call: the line waits for them, so an operator never reads
        // "published" before the errors of that change.
        let metadata: Logger.Metadata = [
            "generation": .stringConvertible(table.generation),
            "hosts": .stringConvertible(model.virtualHosts.count), "clusters": .stringConvertible(model.clusters.count),
        ]
        pendingLock.withLock { pendingPublished = metadata }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { [self] in flushPublished() }
    }

    private let pendingLock = Lock()
    private var pendingPublished: Logger.Metadata?

    /// Logs "configuration published" once for the last publish, if not yet logged.
    private func flushPublished() {
        guard let metadata = pendingLock.withLock({ () -> Logger.Metadata? in
            defer { pendingPublished = nil }
            return pendingPublished
        }) else { return }
        logger.info("configuration published", metadata: metadata)
    }

    /// Logs which Ingresses are left out for their class, when that changed; returns them.
    @discardableResult
    func logSkippedIfChanged() -> SkippedIngresses? {
        guard let skipped = skippedIngresses?() else { return nil }
        let changed = pendingLock.withLock { () -> Bool in
            defer { lastSkipped = skipped }
            return skipped != lastSkipped
        }
        if changed, skipped.total > 0 { logger.warning("\(skipped)") }
        return skipped
    }

    /// Logs each unknown field of the manifest files once (again if it
    /// disappears and comes back).
    func logUnknownFields(in directory: String) {
        let found = ManifestFieldCheck.check(directory: directory)
        let fresh = pendingLock.withLock { () -> [ManifestFieldCheck.UnknownField] in
            defer { loggedUnknownFields = Set(found) }
            return found.filter { !loggedUnknownFields.contains($0) }
        }
        for field in fresh {
            logger.warning(
                "unknown field \"\(field.path)\" in \(field.object) is ignored; check its spelling",
                metadata: ["file": "\(field.file)", "line": .stringConvertible(field.line), "field": "\(field.path)"])
        }
    }

    private var loggedUnknownFields: Set<ManifestFieldCheck.UnknownField> = []

    /// The Ingresses left out for their class (set by `run`); logged when they change.
    var skippedIngresses: (() -> SkippedIngresses?)?
    private var lastSkipped: SkippedIngresses?

    /// The storage of the host list whose refused Ingresses were last
    /// counted (controller thread only: publications are serial).
    private var refusedCountedFor: UInt = 0

    /// The model in service and its generation, for `/debug/routes`.
    private let current = Lock()
    private var currentModel: (generation: UInt64, model: RouteModel)?

    func recordPublished(_ table: RoutingTable, model: RouteModel) {
        current.withLock { currentModel = (table.generation, model) }
        metrics.publishedGeneration.store(table.generation, ordering: .relaxed)
        // Counting refused Ingresses walks every route; an endpoint-only
        // publication keeps the previous model's hosts (the same array
        // storage), so the count cannot have changed and the walk is skipped.
        let hosts = model.virtualHosts.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        if hosts == 0 || hosts != refusedCountedFor {
            refusedCountedFor = hosts
            metrics.refusedIngresses.store(model.refusedIngresses.count, ordering: .relaxed)
        }
        metrics.lastReloadSuccessTimestamp.store(Int(Date().timeIntervalSince1970), ordering: .relaxed)
    }

    func report(_ diagnostics: [Diagnostic]) {
        defer { flushPublished() }
        if let controller { metrics.configReloadFailures.set(UInt64(controller.reloadFailures)) }
        metrics.configDiagnostics.store(diagnostics.count, ordering: .relaxed)
        for diagnostic in diagnostics {
            let level: Logger.Level = diagnostic.severity == .error ? .error : .warning
            logger.log(
                level: level, "\(diagnostic.message)",
                metadata: [
                    "reason": "\(diagnostic.reason)",
                    "object": "\(diagnostic.kind) \(diagnostic.namespace)/\(diagnostic.name)",
                    "file": "\(diagnostic.file ?? "-")",
                    "field": "\(diagnostic.fieldPath ?? "-")",
                ])
        }
    }
}

extension TablePublisher {
    /// The routing configuration in service as JSON, for operators
    /// (`/debug/routes` on the admin address): hosts with their routes,
    /// clusters with endpoints, sorted as Translate sorts them.
    func routesJSON() -> String {
        guard let (generation, model) = current.withLock({ currentModel }) else { return "{}\n" }
        func host(_ match: HostMatch) -> String {
            switch match {
            case let .exact(name): return name
            case let .wildcard(suffix): return "*" + suffix
            case .any: return "*"
            }
        }
        let hosts: [[String: Any]] = model.virtualHosts.map { virtualHost in
            var entry: [String: Any] = [
                "host": host(virtualHost.host),
                "routes": virtualHost.routes.map { route -> [String: Any] in
                    ["path": route.path, "match": "\(route.match)", "cluster": route.cluster, "source": route.source]
                },
            ]
            if let defaultCluster = virtualHost.defaultCluster { entry["defaultCluster"] = defaultCluster }
            return entry
        }
        let clusters: [[String: Any]] = model.clusters.map { cluster in
            var entry: [String: Any] = [
                "name": cluster.name, "endpoints": cluster.endpoints.map(\.description),
                "protocol": cluster.upstream.wireProtocol.rawValue,
            ]
            if let reason = cluster.unavailableReason { entry["unavailable"] = reason }
            return entry
        }
        var document: [String: Any] = ["generation": generation, "virtualHosts": hosts, "clusters": clusters]
        if let defaultCluster = model.defaultCluster { document["defaultCluster"] = defaultCluster }
        guard let data = try? JSONObjects.data(from: document, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) else {
            return "{}\n"
        }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}

/// The Kubernetes source's and the leader's counters in the Prometheus text
/// format (added to `/metrics` in cluster mode).
enum KubernetesMetrics {
    static func render(source: KubernetesSource, duties: LeaderDuties) -> String {
        var out = "# HELP postern_kube_lists_total Complete lists from the API server (initial lists and relists), by resource.\n"
        out += "# TYPE postern_kube_lists_total counter\n"
        for (resource, count) in source.listCounts.sorted(by: { "\($0.key)" < "\($1.key)" }) {
            let label = "\(resource)".replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            out += "postern_kube_lists_total{resource=\"\(label)\"} \(count)\n"
        }
        out += "# HELP postern_leader 1 while this replica holds the leader Lease (writes status and Events).\n"
        out += "# TYPE postern_leader gauge\npostern_leader \(duties.elector.isLeader ? 1 : 0)\n"
        out += "# HELP postern_ingress_status_writes_total Ingress status updates written by this replica.\n"
        out += "# TYPE postern_ingress_status_writes_total counter\npostern_ingress_status_writes_total \(duties.status?.writeCount ?? 0)\n"
        let events = duties.events.counts
        out += "# HELP postern_kube_events_total Warning Events for invalid objects, sent or dropped by the rate limit.\n"
        out += "# TYPE postern_kube_events_total counter\n"
        out += "postern_kube_events_total{result=\"sent\"} \(events.sent)\npostern_kube_events_total{result=\"dropped\"} \(events.dropped)\n"
        return out
    }
}

/// Runs `action` (reports about the objects) once a second when the objects
/// changed: the store's change sequence, or the manifest reloads.
///
/// On a thread of its own that sleeps between looks, not a Dispatch timer:
/// the timer kept two or three libdispatch worker threads (stacks and malloc
/// arenas) in an idle process for a once-a-second check.
final class ObjectChangeWatch: @unchecked Sendable {
    private let action: () -> Void
    private let changes: () -> UInt64?
    /// Touched only by the watch thread.
    private var lastSeen: UInt64?

    init(changes: @escaping () -> UInt64?, action: @escaping () -> Void) {
        self.changes = changes
        self.action = action
    }

    /// Looks now and then once a second until the process exits.
    func start() {
        let thread = Thread { [self] in
            while true {
                if let current = changes(), current != lastSeen {
                    lastSeen = current
                    action()
                }
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.name = "postern-objects"
        thread.start()
    }
}
