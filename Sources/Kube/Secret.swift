import FoundationEssentials

/// Core v1 Secret (TLS certificates for Ingress `spec.tls`).
///
/// The fields live in one block shared by every copy (`SharedFields`).
public struct Secret: Codable, Sendable, Equatable {
    private struct Fields: Equatable, Sendable {
        var metadata: ObjectMeta
        var type: String?
        var data: [String: String]
        var stringData: [String: String]
    }

    private var fields: SharedFields<Fields>

    public var metadata: ObjectMeta {
        get { fields.value.metadata }
        _modify { yield &fields.value.metadata }
    }

    /// e.g. `kubernetes.io/tls`.
    public var type: String? {
        get { fields.value.type }
        _modify { yield &fields.value.type }
    }

    /// Base64-encoded values, as stored by Kubernetes.
    public var data: [String: String] {
        get { fields.value.data }
        _modify { yield &fields.value.data }
    }

    /// Plain-text values (write-only in the API; common in manifests).
    public var stringData: [String: String] {
        get { fields.value.stringData }
        _modify { yield &fields.value.stringData }
    }

    /// Creates a Secret.
    public init(metadata: ObjectMeta, type: String? = nil, data: [String: String] = [:], stringData: [String: String] = [:]) {
        fields = SharedFields(Fields(metadata: metadata, type: type, data: data, stringData: stringData))
    }

    private enum CodingKeys: String, CodingKey { case metadata, type, data, stringData }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            metadata: try c.decode(ObjectMeta.self, forKey: .metadata),
            type: try c.decodeIfPresent(String.self, forKey: .type),
            data: try c.decodeIfPresent([String: String].self, forKey: .data) ?? [:],
            stringData: try c.decodeIfPresent([String: String].self, forKey: .stringData) ?? [:])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(metadata, forKey: .metadata)
        try c.encodeIfPresent(type, forKey: .type)
        try c.encode(data, forKey: .data)
        try c.encode(stringData, forKey: .stringData)
    }

    /// The value of `key` as bytes: `stringData` wins over `data` (as the API
    /// server merges them); nil when absent or when `data` is not valid base64.
    public func value(forKey key: String) -> [UInt8]? {
        if let text = stringData[key] { return Array(text.utf8) }
        guard let encoded = data[key] else { return nil }
        // Manifests often wrap long base64 values; whitespace is not data.
        let compact = encoded.filter { !$0.isWhitespace }
        guard let decoded = Data(base64Encoded: compact) else { return nil }
        return Array(decoded)
    }
}
