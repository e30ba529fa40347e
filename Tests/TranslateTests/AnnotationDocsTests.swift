import Foundation
import Testing
import Translate

/// docs/annotations.md holds `AnnotationCatalog.markdownTable()` between two
/// markers. Run with `POSTERN_UPDATE_DOCS=1` to rewrite it after changing
/// the catalog.
@Suite struct AnnotationDocsTests {
    static let begin = "<!-- annotation-catalog:begin (generated from AnnotationCatalog; see AnnotationDocsTests) -->\n"
    static let end = "<!-- annotation-catalog:end -->"

    static var docsPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/annotations.md").path
    }

    @Test func docsTableIsTheCatalog() throws {
        let text = try String(contentsOfFile: AnnotationDocsTests.docsPath, encoding: .utf8)
        guard let start = text.range(of: AnnotationDocsTests.begin), let stop = text.range(of: AnnotationDocsTests.end),
            start.upperBound <= stop.lowerBound
        else {
            Issue.record("docs/annotations.md has no annotation-catalog markers")
            return
        }
        let documented = String(text[start.upperBound..<stop.lowerBound])
        let expected = AnnotationCatalog.markdownTable()
        if documented != expected, ProcessInfo.processInfo.environment["POSTERN_UPDATE_DOCS"] == "1" {
            let updated = text.replacingCharacters(in: start.upperBound..<stop.lowerBound, with: expected)
            try updated.write(toFile: AnnotationDocsTests.docsPath, atomically: true, encoding: .utf8)
            return
        }
        #expect(documented == expected, "docs/annotations.md disagrees with AnnotationCatalog; run with POSTERN_UPDATE_DOCS=1")
    }

    @Test func everyHonouredKeyHasARowInTheValuesTable() throws {
        let text = try String(contentsOfFile: AnnotationDocsTests.docsPath, encoding: .utf8)
        for entry in AnnotationCatalog.entries where entry.support == .honoured {
            #expect(text.contains("| `\(entry.key)` |"), "\(entry.key) has no row with its values")
        }
    }
}
