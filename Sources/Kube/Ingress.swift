/// `networking.k8s.io/v1` Ingress: the fields Postern reads.
///
/// The fields live in one block shared by every copy (`SharedFields`):
/// the store, the translator and snapshots hold the same Ingress.
public struct Ingress: Codable, Sendable, Equatable {
    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var spec: IngressSpec
        var status: LoadBalancerStatus
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    public var spec: IngressSpec {
        get { fields.value.spec }
        _modify { yield &fields.value.spec }
    }

    /// `status.loadBalancer.ingress` as the API server reports it (written by the leader).
    public var status: LoadBalancerStatus {
        get { fields.value.status }
        _modify { yield &fields.value.status }
    }

    /// Creates an Ingress.
    public init(metadata: ObjectMeta, spec: IngressSpec = IngressSpec(), status: LoadBalancerStatus = LoadBalancerStatus()) {
        fields = SharedFields(Fields(metadata: metadata, spec: spec, status: status))
    }

    private enum CodingKeys: String, CodingKey { case metadata, spec, status }
    private enum StatusKeys: String, CodingKey { case loadBalancer }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        let spec = try c.decodeIfPresent(IngressSpec.self, forKey: .spec) ?? IngressSpec()
        // Status is informational: a malformed one must not hide the Ingress.
        let statusContainer = try? c.nestedContainer(keyedBy: StatusKeys.self, forKey: .status)
        let status = (try? statusContainer?.decodeIfPresent(LoadBalancerStatus.self, forKey: .loadBalancer)) ?? LoadBalancerStatus()
        self.init(metadata: metadata, spec: spec, status: status)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(spec, forKey: .spec)
        var statusContainer = c.nestedContainer(keyedBy: StatusKeys.self, forKey: .status)
        try statusContainer.encode(status, forKey: .loadBalancer)
    }
}

/// `LoadBalancerStatus` (Ingress `status.loadBalancer`, Service `status.loadBalancer`).
public struct LoadBalancerStatus: Codable, Sendable, Equatable {
    public var ingress: [LoadBalancerIngress]

    public init(ingress: [LoadBalancerIngress] = []) {
        self.ingress = ingress
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ingress = try c.decodeIfPresent([LoadBalancerIngress].self, forKey: .ingress) ?? []
    }
}

/// One `status.loadBalancer.ingress[]` entry: an IP or a host name.
public struct LoadBalancerIngress: Codable, Sendable, Hashable {
    public var ip: String?
    public var hostname: String?

    public init(ip: String? = nil, hostname: String? = nil) {
        self.ip = ip
        self.hostname = hostname
    }
}

/// `IngressSpec`.
public struct IngressSpec: Codable, Sendable, Equatable {
    /// Name of the IngressClass that should serve this Ingress.
    public var ingressClassName: String?
    /// Backend for requests that match no rule.
    public var defaultBackend: IngressBackend?
    /// TLS termination: hosts and the Secret holding their certificate.
    public var tls: [IngressTLS]
    /// Host rules, in the order written.
    public var rules: [IngressRule]

    /// Creates a spec.
    public init(
        ingressClassName: String? = nil, defaultBackend: IngressBackend? = nil,
        tls: [IngressTLS] = [], rules: [IngressRule] = []
    ) {
        self.ingressClassName = ingressClassName
        self.defaultBackend = defaultBackend
        self.tls = tls
        self.rules = rules
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ingressClassName = try c.decodeIfPresent(String.self, forKey: .ingressClassName)
        defaultBackend = try c.decodeIfPresent(IngressBackend.self, forKey: .defaultBackend)
        tls = try c.decodeIfPresent([IngressTLS].self, forKey: .tls) ?? []
        rules = try c.decodeIfPresent([IngressRule].self, forKey: .rules) ?? []
    }
}

/// `IngressTLS`: hosts served with the certificate in `secretName`.
public struct IngressTLS: Codable, Sendable, Equatable {
    public var hosts: [String]
    public var secretName: String?

    /// Creates a TLS entry.
    public init(hosts: [String] = [], secretName: String? = nil) {
        self.hosts = hosts
        self.secretName = secretName
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hosts = try c.decodeIfPresent([String].self, forKey: .hosts) ?? []
        secretName = try c.decodeIfPresent(String.self, forKey: .secretName)
    }
}

