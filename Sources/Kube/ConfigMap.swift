/// Core v1 ConfigMap: the controller's global settings (`--configmap`),
/// whose `data` uses the keys of `postern.yaml` (ingress-nginx's names).
public struct ConfigMap: Codable, Sendable, Equatable {
    public var metadata: ObjectMeta
    /// String values by key.
    public var data: [String: String]

    /// Creates a ConfigMap.
    public init(metadata: ObjectMeta, data: [String: String] = [:]) {
        self.metadata = metadata
        self.data = data
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        data = try c.decodeIfPresent([String: String].self, forKey: .data) ?? [:]
    }
}
