import Kube
import RouteModel

/// What one backend reference asks for: a Service port (reached with some
/// upstream settings), an unsupported resource, or the global default
/// backend's Service when it cannot be used. The model's cluster name is
/// derived from it.
///
/// Two requests with the same `name` normally are the same request; an
/// Ingress can make them differ (a port named "80" next to port number 80),
/// and then the first one registered in age order defines the cluster, as
/// `ClusterResolver` does.
struct ClusterRequest: Hashable {
    enum Target: Hashable {
        /// A Service port; `upstream` has its TLS server name filled in.
        case service(name: String, port: ServicePortReference, upstream: UpstreamSettings)
        /// `spec...backend.resource`: not supported, always unavailable.
        case resource(kind: String, name: String)
        /// The global default backend's Service, missing or without ports.
        case missingDefault(service: String, reason: String)
    }

    /// The fields, made once per backend reference read and shared by every
    /// copy: a request is kept by its claim, by the outcome that holds a
    /// route and as the key of the live cluster and its indexes, and its
    /// fields (about 130 bytes with the upstream settings) were copied into
    /// each of those table slots (about 0.9 KB per route at 10,000 routes).
    private final class Fields: Sendable {
        let namespace: String
        let target: Target
        let name: String

        init(namespace: String, target: Target, name: String) {
            self.namespace = namespace
            self.target = target
            self.name = name
        }
    }

    private let fields: Fields

    var namespace: String { fields.namespace }
    var target: Target { fields.target }
    /// The cluster's name in the model.
    var name: String { fields.name }

    private init(namespace: String, target: Target, name: String) {
        fields = Fields(namespace: namespace, target: target, name: name)
    }

    /// A Service port; an upstream TLS server name left empty becomes the
    /// Service's cluster DNS name (the default SNI and verified name).
    static func service(namespace: String, service: String, port: ServicePortReference, upstream requested: UpstreamSettings)
        -> ClusterRequest
    {
        var upstream = requested
        if var tls = upstream.tls, tls.serverName.isEmpty {
            tls.serverName = "\(service).\(namespace).svc"
            upstream.tls = tls
        }
        let name = "\(namespace)/\(service):\(port)" + UpstreamAnnotations.nameSuffix(upstream)
        return ClusterRequest(namespace: namespace, target: .service(name: service, port: port, upstream: upstream), name: name)
    }

    static func resource(namespace: String, resource: TypedLocalObjectReference) -> ClusterRequest {
        // A Service name cannot contain "/", so this never collides with a service cluster.
        ClusterRequest(
            namespace: namespace, target: .resource(kind: resource.kind, name: resource.name),
            name: "\(namespace)/resource/\(resource.kind)/\(resource.name)")
    }

    static func missingDefault(namespace: String, service: String, reason: String) -> ClusterRequest {
        ClusterRequest(
            namespace: namespace, target: .missingDefault(service: service, reason: reason), name: "\(namespace)/\(service)")
    }

    /// The Service the request reads, with its endpoints.
    var serviceName: NamespacedName? {
        if case let .service(service, _, _) = target { return NamespacedName(namespace: namespace, name: service) }
        return nil
    }

    /// `namespace/service` when the request reads a Service and its endpoints.
    var serviceKey: String? {
        if case let .service(service, _, _) = target { return "\(namespace)/\(service)" }
        return nil
    }

    // Hashing the name is enough (equal requests have equal names) and
    // avoids hashing CA bundles.
    func hash(into hasher: inout Hasher) {
        hasher.combine(name)
    }

    static func == (lhs: ClusterRequest, rhs: ClusterRequest) -> Bool {
        lhs.fields === rhs.fields
            || (lhs.name == rhs.name && lhs.namespace == rhs.namespace && lhs.target == rhs.target)
    }
}

/// A Service port as an Ingress backend names it.
enum ServicePortReference: Hashable, CustomStringConvertible {
    case number(Int)
    case name(String)

    var description: String {
        switch self {
        case let .number(n): return String(n)
        case let .name(n): return n
        }
    }
}

/// A backend reference as written in one place of an Ingress, checked:
/// the cluster it asks for (nil when the reference is malformed and the
/// rule is not served) and what is wrong with the reference itself.
struct BackendClaim: Equatable {
    /// nil: malformed (no service and no resource, or a bad port); not served.
    var request: ClusterRequest?
    /// Field the cluster's problems are reported at (`….backend.service`).
    var field: String?
    /// Problems of the reference itself (`InvalidBackend`), reported when the
    /// claim is tried (not when an older Ingress already holds its route).
    var diagnostics: [Diagnostic]

