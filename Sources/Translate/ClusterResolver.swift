import Kube
import RouteModel

/// Turns Ingress backends into `Cluster`s: finds the Service and its port,
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
    /// Cluster name → cluster, plus the problems every referrer is told about.
    private var clusters: [String: (cluster: Cluster, problems: [Problem])] = [:]

    /// A problem with a backend reference, reported against each Ingress that uses it.
    struct Problem {
        var severity: Diagnostic.Severity
        var reason: String
        var message: String
    }

    init(context: TranslationContext) {
        self.context = context
    }

    /// Every cluster resolved so far, sorted by name.
    func allClusters() -> [Cluster] {
        clusters.values.map(\.cluster).sorted { $0.name < $1.name }
    }

    /// The cluster for a backend of an object in `namespace`; nil (and a
    /// diagnostic against `referrer`) when the backend itself is malformed.
    func cluster(
        for backend: IngressBackend, namespace: String, referrer: ObjectKey, field: String? = nil, upstream: UpstreamSettings = .http
    ) -> String? {
        if let service = backend.service {
            if backend.resource != nil {
                context.report(Diagnostic(.error, referrer, field: field, reason: "InvalidBackend",
                    message: "backend sets both service and resource; using service \"\(service.name)\""))
            }
            return serviceCluster(
                namespace: namespace, backend: service, referrer: referrer, field: field.map { $0 + ".service" }, upstream: upstream)
        }
        if let resource = backend.resource {
            return resourceCluster(namespace: namespace, resource: resource, referrer: referrer, field: field.map { $0 + ".resource" })
        }
        context.report(Diagnostic(.error, referrer, field: field, reason: "InvalidBackend",
            message: "backend names neither a service nor a resource"))
        return nil
    }

    private func serviceCluster(
        namespace: String, backend: IngressServiceBackend, referrer: ObjectKey, field: String?, upstream: UpstreamSettings
    ) -> String? {
        let portReference: ServicePortReference
        switch (backend.port.number, backend.port.name) {
        case let (number?, nil):
            guard (1...65535).contains(number) else {
                context.report(Diagnostic(.error, referrer, field: field.map { $0 + ".port.number" }, reason: "InvalidBackend",
                    message: "service \"\(backend.name)\" port number \(number) is outside 1-65535"))
                return nil
            }
            portReference = .number(number)
        case let (nil, name?) where !name.isEmpty:
            portReference = .name(name)
        default:
            context.report(Diagnostic(.error, referrer, field: field.map { $0 + ".port" }, reason: "InvalidBackend",
                message: "service \"\(backend.name)\" backend must set exactly one of port.number and port.name"))
            return nil
        }
        return resolve(
            namespace: namespace, service: backend.name, port: portReference, referrer: referrer, field: field, upstream: upstream)
    }

    /// The cluster for the first port of `namespace/service` (the global default backend).
    func firstPortCluster(namespace: String, service: String, referrer: ObjectKey) -> String {
        guard let object = context.servicesByKey["\(namespace)/\(service)"], let first = object.spec.ports.first else {
            let name = "\(namespace)/\(service)"
            let reason = context.servicesByKey[name] == nil
                ? "service \(name) not found" : "service \(name) has no ports"
            return register(name: name, endpoints: [], unavailableReason: reason, referrer: referrer,
                problems: [Problem(severity: .error, reason: "MissingService", message: reason)])
        }
        return resolve(namespace: namespace, service: service, port: .number(first.port), referrer: referrer)
    }

    private func resourceCluster(namespace: String, resource: TypedLocalObjectReference, referrer: ObjectKey, field: String?) -> String {
        // A Service name cannot contain "/", so this never collides with a service cluster.
        let name = "\(namespace)/resource/\(resource.kind)/\(resource.name)"
        let reason = "resource backends (\(resource.kind) \"\(resource.name)\") are not supported"
        return register(name: name, endpoints: [], unavailableReason: reason, referrer: referrer, field: field,
            problems: [Problem(severity: .error, reason: "UnsupportedBackend", message: reason)])
    }

    private enum ServicePortReference: CustomStringConvertible {
        case number(Int)
        case name(String)

        var description: String {
            switch self {
            case let .number(n): return String(n)
            case let .name(n): return n
            }
        }
    }

    private func resolve(
        namespace: String, service name: String, port: ServicePortReference, referrer: ObjectKey, field: String? = nil,
        upstream requested: UpstreamSettings = .http
    ) -> String {
        var upstream = requested
        if var tls = upstream.tls, tls.serverName.isEmpty {
            // Default SNI and verified name: the Service's cluster DNS name.
            tls.serverName = "\(name).\(namespace).svc"
            upstream.tls = tls
        }
        let clusterName = "\(namespace)/\(name):\(port)" + UpstreamAnnotations.nameSuffix(upstream)
        if let existing = clusters[clusterName] {
            reportProblems(existing.problems, referrer: referrer, field: field)
            return clusterName
        }
        func unavailable(_ reason: String, _ code: String) -> String {
            register(name: clusterName, endpoints: [], unavailableReason: reason, referrer: referrer, field: field,
                problems: [Problem(severity: .error, reason: code, message: reason)], upstream: upstream)
        }
        guard let service = context.servicesByKey["\(namespace)/\(name)"] else {
            return unavailable("service \(namespace)/\(name) not found", "MissingService")
        }
        if service.spec.type == "ExternalName" {
            return unavailable(
                "service \(namespace)/\(name) is of type ExternalName, which needs DNS; Postern does not resolve names",
                "UnsupportedBackend")
        }
        let servicePort: ServicePort?
        switch port {
        case let .number(number): servicePort = service.spec.ports.first { $0.port == number }
        case let .name(portName): servicePort = service.spec.ports.first { $0.name == portName }
        }
        guard let servicePort else {
            return unavailable("service \(namespace)/\(name) has no port \(port)", "MissingServicePort")
        }
        let endpoints = readyEndpoints(namespace: namespace, service: name, port: servicePort)
        let reason = endpoints.isEmpty ? "service \(namespace)/\(name) port \(port) has no ready endpoints" : nil
        return register(
            name: clusterName, endpoints: endpoints, unavailableReason: reason, referrer: referrer, field: field, problems: [],
            upstream: upstream)
    }

    private func register(
        name: String, endpoints: [Endpoint], unavailableReason: String?, referrer: ObjectKey, field: String? = nil,
        problems: [Problem], upstream: UpstreamSettings = .http
    ) -> String {
        if clusters[name] == nil {
            clusters[name] = (
                Cluster(name: name, endpoints: endpoints, unavailableReason: unavailableReason, upstream: upstream), problems
            )
        }
        reportProblems(problems, referrer: referrer, field: field)
        return name
    }

    private func reportProblems(_ problems: [Problem], referrer: ObjectKey, field: String?) {
        for problem in problems {
            context.report(Diagnostic(problem.severity, referrer, field: field, reason: problem.reason, message: problem.message))
        }
    }

    // MARK: Endpoints

    /// Sorted, de-duplicated ready endpoints of one Service port.
    private func readyEndpoints(namespace: String, service: String, port: ServicePort) -> [Endpoint] {
        var result = Set<Endpoint>()
        if let slices = context.slicesByService["\(namespace)/\(service)"], !slices.isEmpty {
            for slice in slices {
                collect(slice, port: port, into: &result)
            }
        } else if let endpoints = context.endpointsByKey["\(namespace)/\(service)"] {
            collect(endpoints, port: port, into: &result)
        }
        return result.sorted()
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

    private func collect(_ slice: EndpointSlice, port servicePort: ServicePort, into result: inout Set<Endpoint>) {
        let key = ObjectKey(kind: "EndpointSlice", namespace: slice.metadata.namespace, name: slice.metadata.name)
        guard slice.addressType == "IPv4" || slice.addressType == "IPv6" else {
            context.report(Diagnostic(.warning, key, reason: "UnsupportedAddressType",
                message: "addressType \(slice.addressType) is not served; only IPv4 and IPv6 addresses are used"))
            return
        }
        let wanted = servicePort.name ?? ""
        let slicePort = slice.ports?.first { ($0.name ?? "") == wanted }?.port
        guard let number = slicePort ?? ClusterResolver.numericTargetPort(servicePort) else {
            context.report(Diagnostic(.warning, key, reason: "MissingEndpointPort",
                message: "no port named \"\(wanted)\" for service port \(servicePort.port) (targetPort \(servicePort.targetPort?.description ?? "")); endpoints skipped"))
            return
        }
        guard let portNumber = UInt16(exactly: number), portNumber > 0 else {
            context.report(Diagnostic(.warning, key, reason: "InvalidEndpointPort",
                message: "port \(number) is outside 1-65535; endpoints skipped"))
            return
        }
        for endpoint in slice.endpoints {
            guard endpoint.conditions.ready != false, endpoint.conditions.terminating != true,
                  let text = endpoint.addresses.first
            else { continue }
            guard let address = IPAddress(parsing: text) else {
                context.report(Diagnostic(.warning, key, reason: "InvalidEndpointAddress",
                    message: "endpoint address \"\(text)\" is not a numeric IP address; skipped (no DNS)"))
                continue
            }
            result.insert(Endpoint(address: address, port: portNumber))
        }
    }

    private func collect(_ endpoints: Endpoints, port servicePort: ServicePort, into result: inout Set<Endpoint>) {
        let key = ObjectKey(kind: "Endpoints", namespace: endpoints.metadata.namespace, name: endpoints.metadata.name)
        let wanted = servicePort.name ?? ""
        for subset in endpoints.subsets {
            var number = subset.ports.first { ($0.name ?? "") == wanted }?.port
            if number == nil, subset.ports.count == 1, wanted.isEmpty { number = subset.ports[0].port }
            guard let number = number ?? ClusterResolver.numericTargetPort(servicePort) else {
                context.report(Diagnostic(.warning, key, reason: "MissingEndpointPort",
                    message: "no port named \"\(wanted)\" in a subset; its addresses are skipped"))
                continue
            }
            guard let portNumber = UInt16(exactly: number), portNumber > 0 else {
                context.report(Diagnostic(.warning, key, reason: "InvalidEndpointPort",
                    message: "port \(number) is outside 1-65535; subset skipped"))
                continue
            }
            // notReadyAddresses are deliberately not read.
            for address in subset.addresses {
                guard let ip = IPAddress(parsing: address.ip) else {
                    context.report(Diagnostic(.warning, key, reason: "InvalidEndpointAddress",
                        message: "address \"\(address.ip)\" is not a numeric IP address; skipped (no DNS)"))
                    continue
                }
                result.insert(Endpoint(address: ip, port: portNumber))
            }
        }
    }
}

/// Resolves `TranslateOptions.defaultBackendService` into the model's default cluster.
struct DefaultBackendProcessor {
    let context: TranslationContext
    let clusters: ClusterResolver

    /// The cluster name for `namespace/name`, or nil (with a diagnostic when malformed).
    func resolve(_ reference: String?) -> String? {
        guard let reference, !reference.isEmpty else { return nil }
        let parts = reference.split(separator: "/", omittingEmptySubsequences: false)
        let option = ObjectKey(kind: "TranslateOptions", namespace: "", name: "defaultBackendService")
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            context.report(Diagnostic(.error, option, reason: "InvalidOption",
                message: "default backend service \"\(reference)\" must be namespace/name"))
            return nil
        }
        return clusters.firstPortCluster(namespace: String(parts[0]), service: String(parts[1]), referrer: option)
    }
}
