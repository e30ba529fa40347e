import ArgumentParser
import Controller
import Foundation
import Logging
import Proxy
import Reactor
import RouteModel
import Routing
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

    @Option(help: "HTTP listen address HOST:PORT (default 0.0.0.0:8080; port 0 picks a free port).")
    var httpListen: String?

    @Option(help: "Admin listen address for /metrics, /healthz and /readyz (default 127.0.0.1:10254).")
    var adminListen: String?

    @Option(help: "Worker event loops (default: one per available CPU).")
    var workers: Int?

    @Option(help: "Seconds to let in-flight requests finish after SIGTERM/SIGINT (default 30).")
    var drainTimeout: Double?

    @Option(help: "Log format: text or json (default text).")
    var logFormat: String?

    @Option(help: "Service NAMESPACE/NAME answering requests no rule matches (default: 404).")
    var defaultBackendService: String?

    func validatedSettings() throws -> Settings {
        var settings = try config.map(Settings.load(path:)) ?? Settings()
        if let manifests { settings.manifests = manifests }
        if let httpListen { settings.httpListen = httpListen }
        if let adminListen { settings.adminListen = adminListen }
        if let workers {
            guard workers >= 1 else { throw SettingsError("--workers \(workers): expected at least 1") }
            settings.workers = workers
        }
        if let drainTimeout {
            guard drainTimeout >= 0 else { throw SettingsError("--drain-timeout \(drainTimeout): expected seconds >= 0") }
            settings.drainTimeoutSeconds = drainTimeout
        }
        if let logFormat {
            guard let format = LogFormat(rawValue: logFormat) else {
                throw SettingsError("--log-format \(logFormat): expected text or json")
            }
            settings.logFormat = format
        }
        if let defaultBackendService { settings.defaultBackendService = defaultBackendService }
        guard let directory = settings.manifests else {
            throw SettingsError("--manifests: required (or `manifests:` in the config file)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SettingsError("--manifests \(directory): not a readable directory")
        }
        return settings
    }

    func run() throws {
        let settings: Settings
        let proxyConfiguration: ProxyConfiguration
        let adminAddress: SocketAddress
        do {
            settings = try validatedSettings()
            proxyConfiguration = try settings.proxyConfiguration()
            guard let address = SocketAddress(parsing: settings.adminListen) else {
                throw SettingsError("--admin-listen \(settings.adminListen): expected HOST:PORT with a numeric address")
            }
            adminAddress = address
        } catch let error as SettingsError {
            FileHandle.standardError.write(Data("postern: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        LoggingSetup.bootstrap(format: settings.logFormat)
        let logger = Logger(label: "postern")
        // Before any thread starts: every thread inherits the mask, so only
        // the main thread's sigwait sees SIGTERM/SIGINT.
        Socket.ignoreSIGPIPE()
        WorkerThread.blockTerminationSignals()

        let metrics = MetricsRegistry(workerCount: proxyConfiguration.workers)
        let publisher = TablePublisher(metrics: metrics, logger: logger)
        let controller = ControllerLoop(
            directory: settings.manifests ?? ".", options: settings.translateOptions,
            publish: { table, model in publisher.publish(table, model: model) },
            report: { diagnostics in publisher.report(diagnostics) })
        publisher.controller = controller
        let initial = controller.loadInitial()
        publisher.report(initial.diagnostics)
        publisher.recordPublished(initial.table, model: initial.model)

        let server: ProxyServer
        let admin: AdminServer
        do {
            server = try ProxyServer(configuration: proxyConfiguration, initialTable: initial.table, metrics: metrics)
            admin = try AdminServer(address: adminAddress, status: .init(metrics: metrics))
            try server.start()
            try admin.start()
        } catch {
            FileHandle.standardError.write(Data("postern: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        publisher.server = server
        metrics.ready.store(true, ordering: .relaxed)
        controller.start()
        logger.info(
            "serving",
            metadata: [
                "http": "\(server.boundAddress)", "admin": "\(admin.boundAddress)",
                "workers": "\(proxyConfiguration.workers)", "manifests": "\(settings.manifests ?? "")",
                "routes": "\(initial.model.virtualHosts.reduce(0) { $0 + $1.routes.count })",
            ])
        // Tests and scripts read this line to learn the bound port.
        print("listening on \(server.boundAddress)")
        print("admin listening on \(admin.boundAddress)")
        fflush(stdout)

        while true {
            let signal = WorkerThread.waitForSignal()
            if signal == SIGHUP {
                logger.info("SIGHUP ignored: the manifest directory is watched for changes")
                continue
            }
            logger.info("draining", metadata: ["signal": "\(signal)", "timeout_seconds": "\(settings.drainTimeoutSeconds)"])
            break
        }
        controller.stop()
        server.drain(timeoutMilliseconds: UInt64(settings.drainTimeoutSeconds * 1000))
        server.wait()
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

    init(metrics: MetricsRegistry, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
    }

    func publish(_ table: RoutingTable, model: RouteModel) {
        server?.publish(table)
        metrics.configReloads.add()
        recordPublished(table, model: model)
        logger.info(
            "configuration published",
            metadata: [
                "generation": "\(table.generation)",
                "hosts": "\(model.virtualHosts.count)", "clusters": "\(model.clusters.count)",
            ])
    }

    func recordPublished(_ table: RoutingTable, model: RouteModel) {
        metrics.publishedGeneration.store(table.generation, ordering: .relaxed)
        metrics.lastReloadSuccessTimestamp.store(Int(Date().timeIntervalSince1970), ordering: .relaxed)
    }

    func report(_ diagnostics: [Diagnostic]) {
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
                ])
        }
    }
}
