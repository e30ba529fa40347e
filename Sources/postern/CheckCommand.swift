import ArgumentParser
import Controller
import FoundationEssentials
import Kube
import RouteModel
import Routing
import Support
import Translate

/// A manifest directory translated as `run` would: the result, every
/// diagnostic, the compiled table, the object count and the Ingresses left
/// out for their class.
typealias DirectoryTranslation = (
    translation: TranslationResult, diagnostics: [Diagnostic], table: RoutingTable, objects: Int, skipped: SkippedIngresses,
    unknownFields: [ManifestFieldCheck.UnknownField], report: MigrationReport, publicPorts: PublicPorts, publicPortWarnings: [String]
)

/// The options `check` and `route` share: where the manifests are and how
/// Ingresses are selected, as for `postern run`.
struct ManifestOptions: ParsableArguments {
    @Option(help: "Directory of Kubernetes manifests (*.yaml, *.yml).")
    var manifests: String?

    @Option(help: "Proxy settings file (YAML); its manifests and class settings are used.")
    var config: String?

    @Option(help: "spec.controller of the IngressClasses to serve (default postern.dev/ingress-controller).")
    var controllerClass: String?

    @Option(help: "Legacy kubernetes.io/ingress.class value to serve (default postern).")
    var ingressClass: String?

    @Flag(help: "Serve Ingresses that name no class.")
    var watchIngressWithoutClass = false

    @Option(help: "Service NAMESPACE/NAME answering requests no rule matches (default: 404).")
    var defaultBackendService: String?

    @Option(help: "Settings ConfigMap to validate and apply, as `run --configmap`: a YAML file holding one ConfigMap, or NAMESPACE/NAME of one in the manifest directory.")
    var configmap: String?

    @Option(help: "Service NAMESPACE/NAME in the manifest directory to learn the public ports from, as `run --publish-service`.")
    var publishService: String?

    /// Loads the directory and translates it, with each diagnostic's file filled in.
    func translateDirectory() throws -> DirectoryTranslation {
        var settings = try config.map(Settings.load(path:)) ?? Settings()
        if let manifests { settings.manifests = manifests }
        if let configmap {
            let (data, source) = try ManifestOptions.configMapData(configmap, directory: settings.manifests)
            try settings.apply(configMapData: data, source: source)
            if let manifests { settings.manifests = manifests }
        }
        try settings.applySelectionFlags(
            controllerClass: controllerClass, ingressClass: ingressClass, watchIngressWithoutClass: watchIngressWithoutClass,
            defaultBackendService: defaultBackendService)
        guard let directory = settings.manifests else {
            throw SettingsError("--manifests: required (or `manifests:` in the config file)")
        }
        var isDirectory = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory else {
            throw SettingsError("--manifests \(directory): not a readable directory")
        }
        if let publishService { try SettingsValidation.namespacedName(publishService, "--publish-service") }
        let load = ManifestDirectory(path: directory).load()
        let publishReference = publishService.map { value in
            let parts = value.split(separator: "/").map(String.init)
            return (namespace: parts[0], name: parts[1])
        }
        let (publicPorts, publicPortWarnings) = PublicPorts.resolve(settings: settings, publishService: publishReference) {
            publishReference.flatMap { manifestService(namespace: $0.namespace, name: $0.name, in: load.objects) }
        }
        let translation = translate(load.snapshot, options: settings.translateOptions)
        var diagnostics = load.diagnostics
        // Certificates (spec.tls, Secrets, TLS annotations) are checked too.
        let tls = translateTLS(load.snapshot, options: settings.translateOptions, defaultCertificateSecret: settings.defaultSSLCertificate)
        for var diagnostic in translation.diagnostics + tls.diagnostics {
            if diagnostic.file == nil { diagnostic.file = load.files[diagnostic.object] }
            diagnostics.append(diagnostic)
        }
        diagnostics.sort()
        return (
            translation, diagnostics, RoutingTable(model: translation.model, generation: 1), load.objects.count,
            SkippedIngresses(load.snapshot, options: settings.translateOptions), ManifestFieldCheck.check(directory: directory),
            MigrationReport(load: load, options: settings.translateOptions), publicPorts, publicPortWarnings
        )
    }
}

