import Controller
import FoundationEssentials
import Kube
import Logging
import Support
import Synchronization
import Translate

extension Run {
    /// The `--configmap` ConfigMap as it is at start-up, so that every key
    /// (listeners and workers included) takes effect from the start: read
    /// from the API server, or found in the manifest directory. nil when
    /// `--configmap` is not given or the ConfigMap does not exist yet (then
    /// the controller applies it when it appears).
    func readConfigMap(client: KubeAPIClient?, manifests: String?) throws -> ConfigMap? {
        guard let configmap else { return nil }
        let parts = configmap.split(separator: "/").map(String.init)
        guard parts.count == 2 else { throw SettingsError("--configmap \(configmap): expected NAMESPACE/NAME") }
        if let client {
            do {
                return try client.configMap(namespace: parts[0], name: parts[1])
            } catch {
                // The watch retries; the first table waits for its list anyway.
                StandardError.write("postern: --configmap \(configmap): not read at start-up (\(error)); its listener and worker keys need a restart once it is read\n")
                return nil
            }
        }
        guard let manifests else { return nil }
        return ConfigMapSettings.find(namespace: parts[0], name: parts[1], in: ManifestDirectory(path: manifests).load().objects)
    }
}

/// Follows the `--configmap` ConfigMap for the controller: each new
/// version's `data` is applied over `postern.yaml` and under the flags, as
/// at start-up; the translation keys take effect at once, a changed
/// restart key is noted once ("takes effect at restart"), and a bad value
/// or an unknown key refuses the whole version (the last good settings stay
/// in service) with an error diagnostic, a Warning Event and a metric.
struct ConfigMapSettings: @unchecked Sendable {
    /// The command line (flags and the settings file), immutable.
    let command: Run
    /// The settings file as read at start-up.
    let file: Settings
    /// The settings in force since start-up (file, ConfigMap, flags): the
    /// restart keys keep these values.
    let running: Settings
    /// `NAMESPACE/NAME`.
    let reference: String
    /// The ConfigMap the process started with (its restart keys are in force).
    let startup: ConfigMap?
    let status: ConfigMapStatus
    let logger: Logger

    /// The ConfigMap named `namespace/name` among `objects`.
    static func find(namespace: String, name: String, in objects: [KubeObject]) -> ConfigMap? {
        for object in objects {
            if case let .configMap(candidate) = object, candidate.metadata.namespace == namespace, candidate.metadata.name == name {
                return candidate
            }
        }
        return nil
    }

    func follower() -> ConfigMapFollower {
        let parts = reference.split(separator: "/").map(String.init)
        return ConfigMapFollower(namespace: parts.first ?? "", name: parts.count == 2 ? parts[1] : "") { found in
            outcome(for: found)
        }
    }

    /// What `configMap` (nil: deleted or absent) makes of the settings.
    func outcome(for configMap: ConfigMap?) -> ConfigMapFollower.Outcome {
        let parts = reference.split(separator: "/").map(String.init)
        let key = ObjectKey(kind: "ConfigMap", namespace: parts.first ?? "", name: parts.count == 2 ? parts[1] : "")
        let data = configMap?.data ?? [:]
        let settings: Settings
        do {
            settings = try command.validatedSettings(configMapData: data, file: file)
        } catch {
            status.rejected()
            // The key the error names (the longest that fits: `hsts-max-age`, not `hsts`).
            let text = "\(error)"
            let field = data.keys.filter { text.contains(": \($0):") || text.contains("'\($0)'") }.max { $0.count < $1.count }
            return .init(options: nil, diagnostics: [
                Diagnostic(.error, key, field: field.map { "data.\($0)" }, reason: "InvalidConfigMap",
                    message: "\(error); the last good settings stay in service until it is fixed"),
            ])
        }
        status.applied()
        var notes: [Diagnostic] = []
        let before = startup?.data ?? [:]
        for name in Set(before.keys).union(data.keys).sorted() where !Settings.liveKeys.contains(name) && before[name] != data[name] {
            notes.append(Diagnostic(.warning, key, field: "data.\(name)", reason: "RestartRequired",
                message: "setting \(name) changed; it takes effect at restart (the running value stays)"))
        }
        // Only the live keys change what runs; class selection and the
        // default backend (read by the status writer too) wait for a restart.
        var options = running.translateOptions
        options.global = settings.global
        options.strictTransportSecurity = settings.strictTransportSecurity
        return .init(options: options, diagnostics: notes)
    }
}

/// The `--configmap` counters for `/metrics`.
final class ConfigMapStatus: Sendable {
    private let counts = Mutex<(applied: Int, rejected: Int, valid: Bool)>((0, 0, true))

    func applied() { counts.withLock { $0.applied += 1; $0.valid = true } }
    func rejected() { counts.withLock { $0.rejected += 1; $0.valid = false } }

    func renderPrometheus() -> String {
        let (applied, rejected, valid) = counts.withLock { ($0.applied, $0.rejected, $0.valid) }
        return "# HELP postern_configmap_reloads_total Versions of the --configmap ConfigMap applied or rejected (a rejected one leaves the last good settings in service).\n"
            + "# TYPE postern_configmap_reloads_total counter\n"
            + "postern_configmap_reloads_total{result=\"applied\"} \(applied)\npostern_configmap_reloads_total{result=\"rejected\"} \(rejected)\n"
            + "# HELP postern_configmap_valid 1 when the --configmap ConfigMap in the cluster is in service, 0 while a version of it is rejected.\n"
            + "# TYPE postern_configmap_valid gauge\npostern_configmap_valid \(valid ? 1 : 0)\n"
    }
}
