import FoundationEssentials

/// Core v1 Secret (TLS certificates for Ingress `spec.tls`).
public struct Secret: Codable, Sendable, Equatable {
    public var metadata: ObjectMeta
    /// e.g. `kubernetes.io/tls`.
    public var type: String?
    /// Base64-encoded values, as stored by Kubernetes.
    public var data: [String: String]
    /// Plain-text values (write-only in the API; common in manifests).
    public var stringData: [String: String]

    /// Creates a Secret.
    public init(metadata: ObjectMeta, type: String? = nil, data: [String: String] = [:], stringData: [String: String] = [:]) {
        self.metadata = metadata
        self.type = type
        self.data = data
        self.stringData = stringData
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        metadata = try c.decode(ObjectMeta.self, forKey: .metadata)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        data = try c.decodeIfPresent([String: String].self, forKey: .data) ?? [:]
        stringData = try c.decodeIfPresent([String: String].self, forKey: .stringData) ?? [:]
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
