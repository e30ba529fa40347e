import ArgumentParser
import Controller
import FoundationEssentials
import Glibc
import Kube
import Translate

/// `postern run` options of the Kubernetes API source (see docs/kubernetes.md).
struct KubernetesOptions: ParsableArguments {
    @Option(help: "Watch the API server named by this kubeconfig file (its current context, or --context).")
    var kubeconfig: String?

    @Option(help: "kubeconfig context to use instead of current-context.")
    var context: String?

    @Flag(help: "Watch the API server of the cluster this Pod runs in (service-account credentials).")
    var inCluster = false

    @Option(help: "Watch only this namespace (repeatable; default: every namespace).")
    var watchNamespace: [String] = []

    @Option(help: "Name of the Lease used for leader election (default postern-leader).")
    var electionID = "postern-leader"

    @Option(help: "Service NAMESPACE/NAME whose addresses are written to Ingress status; read once at start-up for the public ports (the port whose targetPort is a listener) unless they are set.")
    var publishService: String?

    @Option(help: "Address written to Ingress status (IPs become ip, names hostname); repeatable.")
    var publishStatusAddress: [String] = []

    @Flag(help: "Remove this controller's addresses from Ingress status on shutdown.")
    var updateStatusOnShutdown = false

    @Option(help: "Shortest timeoutSeconds asked for a watch (default 300; the API server may end it sooner).")
    var watchTimeout = 300

    @Option(help: ArgumentHelp("Leader election: lease duration, renew deadline and retry period in seconds.", visibility: .hidden))
    var leaderElectionTiming = "15,10,2"

    /// Whether the API server is the source (instead of a manifest directory).
    var isEnabled: Bool { kubeconfig != nil || inCluster }

    /// Checks the flags; a problem is a one-line message naming the flag.
    func validate(manifests: String?) throws {
        // With --manifests too: the public ports are learned from a Service in the directory.
        if let publishService { try SettingsValidation.namespacedName(publishService, "--publish-service") }
        guard isEnabled else { return }
        if kubeconfig != nil && inCluster { throw SettingsError("--kubeconfig and --in-cluster: give one, not both") }
        if manifests != nil { throw SettingsError("--manifests cannot be combined with --kubeconfig or --in-cluster") }
        for namespace in watchNamespace where !SettingsValidation.isLabel(Substring(namespace)) {
            throw SettingsError("--watch-namespace \(namespace): expected a namespace name, e.g. apps")
        }
        try SettingsValidation.objectName(electionID, "--election-id")
        _ = try electionTiming()
        guard (1...86_400).contains(watchTimeout) else { throw SettingsError("--watch-timeout \(watchTimeout): expected seconds between 1 and 86400") }
    }

    /// Reads the kubeconfig or the in-cluster files and builds the client.
    func makeClient() throws -> KubeAPIClient {
        do {
            let configuration: KubeClientConfiguration
            if let kubeconfig {
                configuration = try KubeClientConfiguration.kubeconfig(path: kubeconfig, context: context)
            } else {
                configuration = try KubeClientConfiguration.inCluster()
            }
            return try KubeAPIClient(configuration: configuration)
        } catch let error as KubeConfigurationError {
            throw SettingsError(error.description)
        }
    }

    func electionTiming() throws -> LeaderElectionTiming {
        let parts = leaderElectionTiming.split(separator: ",").compactMap { Double($0) }
        guard parts.count == 3, parts[2] > 0, parts[1] > parts[2], parts[0] > parts[1] else {
            throw SettingsError("--leader-election-timing \(leaderElectionTiming): expected LEASE,RENEW,RETRY seconds with LEASE > RENEW > RETRY > 0")
        }
        return LeaderElectionTiming(leaseDuration: parts[0], renewDeadline: parts[1], retryPeriod: parts[2])
    }

    /// `--publish-service` as (namespace, name).
    var publishServiceReference: (namespace: String, name: String)? {
        guard let parts = publishService?.split(separator: "/").map(String.init), parts.count == 2 else { return nil }
        return (parts[0], parts[1])
    }

    /// Where Ingress status addresses come from; nil writes no status.
    var statusSource: StatusAddressSource? {
        if let publishService {
            let parts = publishService.split(separator: "/").map(String.init)
            return .service(namespace: parts[0], name: parts[1])
        }
        return publishStatusAddress.isEmpty ? nil : .addresses(publishStatusAddress)
    }

    /// This replica's identity: the Pod name (`POD_NAME`), else the host name.
    var identity: String {
        let environment = ProcessInfo.processInfo.environment
        if let name = environment["POD_NAME"], !name.isEmpty { return name }
        return ProcessInfo.processInfo.hostName + "-\(getpid())"
    }

    /// The Lease's and Events' namespace: `POD_NAMESPACE`, else the kubeconfig's or service account's.
    func leaseNamespace(_ client: KubeAPIClient) -> String {
        if let namespace = ProcessInfo.processInfo.environment["POD_NAMESPACE"], !namespace.isEmpty { return namespace }
        return client.configuration.namespace
    }

    /// The leader-only duties for `source`.
    func makeLeaderDuties(source: KubernetesSource, options: TranslateOptions, log: @escaping @Sendable (String) -> Void) throws -> LeaderDuties {
        source.client.userAgent = "postern/0.1 (\(identity))"
        return LeaderDuties(
            source: source, namespace: leaseNamespace(source.client), electionID: electionID, identity: identity,
            timing: try electionTiming(), options: options, statusSource: statusSource,
            clearStatusOnShutdown: updateStatusOnShutdown, log: log)
    }
}
