import Controller
import Kube
import Testing
import Translate

/// Decodes YAML test fixtures, failing the test on any diagnostic.
func objects(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [KubeObject] {
    switch ManifestParser.parse(yaml: yaml, file: nil) {
    case let .success(parsed):
        #expect(parsed.diagnostics.isEmpty, "fixture diagnostics: \(parsed.diagnostics)", sourceLocation: sourceLocation)
        return parsed.objects
    case let .failure(error):
        Issue.record("fixture is not YAML: \(error)", sourceLocation: sourceLocation)
        return []
    }
}

func translate(_ yaml: String, options: TranslateOptions = TranslateOptions()) -> TranslationResult {
    translate(ObjectSnapshot(objects: objects(yaml)), options: options)
}

let ingressClass = """
    apiVersion: networking.k8s.io/v1
    kind: IngressClass
    metadata:
      name: postern
    spec:
      controller: postern.dev/ingress-controller
    """

func service(_ name: String, namespace: String = "default", ports: String = "  - name: http\n    port: 80\n    targetPort: 8080") -> String {
    """
    apiVersion: v1
    kind: Service
    metadata:
      name: \(name)
      namespace: \(namespace)
    spec:
      ports:
    \(ports)
    """
}

func slice(_ name: String, service: String, namespace: String = "default", port: Int = 8080, addresses: [String]) -> String {
    var text = """
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: \(name)
      namespace: \(namespace)
      labels:
        kubernetes.io/service-name: \(service)
    addressType: IPv4
    ports:
      - name: http
        port: \(port)
    endpoints:
    """
    for address in addresses {
        text += "\n  - addresses: [\"\(address)\"]\n    conditions: {ready: true}"
    }
    return text
}

/// An Ingress of class `postern` with one rule per (host, path, pathType, service).
func ingress(
    _ name: String, namespace: String = "default", created: String? = nil, className: String? = "postern",
    rules: [(host: String?, path: String, type: String, service: String)], extraSpec: String = ""
) -> String {
    var text = """
    apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata:
      name: \(name)
      namespace: \(namespace)
    """
    if let created { text += "\n  creationTimestamp: \"\(created)\"" }
    text += "\nspec:"
    if let className { text += "\n  ingressClassName: \(className)" }
    text += extraSpec
    if !rules.isEmpty { text += "\n  rules:" }
    for rule in rules {
        text += rule.host.map { "\n    - host: \"\($0)\"\n      http:" } ?? "\n    - http:"
        text += """

                paths:
                  - path: \(rule.path)
                    pathType: \(rule.type)
                    backend:
                      service:
                        name: \(rule.service)
                        port:
                          name: http
        """
    }
    return text
}

func documents(_ parts: String...) -> String {
    parts.joined(separator: "\n---\n")
}
