import FoundationEssentials

/// JSON as dictionaries and arrays of `Any` (what JSONSerialization gave,
/// which lives in Foundation proper), over FoundationEssentials' JSONDecoder
/// and JSONEncoder: objects are `[String: Any]`, arrays `[Any]`, numbers
/// `Int` when integral and `Double` otherwise, `true`/`false` `Bool`, null
/// `JSONObjects.null`.
public enum JSONObjects {
    /// JSON's null, kept so that an object read and written back keeps its nulls.
    public struct Null: Sendable, Hashable {}

    /// The value JSON null reads as.
    public static let null = Null()

    /// How `data(from:options:)` writes.
    public struct WritingOptions: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Object keys in ascending order (stable output for tests and diffs).
        public static let sortedKeys = WritingOptions(rawValue: 1)
        /// Indented, one member per line.
        public static let prettyPrinted = WritingOptions(rawValue: 2)
        /// `/` as is, not `\/`.
        public static let withoutEscapingSlashes = WritingOptions(rawValue: 4)
    }

    /// Why a value could not be written or bytes could not be read.
    public struct Problem: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses `bytes` as one JSON value.
    public static func object(from bytes: some Collection<UInt8>) throws -> Any {
        try JSONDecoder().decode(Value.self, from: Data(bytes)).any
    }

    /// Writes `object` (dictionaries, arrays, strings, numbers, booleans, `null`) as JSON.
    public static func data(from object: Any, options: WritingOptions = []) throws -> [UInt8] {
        let encoder = JSONEncoder()
        var formatting: JSONEncoder.OutputFormatting = []
        if options.contains(.sortedKeys) { formatting.insert(.sortedKeys) }
        if options.contains(.prettyPrinted) { formatting.insert(.prettyPrinted) }
        if options.contains(.withoutEscapingSlashes) { formatting.insert(.withoutEscapingSlashes) }
        encoder.outputFormatting = formatting
        return Array(try encoder.encode(try Value(object)))
    }

    /// One JSON value, the bridge between `Any` and Codable.
    enum Value: Codable {
        case null, bool(Bool), int(Int), double(Double), string(String), array([Value]), object([String: Value])

        init(_ any: Any) throws {
            switch any {
            case is Null: self = .null
            case let value as Bool: self = .bool(value)
            case let value as Int: self = .int(value)
            case let value as Double: self = .double(value)
            case let value as String: self = .string(value)
            case let value as [Any]: self = .array(try value.map(Value.init))
            case let value as [String: Any]: self = .object(try value.mapValues(Value.init))
            case let value as any BinaryInteger: self = .int(Int(value))
            case let value as Substring: self = .string(String(value))
            default:
                if case Optional<Any>.none = any as Any? { self = .null; return }
                throw Problem(description: "\(type(of: any)) cannot be written as JSON")
            }
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Int.self) {
                self = .int(value)
            } else if let value = try? container.decode(Double.self) {
                self = .double(value)
            } else if let value = try? container.decode(String.self) {
                self = .string(value)
            } else if let value = try? container.decode([Value].self) {
                self = .array(value)
            } else {
                self = .object(try container.decode([String: Value].self))
            }
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .null: try container.encodeNil()
            case let .bool(value): try container.encode(value)
            case let .int(value): try container.encode(value)
            case let .double(value): try container.encode(value)
            case let .string(value): try container.encode(value)
            case let .array(value): try container.encode(value)
            case let .object(value): try container.encode(value)
            }
        }

        var any: Any {
            switch self {
            case .null: return JSONObjects.null
            case let .bool(value): return value
            case let .int(value): return value
            case let .double(value): return value
            case let .string(value): return value
            case let .array(value): return value.map(\.any)
            case let .object(value): return value.mapValues(\.any)
            }
        }
    }
}
