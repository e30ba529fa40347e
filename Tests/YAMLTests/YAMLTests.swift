import Testing
import YAML

/// A shape like a Kubernetes object's, to check typing through Codable.
private struct Port: Decodable, Equatable {
    var name: String?
    var port: Int
    var enabled: Bool?
    var weight: Double?
}

private struct Holder: Decodable {
    var labels: [String: String]
    var ports: [Port]
    var note: String?
}

private func parse(_ text: String) throws -> [YAMLNode] {
    try YAMLParser().documents(text)
}

private func failure(_ text: String, parser: YAMLParser = YAMLParser()) -> YAMLError? {
    do {
        _ = try parser.documents(text)
        return nil
    } catch {
        return error
    }
}

@Suite struct YAMLParserTests {
    @Test func plainScalarsAreTypedByTheFieldThatReadsThem() throws {
        let node = try #require(try parse("""
            labels: {flag: true, count: 120, quoted: "80", empty: ""}
            ports:
            - {name: web, port: 80, enabled: yes, weight: 1.5}
            - {port: 0x1F, enabled: Off}
            - {port: 1_000, enabled: ~}
            - {port: -12, weight: .inf}
            """).first)
        let holder = try YAMLDecoder().decode(Holder.self, from: node)
        // Annotations and labels are strings whatever they look like.
        #expect(holder.labels == ["flag": "true", "count": "120", "quoted": "80", "empty": ""])
        #expect(holder.ports.map(\.port) == [80, 31, 1000, -12])
        #expect(holder.ports.map(\.enabled) == [true, false, nil, nil])
        #expect(holder.ports.first?.weight == 1.5)
        #expect(holder.ports.last?.weight == .infinity)
        #expect(holder.note == nil)
    }

    @Test func aNullStringIsEmptyAndANullOptionalIsAbsent() throws {
        let node = try #require(try parse("labels: {a: ~, b: null, c: }\nports: [{name: ~, port: 1}]\nnote: ~").first)
        let holder = try YAMLDecoder().decode(Holder.self, from: node)
        #expect(holder.labels == ["a": "", "b": "", "c": ""], "as Kubernetes reads null map values")
        #expect(holder.ports.first?.name == nil)
        #expect(holder.note == nil)
        let missing = try #require(try parse("labels: {}\nports: [{port: ~}]").first)
        #expect(throws: DecodingError.self) { try YAMLDecoder().decode(Holder.self, from: missing) }
    }

    @Test func quotedNumbersAndBooleansAreStringsOnly() throws {
        for text in ["{port: \"80\"}", "{port: '80'}", "{port: !!str 80}", "{port: 80, enabled: \"true\"}"] {
            let node = try #require(try parse(text).first)
            #expect(throws: DecodingError.self, "\(text)") { try YAMLDecoder().decode(Port.self, from: node) }
        }
    }

    @Test func aWrongTypeNamesTheFieldPath() throws {
        let node = try #require(try parse("labels: {}\nports:\n- port: 80\n- port: eighty\n").first)
        do {
            _ = try YAMLDecoder().decode(Holder.self, from: node)
            Issue.record("eighty is not a port")
        } catch let DecodingError.typeMismatch(_, context) {
            #expect(context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue } == ["ports", "1", "port"])
            #expect(context.debugDescription.contains("\"eighty\""))
        }
    }

    @Test func aMissingFieldIsKeyNotFound() throws {
        let node = try #require(try parse("labels: {}\nports: [{name: web}]").first)
        #expect {
            try YAMLDecoder().decode(Holder.self, from: node)
        } throws: { error in
            guard case let DecodingError.keyNotFound(key, _) = error else { return false }
            return key.stringValue == "port"
        }
    }

    @Test func integersFollowYAML11() {
        #expect(YAMLScalarText.integer("0", as: Int.self) == 0)
        #expect(YAMLScalarText.integer("010", as: Int.self) == 8)
        #expect(YAMLScalarText.integer("0o17", as: Int.self) == 15)
        #expect(YAMLScalarText.integer("0b101", as: Int.self) == 5)
        #expect(YAMLScalarText.integer("+42", as: Int.self) == 42)
        #expect(YAMLScalarText.integer("65536", as: UInt16.self) == nil)
        for text in ["", "-", "+-1", "0x", "1.5", "1e3", "eighty", "0x-1"] {
            #expect(YAMLScalarText.integer(text, as: Int.self) == nil, "\(text)")
        }
        #expect(YAMLScalarText.floatingPoint("nan", as: Double.self) == nil)
        #expect(YAMLScalarText.floatingPoint("1e3", as: Double.self) == 1000)
    }

    @Test func documentsOfAStreamComeInOrderWithTheirLines() throws {
        let documents = try parse("a: 1\n---\n# nothing but a comment\n---\nkind: B\nlist:\n  - x\n  - y\n")
        #expect(documents.count == 3)
        #expect(documents[0]["a"]?.string == "1")
        #expect(documents[1].isNull, "an empty document is a null scalar")
        #expect(documents[2].mark.line == 5)
        #expect(documents[2]["list"]?.sequence?.map(\.mark.line) == [7, 8])
        guard case let .mapping(mapping)? = Optional(documents[2]) else {
            Issue.record("a mapping")
            return
        }
        #expect(mapping.map(\.key.mark) == [YAMLMark(line: 5, column: 1), YAMLMark(line: 6, column: 1)])
        #expect(try parse("").isEmpty)
    }

    @Test func anchorsAliasesAndMergeKeys() throws {
        let node = try #require(try parse("""
            base: &base {port: 80, name: web}
            copy: *base
            merged: {<<: *base, name: other}
            many: {<<: [{a: 1}, {a: 2, b: 2}], c: 3}
            """).first)
        #expect(node["copy"] == node["base"])
        #expect(node["merged"]?["name"]?.string == "other", "the mapping's own key wins over a merged one")
        #expect(node["merged"]?["port"]?.string == "80")
        #expect(node["merged"]?.mapping?.count == 2)
        #expect(node["many"]?["a"]?.string == "1", "the first merged mapping wins")
        #expect(node["many"]?["b"]?.string == "2")
        #expect(node["many"]?.mapping?.lastIndex(ofKey: "<<") == nil)
    }

    @Test func aLaterDuplicateKeyWins() throws {
        let node = try #require(try parse("a: 1\na: 2\n").first)
        #expect(node["a"]?.string == "2")
    }

    @Test func aliasBombIsRefusedQuickly() {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            let previous = "*a\(level - 1)"
            text += "a\(level): &a\(level) [\(Array(repeating: previous, count: 10).joined(separator: ", "))]\n"
        }
        let error = failure(text)
        #expect(error?.description.contains("aliases expand to more than") == true, "\(String(describing: error))")
        #expect(error?.mark?.line == 6, "refused at the first document line whose aliases pass the limit")
    }

    @Test func deepNestingIsRefusedNotCrashed() {
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        let error = failure(nested(300))
        #expect(error?.description.contains("nested deeper than 256 levels") == true, "\(String(describing: error))")
        // Far deeper: libyaml's own limit answers first; an error either way.
        #expect(failure(nested(100_000)) != nil)
        #expect(failure("[[[1]]]", parser: YAMLParser(maximumDepth: 2)) != nil)
        #expect(failure(nested(200)) == nil)
    }

    @Test func malformedYAMLIsAnErrorWithLineAndColumn() {
        let cases: [(String, String)] = [
            ("a: b: c\n", "line 1, column 5: mapping values are not allowed in this context"),
            ("rules: [unclosed\n", "line 2, column 1: did not find expected ',' or ']' (while parsing a flow sequence at line 1)"),
            ("a: *missing\n", "line 1, column 4: found undefined alias 'missing'"),
            ("key: \"open\n", "line 2, column 1: found unexpected end of stream (while scanning a quoted scalar at line 1)"),
            ("a:\n\t- b\n", "line 2, column 1: found character that cannot start any token (while scanning for the next token at line 2)"),
        ]
        for (text, expected) in cases {
            #expect(failure(text)?.description == expected, "\(text)")
        }
        #expect(failure("a: \u{FFFE}")?.description != nil)
        #expect(failure(String(decoding: [0x61, 0x3A, 0x20, 0xC3, 0x28], as: UTF8.self)) == nil, "Swift strings are valid UTF-8 already")
    }

    @Test func documentsAreHandedOverOneAtATimeUntilAnError() {
        var seen: [String] = []
        #expect(throws: YAMLError.self) {
            try YAMLParser().forEachDocument("a: 1\n---\na: 2\n---\na: [3\n") { seen.append($0["a"]?.string ?? "?") }
        }
        #expect(seen == ["1", "2"])
    }

    @Test func aSingleDocumentIsRequiredWhereOneIsExpected() throws {
        #expect(try YAMLParser().document("") == nil)
        #expect(try YAMLParser().document("a: 1")?["a"]?.string == "1")
        #expect(throws: YAMLError.self) { try YAMLParser().document("a: 1\n---\nb: 2\n") }
    }

    @Test func nodesBuiltFromStringsReadLikeYAMLValues() throws {
        #expect(YAMLNode("true").scalar?.isTypable == true)
        #expect(YAMLNode("").isNull)
        #expect(try YAMLDecoder().decode(Int.self, from: YAMLNode("8080")) == 8080)
        #expect(try YAMLDecoder().decode([String].self, from: try #require(try parse("[a, 'b', \"c\"]").first)) == ["a", "b", "c"])
    }
}
