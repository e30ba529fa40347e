/// One Kubernetes object of a kind Postern reads, decoded by `apiVersion` + `kind`.
///
/// Objects of other kinds decode to `.unsupported` instead of failing, so a
/// manifest directory may hold Deployments next to Ingresses.
public enum KubeObject: Decodable, Sendable, Equatable {
    case ingress(Ingress)
    case ingressClass(IngressClass)
    case service(Service)
    case endpointSlice(EndpointSlice)
    case endpoints(Endpoints)
    case secret(Secret)
    case configMap(ConfigMap)
    /// A kind (or an API version of a kind) Postern does not read.
    /// (Indirect: its four strings would otherwise make every case, and
    /// every table slot holding an object, that large.)
    indirect case unsupported(UnsupportedObject)

    private enum TypeKeys: String, CodingKey {
        case apiVersion, kind, metadata
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: TypeKeys.self)
        let apiVersion = try c.decode(String.self, forKey: .apiVersion)
        let kind = try c.decode(String.self, forKey: .kind)
        switch (apiVersion, kind) {
        case ("networking.k8s.io/v1", "Ingress"): self = .ingress(try Ingress(from: decoder))
        case ("networking.k8s.io/v1", "IngressClass"): self = .ingressClass(try IngressClass(from: decoder))
        case ("v1", "Service"): self = .service(try Service(from: decoder))
        case ("discovery.k8s.io/v1", "EndpointSlice"): self = .endpointSlice(try EndpointSlice(from: decoder))
        case ("v1", "Endpoints"): self = .endpoints(try Endpoints(from: decoder))
        case ("v1", "Secret"): self = .secret(try Secret(from: decoder))
        case ("v1", "ConfigMap"): self = .configMap(try ConfigMap(from: decoder))
        default:
            let metadata = try? c.decodeIfPresent(ObjectMeta.self, forKey: .metadata)
            self = .unsupported(UnsupportedObject(
                apiVersion: apiVersion, kind: kind, name: metadata?.name, namespace: metadata?.namespace))
        }
    }

    /// The object's kind as written in manifests (`Ingress`, `Service`, ...).
    public var kind: String {
        switch self {
        case .ingress: return "Ingress"
        case .ingressClass: return "IngressClass"
        case .service: return "Service"
        case .endpointSlice: return "EndpointSlice"
        case .endpoints: return "Endpoints"
        case .secret: return "Secret"
        case .configMap: return "ConfigMap"
        case let .unsupported(object): return object.kind
        }
    }

    /// Metadata of a supported object; nil for `.unsupported`.
    public var metadata: ObjectMeta? {
        switch self {
        case let .ingress(o): return o.metadata
        case let .ingressClass(o): return o.metadata
        case let .service(o): return o.metadata
        case let .endpointSlice(o): return o.metadata
        case let .endpoints(o): return o.metadata
        case let .secret(o): return o.metadata
        case let .configMap(o): return o.metadata
        case .unsupported: return nil
        }
    }

    /// Identity of the object (kind, namespace, name).
    public var key: ObjectKey {
        switch self {
        case let .unsupported(o):
            return ObjectKey(kind: o.kind, namespace: o.namespace ?? "default", name: o.name ?? "")
        default:
            let meta = metadata
            return ObjectKey(kind: kind, namespace: meta?.namespace ?? "default", name: meta?.name ?? "")
        }
    }
}

/// An object whose `apiVersion`/`kind` Postern does not read.
public struct UnsupportedObject: Sendable, Equatable {
    public var apiVersion: String
    public var kind: String
    public var name: String?
    public var namespace: String?

    /// Creates a description of an unsupported object.
    public init(apiVersion: String, kind: String, name: String? = nil, namespace: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.namespace = namespace
    }
}

/// Identity of an object: kind, namespace and name.
public struct ObjectKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var kind: String
    public var namespace: String
    public var name: String

    /// Creates a key.
    public init(kind: String, namespace: String, name: String) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.kind, lhs.namespace, lhs.name) < (rhs.kind, rhs.namespace, rhs.name)
    }

    /// `Kind namespace/name`.
    public var description: String { "\(kind) \(namespace)/\(name)" }
}

/// A consistent view of every object Translate needs, taken at one moment.
public struct ObjectSnapshot: Sendable, Equatable {
    public var ingresses: [Ingress]
    public var ingressClasses: [IngressClass]
    public var services: [Service]
    public var endpointSlices: [EndpointSlice]
    public var endpoints: [Endpoints]
    public var secrets: [Secret]
    /// ConfigMaps (the `--configmap` one; Translate does not read them).
    public var configMaps: [ConfigMap] = []

    /// Creates a snapshot from arrays of each kind.
    public init(
        ingresses: [Ingress] = [], ingressClasses: [IngressClass] = [], services: [Service] = [],
        endpointSlices: [EndpointSlice] = [], endpoints: [Endpoints] = [], secrets: [Secret] = []
    ) {
        self.ingresses = ingresses
        self.ingressClasses = ingressClasses
        self.services = services
        self.endpointSlices = endpointSlices
        self.endpoints = endpoints
        self.secrets = secrets
    }

    /// Sorts objects into a snapshot by kind; `.unsupported` objects are dropped.
    public init<S: Sequence>(objects: S) where S.Element == KubeObject {
        self.init()
        for object in objects {
            switch object {
            case let .ingress(o): ingresses.append(o)
            case let .ingressClass(o): ingressClasses.append(o)
            case let .service(o): services.append(o)
            case let .endpointSlice(o): endpointSlices.append(o)
            case let .endpoints(o): endpoints.append(o)
            case let .secret(o): secrets.append(o)
            case let .configMap(o): configMaps.append(o)
            case .unsupported: break
            }
        }
    }
}

/// Turns a `DecodingError` into one line that names the field path, e.g.
/// `spec.rules[0].http.paths[1].backend: required field "service.name" is missing`.
public enum DecodingErrorDescription {
    /// One line for an operator: field path, then what was wrong.
    public static func describe(_ error: Error) -> String {
        guard let error = error as? DecodingError else { return String(describing: error) }
        switch error {
        case let .typeMismatch(type, context):
            return "\(path(context.codingPath)): expected \(typeName(type))\(detail(context))"
        case let .valueNotFound(type, context):
            return "\(path(context.codingPath)): expected \(typeName(type)), found null"
        case let .keyNotFound(key, context):
            return "\(path(context.codingPath + [key])): required field is missing"
        case let .dataCorrupted(context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return String(describing: error)
        }
    }

    /// `spec.rules[0].host`; `(document)` for the root.
    public static func path(_ codingPath: [CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                if !text.isEmpty { text += "." }
                text += key.stringValue
            }
        }
        return text.isEmpty ? "(document)" : text
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int32.Type, is Int64.Type: return "an integer"
        case is Bool.Type: return "a boolean"
        case is IntOrString.Type: return "an integer or a string"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a mapping" }
            return "a mapping (\(name))"
        }
    }

    private static func detail(_ context: DecodingError.Context) -> String {
        context.debugDescription.isEmpty ? "" : " (\(context.debugDescription))"
    }
}
