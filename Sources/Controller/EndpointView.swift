import Kube
import RouteModel
import Translate

/// The endpoint objects as the endpoint path has read them (EndpointSlices
/// by Service, Endpoints), apart from the translator: the endpoint path
/// resolves the clusters of a changed Service from this view and the
/// Service in the store, without waiting for a translation in progress.
/// Services are `namespace/name`, as the translator keys them.
struct EndpointView {
    /// Slices of each Service, sorted by name (the order the translator reads them in).
    private(set) var slicesByService: [String: [EndpointSlice]] = [:]
    /// Every slice held → its Service (nil: no service label).
    private var serviceOfSlice: [ObjectKey: String?] = [:]
    private(set) var endpointsByService: [String: Endpoints] = [:]

    init() {}

    /// A view of `objects` (those of other kinds are ignored).
    init<Objects: Sequence>(_ objects: Objects) where Objects.Element == KubeObject {
        for object in objects { _ = apply(object) }
    }

    /// Takes an added or changed object; returns the Services whose
    /// endpoints it may change (two when a slice moved to another Service).
    mutating func apply(_ object: KubeObject) -> [String] {
        switch object {
        case let .endpointSlice(slice):
            let key = object.key
            var touched = remove(key).map { [$0] } ?? []
            let service = slice.serviceName.map { "\(slice.metadata.namespace)/\($0)" }
            serviceOfSlice[key] = .some(service)
            guard let service else { return touched }
            var list = slicesByService[service, default: []]
            let name = slice.metadata.name
            var low = 0, high = list.count
            while low < high {
                let middle = (low + high) / 2
                if list[middle].metadata.name < name { low = middle + 1 } else { high = middle }
            }
            list.insert(slice, at: low)
            slicesByService[service] = list
            if !touched.contains(service) { touched.append(service) }
            return touched
        case let .endpoints(endpoints):
            let service = "\(endpoints.metadata.namespace)/\(endpoints.metadata.name)"
            endpointsByService[service] = endpoints
            return [service]
        default:
            return []
        }
    }

    /// Drops an object; returns the Service whose endpoints it may change.
    mutating func remove(_ key: ObjectKey) -> String? {
        let service = "\(key.namespace)/\(key.name)"
        switch key.kind {
        case WatchedKind.endpointSlice.rawValue:
            guard let owner = serviceOfSlice.removeValue(forKey: key) else { return nil }
            guard let owner else { return nil }
            slicesByService[owner]?.removeAll { $0.metadata.name == key.name }
            if slicesByService[owner]?.isEmpty == true { slicesByService[owner] = nil }
            return owner
        case "Endpoints":
            return endpointsByService.removeValue(forKey: service) != nil ? service : nil
        default:
            return nil
        }
    }

    /// Rebuilds, at their size, the tables that grew for many objects and
    /// now hold few: a Swift dictionary keeps its capacity after removals,
    /// so after a bulk delete its room would stay allocated. Linear in what
    /// is left, and only once the tables are three-quarters empty.
    mutating func compactIfSparse() {
        Self.compact(&slicesByService)
        Self.compact(&serviceOfSlice)
        Self.compact(&endpointsByService)
    }

    private static func compact<Key: Hashable, Value>(_ table: inout [Key: Value]) {
        guard table.capacity >= 1024, table.count < table.capacity / 4 else { return }
        var smaller = [Key: Value](minimumCapacity: table.count)
        for (key, value) in table { smaller[key] = value }
        table = smaller
    }

    /// The clusters of `model` named after the Service `service` resolved
    /// again from this view and `object` (the Service, nil when absent),
    /// those that differ from the model's. A cluster whose name does not
    /// read back is left to the next translation.
    func changedClusters(of service: String, object: Service?, in model: RouteModel) -> [Cluster] {
        let prefix = IncrementalTranslator.serviceClusterPrefix(serviceKey: service)
        // Translate sorts clusters by name: a Service's clusters are neighbours.
        var low = 0, high = model.clusters.count
        while low < high {
            let middle = (low + high) / 2
            if model.clusters[middle].name < prefix { low = middle + 1 } else { high = middle }
        }
        var changed: [Cluster] = []
        var index = low
        while index < model.clusters.count, model.clusters[index].name.hasPrefix(prefix) {
            let cluster = model.clusters[index]
            index += 1
            guard let resolved = IncrementalTranslator.resolveEndpoints(
                of: cluster, serviceKey: service, service: object, slices: slicesByService[service] ?? [],
                endpoints: endpointsByService[service]),
                resolved != cluster
            else { continue }
            changed.append(resolved)
        }
        return changed
    }
}
