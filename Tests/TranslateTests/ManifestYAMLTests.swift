import Controller
import Kube
import Testing
import Translate

/// The manifest parser over the YAML target: what an operator sees for YAML
/// that is broken or hostile (the file is refused with one diagnostic, the
/// process carries on).
@Suite struct ManifestYAMLTests {
    private func failure(_ yaml: String) -> Diagnostic? {
        guard case let .failure(error) = ManifestParser.parse(yaml: yaml, file: "x.yaml") else { return nil }
        return error.diagnostic
    }

    @Test func aSyntaxErrorNamesLineAndColumn() {
        let diagnostic = failure("apiVersion: v1\nkind: Service\nmetadata: {name: s\n")
        #expect(diagnostic?.reason == "InvalidManifest")
        #expect(diagnostic?.file == "x.yaml")
        #expect(diagnostic?.message.hasPrefix("not valid YAML: line 4, column 1: ") == true, "\(String(describing: diagnostic))")
    }

    @Test func anAliasBombIsRefusedAsInvalid() {
        var yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"
        for level in 1...9 {
            yaml += "x\(level): &x\(level) [" + Array(repeating: "*x\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let diagnostic = failure(yaml)
        #expect(diagnostic?.reason == "InvalidManifest")
        #expect(diagnostic?.message.contains("aliases expand to more than") == true, "\(String(describing: diagnostic))")
    }

    @Test func aBrokenLaterDocumentFailsTheWholeFile() {
        let good = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}"
        #expect(failure(documents(good, "a: [unclosed")) != nil, "the caller keeps the file's last good objects")
    }

    @Test func documentsAreNumberedAndLinedInDiagnostics() throws {
        let parsed = try ManifestParser.parse(yaml: documents("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}", "- a list"), file: nil).get()
        #expect(parsed.objects.count == 1)
        #expect(parsed.diagnostics.map(\.message) == ["document 2 (line 6) is not a mapping with apiVersion and kind; skipped"])
    }
}
