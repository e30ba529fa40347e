import FoundationEssentials

/// A kind Postern lists and watches, with its exact API path.
public enum WatchedKind: String, Sendable, CaseIterable, Hashable {
    case ingress = "Ingress"
    case ingressClass = "IngressClass"
    case service = "Service"
    case endpointSlice = "EndpointSlice"
    case secret = "Secret"
    case configMap = "ConfigMap"

    /// `/apis/networking.k8s.io/v1` or `/api/v1`.
    public var groupVersionPath: String {
        switch self {
        case .ingress, .ingressClass: return "/apis/networking.k8s.io/v1"
        case .service, .secret, .configMap: return "/api/v1"
        case .endpointSlice: return "/apis/discovery.k8s.io/v1"
        }
    }

    /// Lower-case plural resource name.
    public var resource: String {
        switch self {
        case .ingress: return "ingresses"
        case .ingressClass: return "ingressclasses"
        case .service: return "services"
        case .endpointSlice: return "endpointslices"
        case .secret: return "secrets"
        case .configMap: return "configmaps"
        }
    }

    /// Whether the kind lives in namespaces (IngressClass does not).
    public var isNamespaced: Bool { self != .ingressClass }

    /// The collection path, cluster-wide (`namespace == nil`) or in one namespace.
    public func collectionPath(namespace: String?) -> String {
        if let namespace, isNamespaced { return "\(groupVersionPath)/namespaces/\(namespace)/\(resource)" }
        return "\(groupVersionPath)/\(resource)"
    }

    /// Decodes one object of this kind (list items carry no `kind`/`apiVersion`).
    func decodeObject(_ decoder: Decoder) throws -> KubeObject {
        switch self {
        case .ingress: return .ingress(try Ingress(from: decoder))
        case .ingressClass: return .ingressClass(try IngressClass(from: decoder))
        case .service: return .service(try Service(from: decoder))
        case .endpointSlice: return .endpointSlice(try EndpointSlice(from: decoder))
        case .secret: return .secret(try Secret(from: decoder))
        case .configMap: return .configMap(try ConfigMap(from: decoder))
        }
    }
}

/// One list/watch stream: a kind, optionally one namespace, optionally a field selector.
public struct WatchedResource: Sendable, Hashable, CustomStringConvertible {
    public var kind: WatchedKind
    public var namespace: String?
    public var fieldSelector: String?

    public init(kind: WatchedKind, namespace: String? = nil, fieldSelector: String? = nil) {
        self.kind = kind
        self.namespace = kind.isNamespaced ? namespace : nil
        self.fieldSelector = fieldSelector
    }

    public var path: String { kind.collectionPath(namespace: namespace) }

    public var description: String {
        var text = kind.resource
        if let namespace { text += " in \(namespace)" }
        if let fieldSelector { text += " (\(fieldSelector))" }
        return text
    }

    /// The resources Postern watches: every kind, in each namespace (or
    /// cluster-wide), TLS Secrets only (selected by the API server).
    public static func all(namespaces: [String]) -> [WatchedResource] {
        var result: [WatchedResource] = [WatchedResource(kind: .ingressClass)]
        let scopes: [String?] = namespaces.isEmpty ? [nil] : namespaces.map { Optional($0) }
        for scope in scopes {
            result.append(WatchedResource(kind: .ingress, namespace: scope))
            result.append(WatchedResource(kind: .service, namespace: scope))
            result.append(WatchedResource(kind: .endpointSlice, namespace: scope))
            result.append(WatchedResource(kind: .secret, namespace: scope, fieldSelector: "type=kubernetes.io/tls"))
        }
        return result
    }
}

/// A decoded list page.
struct ListPage {
    var objects: [KubeObject]
    var failures: [(key: String, reason: String)]
    var resourceVersion: String
    var continueToken: String?
}

/// A decoded watch event.
public enum WatchEvent: Sendable {
    case added(KubeObject)
    case modified(KubeObject)
    case deleted(KubeObject)
    /// Progress notification: only the resourceVersion is meaningful.
    case bookmark(resourceVersion: String)
    /// A `Status` sent by the server; code 410 means the resourceVersion is too old.
    case error(KubeStatus)
}