extension ManifestOptions {
    /// The `data` of the `--configmap` ConfigMap, and how errors name it:
    /// from a YAML file that holds one ConfigMap, or `NAMESPACE/NAME` of
    /// one in the manifest directory.
    static func configMapData(_ reference: String, directory: String?) throws -> (data: [String: String], source: String) {
        var isDirectory = false
        if FileManager.default.fileExists(atPath: reference, isDirectory: &isDirectory), !isDirectory {
            guard let bytes = FileManager.default.contents(atPath: reference) else {
                throw SettingsError("--configmap \(reference): cannot read the file")
            }
            switch ManifestParser.parse(yaml: String(decoding: bytes, as: UTF8.self), file: reference) {
            case let .failure(error):
                throw SettingsError("--configmap \(reference): \(error)")
            case let .success(parsed):
                let found = parsed.objects.compactMap { object -> ConfigMap? in
                    if case let .configMap(configMap) = object { return configMap }
                    return nil
                }
                guard found.count == 1, let configMap = found.first else {
                    throw SettingsError("--configmap \(reference): expected a file with one ConfigMap (apiVersion v1, kind ConfigMap), found \(found.count)")
                }
                return (configMap.data, "ConfigMap \(configMap.metadata.namespace)/\(configMap.metadata.name) (\(reference))")
            }
        }
        try SettingsValidation.namespacedName(reference, "--configmap")
        let parts = reference.split(separator: "/").map(String.init)
        guard let directory,
            let configMap = ConfigMapSettings.find(namespace: parts[0], name: parts[1], in: ManifestDirectory(path: directory).load().objects)
        else {
            throw SettingsError("--configmap \(reference): no such ConfigMap in the manifest directory, and no such file")
        }
        return (configMap.data, "ConfigMap \(reference)")
    }
}

/// Reports a settings problem in one line and exits 2, like `run`.
func exitWithSettingsError(_ error: SettingsError) -> ExitCode {
    StandardError.write("postern: \(error.description)\n")
    return ExitCode(2)
}

/// `postern check`: validate a manifest directory.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every diagnostic of a manifest directory and a summary; exit 1 on an error.")

    @OptionGroup var options: ManifestOptions

    @Option(help: "text, or json for scripts (diagnostics and the per-Ingress annotation report).")
    var output: MigrationReport.Format = .text

    func run() throws {
        let result: DirectoryTranslation
        do {
            result = try options.translateDirectory()
        } catch let error as SettingsError {
            throw exitWithSettingsError(error)
        }
        if output == .json {
            print(result.report.json(diagnostics: result.diagnostics))
            if result.diagnostics.contains(where: { $0.severity == .error }) { throw ExitCode(1) }
            return
        }
        for diagnostic in result.diagnostics {
            print(diagnostic.description)
        }
        for field in result.unknownFields { print("warning: \(field)") }
        for warning in result.publicPortWarnings { print("warning: \(warning)") }
        print(result.report.text(), terminator: "")
        if result.skipped.total > 0 { print(result.skipped.description) }
        let model = result.translation.model
        let errors = result.diagnostics.filter { $0.severity == .error }.count
        let warnings = result.diagnostics.count - errors + result.unknownFields.count + result.publicPortWarnings.count
        let hosts = model.virtualHosts.filter { $0.host != .any }.count
        let routes = model.virtualHosts.reduce(0) { $0 + $1.routes.count }
        let endpoints = model.clusters.reduce(0) { $0 + $1.endpoints.count }
        let unavailable = model.clusters.filter { $0.endpoints.isEmpty }.count
        print(
            "\(result.objects) objects: \(hosts) hosts\(model.virtualHosts.contains { $0.host == .any } ? " (+ rules without a host)" : ""), "
                + "\(routes) routes, \(model.clusters.count) backends (\(unavailable) without endpoints), "
                + "\(endpoints) endpoints; \(errors) errors, \(warnings) warnings"
                + (result.skipped.total > 0 ? "; \(result.skipped.total) Ingresses skipped for their class" : ""))
        print("public ports: http \(result.publicPorts.http), https \(result.publicPorts.https) (redirects, X-Forwarded-Port)")
        print(result.publicPorts.sourceLine)
        if errors > 0 { throw ExitCode(1) }
    }
}
