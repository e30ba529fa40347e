import Foundation
import Kube

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
    private let log: @Sendable (String) -> Void

    /// - Parameters:
    ///   - namespaces: `--watch-namespace` values; empty means cluster-wide.
    ///   - watchTimeoutSeconds: the shortest `timeoutSeconds` asked for a watch.
    public init(
        client: KubeAPIClient, namespaces: [String], watchTimeoutSeconds: Int = 300, pageSize: Int = 500,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.client = client
        self.log = log
        let resources = WatchedResource.all(namespaces: namespaces)
        self.resources = resources
        let store = KubeObjectStore(expected: resources)
        self.store = store
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
    }

    /// Stops every informer and waits for their threads.
    public func stop() {
        for informer in informers { informer.stop() }
    }

    /// Complete lists per resource (initial list plus relists).
    public var listCounts: [WatchedResource: Int] {
        Dictionary(uniqueKeysWithValues: informers.map { ($0.resource, $0.listCount) })
    }
}
