import CYAML

/// Why a YAML text could not be read: a syntax error from libyaml with its
/// position, or a limit of ours (alias expansion, nesting).
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the problem is; nil when libyaml gave no position.
    public var mark: YAMLMark?
    /// One line: `line 3, column 7: mapping values are not allowed in this context`.
    public var description: String

    /// Creates an error.
    public init(mark: YAMLMark?, description: String) {
        self.mark = mark
        self.description = description
    }
}

/// Reads YAML texts into node trees: a wrapper over libyaml's event parser
/// (the only user of CYAML) that resolves anchors, aliases and merge keys.
///
/// Manifests and settings are untrusted input, so every text is bounded: an
/// alias may not expand the tree past `maximumAliasExpansion` nodes (a
/// "billion laughs" text is refused, not walked), and nesting deeper than
/// `maximumDepth` is refused (consumers recurse over the tree).
public struct YAMLParser: Sendable {
    /// Nodes that aliases may add to one stream, counted expanded.
    public var maximumAliasExpansion: Int
    /// Deepest nesting of sequences and mappings.
    public var maximumDepth: Int

    /// Creates a parser with the given limits; the defaults leave room for any
    /// manifest a person writes and refuse expansion attacks in milliseconds.
    public init(maximumAliasExpansion: Int = 1_000_000, maximumDepth: Int = 256) {
        self.maximumAliasExpansion = maximumAliasExpansion
        self.maximumDepth = maximumDepth
    }

    /// Every document of a (multi-document, `---`) stream, in order. An empty
    /// document is a plain empty scalar.
    public func documents(_ yaml: String) throws(YAMLError) -> [YAMLNode] {
        var all: [YAMLNode] = []
        try forEachDocument(yaml) { all.append($0) }
        return all
    }

    /// Hands each document of the stream to `body` as soon as it is complete,
    /// so that only one document's tree is alive at a time (a directory of
    /// 10,000 objects in one file is never held as one tree). A syntax error
    /// is thrown after the documents before it were handed over.
    public func forEachDocument(_ yaml: String, _ body: (YAMLNode) -> Void) throws(YAMLError) {
        var bytes = Array(yaml.utf8)
        if bytes.isEmpty { return }
        // The composer lives only inside this call, so `body` never escapes it.
        let problem: YAMLError? = withoutActuallyEscaping(body) { body in
            bytes.withUnsafeMutableBufferPointer { buffer in
                var composer = Composer(limits: self, body: body)
                return composer.run(buffer)
            }
        }
        if let problem { throw problem }
    }

    /// The one document of `yaml`; nil for an empty text. More than one
    /// document is an error (a settings file is one mapping).
    public func document(_ yaml: String) throws(YAMLError) -> YAMLNode? {
        let all = try documents(yaml)
        if all.count > 1 {
            throw YAMLError(mark: all[1].mark, description: "line \(all[1].mark.line): expected one document, found \(all.count)")
        }
        return all.first
    }
}

/// Builds nodes from libyaml's events with an explicit stack (no recursion,
/// so nesting depth cannot exhaust the thread's stack here).
private struct Composer {
    /// A collection being built.
    enum Frame {
        case sequence(items: [YAMLNode], mark: YAMLMark, anchor: String?, size: Int)
        case mapping(pairs: [YAMLMapping.Pair], key: YAMLNode?, mark: YAMLMark, anchor: String?, size: Int)
    }

    let limits: YAMLParser
    /// Receives each finished document.
    let body: (YAMLNode) -> Void
    var stack: [Frame] = []
    /// Anchor name → node and its expanded size (nodes counted through aliases).
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    var aliasExpansion = 0

    init(limits: YAMLParser, body: @escaping (YAMLNode) -> Void) {
        self.limits = limits
        self.body = body
    }