/// `IngressRule`: one host (or none) and its HTTP paths.
public struct IngressRule: Codable, Sendable, Equatable {
    /// The host, possibly `*.example.com`; nil or empty means every host.
    public var host: String?
    public var http: HTTPIngressRuleValue?

    /// Creates a rule.
    public init(host: String? = nil, http: HTTPIngressRuleValue? = nil) {
        self.host = host
        self.http = http
    }
}

/// `HTTPIngressRuleValue`: the paths of a rule.
public struct HTTPIngressRuleValue: Codable, Sendable, Equatable {
    public var paths: [HTTPIngressPath]

    /// Creates a path list.
    public init(paths: [HTTPIngressPath] = []) {
        self.paths = paths
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        paths = try c.decodeIfPresent([HTTPIngressPath].self, forKey: .paths) ?? []
    }
}

/// `HTTPIngressPath`: a path, how it matches, and where it goes.
public struct HTTPIngressPath: Codable, Sendable, Equatable {
    /// The path as written; validated by Translate.
    public var path: String?
    /// `Exact`, `Prefix` or `ImplementationSpecific` as written; validated by Translate.
    public var pathType: String?
    public var backend: IngressBackend

    /// Creates a path.
    public init(path: String?, pathType: String?, backend: IngressBackend) {
        self.path = path
        self.pathType = pathType
        self.backend = backend
    }
}

/// `IngressBackend`: a Service port or (unsupported by Postern) a resource.
public struct IngressBackend: Codable, Sendable, Equatable {
    public var service: IngressServiceBackend?
    public var resource: TypedLocalObjectReference?

    /// Creates a backend.
    public init(service: IngressServiceBackend? = nil, resource: TypedLocalObjectReference? = nil) {
        self.service = service
        self.resource = resource
    }
}

/// `IngressServiceBackend`: a Service in the Ingress's namespace and one of its ports.
public struct IngressServiceBackend: Codable, Sendable, Equatable {
    public var name: String
    public var port: ServiceBackendPort

    /// Creates a service backend.
    public init(name: String, port: ServiceBackendPort) {
        self.name = name
        self.port = port
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        port = try c.decodeIfPresent(ServiceBackendPort.self, forKey: .port) ?? ServiceBackendPort()
    }
}

/// `ServiceBackendPort`: a Service port by number or by name (exactly one is set
/// in a valid object; Translate reports the others).
public struct ServiceBackendPort: Codable, Sendable, Equatable {
    public var number: Int?
    public var name: String?

    /// Creates a port reference.
    public init(number: Int? = nil, name: String? = nil) {
        self.number = number
        self.name = name
    }
}

/// `TypedLocalObjectReference` (an Ingress `resource` backend).
public struct TypedLocalObjectReference: Codable, Sendable, Equatable {
    public var apiGroup: String?
    public var kind: String
    public var name: String

    /// Creates a reference.
    public init(apiGroup: String? = nil, kind: String, name: String) {
        self.apiGroup = apiGroup
        self.kind = kind
        self.name = name
    }
}

/// `networking.k8s.io/v1` IngressClass.
public struct IngressClass: Codable, Sendable, Equatable {
    /// Annotation marking the class used by Ingresses without a class.
    public static let isDefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class"

    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var spec: IngressClassSpec
    }

    /// Shared by every copy (see `SharedFields`).
    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    public var spec: IngressClassSpec {
        get { fields.value.spec }
        _modify { yield &fields.value.spec }
    }

    /// Creates an IngressClass.
    public init(metadata: ObjectMeta, spec: IngressClassSpec = IngressClassSpec()) {
        fields = SharedFields(Fields(metadata: metadata, spec: spec))
    }

    private enum CodingKeys: String, CodingKey { case metadata, spec }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata),
            spec: try c.decodeIfPresent(IngressClassSpec.self, forKey: .spec) ?? IngressClassSpec())
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(spec, forKey: .spec)
    }

    /// True when annotated `ingressclass.kubernetes.io/is-default-class: "true"`.
    public var isDefaultClass: Bool {
        metadata.annotations[IngressClass.isDefaultClassAnnotation]?.lowercased() == "true"
    }
}

/// `IngressClassSpec`.
public struct IngressClassSpec: Codable, Sendable, Equatable {
    /// The controller that implements the class, e.g. `postern.dev/ingress-controller`.
    public var controller: String?

    /// Creates a spec.
    public init(controller: String? = nil) {
        self.controller = controller
    }
}