/// Decoding of list pages and watch events with per-kind item types.
enum KubeWire {
    private struct ListEnvelope: Decodable {
        struct Meta: Decodable {
            var resourceVersion: String?
            var `continue`: String?
        }
        var metadata: Meta?
        var items: [Item]?
    }

    private static let kindKey = CodingUserInfoKey(rawValue: "postern.kind")!

    /// One list item decoded leniently: a bad item is reported, not fatal to the page.
    private struct Item: Decodable {
        var result: Result<KubeObject, Error>
        var key: String

        private struct Meta: Decodable {
            struct Fields: Decodable {
                var name: String?
                var namespace: String?
            }
            var metadata: Fields?
        }

        init(from decoder: Decoder) throws {
            guard let kind = decoder.userInfo[KubeWire.kindKey] as? WatchedKind else {
                throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no kind"))
            }
            let meta = try? Meta(from: decoder)
            key = "\(kind.rawValue) \(meta?.metadata?.namespace ?? "")/\(meta?.metadata?.name ?? "?")"
            do {
                result = .success(try kind.decodeObject(decoder))
            } catch {
                result = .failure(error)
            }
        }
    }

    static func decodeList(_ body: [UInt8], kind: WatchedKind) throws -> ListPage {
        let decoder = JSONDecoder()
        decoder.userInfo[kindKey] = kind
        let envelope: ListEnvelope
        do {
            envelope = try decoder.decode(ListEnvelope.self, from: Data(body))
        } catch {
            throw KubeAPIError.malformed("\(kind.rawValue) list: \(DecodingErrorDescription.describe(error))")
        }
        guard let resourceVersion = envelope.metadata?.resourceVersion, !resourceVersion.isEmpty else {
            throw KubeAPIError.malformed("\(kind.rawValue) list has no metadata.resourceVersion")
        }
        var objects: [KubeObject] = []
        var failures: [(String, String)] = []
        for item in envelope.items ?? [] {
            switch item.result {
            case let .success(object): objects.append(object)
            case let .failure(error): failures.append((item.key, DecodingErrorDescription.describe(error)))
            }
        }
        let token = envelope.metadata?.continue
        return ListPage(objects: objects, failures: failures, resourceVersion: resourceVersion,
                        continueToken: (token?.isEmpty ?? true) ? nil : token)
    }

    private struct EventType: Decodable {
        var type: String
    }

    private struct EventObject: Decodable {
        var object: Item
    }

    private struct BookmarkEvent: Decodable {
        struct Object: Decodable {
            struct Meta: Decodable { var resourceVersion: String? }
            var metadata: Meta?
        }
        var object: Object
    }

    private struct ErrorEvent: Decodable {
        var object: KubeStatus
    }

    /// Decodes one watch line. A malformed object in ADDED/MODIFIED/DELETED
    /// throws `KubeAPIError.malformed` naming the object.
    static func decodeEvent(_ line: [UInt8], kind: WatchedKind) throws -> WatchEvent {
        let data = Data(line)
        let decoder = JSONDecoder()
        decoder.userInfo[kindKey] = kind
        guard let type = try? decoder.decode(EventType.self, from: data).type else {
            throw KubeAPIError.malformed("watch event without a type")
        }
        switch type {
        case "ADDED", "MODIFIED", "DELETED":
            let event: EventObject
            do {
                event = try decoder.decode(EventObject.self, from: data)
            } catch {
                throw KubeAPIError.malformed("watch event: \(DecodingErrorDescription.describe(error))")
            }
            switch event.object.result {
            case let .success(object):
                return type == "ADDED" ? .added(object) : type == "MODIFIED" ? .modified(object) : .deleted(object)
            case let .failure(error):
                throw KubeAPIError.malformed("\(event.object.key): \(DecodingErrorDescription.describe(error))")
            }
        case "BOOKMARK":
            guard let version = try? decoder.decode(BookmarkEvent.self, from: data).object.metadata?.resourceVersion else {
                throw KubeAPIError.malformed("BOOKMARK event without metadata.resourceVersion")
            }
            return .bookmark(resourceVersion: version)
        case "ERROR":
            guard let status = try? decoder.decode(ErrorEvent.self, from: data).object else {
                throw KubeAPIError.malformed("ERROR event without a Status object")
            }
            return .error(status)
        default:
            throw KubeAPIError.malformed("unknown watch event type \"\(type)\"")
        }
    }
}
