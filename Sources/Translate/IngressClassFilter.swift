import Kube

/// Decides which Ingresses this controller serves.
///
/// - `spec.ingressClassName` set: served when it names an IngressClass whose
///   `spec.controller` is ours, or (no IngressClass of that name exists) when it
///   equals `options.ingressClass`.
/// - no class name but the legacy `kubernetes.io/ingress.class` annotation:
///   served when it equals `options.ingressClass`.
/// - neither: served when one of our IngressClasses is marked default, or
///   `options.watchIngressWithoutClass` is set.
/// Ingresses of other classes are skipped silently: they belong to another controller.
public struct IngressClassFilter: Sendable {
    static let legacyAnnotation = "kubernetes.io/ingress.class"

    public let options: TranslateOptions
    private let ourClassNames: Set<String>
    private let allClassNames: Set<String>
    private let ourClassIsDefault: Bool

    /// A filter for `options` given the IngressClasses that exist.
    public init(options: TranslateOptions, classes: [IngressClass]) {
        self.options = options
        let ours = classes.filter { $0.spec.controller == options.controllerClass }
        ourClassNames = Set(ours.map(\.metadata.name))
        allClassNames = Set(classes.map(\.metadata.name))
        ourClassIsDefault = ours.contains { $0.isDefaultClass }
    }

    /// True when this controller serves `ingress`.
    public func serves(_ ingress: Ingress) -> Bool {
        if let className = ingress.spec.ingressClassName, !className.isEmpty {
            if ourClassNames.contains(className) { return true }
            return !allClassNames.contains(className) && className == options.ingressClass
        }
        if let legacy = ingress.metadata.annotations[IngressClassFilter.legacyAnnotation] {
            return legacy == options.ingressClass
        }
        return ourClassIsDefault || options.watchIngressWithoutClass
    }
}
