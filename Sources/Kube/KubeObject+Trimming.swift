/// Keeps one copy of each repeated string (namespaces, label and annotation
/// keys): equal strings decoded from different objects then share one heap
/// buffer instead of one each. Only for strings drawn from a small set: the
/// table keeps what it interned alive, so values unique to one object
/// (names, hosts) are not interned.
///
/// Not thread-safe: one per informer (each informer decodes on its own thread).
public final class StringInterner: @unchecked Sendable {
    private var strings: Set<String> = []
    /// Above this many distinct strings the table starts over, so that
    /// unique values (which should not be interned) cannot grow it forever.
    private let capacity: Int

    /// An empty table that holds at most `capacity` strings.
    public init(capacity: Int = 65_536) {
        self.capacity = capacity
    }

    /// The kept copy of `string` (`string` itself the first time).
    public func intern(_ string: String) -> String {
        // Small strings live inside the String value: nothing to share.
        guard string.utf8.count > 15 else { return string }
        if let kept = strings.firstIndex(of: string) { return strings[kept] }
        if strings.count >= capacity { strings.removeAll(keepingCapacity: true) }
        strings.insert(string)
        return string
    }

    /// Distinct strings held.
    public var count: Int { strings.count }
}

extension KubeObject {
    /// The annotation `kubectl apply` adds: a copy of the whole object as
    /// text, often the largest field of an object and never read here.
    public static let lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

    /// The object with only what Postern reads, its repeated strings shared
    /// through `interner`: like a client-go informer's transform function,
    /// applied when an object arrives from the API server, before it is stored.
    ///
    /// - All kinds: no `last-applied-configuration` annotation (`managedFields`
    ///   and every other field Postern has no property for are never decoded).
    /// - Services, EndpointSlices, Endpoints, Secrets: no annotations, and no
    ///   labels except an EndpointSlice's `kubernetes.io/service-name`;
    ///   `creationTimestamp` only on Ingresses and IngressClasses (the age
    ///   order of conflicts and default classes).
    /// - EndpointSlice endpoints: no `hostname` or `nodeName`.
    /// - Ingresses and IngressClasses keep every other annotation (unknown
    ///   `nginx.ingress.kubernetes.io/*` keys are reported, so they are read).
    /// - Interned: namespaces, label and annotation keys, `addressType`.
    public func keepingOnlyWhatPosternReads(interner: StringInterner) -> KubeObject {
        switch self {
        case var .ingress(ingress):
            ingress.metadata = ingress.metadata.trimmed(interner, keepAnnotations: true, keepLabels: [], keepCreation: true)
            return .ingress(ingress)
        case var .ingressClass(ingressClass):
            ingressClass.metadata = ingressClass.metadata.trimmed(interner, keepAnnotations: true, keepLabels: [], keepCreation: true)
            return .ingressClass(ingressClass)
        case var .service(service):
            service.metadata = service.metadata.trimmed(interner, keepAnnotations: false, keepLabels: [], keepCreation: false)
            return .service(service)
        case var .endpointSlice(slice):
            slice.metadata = slice.metadata.trimmed(
                interner, keepAnnotations: false, keepLabels: [EndpointSlice.serviceNameLabel], keepCreation: false)
            slice.addressType = interner.intern(slice.addressType)
            for index in slice.endpoints.indices {
                slice.endpoints[index].hostname = nil
                slice.endpoints[index].nodeName = nil
            }
            return .endpointSlice(slice)
        case var .endpoints(endpoints):
            endpoints.metadata = endpoints.metadata.trimmed(interner, keepAnnotations: false, keepLabels: [], keepCreation: false)
            return .endpoints(endpoints)
        case var .secret(secret):
            secret.metadata = secret.metadata.trimmed(interner, keepAnnotations: false, keepLabels: [], keepCreation: false)
            return .secret(secret)
        case var .configMap(configMap):
            configMap.metadata = configMap.metadata.trimmed(interner, keepAnnotations: false, keepLabels: [], keepCreation: false)
            return .configMap(configMap)
        case .unsupported:
            return self
        }
    }
}

extension ObjectMeta {
    fileprivate func trimmed(_ interner: StringInterner, keepAnnotations: Bool, keepLabels: Set<String>, keepCreation: Bool) -> ObjectMeta {
        var meta = self
        meta.namespace = interner.intern(namespace)
        meta.labels = [:]
        for (key, value) in labels where keepLabels.contains(key) {
            meta.labels[interner.intern(key)] = value
        }
        meta.annotations = [:]
        if keepAnnotations {
            for (key, value) in annotations where key != KubeObject.lastAppliedAnnotation {
                meta.annotations[interner.intern(key)] = value
            }
        }
        if !keepCreation { meta.creationTimestamp = nil }
        return meta
    }
}