    /// Parses the whole input; nil when it ended without an error.
    mutating func run(_ input: UnsafeMutableBufferPointer<UInt8>) -> YAMLError? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return YAMLError(mark: nil, description: "libyaml could not allocate a parser")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, input.baseAddress, input.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else {
                return Self.error(of: parser)
            }
            defer { yaml_event_delete(&event) }
            if event.type == YAML_STREAM_END_EVENT { return nil }
            if let problem = handle(event) { return problem }
        }
    }

    /// One event; an error when a limit is crossed or an alias is unknown.
    mutating func handle(_ event: yaml_event_t) -> YAMLError? {
        let mark = YAMLMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            // Anchors are scoped to their document (YAML 1.1 §3.2.2.2).
            anchors.removeAll(keepingCapacity: true)
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let text = Self.string(data.value, length: data.length)
            let scalar = YAMLScalar(text, style: Self.style(data.style), tag: Self.optionalString(data.tag), mark: mark)
            return add(.scalar(scalar), size: 1, anchor: Self.optionalString(data.anchor), mark: mark)
        case YAML_ALIAS_EVENT:
            let name = Self.optionalString(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                return YAMLError(mark: mark, description: "line \(mark.line), column \(mark.column): found undefined alias '\(name)'")
            }
            aliasExpansion += target.size
            if aliasExpansion > limits.maximumAliasExpansion {
                return YAMLError(
                    mark: mark,
                    description: "line \(mark.line), column \(mark.column): aliases expand to more than \(limits.maximumAliasExpansion) nodes; refused")
            }
            return add(target.node, size: target.size, anchor: nil, mark: mark)
        case YAML_SEQUENCE_START_EVENT:
            if stack.count >= limits.maximumDepth { return tooDeep(mark) }
            stack.append(.sequence(items: [], mark: mark, anchor: Self.optionalString(event.data.sequence_start.anchor), size: 1))
        case YAML_MAPPING_START_EVENT:
            if stack.count >= limits.maximumDepth { return tooDeep(mark) }
            stack.append(.mapping(pairs: [], key: nil, mark: mark, anchor: Self.optionalString(event.data.mapping_start.anchor), size: 1))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return nil }
            switch frame {
            case let .sequence(items, start, anchor, size):
                return add(.sequence(YAMLSequence(items, mark: start)), size: size, anchor: anchor, mark: start)
            case let .mapping(pairs, _, start, anchor, size):
                return add(.mapping(YAMLMapping(Self.merged(pairs), mark: start)), size: size, anchor: anchor, mark: start)
            }
        default:
            break
        }
        return nil
    }

    /// Hands a finished node to its parent, or makes it a document's root.
    mutating func add(_ node: YAMLNode, size: Int, anchor: String?, mark: YAMLMark) -> YAMLError? {
        if let anchor { anchors[anchor] = (node, size) }
        guard let top = stack.popLast() else {
            body(node)
            return nil
        }
        switch top {
        case .sequence(var items, let start, let anchor, let total):
            items.append(node)
            stack.append(.sequence(items: items, mark: start, anchor: anchor, size: total + size))
        case .mapping(var pairs, let key, let start, let anchor, let total):
            if let key {
                pairs.append((key, node))
                stack.append(.mapping(pairs: pairs, key: nil, mark: start, anchor: anchor, size: total + size))
            } else {
                stack.append(.mapping(pairs: pairs, key: node, mark: start, anchor: anchor, size: total + size))
            }
        }
        return nil
    }

    func tooDeep(_ mark: YAMLMark) -> YAMLError {
        YAMLError(mark: mark, description: "line \(mark.line), column \(mark.column): nested deeper than \(limits.maximumDepth) levels; refused")
    }

    /// Applies merge keys (YAML 1.1 merge type): `<<: *base` or `<<: [*a, *b]`
    /// adds the pairs of the named mappings whose keys the mapping does not
    /// write itself; of several merged mappings the first wins.
    static func merged(_ pairs: [YAMLMapping.Pair]) -> [YAMLMapping.Pair] {
        guard pairs.contains(where: { isMergeKey($0.key) }) else { return pairs }
        var own: [YAMLMapping.Pair] = []
        var sources: [YAMLMapping] = []
        for pair in pairs {
            guard isMergeKey(pair.key) else {
                own.append(pair)
                continue
            }
            switch pair.value {
            case let .mapping(mapping): sources.append(mapping)
            case let .sequence(sequence): sources += sequence.compactMap(\.mapping)
            case .scalar: own.append(pair)  // not a merge: left for the consumer to reject
            }
        }
        var taken = Set(own.compactMap(\.key.string))
        var result = own
        for source in sources {
            for pair in source {
                guard let key = pair.key.string, !taken.contains(key) else { continue }
                taken.insert(key)
                result.append(pair)
            }
        }
        return result
    }

    static func isMergeKey(_ node: YAMLNode) -> Bool {
        guard case let .scalar(scalar) = node else { return false }
        return scalar.string == "<<" && scalar.style == .plain
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
        guard let pointer else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    static func optionalString(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }

    static func style(_ style: yaml_scalar_style_t) -> YAMLScalarStyle {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: return .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: return .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: return .literal
        case YAML_FOLDED_SCALAR_STYLE: return .folded
        default: return .plain
        }
    }

    /// libyaml's error as one line, in the words Yams used to print.
    static func error(of parser: yaml_parser_t) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        switch parser.error {
        case YAML_READER_ERROR:
            return YAMLError(mark: nil, description: "\(problem) at byte \(parser.problem_offset)")
        case YAML_SCANNER_ERROR, YAML_PARSER_ERROR:
            let mark = YAMLMark(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
            var during = ""
            if let context = parser.context {
                during = " (\(String(cString: context)) at line \(parser.context_mark.line + 1))"
            }
            return YAMLError(mark: mark, description: "line \(mark.line), column \(mark.column): \(problem)\(during)")
        default:
            return YAMLError(mark: nil, description: problem)
        }
    }
}
