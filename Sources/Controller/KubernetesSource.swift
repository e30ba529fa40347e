import FoundationEssentials
import Kube
import Support
import Translate

/// The Kubernetes API as a source of objects: one informer per watched
/// resource (each on its own thread) writing into one `KubeObjectStore`.
///
/// Threading: `start()`/`stop()` from the main thread; `log` is called from
/// informer threads.
public final class KubernetesSource: @unchecked Sendable {
    public let client: KubeAPIClient
    public let store: KubeObjectStore
    public let resources: [WatchedResource]
    private let informers: [Informer]
    private let secretReferences: ReferencedSecretWatcher
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - namespaces: `--watch-namespace` values; empty means cluster-wide.
    ///   - publishService: `--publish-service`; watched on its own (by name)
    ///     when its namespace is not among `namespaces`, so status addresses
    ///     work with `--watch-namespace` too.
    ///   - watchTimeoutSeconds: the shortest `timeoutSeconds` asked for a watch.
    ///   - configMap: `--configmap`: the settings ConfigMap, watched alone
    ///     (by name, like ingress-nginx); the first table waits for its list.
    public init(
        client: KubeAPIClient, namespaces: [String], publishService: (namespace: String, name: String)? = nil,
        configMap: (namespace: String, name: String)? = nil,
        watchTimeoutSeconds: Int = 300, pageSize: Int = 500,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.client = client
        self.log = log
        var resources = WatchedResource.all(namespaces: namespaces)
        if let publishService, !namespaces.isEmpty, !namespaces.contains(publishService.namespace) {
            resources.append(WatchedResource(kind: .service, namespace: publishService.namespace, fieldSelector: "metadata.name=\(publishService.name)"))
        }
        let settingsResource = configMap.map {
            WatchedResource(kind: .configMap, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name)")
        }
        if let settingsResource { resources.append(settingsResource) }
        self.resources = resources
        let store = KubeObjectStore(expected: resources)
        self.store = store
        secretReferences = ReferencedSecretWatcher(
            client: client, store: store, namespaces: namespaces, watchTimeoutSeconds: watchTimeoutSeconds,
            excluded: Set([settingsResource].compactMap { $0 }), log: log)
        informers = resources.map { resource in
            Informer(resource: resource, client: client, pageSize: pageSize, watchTimeoutSeconds: watchTimeoutSeconds) { update in
                if case let .problem(text) = update { log(text) }
                store.apply(update, from: resource)
            }
        }
    }

    /// Starts every informer.
    public func start() {
        for informer in informers { informer.start() }
        secretReferences.start()
    }

    /// Stops every informer and waits for their threads.
    public func stop() {
        secretReferences.stop()
        for informer in informers { informer.stop() }
    }

    /// Secrets and ConfigMaps watched by name because an annotation names them.
    public var referencedSecrets: Set<WatchedResource> { secretReferences.watched }

    /// Complete lists per resource (initial list plus relists).
    public var listCounts: [WatchedResource: Int] {
        Dictionary(uniqueKeysWithValues: informers.map { ($0.resource, $0.listCount) })
    }
}

/// What only the leader does, wired together: a Lease elector whose
/// leadership switches the status writer and the Event recorder on and off.
/// Every replica serves traffic regardless.
public final class LeaderDuties: @unchecked Sendable {
    public let elector: LeaderElector
    public let status: StatusWriter?
    public let events: EventRecorder
    private let providerLock = Lock()
    private var diagnosticsProvider: (@Sendable () -> [Diagnostic])?

    /// Where a new leader reads the current problems from (the controller
    /// loop): they are recorded as Events when leadership starts, so a
    /// failover or a slow first election loses none (deduplication keeps
    /// them from repeating).
    public func setDiagnosticsProvider(_ provider: @escaping @Sendable () -> [Diagnostic]) {
        providerLock.withLock { diagnosticsProvider = provider }
    }

    private func leadershipChanged(_ leading: Bool) {
        status?.setLeader(leading)
        events.setEnabled(leading)
        if leading, let provider = providerLock.withLock({ diagnosticsProvider }) {
            events.record(provider())
        }
    }

    /// - Parameters:
    ///   - statusSource: nil writes no Ingress status (neither `--publish-service`
    ///     nor `--publish-status-address` given).
    public init(
        source: KubernetesSource, namespace: String, electionID: String, identity: String, timing: LeaderElectionTiming,
        options: TranslateOptions, statusSource: StatusAddressSource?, clearStatusOnShutdown: Bool,
        log: @escaping @Sendable (String) -> Void
    ) {
        let status = statusSource.map {
            StatusWriter(client: source.client, store: source.store, options: options, source: $0, clearOnShutdown: clearStatusOnShutdown, log: log)
        }
        let events = EventRecorder(client: source.client, store: source.store, controllerName: options.controllerClass, instance: identity, log: log)
        events.setEnabled(false)
        self.status = status
        self.events = events
        elector = LeaderElector(client: source.client, namespace: namespace, name: electionID, identity: identity, timing: timing, log: log) { _ in }
        elector.onChange = { [weak self] leading in self?.leadershipChanged(leading) }
    }

    public func start() {
        status?.start()
        events.start()
        elector.start()
    }

    /// Stops campaigning (releasing the Lease); clears status first when asked.
    public func stop() {
        status?.stop()
        events.stop()
        elector.stop()
    }

    /// Diagnostics to record as Events (while leading).
    public func record(_ diagnostics: [Diagnostic]) {
        events.record(diagnostics)
    }
}
