import FoundationEssentials
import Kube
import Support

/// Watches the Secrets that Ingress annotations name
/// (`nginx.ingress.kubernetes.io/auth-tls-secret`, `…/proxy-ssl-secret`)
/// when they are not `kubernetes.io/tls` (those come with the TLS-Secret
/// watch): one informer per named Secret, selected by the API server
/// (`fieldSelector=metadata.name=NAME,type!=kubernetes.io/tls`), so Postern
/// never lists the cluster's other Secrets. Informers start and stop as
/// annotations change; a stopped one's Secret leaves the store.
///
/// ConfigMaps named by annotations (`…/custom-headers`) are watched the
/// same way (`fieldSelector=metadata.name=NAME`), namespaced, only those
/// referenced; the settings ConfigMap (`--configmap`) has its own watch and
/// is never taken over here.
///
/// These informers are not part of the initial sync: an Ingress naming a
/// Secret is served once the first table is out, and the Secret follows
/// within one list (a missing CA fails closed meanwhile, as Translate does).
///
/// Threading: its own thread, woken by store changes.
final class ReferencedSecretWatcher: @unchecked Sendable {
    static let annotations = ["nginx.ingress.kubernetes.io/auth-tls-secret", "nginx.ingress.kubernetes.io/proxy-ssl-secret"]
    /// Annotations whose value names a ConfigMap (`NAMESPACE/NAME` or `NAME`).
    static let configMapAnnotations = ["nginx.ingress.kubernetes.io/custom-headers"]

    private let client: KubeAPIClient
    private let store: KubeObjectStore
    private let namespaces: Set<String>
    private let watchTimeoutSeconds: Int
    private let log: @Sendable (String) -> Void
    private let condition = Condition()
    private var pending = true
    private var stopping = false
    private var finished = true
    private var informers: [WatchedResource: Informer] = [:]
    /// Ingress changes not looked at yet.
    private let cursor: KubeObjectStore.ChangeCursor
    /// The Secrets each Ingress names, and how many Ingresses name each
    /// (only the reconcile thread touches these).
    private var referencesByIngress: [ObjectKey: Set<WatchedResource>] = [:]
    private var referenceCounts: [WatchedResource: Int] = [:]

    /// Resources watched elsewhere (the settings ConfigMap), never by this watcher.
    private let excluded: Set<WatchedResource>

    init(
        client: KubeAPIClient, store: KubeObjectStore, namespaces: [String], watchTimeoutSeconds: Int, excluded: Set<WatchedResource> = [],
        log: @escaping @Sendable (String) -> Void
    ) {
        self.excluded = excluded
        self.client = client
        self.store = store
        self.namespaces = Set(namespaces)
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.log = log
        cursor = store.makeCursor()
        store.onChange { [weak self] in self?.wake() }
    }

    /// The Secret and ConfigMap resources the Ingresses name now, without
    /// `excluded` (the settings ConfigMap's own watch).
    static func referenced(by ingresses: [Ingress], namespaces: Set<String>, excluded: Set<WatchedResource> = []) -> Set<WatchedResource> {
        var result: Set<WatchedResource> = []
        for ingress in ingresses {
            for (kind, keys) in [(WatchedKind.secret, annotations), (.configMap, configMapAnnotations)] {
                for annotation in keys {
                    guard let value = ingress.metadata.annotations[annotation]?.trimmingWhitespace(), !value.isEmpty else { continue }
                    let parts = value.split(separator: "/", maxSplits: 1).map(String.init)
                    let (namespace, name) = parts.count == 2 ? (parts[0], parts[1]) : (ingress.metadata.namespace, parts[0])
                    // A name the API server would reject cannot name an object (and must not reach a query string unchecked).
                    guard isDNSSubdomain(name), isDNSSubdomain(namespace) else { continue }
                    if !namespaces.isEmpty && !namespaces.contains(namespace) { continue }
                    let selector = kind == .secret ? "metadata.name=\(name),type!=kubernetes.io/tls" : "metadata.name=\(name)"
                    let resource = WatchedResource(kind: kind, namespace: namespace, fieldSelector: selector)
                    if !excluded.contains(resource) { result.insert(resource) }
                }
            }
        }
        return result
    }

    static func isDNSSubdomain(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 253
            && text.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
    }

    /// Names currently watched (for tests).
    var watched: Set<WatchedResource> { condition.withLock { Set(informers.keys) } }

    func wake() {
        condition.withLock {
            pending = true
            condition.broadcast()
        }
    }

    func start() {
        condition.withLock { finished = false }
        let thread = Thread { [self] in
            run()
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-secret-refs"
        thread.start()
    }

    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        let running = Array(informers.values)
        informers = [:]
        condition.unlock()
        for informer in running { informer.stop() }
    }

    private func run() {
        while true {
            condition.lock()
            while !stopping && !pending { condition.wait() }
            let stop = stopping
            pending = false
            condition.unlock()
            if stop { return }
            // Let a burst of watch events settle.
            Thread.sleep(forTimeInterval: 0.1)
            reconcile()
        }
    }

    /// Updates the references of the Ingresses that changed since the last
    /// look (every Ingress the first time): proportional to the changes.
    private func updateReferences() {
        let changes = store.changes(since: cursor)
        if changes.isComplete {
            referencesByIngress = [:]
            referenceCounts = [:]
        }
        for object in changes.objects {
            guard case let .ingress(ingress) = object else { continue }
            setReferences(of: object.key, to: ReferencedSecretWatcher.referenced(by: [ingress], namespaces: namespaces, excluded: excluded))
        }
        for key in changes.removed where key.kind == WatchedKind.ingress.rawValue {
            setReferences(of: key, to: [])
        }
    }

    private func setReferences(of ingress: ObjectKey, to references: Set<WatchedResource>) {
        let old = referencesByIngress[ingress] ?? []
        guard old != references else { return }
        referencesByIngress[ingress] = references.isEmpty ? nil : references
        for resource in old {
            let remaining = (referenceCounts[resource] ?? 1) - 1
            referenceCounts[resource] = remaining > 0 ? remaining : nil
        }
        for resource in references { referenceCounts[resource, default: 0] += 1 }
    }

    private func reconcile() {
        updateReferences()
        let wanted = Set(referenceCounts.keys)
        let current = condition.withLock { Set(informers.keys) }
        for resource in current.subtracting(wanted) {
            let informer = condition.withLock { informers.removeValue(forKey: resource) }
            informer?.stop()
            store.remove(resource)
        }
        for resource in wanted.subtracting(current) {
            let store = self.store
            let log = self.log
            let informer = Informer(resource: resource, client: client, pageSize: 1, watchTimeoutSeconds: watchTimeoutSeconds) { update in
                if case let .problem(text) = update { log(text) }
                store.apply(update, from: resource)
            }
            let added = condition.withLock { () -> Bool in
                guard !stopping else { return false }
                informers[resource] = informer
                return true
            }
            if added { informer.start() }
        }
    }
}