    /// Checks `backend` of an object in `namespace`, reporting against `referrer` at `field`.
    init(_ backend: IngressBackend, namespace: String, referrer: ObjectKey, field: String?, upstream: UpstreamSettings) {
        request = nil
        self.field = field
        diagnostics = []
        if let service = backend.service {
            if backend.resource != nil {
                diagnostics.append(Diagnostic(.error, referrer, field: field, reason: "InvalidBackend",
                    message: "backend sets both service and resource; using service \"\(service.name)\""))
            }
            let serviceField = field.map { FieldPaths.shared($0 + ".service") }
            self.field = serviceField
            let port: ServicePortReference
            switch (service.port.number, service.port.name) {
            case let (number?, nil):
                guard (1...65535).contains(number) else {
                    diagnostics.append(Diagnostic(.error, referrer, field: serviceField.map { $0 + ".port.number" }, reason: "InvalidBackend",
                        message: "service \"\(service.name)\" port number \(number) is outside 1-65535"))
                    return
                }
                port = .number(number)
            case let (nil, name?) where !name.isEmpty:
                port = .name(name)
            default:
                diagnostics.append(Diagnostic(.error, referrer, field: serviceField.map { $0 + ".port" }, reason: "InvalidBackend",
                    message: "service \"\(service.name)\" backend must set exactly one of port.number and port.name"))
                return
            }
            request = .service(namespace: namespace, service: service.name, port: port, upstream: upstream)
            return
        }
        if let resource = backend.resource {
            self.field = field.map { FieldPaths.shared($0 + ".resource") }
            request = .resource(namespace: namespace, resource: resource)
            return
        }
        diagnostics.append(Diagnostic(.error, referrer, field: field, reason: "InvalidBackend",
            message: "backend names neither a service nor a resource"))
    }
}

/// The cluster a request resolves to, given the objects it reads.
struct ClusterResolution: Equatable {
    var cluster: Cluster
    /// Told to every object that uses the cluster (at its own field).
    var problems: [ClusterResolver.Problem]
    /// Problems of the EndpointSlices or Endpoints read, about those objects.
    var endpointDiagnostics: [Diagnostic]
}

/// Turns backend references into `Cluster`s: finds the Service and its port,
/// then the ready endpoints for that port.
///
/// Endpoints come from the Service's EndpointSlices (label
/// `kubernetes.io/service-name`); core Endpoints are read only when no slice
/// exists for the Service. An endpoint is used when `conditions.ready` is true
/// or unset and it is not terminating; only its first address is used (the
/// addresses of one endpoint are fungible). A backend that cannot be served
/// still gets a cluster, with no endpoints and an `unavailableReason`, so its
/// requests answer 503 instead of falling through to another route.
final class ClusterResolver {
    private let context: TranslationContext
    /// Cluster name → the first resolution registered under it.
    private var clusters: [String: ClusterResolution] = [:]

    /// A problem with a backend reference, reported against each Ingress that uses it.
    struct Problem: Equatable {
        var severity: Diagnostic.Severity
        var reason: String
        var message: String

        /// This problem as a diagnostic about `referrer`.
        func diagnostic(referrer: ObjectKey, field: String?) -> Diagnostic {
            Diagnostic(severity, referrer, field: field, reason: reason, message: message)
        }
    }

    init(context: TranslationContext) {
        self.context = context
    }

    /// Every cluster resolved so far, sorted by name.
    func allClusters() -> [Cluster] {
        clusters.values.map(\.cluster).sorted { $0.name < $1.name }
    }

    /// The cluster for a checked backend reference of `referrer`; nil (and
    /// the reference's diagnostics) when it is malformed.
    func cluster(for claim: BackendClaim, referrer: ObjectKey) -> String? {
        for diagnostic in claim.diagnostics { context.report(diagnostic) }
        guard let request = claim.request else { return nil }
        return use(request, referrer: referrer, field: claim.field)
    }

    /// The cluster for the first port of `namespace/service` (the global default backend).
    func firstPortCluster(namespace: String, service: String, referrer: ObjectKey) -> String {
        let request = ClusterResolver.firstPortRequest(
            namespace: namespace, service: service, object: context.servicesByKey["\(namespace)/\(service)"])
        return use(request, referrer: referrer, field: nil)
    }

    /// The request the global default backend makes, given its Service (nil when missing).
    static func firstPortRequest(namespace: String, service: String, object: Service?) -> ClusterRequest {
        guard let object, let first = object.spec.ports.first else {
            let name = "\(namespace)/\(service)"
            let reason = object == nil ? "service \(name) not found" : "service \(name) has no ports"
            return .missingDefault(namespace: namespace, service: service, reason: reason)
        }
        return .service(namespace: namespace, service: service, port: .number(first.port), upstream: .http)
    }

