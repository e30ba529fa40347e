/// What Translate needs to know about the controller it runs in.
public struct TranslateOptions: Sendable, Equatable {
    /// `spec.controller` of the IngressClasses Postern serves.
    public var controllerClass: String
    /// Value of the legacy `kubernetes.io/ingress.class` annotation Postern
    /// serves; also accepted as `spec.ingressClassName` when no IngressClass
    /// of that name exists (standalone manifests often omit the class object).
    public var ingressClass: String
    /// Serve Ingresses that name no class even when no default class is ours.
    public var watchIngressWithoutClass: Bool
    /// `namespace/name` of the Service (its first port) that answers requests
    /// no host and no rule matched; nil answers 404.
    public var defaultBackendService: String?
    /// The global policy keys (`proxy-body-size`, source ranges,
    /// `block-cidrs`, `ssl-redirect`, `force-ssl-redirect`); see `GlobalPolicy`.
    public var global: GlobalPolicy
    /// `Strict-Transport-Security` value for HTTPS responses (`hsts*`), nil for none.
    public var strictTransportSecurity: String?

    /// Creates options; the defaults match Postern's command-line defaults,
    /// except `global`, which asks nothing (see `GlobalPolicy`).
    public init(
        controllerClass: String = "postern.dev/ingress-controller", ingressClass: String = "postern",
        watchIngressWithoutClass: Bool = false, defaultBackendService: String? = nil,
        global: GlobalPolicy = GlobalPolicy(), strictTransportSecurity: String? = nil
    ) {
        self.controllerClass = controllerClass
        self.ingressClass = ingressClass
        self.watchIngressWithoutClass = watchIngressWithoutClass
        self.defaultBackendService = defaultBackendService
        self.global = global
        self.strictTransportSecurity = strictTransportSecurity
    }
}
