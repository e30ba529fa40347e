import RouteModel
import Kube

/// The annotations of one Ingress that Postern reads, parsed into typed
/// fields; a malformed value is a diagnostic, never a guess. See
/// docs/annotations.md.
struct IngressAnnotations {
    static let useRegexKey = "nginx.ingress.kubernetes.io/use-regex"
    static let rewriteTargetKey = "nginx.ingress.kubernetes.io/rewrite-target"

    /// `use-regex`: ImplementationSpecific paths are regular expressions.
    var useRegex = false
    /// `rewrite-target`, validated: the upstream path template.
    var rewriteTarget: String?
    /// `backend-protocol` and `proxy-ssl-*`: how to reach the backends
    /// (the TLS server name is filled in per Service by `ClusterResolver`).
    var upstream: UpstreamSettings = .http
    /// ImplementationSpecific paths are regexes with `use-regex`, and (as in
    /// ingress-nginx) whenever a rewrite target is set, so `$1` has a group to name.
    var implementationSpecificIsRegex: Bool { useRegex || rewriteTarget != nil }

    static func field(_ key: String) -> String { "metadata.annotations[\(key)]" }

    /// Parses the annotations of `ingress`, appending problems to
    /// `diagnostics`. An invalid value falls back to the default here:
    /// `AnnotationReview` reports it and refuses the Ingress (fail closed).
    static func parse(_ ingress: Ingress, secrets: inout SecretLookup, into diagnostics: inout [Diagnostic]) -> IngressAnnotations {
        var result = IngressAnnotations()
        let annotations = ingress.metadata.annotations
        if let text = annotations[useRegexKey] {
            result.useRegex = GoBool.parse(text) ?? false
        }
        if let text = annotations[rewriteTargetKey], rewriteTargetProblem(text) == nil {
            result.rewriteTarget = text
        }
        result.upstream = UpstreamAnnotations.parse(ingress, secrets: &secrets, into: &diagnostics)
        return result
    }

    /// Why `text` is not a usable rewrite target, or nil.
    static func rewriteTargetProblem(_ text: String) -> String? {
        let bytes = Array(text.utf8)
        guard bytes.first == UInt8(ascii: "/") else { return "must start with \"/\"" }
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte <= 0x20 || byte >= 0x7f || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#")
                || byte == UInt8(ascii: "\\")
            {
                return "contains a space, control or non-ASCII character, \"?\", \"#\" or \"\\\""
            }
            if byte == UInt8(ascii: "$") {
                guard let (_, length) = referenceAt(bytes, i) else {
                    return "has a \"$\" that is not $0-$9 or ${0}-${9}"
                }
                i += length
                continue
            }
            i += 1
        }
        return nil
    }

    /// Group number and length of `$n` / `${n}` at `bytes[i]`.
    static func referenceAt(_ bytes: [UInt8], _ i: Int) -> (Int, Int)? {
        func digit(_ j: Int) -> Int? {
            guard j < bytes.count, bytes[j] >= UInt8(ascii: "0"), bytes[j] <= UInt8(ascii: "9") else { return nil }
            return Int(bytes[j] - UInt8(ascii: "0"))
        }
        if let n = digit(i + 1) { return (n, 2) }
        if i + 3 < bytes.count, bytes[i + 1] == UInt8(ascii: "{"), let n = digit(i + 2), bytes[i + 3] == UInt8(ascii: "}") {
            return (n, 4)
        }
        return nil
    }

    /// The highest group `$n` the template names, or -1.
    static func highestGroup(_ template: String) -> Int {
        let bytes = Array(template.utf8)
        var highest = -1
        for i in bytes.indices where bytes[i] == UInt8(ascii: "$") {
            if let (n, _) = referenceAt(bytes, i) { highest = max(highest, n) }
        }
        return highest
    }
}
