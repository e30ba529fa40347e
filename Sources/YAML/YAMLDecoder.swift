/// Decodes `Decodable` values from a YAML node tree.
///
/// Scalars are typed by what the value's type asks for, as Kubernetes reads
/// manifests (YAML 1.1 via sigs.k8s.io/yaml) and as Yams did before:
/// a `String` takes any scalar's text (`flag: true` is the string "true");
/// an `Int` takes a plain scalar in decimal, `0x`, `0o`, `0b` or leading-zero
/// octal with optional `_` separators; a `Bool` a plain `true`/`yes`/`on` or
/// `false`/`no`/`off` in any case; `nil` a plain `~`, `null` or empty scalar.
/// Quoted scalars are strings only, so `targetPort: "8080"` stays a name.
/// A null where a `String` is required reads as "" (as Kubernetes reads
/// `annotations: {a: ~}`); an optional field reads it as absent.
public struct YAMLDecoder {
    /// Values handed to every `Decoder` (`Decoder.userInfo`).
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// Creates a decoder.
    public init() {}

    /// Decodes `type` from `node`; errors are `DecodingError`s with the path
    /// of the field that was wrong.
    public func decode<T: Decodable>(_ type: T.Type, from node: YAMLNode) throws -> T {
        try NodeDecoder(node: node, codingPath: [], userInfo: userInfo).decodeValue(type)
    }
}

/// The `Decoder` for one node.
private struct NodeDecoder: Decoder {
    let node: YAMLNode
    let codingPath: [any CodingKey]
    let userInfo: [CodingUserInfoKey: Any]

    init(node: YAMLNode, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: Any]) {
        self.node = node
        self.codingPath = codingPath
        self.userInfo = userInfo
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case let .mapping(mapping) = node else {
            throw mismatch([String: Int].self, "a mapping")
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, mapping: mapping))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case let .sequence(sequence) = node else {
            // A null list is an empty one (as `items: ~` in Kubernetes).
            if node.isNull { return UnkeyedContainer(decoder: self, items: []) }
            throw mismatch([Int].self, "a list")
        }
        return UnkeyedContainer(decoder: self, items: sequence.items)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    func child(_ node: YAMLNode, _ key: any CodingKey) -> NodeDecoder {
        NodeDecoder(node: node, codingPath: codingPath + [key], userInfo: userInfo)
    }

    func mismatch(_ type: Any.Type, _ expected: String) -> DecodingError {
        .typeMismatch(type, DecodingError.Context(codingPath: codingPath, debugDescription: "expected \(expected), found \(found)"))
    }

    /// What the node is, for error messages: `"eighty"`, a mapping, a list, null.
    var found: String {
        switch node {
        case let .scalar(scalar):
            if node.isNull { return "null" }
            let text = scalar.string.count > 40 ? String(scalar.string.prefix(40)) + "..." : scalar.string
            return "\"\(text)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }

    /// A typable scalar's text, or a type mismatch.
    func plainText(_ type: Any.Type, _ expected: String) throws -> String {
        if node.isNull {
            throw DecodingError.valueNotFound(type, DecodingError.Context(codingPath: codingPath, debugDescription: "found null"))
        }
        guard case let .scalar(scalar) = node, scalar.isTypable else { throw mismatch(type, expected) }
        return scalar.string
    }

    func decodeInteger<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let text = try plainText(type, "an integer")
        guard let value = YAMLScalarText.integer(text, as: type) else { throw mismatch(type, "an integer") }
        return value
    }

    func decodeFloat<T: BinaryFloatingPoint & LosslessStringConvertible>(_ type: T.Type) throws -> T {
        let text = try plainText(type, "a number")
        guard let value = YAMLScalarText.floatingPoint(text, as: type) else { throw mismatch(type, "a number") }
        return value
    }

    /// The one place that picks a scalar reading or the type's own `init(from:)`.
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is String.Type: return try decode(String.self) as! T
        case is Bool.Type: return try decode(Bool.self) as! T
        case is Int.Type: return try decodeInteger(Int.self) as! T
        case is Int64.Type: return try decodeInteger(Int64.self) as! T
        case is Int32.Type: return try decodeInteger(Int32.self) as! T
        case is UInt16.Type: return try decodeInteger(UInt16.self) as! T
        case is UInt.Type: return try decodeInteger(UInt.self) as! T
        case is UInt64.Type: return try decodeInteger(UInt64.self) as! T
        case is UInt32.Type: return try decodeInteger(UInt32.self) as! T
        case is Double.Type: return try decodeFloat(Double.self) as! T
        case is YAMLNode.Type: return node as! T
        default: return try T(from: self)
        }
    }
}

extension NodeDecoder: SingleValueDecodingContainer {
    func decodeNil() -> Bool { node.isNull }

    func decode(_ type: Bool.Type) throws -> Bool {
        let text = try plainText(type, "a boolean")
        guard let value = YAMLScalarText.boolean(text) else { throw mismatch(type, "a boolean") }
        return value
    }

    func decode(_ type: String.Type) throws -> String {
        guard case let .scalar(scalar) = node else { throw mismatch(type, "a string") }
        return node.isNull ? "" : scalar.string
    }

