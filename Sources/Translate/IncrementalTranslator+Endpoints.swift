import Kube
import RouteModel

/// The endpoint path's reading of endpoints (`ControllerLoop`): a served
/// cluster of a Service resolved again from the Service and its endpoint
/// objects alone, without the translator, so that an endpoint change is
/// published without waiting for a translation in progress. The translator
/// reads the same objects later and must come to the same cluster (a test
/// holds the two together).
extension IncrementalTranslator {
    /// `namespace/service` of the Service clusters are named after, and the
    /// prefix every such cluster name starts with (`namespace/service:`).
    public static func serviceClusterPrefix(serviceKey: String) -> String { serviceKey + ":" }

    /// `cluster` (a cluster of a served model, named after the Service
    /// `serviceKey`) resolved again with `service`, `slices` (that Service's
    /// EndpointSlices, sorted by name) and `endpoints` (its Endpoints).
    /// Nil when the name does not read back as a Service port of
    /// `serviceKey` with the cluster's upstream settings: then only a
    /// translation can say (the caller leaves it to the next round).
    public static func resolveEndpoints(
        of cluster: Cluster, serviceKey: String, service: Service?, slices: [EndpointSlice], endpoints: Endpoints?
    ) -> Cluster? {
        let prefix = serviceClusterPrefix(serviceKey: serviceKey)
        let suffix = UpstreamAnnotations.nameSuffix(cluster.upstream)
        guard cluster.name.hasPrefix(prefix), cluster.name.hasSuffix(suffix),
              cluster.name.utf8.count > prefix.utf8.count + suffix.utf8.count,
              let slash = serviceKey.firstIndex(of: "/")
        else { return nil }
        let portText = String(cluster.name.dropFirst(prefix.count).dropLast(suffix.count))
        // A port number reads back as a number; a name that only holds
        // digits (not a valid port name) then resolves as a number here
        // and is put right by the next translation.
        let port: ServicePortReference = Int(portText).map { .number($0) } ?? .name(portText)
        let request = ClusterRequest.service(
            namespace: String(serviceKey[..<slash]), service: String(serviceKey[serviceKey.index(after: slash)...]), port: port,
            upstream: cluster.upstream)
        guard request.name == cluster.name else { return nil }
        return ClusterResolver.resolve(request, service: service, slices: slices, endpoints: endpoints).cluster
    }
}
