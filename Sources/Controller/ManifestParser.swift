import Kube
import Translate
import YAML

/// The objects of one manifest file, and what was wrong with some of them.
public struct ParsedManifest: Sendable, Equatable {
    /// Supported and unsupported objects, in document order.
    public var objects: [KubeObject]
    /// Documents that were skipped (invalid objects, unsupported kinds).
    public var diagnostics: [Diagnostic]

    /// Creates a parse result.
    public init(objects: [KubeObject] = [], diagnostics: [Diagnostic] = []) {
        self.objects = objects
        self.diagnostics = diagnostics
    }
}

/// A manifest file that could not be used at all (unreadable or not YAML).
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file-level diagnostic (`InvalidManifest`).
    public var diagnostic: Diagnostic

    /// Creates an error.
    public init(diagnostic: Diagnostic) {
        self.diagnostic = diagnostic
    }

    public var description: String { diagnostic.description }
}

/// Parses multi-document YAML (`---`) into Kubernetes objects.
///
/// A YAML syntax error fails the whole file (the caller keeps what it loaded
/// from it before). A document that is YAML but not a valid object is
/// reported with its field path and skipped; the others are kept. `kind: List`
/// documents contribute their `items`.
public enum ManifestParser {
    /// The YAML reader for manifests: YAMLDecoder builds numbers, booleans
    /// and nulls from a plain scalar's text when a field asks for one, so no
    /// tag resolution runs per scalar. The typing is pinned by
    /// `scalarsAreTypedLikeKubernetesManifests`.
    static let parser = YAMLParser()

    /// Parses `yaml`; `file` is only used in diagnostics.
    public static func parse(yaml: String, file: String?) -> Result<ParsedManifest, ManifestError> {
        var result = ParsedManifest()
        do {
            var index = 0
            try parser.forEachDocument(yaml) { node in
                index += 1
                decode(node, document: index, file: file, into: &result)
            }
        } catch {
            return .failure(ManifestError(diagnostic: Diagnostic(
                severity: .error, kind: "", namespace: "", name: "", file: file,
                reason: "InvalidManifest", message: "not valid YAML: \(describeYAMLError(error))")))
        }
        return .success(result)
    }

    private static func decode(_ node: YAMLNode, document: Int, file: String?, into result: inout ParsedManifest) {
        let line = " (line \(node.mark.line))"
        guard case .mapping = node else {
            if case let .scalar(scalar) = node, scalar.string.isEmpty || node.isNull { return }
            result.diagnostics.append(Diagnostic(
                severity: .error, kind: "", namespace: "", name: "", file: file, reason: "InvalidManifest",
                message: "document \(document)\(line) is not a mapping with apiVersion and kind; skipped"))
            return
        }
        let kind = node["kind"]?.string ?? ""
        let name = node["metadata"]?["name"]?.string ?? ""
        let namespace = node["metadata"]?["namespace"]?.string ?? (name.isEmpty ? "" : "default")
        if kind == "List", let items = node["items"], case let .sequence(sequence) = items {
            for item in sequence {
                decode(item, document: document, file: file, into: &result)
            }
            return
        }
        do {
            let object = try YAMLDecoder().decode(KubeObject.self, from: node)
            if case let .unsupported(unsupported) = object {
                result.diagnostics.append(Diagnostic(
                    severity: .warning, kind: kind, namespace: namespace, name: name, file: file,
                    reason: "UnsupportedKind",
                    message: "document \(document)\(line): \(unsupported.apiVersion) \(unsupported.kind) is not read by Postern; skipped"))
            }
            result.objects.append(object)
        } catch {
            result.diagnostics.append(Diagnostic(
                severity: .error, kind: kind, namespace: namespace, name: name, file: file,
                reason: "InvalidManifest",
                message: "document \(document)\(line): \(DecodingErrorDescription.describe(error)); object skipped"))
        }
    }

    /// One line: `line 3, column 7: mapping values are not allowed in this context`.
    static func describeYAMLError(_ error: Error) -> String {
        String(describing: error)
    }
}