    func decode(_ type: Double.Type) throws -> Double { try decodeFloat(type) }
    func decode(_ type: Float.Type) throws -> Float { try decodeFloat(type) }
    func decode(_ type: Int.Type) throws -> Int { try decodeInteger(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decodeInteger(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decodeInteger(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decodeInteger(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decodeInteger(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decodeInteger(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decodeInteger(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decodeInteger(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decodeInteger(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decodeInteger(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decodeValue(type) }
}

/// A mapping's fields by key. Large mappings (a ConfigMap's `data`, many
/// annotations) get an index so decoding every key stays linear.
private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: NodeDecoder
    let mapping: YAMLMapping
    let index: [String: Int]?

    init(decoder: NodeDecoder, mapping: YAMLMapping) {
        self.decoder = decoder
        self.mapping = mapping
        if mapping.count > 12 {
            var index: [String: Int] = [:]
            index.reserveCapacity(mapping.count)
            for position in mapping.indices {
                if let key = mapping[position].key.string { index[key] = position }  // later pairs win
            }
            self.index = index
        } else {
            self.index = nil
        }
    }

    var codingPath: [any CodingKey] { decoder.codingPath }

    var allKeys: [Key] {
        var seen = Set<String>()
        var keys: [Key] = []
        for pair in mapping {
            guard let name = pair.key.string, seen.insert(name).inserted, let key = Key(stringValue: name) else { continue }
            keys.append(key)
        }
        return keys
    }

    func value(_ key: Key) -> YAMLNode? {
        if let index {
            return index[key.stringValue].map { mapping[$0].value }
        }
        return mapping[key.stringValue]
    }

    func child(_ key: Key) throws -> NodeDecoder {
        guard let node = value(key) else {
            throw DecodingError.keyNotFound(
                key, DecodingError.Context(codingPath: codingPath, debugDescription: "no value for \"\(key.stringValue)\""))
        }
        return decoder.child(node, key)
    }

    func contains(_ key: Key) -> Bool { value(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool { try child(key).decodeNil() }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let child = try child(key)
        if child.node.isNull, !(T.self is YAMLNode.Type), !(T.self is String.Type) {
            throw DecodingError.valueNotFound(type, DecodingError.Context(codingPath: child.codingPath, debugDescription: "found null"))
        }
        return try child.decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try child(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { decoder }

    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

/// A sequence's items in order.
private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: NodeDecoder
    let items: [YAMLNode]
    var currentIndex = 0

    init(decoder: NodeDecoder, items: [YAMLNode]) {
        self.decoder = decoder
        self.items = items
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func next(_ type: Any.Type) throws -> NodeDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(
                type, DecodingError.Context(codingPath: codingPath, debugDescription: "the list has no more items"))
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if items[currentIndex].isNull {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let child = try next(type)
        if child.node.isNull, !(T.self is YAMLNode.Type), !(T.self is String.Type) {
            throw DecodingError.valueNotFound(type, DecodingError.Context(codingPath: child.codingPath, debugDescription: "found null"))
        }
        return try child.decodeValue(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(type).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next([Int].self).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { try next(Any.self) }
}

/// A list position in a coding path (`spec.ports[0]`).
private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { "\(intValue ?? 0)" }

    init(_ index: Int) { intValue = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.intValue = intValue }
}

/// YAML 1.1 readings of a plain scalar's text, shared by the decoder and by
/// callers that read nodes by hand.
public enum YAMLScalarText {
    /// `true`/`yes`/`on` and `false`/`no`/`off`, any case; nil otherwise.
    public static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    /// An integer in decimal, `0x` hex, `0o` or leading-zero octal, or `0b`
    /// binary, with an optional sign and `_` separators; nil otherwise or when
    /// it does not fit `type`.
    public static func integer<T: FixedWidthInteger>(_ text: String, as type: T.Type) -> T? {
        var digits = Substring(text.contains("_") ? text.filter { $0 != "_" } : text)
        guard !digits.isEmpty else { return nil }
        var negative = false
        if digits.first == "-" || digits.first == "+" {
            negative = digits.first == "-"
            digits = digits.dropFirst()
        }
        // A second sign after the first ("+-1") is not a number.
        guard let first = digits.first, first != "-", first != "+" else { return nil }
        var radix = 10
        if digits.count > 1, digits.first == "0" {
            switch digits.dropFirst().first {
            case "x": radix = 16; digits = digits.dropFirst(2)
            case "o": radix = 8; digits = digits.dropFirst(2)
            case "b": radix = 2; digits = digits.dropFirst(2)
            default: radix = 8; digits = digits.dropFirst()
            }
        }
        guard !digits.isEmpty, digits.first != "-", digits.first != "+" else { return nil }
        return T(negative ? "-" + digits : String(digits), radix: radix)
    }

    /// A number (`1.5`, `1e3`, `.inf`, `-.inf`, `.nan`, `_` separators); nil otherwise.
    public static func floatingPoint<T: BinaryFloatingPoint & LosslessStringConvertible>(_ text: String, as type: T.Type) -> T? {
        switch text.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default:
            let cleaned = text.contains("_") ? text.filter { $0 != "_" } : text
            // Swift's parser takes "inf", "nan" and hex floats, which YAML does not.
            guard let first = cleaned.first, first.isNumber || first == "-" || first == "+" || first == "." else { return nil }
            guard !cleaned.lowercased().contains("n"), !cleaned.lowercased().contains("x") else { return nil }
            return T(cleaned)
        }
    }
}
