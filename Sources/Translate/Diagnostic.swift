import Kube

/// A problem found in a Kubernetes object or a manifest file: reported (log,
/// Event, status) and skipped, never fatal to the rest of the configuration.
public struct Diagnostic: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// How bad the problem is.
    public enum Severity: String, Sendable, Hashable, Comparable {
        /// Served, perhaps not as the author meant.
        case warning
        /// A part of the object was not served.
        case error

        public static func < (lhs: Severity, rhs: Severity) -> Bool {
            lhs == .warning && rhs == .error
        }
    }

    public var severity: Severity
    /// Kind of the object at fault (`Ingress`, `Service`, ...); empty for a
    /// file that could not be read or parsed at all.
    public var kind: String
    /// Namespace of the object at fault; empty when unknown.
    public var namespace: String
    /// Name of the object at fault; empty when unknown.
    public var name: String
    /// The manifest file the object came from, when it came from one.
    public var file: String?
    /// The field at fault, e.g. `spec.rules[0].http.paths[1].path` or
    /// `metadata.annotations[nginx.ingress.kubernetes.io/use-regex]`; nil
    /// when the whole object is meant.
    public var fieldPath: String?
    /// A CamelCase code for machines and alerts: `InvalidPath`,
    /// `MissingService`, `PathConflict`, `UnsupportedBackend`, `InvalidManifest`, ...
    public var reason: String
    /// One sentence for an operator.
    public var message: String

    /// Creates a diagnostic.
    public init(
        severity: Severity, kind: String, namespace: String, name: String, file: String? = nil,
        fieldPath: String? = nil, reason: String, message: String
    ) {
        self.severity = severity
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.file = file
        self.fieldPath = fieldPath
        self.reason = reason
        self.message = message
    }

    /// Creates a diagnostic about the object identified by `object`.
    public init(
        _ severity: Severity, _ object: ObjectKey, field: String? = nil, reason: String, message: String,
        file: String? = nil
    ) {
        self.init(
            severity: severity, kind: object.kind, namespace: object.namespace, name: object.name,
            file: file, fieldPath: field, reason: reason, message: message)
    }

    /// The object the diagnostic is about.
    public var object: ObjectKey {
        ObjectKey(kind: kind, namespace: namespace, name: name)
    }

    /// `error Ingress default/web (web.yaml) spec.rules[0].http.paths[0].path: InvalidPath: path "foo" must start with "/"`.
    public var description: String {
        var text = severity.rawValue
        if !kind.isEmpty {
            text += " \(kind)"
            if !name.isEmpty { text += namespace.isEmpty ? " \(name)" : " \(namespace)/\(name)" }
        }
        if let file { text += " (\(file))" }
        if let fieldPath { text += " \(fieldPath)" }
        return text + ": \(reason): \(message)"
    }

    /// Sorts by object, then file, reason and message: a stable order for output.
    /// Field by field: kind, namespace, name, file, field path, reason,
    /// message, severity (an absent file or field path sorts as empty, then
    /// before an empty one).
    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        if lhs.kind != rhs.kind { return lhs.kind < rhs.kind }
        if lhs.namespace != rhs.namespace { return lhs.namespace < rhs.namespace }
        if lhs.name != rhs.name { return lhs.name < rhs.name }
        let lhsFile = lhs.file ?? "", rhsFile = rhs.file ?? ""
        if lhsFile != rhsFile { return lhsFile < rhsFile }
        let lhsField = lhs.fieldPath ?? "", rhsField = rhs.fieldPath ?? ""
        if lhsField != rhsField { return lhsField < rhsField }
        if lhs.reason != rhs.reason { return lhs.reason < rhs.reason }
        if lhs.message != rhs.message { return lhs.message < rhs.message }
        if lhs.severity != rhs.severity { return lhs.severity.rawValue < rhs.severity.rawValue }
        // Only so that the order is total: an absent file or field path before an empty one.
        if (lhs.file == nil) != (rhs.file == nil) { return lhs.file == nil }
        return lhs.fieldPath == nil && rhs.fieldPath != nil
    }
}