    /// Registers `request` (the first registration of a name wins) and tells
    /// `referrer` the cluster's problems.
    private func use(_ request: ClusterRequest, referrer: ObjectKey, field: String?) -> String {
        let resolution: ClusterResolution
        if let existing = clusters[request.name] {
            resolution = existing
        } else {
            let key = request.serviceKey ?? ""
            resolution = ClusterResolver.resolve(
                request, service: context.servicesByKey[key], slices: context.slicesByService[key] ?? [],
                endpoints: context.endpointsByKey[key])
            clusters[request.name] = resolution
            for diagnostic in resolution.endpointDiagnostics { context.report(diagnostic) }
        }
        for problem in resolution.problems { context.report(problem.diagnostic(referrer: referrer, field: field)) }
        return request.name
    }

    // MARK: Resolution (pure)

    /// The cluster for `request`, given the Service it names, that Service's
    /// EndpointSlices (sorted by name) and its Endpoints.
    static func resolve(_ request: ClusterRequest, service: Service?, slices: [EndpointSlice], endpoints: Endpoints?) -> ClusterResolution {
        func unavailable(_ reason: String, _ code: String, upstream: UpstreamSettings = .http) -> ClusterResolution {
            ClusterResolution(
                cluster: Cluster(name: request.name, endpoints: [], unavailableReason: reason, upstream: upstream),
                problems: [Problem(severity: .error, reason: code, message: reason)], endpointDiagnostics: [])
        }
        let namespace = request.namespace
        switch request.target {
        case let .resource(kind, name):
            return unavailable("resource backends (\(kind) \"\(name)\") are not supported", "UnsupportedBackend")
        case let .missingDefault(_, reason):
            return unavailable(reason, "MissingService")
        case let .service(name, port, upstream):
            guard let service else {
                return unavailable("service \(namespace)/\(name) not found", "MissingService", upstream: upstream)
            }
            if service.spec.type == "ExternalName" {
                return unavailable(
                    "service \(namespace)/\(name) is of type ExternalName, which needs DNS; Postern does not resolve names",
                    "UnsupportedBackend", upstream: upstream)
            }
            let servicePort: ServicePort?
            switch port {
            case let .number(number): servicePort = service.spec.ports.first { $0.port == number }
            case let .name(portName): servicePort = service.spec.ports.first { $0.name == portName }
            }
            guard let servicePort else {
                return unavailable("service \(namespace)/\(name) has no port \(port)", "MissingServicePort", upstream: upstream)
            }
            var diagnostics: [Diagnostic] = []
            let ready = readyEndpoints(slices: slices, endpoints: endpoints, port: servicePort, diagnostics: &diagnostics)
            let reason = ready.isEmpty ? "service \(namespace)/\(name) port \(port) has no ready endpoints" : nil
            return ClusterResolution(
                cluster: Cluster(name: request.name, endpoints: ready, unavailableReason: reason, upstream: upstream),
                problems: [], endpointDiagnostics: diagnostics)
        }
    }

    // MARK: Endpoints

    /// Sorted, de-duplicated ready endpoints of one Service port: from the
    /// slices when there are any, else from `endpoints`.
    private static func readyEndpoints(
        slices: [EndpointSlice], endpoints: Endpoints?, port: ServicePort, diagnostics: inout [Diagnostic]
    ) -> [Endpoint] {
        var result: [Endpoint] = []
        if !slices.isEmpty {
            for slice in slices {
                collect(slice, port: port, into: &result, diagnostics: &diagnostics)
            }
        } else if let endpoints {
            collect(endpoints, port: port, into: &result, diagnostics: &diagnostics)
        }
        result.sort()
        // Sorted, so duplicates are neighbours.
        var unique = 0
        for index in result.indices where index == 0 || result[index] != result[unique - 1] {
            result[unique] = result[index]
            unique += 1
        }
        result.removeLast(result.count - unique)
        return result
    }

    /// The port endpoints listen on when the endpoint object does not say:
    /// a numeric `targetPort`, or the Service port itself when `targetPort` is unset.
    private static func numericTargetPort(_ port: ServicePort) -> Int? {
        switch port.targetPort {
        case let .int(number)?: return number
        case nil: return port.port
        case let .string(text)?: return Int(text)
        }
    }

