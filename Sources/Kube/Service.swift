/// Core v1 Service: the fields Postern reads.
///
/// The fields live in one block shared by every copy (`SharedFields`).
public struct Service: Codable, Sendable, Equatable {
    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var spec: ServiceSpec
        var status: LoadBalancerStatus
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    public var spec: ServiceSpec {
        get { fields.value.spec }
        _modify { yield &fields.value.spec }
    }

    /// `status.loadBalancer` (the addresses a cloud load balancer got).
    public var status: LoadBalancerStatus {
        get { fields.value.status }
        _modify { yield &fields.value.status }
    }

    /// Creates a Service.
    public init(metadata: ObjectMeta, spec: ServiceSpec = ServiceSpec(), status: LoadBalancerStatus = LoadBalancerStatus()) {
        fields = SharedFields(Fields(metadata: metadata, spec: spec, status: status))
    }

    private enum CodingKeys: String, CodingKey { case metadata, spec, status }
    private enum StatusKeys: String, CodingKey { case loadBalancer }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        let spec = try c.decodeIfPresent(ServiceSpec.self, forKey: .spec) ?? ServiceSpec()
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

    /// The addresses to publish for this Service: its load balancer's, else its external IPs.
    public var publishedAddresses: [LoadBalancerIngress] {
        if !status.ingress.isEmpty { return status.ingress }
        return spec.externalIPs.map { LoadBalancerIngress(ip: $0) }
    }
}

/// `ServiceSpec`.
public struct ServiceSpec: Codable, Sendable, Equatable {
    /// `ClusterIP` (the default), `NodePort`, `LoadBalancer` or `ExternalName`.
    public var type: String?
    public var clusterIP: String?
    public var ports: [ServicePort]
    /// `spec.externalIPs` (used for Ingress status with `--publish-service`).
    public var externalIPs: [String] = []

    /// Creates a spec.
    public init(type: String? = nil, clusterIP: String? = nil, ports: [ServicePort] = []) {
        self.type = type
        self.clusterIP = clusterIP
        self.ports = ports
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        clusterIP = try c.decodeIfPresent(String.self, forKey: .clusterIP)
        ports = try c.decodeIfPresent([ServicePort].self, forKey: .ports) ?? []
        externalIPs = try c.decodeIfPresent([String].self, forKey: .externalIPs) ?? []
    }
}

/// `ServicePort`.
public struct ServicePort: Codable, Sendable, Equatable {
    /// Required when the Service has more than one port.
    public var name: String?
    /// The Service's port.
    public var port: Int
    /// The Pod port, by number or by container port name; absent means `port`.
    public var targetPort: IntOrString?
    /// `TCP` (the default), `UDP` or `SCTP`.
    public var `protocol`: String?

    /// Creates a port.
    public init(name: String? = nil, port: Int, targetPort: IntOrString? = nil, protocol: String? = nil) {
        self.name = name
        self.port = port
        self.targetPort = targetPort
        self.protocol = `protocol`
    }
}

/// `discovery.k8s.io/v1` EndpointSlice.
///
/// The fields live in one block shared by every copy (`SharedFields`).
public struct EndpointSlice: Codable, Sendable, Equatable {
    /// Label naming the Service a slice belongs to.
    public static let serviceNameLabel = "kubernetes.io/service-name"

    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var addressType: String
        var endpoints: [EndpointSliceEndpoint]
        var ports: [EndpointSlicePort]?
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    /// `IPv4`, `IPv6` or `FQDN`.
    public var addressType: String {
        get { fields.value.addressType }
        _modify { yield &fields.value.addressType }
    }

    public var endpoints: [EndpointSliceEndpoint] {
        get { fields.value.endpoints }
        _modify { yield &fields.value.endpoints }
    }

    /// nil: the slice does not restrict ports.
    public var ports: [EndpointSlicePort]? {
        get { fields.value.ports }
        _modify { yield &fields.value.ports }
    }

    /// Creates a slice.
    public init(
        metadata: ObjectMeta, addressType: String, endpoints: [EndpointSliceEndpoint] = [],
        ports: [EndpointSlicePort]? = nil
    ) {
        fields = SharedFields(Fields(metadata: metadata, addressType: addressType, endpoints: endpoints, ports: ports))
    }

    private enum CodingKeys: String, CodingKey { case metadata, addressType, endpoints, ports }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata),
            addressType: try c.decode(String.self, forKey: .addressType),
            endpoints: try c.decodeIfPresent([EndpointSliceEndpoint].self, forKey: .endpoints) ?? [],
            ports: try c.decodeIfPresent([EndpointSlicePort].self, forKey: .ports))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(addressType, forKey: .addressType)
        try c.encode(endpoints, forKey: .endpoints)
        try c.encodeIfPresent(ports, forKey: .ports)
    }

    /// The owning Service's name (the `kubernetes.io/service-name` label).
    public var serviceName: String? {
        metadata.labels[EndpointSlice.serviceNameLabel]
    }
}

/// One endpoint (usually a Pod) of an EndpointSlice.
///
/// Kept small, for the endpoints of every slice are held: one address (the
/// usual case) is stored without an array of its own, and `hostname` and
/// `nodeName` (which Postern does not read, and trims) in one optional
/// block. 32 bytes and no heap block of its own, against 48 bytes and a
/// 48-byte array.
public struct EndpointSliceEndpoint: Codable, Sendable, Equatable {
    /// Fungible addresses of one endpoint; consumers use the first.
    public var addresses: [String] {
        get {
            switch storedAddresses {
            case let .one(address): return [address]
            case let .list(addresses): return addresses
            }
        }
        set { storedAddresses = StoredAddresses(newValue) }
    }
    public var conditions: EndpointConditions
    public var hostname: String? {
        get { names?.hostname }
        set { names = Names.make(hostname: newValue, nodeName: nodeName) }
    }
    public var nodeName: String? {
        get { names?.nodeName }
        set { names = Names.make(hostname: hostname, nodeName: newValue) }
    }

