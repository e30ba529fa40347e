/// Kubernetes `intstr.IntOrString`: a port number or a port name.
public enum IntOrString: Codable, Sendable, Hashable, CustomStringConvertible {
    case int(Int)
    case string(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let value = try? c.decode(Int.self) {
            self = .int(value)
        } else if let value = try? c.decode(String.self) {
            self = .string(value)
        } else {
            throw DecodingError.typeMismatch(
                IntOrString.self,
                .init(codingPath: decoder.codingPath, debugDescription: "expected an integer or a string"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .int(value): try c.encode(value)
        case let .string(value): try c.encode(value)
        }
    }

    /// The number or the name as written.
    public var description: String {
        switch self {
        case let .int(value): return String(value)
        case let .string(value): return value
        }
    }
}
