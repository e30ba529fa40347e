import ArgumentParser
import Controller
import FoundationEssentials
import Kube
import Routing
import Translate

/// `postern check`'s migration report: for every Ingress Postern serves,
/// each ingress-nginx (and `postern.dev/`) annotation with its verdict
/// (honoured, no effect, ignored, refused) and why, so an operator moving
/// from ingress-nginx sees what changes before switching traffic.
struct MigrationReport: Sendable {
    /// `--output`.
    enum Format: String, ExpressibleByArgument, Sendable {
        case text
        case json
    }

    /// One Ingress.
    struct IngressEntry: Encodable, Sendable {
        /// Whether the Ingress's rules are served.
        enum Status: String, Encodable, Sendable {
            /// Every annotation honoured or without effect.
            case served
            /// Served; some annotations are ignored (warnings).
            case servedWithWarnings = "served-with-warnings"
            /// Refused: its rules answer 503.
            case refused
            /// Not served at all (a canary Ingress).
            case notServed = "not-served"
        }

        var namespace: String
        var name: String
        var file: String?
        var status: Status
        /// Why the rules answer 503 (the route policy's refusal), when refused.
        var refusal: String?
        var annotations: [AnnotationVerdict]
    }

    var ingresses: [IngressEntry]

    /// Reviews the served Ingresses of `load`.
    init(load: ManifestLoad, options: TranslateOptions) {
        ingresses = reviewAnnotations(load.snapshot, options: options).map { key, review in
            let status: IngressEntry.Status
            if review.isCanary {
                status = .notServed
            } else if review.isRefused {
                status = .refused
            } else if review.verdicts.contains(where: { $0.outcome == .ignored }) {
                status = .servedWithWarnings
            } else {
                status = .served
            }
            return IngressEntry(
                namespace: key.namespace, name: key.name, file: load.files[key], status: status, refusal: review.policy.refusal,
                annotations: review.verdicts)
        }
    }

    /// Ingresses per status.
    func ingressCount(_ status: IngressEntry.Status) -> Int { ingresses.filter { $0.status == status }.count }

    /// Annotations per verdict, over every Ingress.
    func annotationCount(_ outcome: AnnotationVerdict.Outcome) -> Int {
        ingresses.reduce(0) { $0 + $1.annotations.filter { $0.outcome == outcome }.count }
    }

    /// The report for a terminal: one block per Ingress that has annotations,
    /// one line per annotation, and a closing count.
    func text() -> String {
        var out = "\nmigration report (ingress-nginx annotations):\n"
        for entry in ingresses where !entry.annotations.isEmpty {
            let file = entry.file.map { " (\($0))" } ?? ""
            let status: String
            switch entry.status {
            case .served: status = "served"
            case .servedWithWarnings: status = "served, some annotations ignored"
            case .refused: status = "REFUSED: its rules answer 503"
            case .notServed: status = "not served (canary)"
            }
            out += "Ingress \(entry.namespace)/\(entry.name)\(file): \(status)\n"
            for verdict in entry.annotations {
                let label = verdict.outcome.rawValue + String(repeating: " ", count: max(0, 10 - verdict.outcome.rawValue.count))
                let reason = verdict.reason.isEmpty ? "" : ": \(verdict.reason)"
                out += "  \(label) \(verdict.key)\(reason)\n"
            }
        }
        let plain = ingresses.filter { $0.annotations.isEmpty }.count
        out += "\(ingresses.count) Ingresses: \(ingressCount(.served)) served as written"
            + ", \(ingressCount(.servedWithWarnings)) served with ignored annotations"
            + ", \(ingressCount(.refused)) refused (503), \(ingressCount(.notServed)) not served"
            + (plain > 0 ? " (\(plain) without ingress-nginx annotations)" : "") + "\n"
        out += "annotations: \(annotationCount(.honoured)) honoured, \(annotationCount(.withoutEffect)) without effect, "
            + "\(annotationCount(.ignored)) ignored, \(annotationCount(.refused)) refused\n"
        return out
    }

    /// One JSON document for scripts: the Ingresses, counts and every diagnostic.
    func json(diagnostics: [Diagnostic]) -> String {
        struct DiagnosticEntry: Encodable {
            var severity: String
            var kind: String
            var namespace: String
            var name: String
            var file: String?
            var field: String?
            var reason: String
            var message: String
        }
        struct Summary: Encodable {
            var ingresses: Int
            var served: Int
            var servedWithWarnings: Int
            var refused: Int
            var notServed: Int
            var annotations: [String: Int]
        }
        struct Document: Encodable {
            var ingresses: [IngressEntry]
            var summary: Summary
            var diagnostics: [DiagnosticEntry]
        }
        let document = Document(
            ingresses: ingresses,
            summary: Summary(
                ingresses: ingresses.count, served: ingressCount(.served), servedWithWarnings: ingressCount(.servedWithWarnings),
                refused: ingressCount(.refused), notServed: ingressCount(.notServed),
                annotations: [
                    AnnotationVerdict.Outcome.honoured, .withoutEffect, .ignored, .refused,
                ].reduce(into: [:]) { $0[$1.rawValue] = annotationCount($1) }),
            diagnostics: diagnostics.map {
                DiagnosticEntry(
                    severity: $0.severity.rawValue, kind: $0.kind, namespace: $0.namespace, name: $0.name, file: $0.file,
                    field: $0.fieldPath, reason: $0.reason, message: $0.message)
            })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(document) else {
            preconditionFailure("the migration report is plain strings and numbers; encoding cannot fail")
        }
        return String(decoding: data, as: UTF8.self)
    }
}