    /// One address inline, any other number in an array; each list has
    /// one form, so equal lists store equally.
    private enum StoredAddresses: Sendable, Equatable {
        case one(String)
        case list([String])

        init(_ addresses: [String]) {
            self = addresses.count == 1 ? .one(addresses[0]) : .list(addresses)
        }
    }

    private final class Names: Sendable, Equatable {
        let hostname: String?
        let nodeName: String?

        private init(hostname: String?, nodeName: String?) {
            self.hostname = hostname
            self.nodeName = nodeName
        }

        /// nil when both are.
        static func make(hostname: String?, nodeName: String?) -> Names? {
            hostname == nil && nodeName == nil ? nil : Names(hostname: hostname, nodeName: nodeName)
        }

        static func == (lhs: Names, rhs: Names) -> Bool {
            lhs.hostname == rhs.hostname && lhs.nodeName == rhs.nodeName
        }
    }

    private var storedAddresses: StoredAddresses
    private var names: Names?

    /// The first address without making the array.
    public var firstAddress: String? {
        switch storedAddresses {
        case let .one(address): return address
        case let .list(addresses): return addresses.first
        }
    }

    /// Creates an endpoint.
    public init(
        addresses: [String], conditions: EndpointConditions = EndpointConditions(),
        hostname: String? = nil, nodeName: String? = nil
    ) {
        storedAddresses = StoredAddresses(addresses)
        self.conditions = conditions
        names = Names.make(hostname: hostname, nodeName: nodeName)
    }

    private enum CodingKeys: String, CodingKey { case addresses, conditions, hostname, nodeName }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            addresses: try c.decodeIfPresent([String].self, forKey: .addresses) ?? [],
            conditions: try c.decodeIfPresent(EndpointConditions.self, forKey: .conditions) ?? EndpointConditions(),
            hostname: try c.decodeIfPresent(String.self, forKey: .hostname),
            nodeName: try c.decodeIfPresent(String.self, forKey: .nodeName))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(addresses, forKey: .addresses)
        try c.encode(conditions, forKey: .conditions)
        try c.encodeIfPresent(hostname, forKey: .hostname)
        try c.encodeIfPresent(nodeName, forKey: .nodeName)
    }
}

/// `EndpointConditions`; nil means unknown (Kubernetes: treat `ready` nil as ready).
public struct EndpointConditions: Codable, Sendable, Equatable {
    public var ready: Bool?
    public var serving: Bool?
    public var terminating: Bool?

    /// Creates conditions.
    public init(ready: Bool? = nil, serving: Bool? = nil, terminating: Bool? = nil) {
        self.ready = ready
        self.serving = serving
        self.terminating = terminating
    }
}

/// `EndpointPort` of an EndpointSlice.
public struct EndpointSlicePort: Codable, Sendable, Equatable {
    /// Matches the Service port's name ("" or nil for an unnamed port).
    public var name: String?
    /// nil: all ports.
    public var port: Int?
    public var `protocol`: String?

    /// Creates a port.
    public init(name: String? = nil, port: Int? = nil, protocol: String? = nil) {
        self.name = name
        self.port = port
        self.protocol = `protocol`
    }
}

/// Core v1 Endpoints (the pre-EndpointSlice API), used when a Service has no slices.
///
/// The fields live in one block shared by every copy (`SharedFields`).
public struct Endpoints: Codable, Sendable, Equatable {
    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var subsets: [EndpointSubset]
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    public var subsets: [EndpointSubset] {
        get { fields.value.subsets }
        _modify { yield &fields.value.subsets }
    }

    /// Creates Endpoints.
    public init(metadata: ObjectMeta, subsets: [EndpointSubset] = []) {
        fields = SharedFields(Fields(metadata: metadata, subsets: subsets))
    }

    private enum CodingKeys: String, CodingKey { case metadata, subsets }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata),
            subsets: try c.decodeIfPresent([EndpointSubset].self, forKey: .subsets) ?? [])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(subsets, forKey: .subsets)
    }
}

/// `EndpointSubset`: addresses that share a set of ports.
public struct EndpointSubset: Codable, Sendable, Equatable {
    public var addresses: [EndpointAddress]
    public var notReadyAddresses: [EndpointAddress]
    public var ports: [EndpointPort]

    /// Creates a subset.
    public init(addresses: [EndpointAddress] = [], notReadyAddresses: [EndpointAddress] = [], ports: [EndpointPort] = []) {
        self.addresses = addresses
        self.notReadyAddresses = notReadyAddresses
        self.ports = ports
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addresses = try c.decodeIfPresent([EndpointAddress].self, forKey: .addresses) ?? []
        notReadyAddresses = try c.decodeIfPresent([EndpointAddress].self, forKey: .notReadyAddresses) ?? []
        ports = try c.decodeIfPresent([EndpointPort].self, forKey: .ports) ?? []
    }
}

/// `EndpointAddress`.
public struct EndpointAddress: Codable, Sendable, Equatable {
    public var ip: String
    public var hostname: String?

    /// Creates an address.
    public init(ip: String, hostname: String? = nil) {
        self.ip = ip
        self.hostname = hostname
    }
}

/// `EndpointPort` of core Endpoints.
public struct EndpointPort: Codable, Sendable, Equatable {
    public var name: String?
    public var port: Int
    public var `protocol`: String?

    /// Creates a port.
    public init(name: String? = nil, port: Int, protocol: String? = nil) {
        self.name = name
        self.port = port
        self.protocol = `protocol`
    }
}