    private static func collect(
        _ slice: EndpointSlice, port servicePort: ServicePort, into result: inout [Endpoint], diagnostics: inout [Diagnostic]
    ) {
        let key = ObjectKey(kind: "EndpointSlice", namespace: slice.metadata.namespace, name: slice.metadata.name)
        guard slice.addressType == "IPv4" || slice.addressType == "IPv6" else {
            diagnostics.append(Diagnostic(.warning, key, reason: "UnsupportedAddressType",
                message: "addressType \(slice.addressType) is not served; only IPv4 and IPv6 addresses are used"))
            return
        }
        let wanted = servicePort.name ?? ""
        let slicePort = slice.ports?.first { ($0.name ?? "") == wanted }?.port
        guard let number = slicePort ?? numericTargetPort(servicePort) else {
            diagnostics.append(Diagnostic(.warning, key, reason: "MissingEndpointPort",
                message: "no port named \"\(wanted)\" for service port \(servicePort.port) (targetPort \(servicePort.targetPort?.description ?? "")); endpoints skipped"))
            return
        }
        guard let portNumber = UInt16(exactly: number), portNumber > 0 else {
            diagnostics.append(Diagnostic(.warning, key, reason: "InvalidEndpointPort",
                message: "port \(number) is outside 1-65535; endpoints skipped"))
            return
        }
        result.reserveCapacity(result.count + slice.endpoints.count)
        for endpoint in slice.endpoints {
            guard endpoint.conditions.ready != false, endpoint.conditions.terminating != true,
                  let text = endpoint.firstAddress
            else { continue }
            guard let address = IPAddress(parsing: text) else {
                diagnostics.append(Diagnostic(.warning, key, reason: "InvalidEndpointAddress",
                    message: "endpoint address \"\(text)\" is not a numeric IP address; skipped (no DNS)"))
                continue
            }
            result.append(Endpoint(address: address, port: portNumber))
        }
    }

    private static func collect(
        _ endpoints: Endpoints, port servicePort: ServicePort, into result: inout [Endpoint], diagnostics: inout [Diagnostic]
    ) {
        let key = ObjectKey(kind: "Endpoints", namespace: endpoints.metadata.namespace, name: endpoints.metadata.name)
        let wanted = servicePort.name ?? ""
        for subset in endpoints.subsets {
            var number = subset.ports.first { ($0.name ?? "") == wanted }?.port
            if number == nil, subset.ports.count == 1, wanted.isEmpty { number = subset.ports[0].port }
            guard let number = number ?? numericTargetPort(servicePort) else {
                diagnostics.append(Diagnostic(.warning, key, reason: "MissingEndpointPort",
                    message: "no port named \"\(wanted)\" in a subset; its addresses are skipped"))
                continue
            }
            guard let portNumber = UInt16(exactly: number), portNumber > 0 else {
                diagnostics.append(Diagnostic(.warning, key, reason: "InvalidEndpointPort",
                    message: "port \(number) is outside 1-65535; subset skipped"))
                continue
            }
            // notReadyAddresses are deliberately not read.
            for address in subset.addresses {
                guard let ip = IPAddress(parsing: address.ip) else {
                    diagnostics.append(Diagnostic(.warning, key, reason: "InvalidEndpointAddress",
                        message: "address \"\(address.ip)\" is not a numeric IP address; skipped (no DNS)"))
                    continue
                }
                result.append(Endpoint(address: ip, port: portNumber))
            }
        }
    }
}

/// Resolves `TranslateOptions.defaultBackendService` into the model's default cluster.
struct DefaultBackendProcessor {
    let context: TranslationContext
    let clusters: ClusterResolver

    /// Where diagnostics about the option are reported.
    static let option = ObjectKey(kind: "TranslateOptions", namespace: "", name: "defaultBackendService")

    /// The option, read.
    enum Reference {
        case service(namespace: String, name: String)
        /// Not `namespace/name`.
        case malformed(Diagnostic)
    }

    /// The option read; nil when unset.
    static func parse(_ reference: String?) -> Reference? {
        guard let reference, !reference.isEmpty else { return nil }
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .malformed(Diagnostic(.error, option, reason: "InvalidOption",
                message: "default backend service \"\(reference)\" must be namespace/name"))
        }
        return .service(namespace: String(parts[0]), name: String(parts[1]))
    }

    /// The cluster name for `namespace/name`, or nil (with a diagnostic when malformed).
    func resolve(_ reference: String?) -> String? {
        switch DefaultBackendProcessor.parse(reference) {
        case nil:
            return nil
        case let .malformed(diagnostic)?:
            context.report(diagnostic)
            return nil
        case let .service(namespace, name)?:
            return clusters.firstPortCluster(namespace: namespace, service: name, referrer: DefaultBackendProcessor.option)
        }
    }
}
