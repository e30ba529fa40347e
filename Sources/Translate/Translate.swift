import Kube
import RouteModel

/// The output of `translate`: a model and what was wrong on the way.
public struct TranslationResult: Sendable, Equatable {
    /// The routing configuration, sorted: equal input objects in any order give an equal model.
    public var model: RouteModel
    /// Problems found, sorted and without duplicates.
    public var diagnostics: [Diagnostic]

    /// Creates a result.
    public init(model: RouteModel, diagnostics: [Diagnostic]) {
        self.model = model
        self.diagnostics = diagnostics
    }
}

/// Turns a consistent snapshot of Kubernetes objects into a `RouteModel`.
///
/// Pure and deterministic. The pipeline, one processor per concern:
/// 1. `IngressClassFilter` picks the Ingresses this controller serves;
/// 2. they are ordered oldest first (`creationTimestamp`, then namespace/name),
///    which decides every conflict;
/// 3. `IngressRuleProcessor` validates hosts and paths and claims each
///    (host, path, match) and each host default for the oldest Ingress;
/// 4. `ClusterResolver` turns each winning backend into a `Cluster` with the
///    ready endpoints of its Service port (EndpointSlices, else Endpoints);
/// 5. `DefaultBackendProcessor` adds the global default backend;
/// 6. everything is sorted.
public func translate(_ snapshot: ObjectSnapshot, options: TranslateOptions) -> TranslationResult {
    let context = TranslationContext(snapshot: snapshot)
    let classFilter = IngressClassFilter(options: options, classes: snapshot.ingressClasses)
    let served = IngressAge.sortedOldestFirst(snapshot.ingresses.filter { classFilter.serves($0) })
    let clusters = ClusterResolver(context: context)
    var rules = IngressRuleProcessor(context: context, clusters: clusters, global: options.global)
    for ingress in served {
        rules.process(ingress)
    }
    let defaultCluster = DefaultBackendProcessor(context: context, clusters: clusters)
        .resolve(options.defaultBackendService)
    let model = RouteModel(
        virtualHosts: rules.virtualHosts(),
        clusters: clusters.allClusters(),
        defaultCluster: defaultCluster,
        defaultPolicy: options.global.defaultRoutePolicy,
        httpsHosts: rules.httpsHosts(),
        defaultHTTPSRedirect: options.global.defaultHTTPSRedirect,
        strictTransportSecurity: options.strictTransportSecurity)
    return TranslationResult(model: model, diagnostics: context.sortedDiagnostics())
}

/// Shared, read-mostly state of one translation: object indexes and the
/// diagnostics collected so far.
final class TranslationContext {
    let servicesByKey: [String: Service]
    /// EndpointSlices by `namespace/service`, sorted by name.
    let slicesByService: [String: [EndpointSlice]]
    let endpointsByKey: [String: Endpoints]
    /// Secrets by `namespace/name` (CA bundles named by annotations).
    let secretsByKey: [String: Secret]
    private var diagnostics: Set<Diagnostic> = []

    init(snapshot: ObjectSnapshot) {
        servicesByKey = TranslationContext.index(snapshot.services) { $0.metadata }
        secretsByKey = TranslationContext.index(snapshot.secrets) { $0.metadata }
        endpointsByKey = TranslationContext.index(snapshot.endpoints) { $0.metadata }
        var slices: [String: [EndpointSlice]] = [:]
        for slice in snapshot.endpointSlices {
            guard let service = slice.serviceName else { continue }
            slices["\(slice.metadata.namespace)/\(service)", default: []].append(slice)
        }
        slicesByService = slices.mapValues { $0.sorted { $0.metadata.name < $1.metadata.name } }
    }

    /// `namespace/name` → object; on duplicates the first in name order wins
    /// (they are identical in a consistent store).
    private static func index<T>(_ objects: [T], metadata: (T) -> ObjectMeta) -> [String: T] {
        var result: [String: T] = [:]
        for object in objects {
            let meta = metadata(object)
            result["\(meta.namespace)/\(meta.name)"] = result["\(meta.namespace)/\(meta.name)"] ?? object
        }
        return result
    }

    func report(_ diagnostic: Diagnostic) {
        diagnostics.insert(diagnostic)
    }

    func sortedDiagnostics() -> [Diagnostic] {
        diagnostics.sorted()
    }
}

/// Secrets by `namespace/name`, remembering which keys were asked for (an
/// Ingress's translation depends on those Secrets).
struct SecretLookup {
    private let secrets: [String: Secret]
    /// Every key asked for, in order (repeats possible).
    private(set) var keys: [String] = []

    init(_ secrets: [String: Secret]) {
        self.secrets = secrets
    }

    subscript(key: String) -> Secret? {
        mutating get {
            keys.append(key)
            return secrets[key]
        }
    }
}

/// Conflict order between Ingresses: the oldest wins.
enum IngressAge {
    /// `ingresses` oldest first, by `isOlder`, with each timestamp parsed
    /// once (a sort compares n log n times: parsing per comparison cost most
    /// of a 10,000-Ingress translation).
    static func sortedOldestFirst(_ ingresses: [Ingress]) -> [Ingress] {
        ingresses.map { (ingress: $0, time: $0.metadata.creationTime) }
            .sorted { isOlder($0.ingress, $0.time, $1.ingress, $1.time) }
            .map(\.ingress)
    }

    /// An Ingress's place in the conflict order, parsed once.
    struct Key: Equatable, Comparable {
        var time: KubeTimestamp?
        var namespace: String
        var name: String

        init(_ ingress: Ingress) {
            time = ingress.metadata.creationTime
            namespace = ingress.metadata.namespace
            name = ingress.metadata.name
        }

        /// Older first, as `isOlder`.
        static func < (lhs: Key, rhs: Key) -> Bool {
            if lhs.time != rhs.time {
                switch (lhs.time, rhs.time) {
                case let (l?, r?): return l < r
                case (.some, nil): return true
                default: return false
                }
            }
            return (lhs.namespace, lhs.name) < (rhs.namespace, rhs.name)
        }
    }

    /// Older `creationTimestamp` first (a missing or unparsable one counts as
    /// newest), then namespace, then name.
    static func isOlder(_ lhs: Ingress, _ rhs: Ingress) -> Bool {
        isOlder(lhs, lhs.metadata.creationTime, rhs, rhs.metadata.creationTime)
    }

    static func isOlder(_ lhs: Ingress, _ l: KubeTimestamp?, _ rhs: Ingress, _ r: KubeTimestamp?) -> Bool {
        if l != r {
            switch (l, r) {
            case let (l?, r?): return l < r
            case (.some, nil): return true
            default: return false
            }
        }
        return (lhs.metadata.namespace, lhs.metadata.name) < (rhs.metadata.namespace, rhs.metadata.name)
    }
}

extension Ingress {
    /// `Ingress namespace/name`.
    var key: ObjectKey { ObjectKey(kind: "Ingress", namespace: metadata.namespace, name: metadata.name) }
    /// `namespace/name`, the `Route.source`.
    var sourceName: String { "\(metadata.namespace)/\(metadata.name)" }
}
