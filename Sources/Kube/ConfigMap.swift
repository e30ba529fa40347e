/// Core v1 ConfigMap: the controller's global settings (`--configmap`),
/// whose `data` uses the keys of `postern.yaml` (ingress-nginx's names).
///
/// The fields live in one block shared by every copy (`SharedFields`).
public struct ConfigMap: Codable, Sendable, Equatable {
    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var data: [String: String]
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    /// String values by key.
    public var data: [String: String] {
        get { fields.value.data }
        _modify { yield &fields.value.data }
    }

    /// Creates a ConfigMap.
    public init(metadata: ObjectMeta, data: [String: String] = [:]) {
        fields = SharedFields(Fields(metadata: metadata, data: data))
    }

    private enum CodingKeys: String, CodingKey { case metadata, data }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata),
            data: try c.decodeIfPresent([String: String].self, forKey: .data) ?? [:])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(data, forKey: .data)
    }
}
