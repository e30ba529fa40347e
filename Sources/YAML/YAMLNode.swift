/// A position in a YAML text, as an editor shows it: line and column from 1.
///
/// Columns count Unicode scalars (libyaml's unit), not bytes.
public struct YAMLMark: Sendable, Hashable, CustomStringConvertible {
    /// Line number, starting from 1.
    public var line: Int
    /// Column number, starting from 1.
    public var column: Int

    /// Creates a mark.
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `line:column`.
    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written. Only plain scalars are typed (numbers,
/// booleans, null): `"80"` and `'true'` are strings, as in Kubernetes.
public enum YAMLScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}

/// A scalar: its text as written (after YAML's escapes and folding), how it
/// was written, and any explicit tag (`!!str 80`).
public struct YAMLScalar: Sendable, Hashable {
    /// The scalar's value as text.
    public var string: String
    /// Plain, quoted or block.
    public var style: YAMLScalarStyle
    /// The explicit tag, expanded (`tag:yaml.org,2002:str`); nil when none was written.
    public var tag: String?
    /// Where the scalar starts.
    public var mark: YAMLMark

    /// Creates a scalar; a plain one by default (read like a YAML value).
    public init(_ string: String, style: YAMLScalarStyle = .plain, tag: String? = nil, mark: YAMLMark = YAMLMark(line: 1, column: 1)) {
        self.string = string
        self.style = style
        self.tag = tag
        self.mark = mark
    }

    /// True when the scalar may be read as a number, a boolean or null: plain
    /// and not forced to a string with `!!str`.
    public var isTypable: Bool { style == .plain && tag != YAMLScalar.stringTag }

    /// YAML's string tag, fully expanded.
    public static let stringTag = "tag:yaml.org,2002:str"
}

/// A YAML sequence: its items in order.
public struct YAMLSequence: Sendable, Hashable, RandomAccessCollection {
    /// The items.
    public var items: [YAMLNode]
    /// Where the sequence starts.
    public var mark: YAMLMark

    /// Creates a sequence.
    public init(_ items: [YAMLNode], mark: YAMLMark = YAMLMark(line: 1, column: 1)) {
        self.items = items
        self.mark = mark
    }

    public var startIndex: Int { items.startIndex }
    public var endIndex: Int { items.endIndex }
    public subscript(position: Int) -> YAMLNode { items[position] }
}

/// A YAML mapping: its pairs in document order, merge keys (`<<`) already
/// applied. When a key is written twice the later value is the one a lookup
/// by key finds (as Yams and Kubernetes' own decoder do).
public struct YAMLMapping: Sendable, Hashable, RandomAccessCollection {
    /// One key and its value.
    public typealias Pair = (key: YAMLNode, value: YAMLNode)

    private var keys: [YAMLNode]
    private var values: [YAMLNode]
    /// Where the mapping starts.
    public var mark: YAMLMark

    /// Creates a mapping from its pairs.
    public init(_ pairs: [Pair], mark: YAMLMark = YAMLMark(line: 1, column: 1)) {
        keys = pairs.map(\.key)
        values = pairs.map(\.value)
        self.mark = mark
    }

    public var startIndex: Int { keys.startIndex }
    public var endIndex: Int { keys.endIndex }
    public subscript(position: Int) -> Pair { (keys[position], values[position]) }

    /// The value of the last pair whose key is the scalar `key`.
    public subscript(key: String) -> YAMLNode? {
        guard let index = lastIndex(ofKey: key) else { return nil }
        return values[index]
    }

    /// The position of the last pair whose key is the scalar `key`.
    public func lastIndex(ofKey key: String) -> Int? {
        var index = keys.count - 1
        while index >= 0 {
            if case let .scalar(scalar) = keys[index], scalar.string == key { return index }
            index -= 1
        }
        return nil
    }

    public static func == (lhs: YAMLMapping, rhs: YAMLMapping) -> Bool {
        lhs.keys == rhs.keys && lhs.values == rhs.values && lhs.mark == rhs.mark
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(keys)
        hasher.combine(values)
    }
}

/// One node of a YAML document. Aliases are already resolved to the node
/// their anchor names, so consumers never see them.
public enum YAMLNode: Sendable, Hashable {
    case scalar(YAMLScalar)
    case sequence(YAMLSequence)
    case mapping(YAMLMapping)

    /// A plain scalar holding `text`: a string read like a YAML value (used
    /// where values arrive as strings, e.g. a ConfigMap's `data`).
    public init(_ text: String) {
        self = .scalar(YAMLScalar(text))
    }

    /// Where the node starts.
    public var mark: YAMLMark {
        switch self {
        case let .scalar(scalar): return scalar.mark
        case let .sequence(sequence): return sequence.mark
        case let .mapping(mapping): return mapping.mark
        }
    }

    /// The text of a scalar; nil for a sequence or a mapping.
    public var string: String? {
        if case let .scalar(scalar) = self { return scalar.string }
        return nil
    }

    /// The scalar; nil for a sequence or a mapping.
    public var scalar: YAMLScalar? {
        if case let .scalar(scalar) = self { return scalar }
        return nil
    }

    /// The sequence; nil for a scalar or a mapping.
    public var sequence: YAMLSequence? {
        if case let .sequence(sequence) = self { return sequence }
        return nil
    }

    /// The mapping; nil for a scalar or a sequence.
    public var mapping: YAMLMapping? {
        if case let .mapping(mapping) = self { return mapping }
        return nil
    }

    /// True for a plain `~`, `null`, `Null`, `NULL` or empty scalar (YAML 1.1's
    /// null, as Kubernetes reads it). A quoted `'null'` is the string.
    public var isNull: Bool {
        guard case let .scalar(scalar) = self, scalar.isTypable else { return false }
        switch scalar.string {
        case "", "~", "null", "Null", "NULL": return true
        default: return false
        }
    }

    /// The value of `key` in a mapping; nil for other nodes or a missing key.
    public subscript(key: String) -> YAMLNode? {
        if case let .mapping(mapping) = self { return mapping[key] }
        return nil
    }
}
