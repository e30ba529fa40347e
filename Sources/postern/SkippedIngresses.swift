import Kube
import Translate

/// The Ingresses this controller does not serve because of their class,
/// grouped by class, each with the setting that would make Postern serve
/// it: a migration from ingress-nginx otherwise reports "0 hosts, 0 errors"
/// and leaves the operator guessing.
struct SkippedIngresses: Equatable, CustomStringConvertible {
    /// One class (or "no class") and the Ingresses of it.
    struct Group: Equatable {
        /// How the Ingresses name their class, e.g. `ingressClassName "nginx"`.
        var selector: String
        var count: Int
        /// The flag (or config key) that would serve them.
        var remedy: String
    }

    var groups: [Group]

    var total: Int { groups.reduce(0) { $0 + $1.count } }

    /// Groups the Ingresses of `snapshot` that `options` does not select.
    init(_ snapshot: ObjectSnapshot, options: TranslateOptions) {
        let filter = IngressClassFilter(options: options, classes: snapshot.ingressClasses)
        let classes = Dictionary(snapshot.ingressClasses.map { ($0.metadata.name, $0) }, uniquingKeysWith: { first, _ in first })
        var counts: [String: (count: Int, remedy: String)] = [:]
        for ingress in snapshot.ingresses where !filter.serves(ingress) {
            let selector: String
            let remedy: String
            if let name = ingress.spec.ingressClassName, !name.isEmpty {
                selector = "ingressClassName \"\(name)\""
                if let existing = classes[name] {
                    remedy = "--controller-class \(existing.spec.controller ?? "?") (IngressClass \(name) names that controller)"
                } else {
                    remedy = "--ingress-class \(name) (no IngressClass \(name) exists)"
                }
            } else if let legacy = ingress.metadata.annotations["kubernetes.io/ingress.class"] {
                selector = "annotation kubernetes.io/ingress.class \"\(legacy)\""
                remedy = "--ingress-class \(legacy)"
            } else {
                selector = "no class"
                remedy = "--watch-ingress-without-class, or mark Postern's IngressClass as the default"
            }
            counts[selector, default: (0, remedy)].count += 1
        }
        groups = counts.map { Group(selector: $0.key, count: $0.value.count, remedy: $0.value.remedy) }
            .sorted { ($0.count, $1.selector) > ($1.count, $0.selector) }
    }

    /// One line: "3 Ingresses skipped for their class: 2 with ingressClassName "nginx" (to serve them: --ingress-class nginx ...); ...".
    var description: String {
        let parts = groups.map { "\($0.count) with \($0.selector) (to serve them: \($0.remedy))" }
        return "\(total) Ingress\(total == 1 ? "" : "es") skipped for their class: " + parts.joined(separator: "; ")
    }
}
