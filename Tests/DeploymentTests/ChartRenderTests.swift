import Foundation
import Testing
import Yams

/// One set of chart values and what an operator would see in the objects
/// Helm renders from them.
struct ChartVariant: Sendable, CustomTestStringConvertible {
    var name: String
    var values: String
    var check: @Sendable (Rendered) -> Void
    var testDescription: String { name }
}

/// charts/postern rendered by the real Helm: `helm lint --strict` and
/// `helm template` for each group of values, with the rendered YAML parsed
/// and asserted on, and the rendered postern.yaml loaded by `postern check`.
@Suite struct ChartRenderTests {
    static let variants: [ChartVariant] = [
        ChartVariant(name: "defaults", values: "{}") { rendered in
            let deployment = rendered.one("Deployment")
            #expect(deployment?[path: "spec", "replicas"] as? Int == 2)
            #expect(rendered.one("PodDisruptionBudget")?[path: "spec", "minAvailable"] as? Int == 1)
            #expect(rendered.one("IngressClass")?[path: "metadata", "name"] as? String == "postern")
            #expect(rendered.one("IngressClass")?[path: "spec", "controller"] as? String == "postern.dev/ingress-controller")
            // controller.config is the settings ConfigMap (--configmap), values as strings.
            #expect(rendered.argument("--configmap") == "ingress/postern-settings")
            #expect(rendered.settingsData["hsts-max-age"] == "31536000", "\(rendered.settingsData)")
            #expect(rendered.settingsData["use-http2"] == "true")
            #expect(!rendered.settingsData.values.contains { $0.contains("e+") }, "a number printed in float notation: \(rendered.settingsData)")
            #expect(!rendered.settingsText.contains("hsts"), "controller.config leaked into postern.yaml: \(rendered.settingsText)")
            // Pod Security "restricted".
            let pod = rendered.podSpec
            #expect(pod[path: "securityContext", "runAsNonRoot"] as? Bool == true)
            #expect(pod[path: "securityContext", "runAsUser"] as? Int == 65532)
            #expect(pod[path: "securityContext", "seccompProfile", "type"] as? String == "RuntimeDefault")
            let container = rendered.container
            #expect(container[path: "securityContext", "allowPrivilegeEscalation"] as? Bool == false)
            #expect(container[path: "securityContext", "readOnlyRootFilesystem"] as? Bool == true)
            #expect(container[path: "securityContext", "capabilities", "drop"] as? [String] == ["ALL"])
            // Grace period 5 + drain 30 + 10.
            #expect(pod["terminationGracePeriodSeconds"] as? Int == 45)
            #expect(rendered.settingsText.contains("shutdown-grace-period: 5\n"))
            #expect(pod["hostNetwork"] == nil)
            #expect(pod["dnsPolicy"] as? String == "ClusterFirst")
            // Listeners on 8080/8443; clients use the Service's 80/443 (issue 22),
            // which Postern learns from the published Service: the chart writes no public port.
            #expect(rendered.settingsText.contains("http-listen: 0.0.0.0:8080\n"))
            #expect(!rendered.settingsText.contains("public-"), "\(rendered.settingsText)")
            #expect(pod[path: "securityContext", "sysctls"] == nil)
            #expect(container["image"] as? String == "ghcr.io/postern/postern:0.1.0")
            #expect(rendered.arguments.contains("--publish-service"))
            #expect(rendered.arguments.contains("ingress/postern"))
            #expect(rendered.arguments.contains("postern-leader"))
            #expect(!rendered.arguments.contains("--watch-namespace"))
            let service = rendered.one("Service", named: "postern")
            #expect(service?[path: "spec", "type"] as? String == "LoadBalancer")
            #expect((service?[path: "spec", "ports"] as? [[String: Any]])?.map { $0["port"] as? Int } == [80, 443])
            for kind in ["HorizontalPodAutoscaler", "ServiceMonitor", "PrometheusRule", "DaemonSet", "ValidatingWebhookConfiguration"] {
                #expect(rendered.all(kind).isEmpty, "\(kind) rendered by default")
            }
        },
        ChartVariant(name: "one replica has no PodDisruptionBudget", values: "controller: {replicaCount: 1}") { rendered in
            #expect(rendered.one("Deployment")?[path: "spec", "replicas"] as? Int == 1)
            #expect(rendered.all("PodDisruptionBudget").isEmpty, "a PDB with one replica blocks kubectl drain")
        },
        ChartVariant(
            name: "autoscaling",
            values: """
                controller:
                  autoscaling:
                    enabled: true
                    minReplicas: 3
                    maxReplicas: 9
                    targetCPUUtilizationPercentage: 70
                    targetMemoryUtilizationPercentage: 80
                    behavior: {scaleDown: {stabilizationWindowSeconds: 300}}
                  maxUnavailable: 1
                """
        ) { rendered in
            let autoscaler = rendered.one("HorizontalPodAutoscaler")
            #expect(autoscaler?[path: "spec", "minReplicas"] as? Int == 3)
            #expect(autoscaler?[path: "spec", "maxReplicas"] as? Int == 9)
            #expect(autoscaler?[path: "spec", "scaleTargetRef", "name"] as? String == "postern")
            let metrics = autoscaler?[path: "spec", "metrics"] as? [[String: Any]] ?? []
            #expect(metrics.map { $0[path: "resource", "name"] as? String } == ["cpu", "memory"])
            #expect(metrics.map { $0[path: "resource", "target", "averageUtilization"] as? Int } == [70, 80])
            #expect(autoscaler?[path: "spec", "behavior", "scaleDown", "stabilizationWindowSeconds"] as? Int == 300)
            // The autoscaler owns the replica count.
            #expect(rendered.one("Deployment")?[path: "spec", "replicas"] == nil)
            #expect(rendered.one("PodDisruptionBudget")?[path: "spec", "maxUnavailable"] as? Int == 1)
        },
        ChartVariant(
            name: "autoscaling from one replica has no PodDisruptionBudget",
            values: "controller: {replicaCount: 5, autoscaling: {enabled: true, minReplicas: 1}}"
        ) { rendered in
            #expect(rendered.one("HorizontalPodAutoscaler") != nil)
            #expect(rendered.all("PodDisruptionBudget").isEmpty)
        },
        ChartVariant(
            name: "DaemonSet on the host network",
            values: """
                controller:
                  kind: DaemonSet
                  hostNetwork: true
                  containerPort: {http: 8081, https: 8444}
                  hostPort: {enabled: true, ports: {http: 8081, https: 8444}}
                  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}
                  autoscaling: {enabled: true}
                """
        ) { rendered in
            let daemonSet = rendered.one("DaemonSet")
            #expect(daemonSet != nil)
            #expect(rendered.all("Deployment").isEmpty)
            #expect(daemonSet?[path: "spec", "updateStrategy", "rollingUpdate", "maxUnavailable"] as? Int == 2)
            #expect(daemonSet?[path: "spec", "replicas"] == nil)
            #expect(rendered.podSpec["hostNetwork"] as? Bool == true)
            #expect(rendered.podSpec["dnsPolicy"] as? String == "ClusterFirstWithHostNet")
            let ports = rendered.container["ports"] as? [[String: Any]] ?? []
            #expect(ports.compactMap { $0["hostPort"] as? Int } == [8081, 8444])
            #expect(rendered.settingsText.contains("http-listen: 0.0.0.0:8081\n"))
            #expect(rendered.settingsText.contains("https-listen: 0.0.0.0:8444\n"))
            #expect(rendered.settingsText.contains("public-http-port: 8081\npublic-https-port: 8444\n"), "the node's ports are the public ones")
            // Neither an autoscaler nor a PDB applies to a DaemonSet.
            #expect(rendered.all("HorizontalPodAutoscaler").isEmpty)
            #expect(rendered.all("PodDisruptionBudget").isEmpty)
        },
        ChartVariant(
            name: "listeners on 80 and 443 through the unprivileged-port sysctl",
            values: "controller: {bindPrivilegedPorts: true}"
        ) { rendered in
            let ports = rendered.container["ports"] as? [[String: Any]] ?? []
            #expect(ports.compactMap { $0["containerPort"] as? Int } == [80, 443, 10254])
            let sysctls = rendered.podSpec[path: "securityContext", "sysctls"] as? [[String: Any]] ?? []
            #expect(sysctls.contains { $0["name"] as? String == "net.ipv4.ip_unprivileged_port_start" && $0["value"] as? String == "0" })
            #expect(rendered.podSpec[path: "securityContext", "runAsNonRoot"] as? Bool == true, "the restricted settings stay")
            #expect(rendered.settingsText.contains("http-listen: 0.0.0.0:80\n"))
            #expect(rendered.settingsText.contains("https-listen: 0.0.0.0:443\n"))
            // The public ports come from the Service (80 -> http, 443 -> https): listen and public ports agree,
            // as `postern check` shows (below, for every variant).
            #expect(!rendered.settingsText.contains("public-"))
        },
        ChartVariant(
            name: "host ports without the host network",
            values: "controller: {hostPort: {enabled: true}, dnsPolicy: Default}"
        ) { rendered in
            let ports = rendered.container["ports"] as? [[String: Any]] ?? []
            #expect(ports.compactMap { $0["hostPort"] as? Int } == [80, 443])
            #expect(ports.compactMap { $0["containerPort"] as? Int } == [8080, 8443, 10254])
            #expect(rendered.podSpec["dnsPolicy"] as? String == "Default")
        },
        ChartVariant(
            name: "metrics Service, ServiceMonitor and PrometheusRule",
            values: """
                controller:
                  metrics:
                    enabled: true
                    serviceMonitor: {enabled: true, additionalLabels: {release: prometheus}, scrapeInterval: 15s}
                    prometheusRule: {enabled: true, additionalLabels: {release: prometheus}}
                """
        ) { rendered in
            let service = rendered.one("Service", named: "postern-metrics")
            #expect((service?[path: "spec", "ports"] as? [[String: Any]])?.first?["targetPort"] as? String == "metrics")
            let monitor = rendered.one("ServiceMonitor")
            #expect(monitor?[path: "metadata", "labels", "release"] as? String == "prometheus")
            let endpoint = (monitor?[path: "spec", "endpoints"] as? [[String: Any]])?.first
            #expect(endpoint?["port"] as? String == "metrics")
            #expect(endpoint?["interval"] as? String == "15s")
            // The monitor selects the metrics Service (same labels as the Pods).
            let selector = monitor?[path: "spec", "selector", "matchLabels"] as? [String: String] ?? [:]
            let serviceLabels = service?[path: "metadata", "labels"] as? [String: String] ?? [:]
            #expect(!selector.isEmpty && selector.allSatisfy { serviceLabels[$0.key] == $0.value })
            let rules = ((rendered.one("PrometheusRule")?[path: "spec", "groups"] as? [[String: Any]])?.first?["rules"] as? [[String: Any]]) ?? []
            #expect(rules.count == 3)
            // Every alert reads a metric Postern exports.
            let exported = ChartTests.exportedMetricNames
            for rule in rules {
                let expression = rule["expr"] as? String ?? ""
                #expect(exported.contains { expression.contains($0) }, "\(expression) reads no exported metric")
            }
        },
        ChartVariant(
            name: "scheduling and Pod metadata",
            values: """
                controller:
                  priorityClassName: system-cluster-critical
                  podAnnotations: {prometheus.io/scrape: "true"}
                  podLabels: {team: edge}
                  tolerations: [{key: dedicated, operator: Equal, value: ingress, effect: NoSchedule}]
                  topologySpreadConstraints:
                    - maxSkew: 1
                      topologyKey: topology.kubernetes.io/zone
                      whenUnsatisfiable: ScheduleAnyway
                      labelSelector: {matchLabels: {app.kubernetes.io/name: postern}}
                  affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}
                """
        ) { rendered in
            let pod = rendered.podSpec
            #expect(pod["priorityClassName"] as? String == "system-cluster-critical")
            #expect((pod["tolerations"] as? [[String: Any]])?.first?["key"] as? String == "dedicated")
            #expect((pod["topologySpreadConstraints"] as? [[String: Any]])?.first?["topologyKey"] as? String == "topology.kubernetes.io/zone")
            #expect(pod[path: "affinity", "podAntiAffinity"] != nil)
            let template = rendered.workload?[path: "spec", "template", "metadata"] as? [String: Any] ?? [:]
            #expect(template[path: "labels", "team"] as? String == "edge")
            #expect(template[path: "annotations", "prometheus.io/scrape"] as? String == "true")
            #expect(template[path: "annotations", "checksum/config"] != nil)
            // Pod labels stay out of the (immutable) selector.
            #expect(rendered.workload?[path: "spec", "selector", "matchLabels", "team"] == nil)
        },
        ChartVariant(
            name: "image by digest from a private registry",
            values: """
                imagePullSecrets: [{name: regcred}]
                controller:
                  image:
                    repository: registry.example.com/edge/postern
                    digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
                    pullPolicy: Always
                """
        ) { rendered in
            #expect(
                rendered.container["image"] as? String
                    == "registry.example.com/edge/postern@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
            #expect(rendered.container["imagePullPolicy"] as? String == "Always")
            #expect((rendered.podSpec["imagePullSecrets"] as? [[String: Any]])?.first?["name"] as? String == "regcred")
        },
        ChartVariant(
            name: "extra flags, environment and volumes",
            values: """
                controller:
                  extraArgs:
                    default-backend-service: ingress/fallback
                    watch-timeout: 120
                    update-status-on-shutdown: ""
                  extraEnvs: [{name: TZ, value: UTC}]
                  extraVolumes: [{name: ca, secret: {secretName: upstream-ca}}]
                  extraVolumeMounts: [{name: ca, mountPath: /etc/upstream-ca, readOnly: true}]
                """
        ) { rendered in
            let arguments = rendered.arguments
            #expect(arguments.contains("--default-backend-service=ingress/fallback"))
            #expect(arguments.contains("--watch-timeout=120"))
            #expect(arguments.contains("--update-status-on-shutdown"))
            #expect((rendered.container["env"] as? [[String: Any]])?.contains { $0["name"] as? String == "TZ" } == true)
            #expect((rendered.podSpec["volumes"] as? [[String: Any]])?.map { $0["name"] as? String } == ["config", "ca"])
            #expect((rendered.container["volumeMounts"] as? [[String: Any]])?.last?["mountPath"] as? String == "/etc/upstream-ca")
        },
        ChartVariant(name: "nameOverride", values: "nameOverride: gateway") { rendered in
            // Release "postern" does not contain "gateway": RELEASE-NAME.
            #expect(rendered.workload?[path: "metadata", "name"] as? String == "postern-gateway")
            #expect(rendered.one("IngressClass")?[path: "metadata", "name"] as? String == "postern-gateway")
            #expect(rendered.one("IngressClass")?[path: "spec", "controller"] as? String == "postern.dev/ingress-controller-postern-gateway")
            #expect(rendered.workload?[path: "spec", "selector", "matchLabels", "app.kubernetes.io/name"] as? String == "gateway")
        },
        ChartVariant(name: "fullnameOverride", values: "fullnameOverride: edge") { rendered in
            let names = Set(rendered.objects.compactMap { $0[path: "metadata", "name"] as? String })
            #expect(names == ["edge", "edge-settings"], "\(names)")
            #expect(rendered.arguments.contains("edge-leader"))
            #expect(rendered.settingsText.contains("ingress-class: edge\n"))
        },
        ChartVariant(
            name: "existing ServiceAccount",
            values: "serviceAccount: {create: false, name: platform-ingress}"
        ) { rendered in
            #expect(rendered.all("ServiceAccount").isEmpty)
            #expect(rendered.podSpec["serviceAccountName"] as? String == "platform-ingress")
            for binding in rendered.all("ClusterRoleBinding") + rendered.all("RoleBinding") {
                #expect((binding["subjects"] as? [[String: Any]])?.first?["name"] as? String == "platform-ingress")
            }
        },
        ChartVariant(
            name: "ServiceAccount annotations",
            values: "serviceAccount: {annotations: {eks.amazonaws.com/role-arn: arn:aws:iam::1:role/edge}}"
        ) { rendered in
            #expect(rendered.one("ServiceAccount")?[path: "metadata", "annotations", "eks.amazonaws.com/role-arn"] as? String == "arn:aws:iam::1:role/edge")
        },
        ChartVariant(
            name: "security contexts overridden",
            values: """
                controller:
                  podSecurityContext: {runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001, seccompProfile: {type: RuntimeDefault}}
                  containerSecurityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}
                """
        ) { rendered in
            #expect(rendered.podSpec[path: "securityContext", "runAsUser"] as? Int == 10001)
            #expect(rendered.podSpec[path: "securityContext", "fsGroup"] as? Int == 10001)
            #expect(rendered.container[path: "securityContext", "capabilities", "add"] as? [String] == ["NET_BIND_SERVICE"])
        },
        ChartVariant(
            name: "one watched namespace with namespaced RBAC",
            values: "controller: {scope: {enabled: true, namespace: apps}}\nrbac: {scope: true}"
        ) { rendered in
            let arguments = rendered.arguments
            #expect(arguments.firstIndex(of: "--watch-namespace").map { arguments[$0 + 1] } == "apps")
            let clusterRules = rendered.one("ClusterRole")?["rules"] as? [[String: Any]] ?? []
            #expect(clusterRules.flatMap { $0["resources"] as? [String] ?? [] } == ["ingressclasses"])
            let watchRole = rendered.all("Role").first { $0[path: "metadata", "namespace"] as? String == "apps" }
            let watched = (watchRole?["rules"] as? [[String: Any]] ?? []).flatMap { $0["resources"] as? [String] ?? [] }
            #expect(Set(watched) == ["ingresses", "ingresses/status", "services", "secrets", "endpointslices", "events", "configmaps"])
            // The published Service and the settings ConfigMap live in the release namespace.
            let releaseRole = rendered.all("Role").first { $0[path: "metadata", "namespace"] as? String == "ingress" }
            let released = (releaseRole?["rules"] as? [[String: Any]] ?? []).flatMap { $0["resources"] as? [String] ?? [] }
            #expect(Set(released) == ["leases", "services", "configmaps", "events"])
        },
        ChartVariant(
            name: "rollout settings",
            values: """
                controller:
                  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
                  minReadySeconds: 10
                  terminationGracePeriodSeconds: 120
                  drainTimeout: 45
                """
        ) { rendered in
            let spec = rendered.one("Deployment")?["spec"] as? [String: Any] ?? [:]
            #expect(spec[path: "strategy", "rollingUpdate", "maxUnavailable"] as? Int == 0)
            #expect(spec["minReadySeconds"] as? Int == 10)
            #expect(rendered.podSpec["terminationGracePeriodSeconds"] as? Int == 120)
            #expect(rendered.settingsText.contains("drain-timeout: 45\n"))
        },
        ChartVariant(
            name: "admission webhook with cert-manager",
            values: """
                controller:
                  scope: {enabled: true, namespace: apps}
                  admissionWebhooks: {enabled: true, certManager: {enabled: true}, timeoutSeconds: 3}
                """
        ) { rendered in
            let configuration = rendered.one("ValidatingWebhookConfiguration")
            #expect(configuration?[path: "metadata", "annotations", "cert-manager.io/inject-ca-from"] as? String == "ingress/postern-admission")
            let webhook = (configuration?["webhooks"] as? [[String: Any]])?.first ?? [:]
            #expect(webhook["failurePolicy"] as? String == "Fail")
            #expect(webhook["timeoutSeconds"] as? Int == 3)
            #expect(webhook["sideEffects"] as? String == "None")
            #expect(webhook[path: "clientConfig", "service", "name"] as? String == "postern-admission")
            #expect(webhook[path: "clientConfig", "service", "path"] as? String == "/validate-ingress")
            #expect(webhook[path: "namespaceSelector", "matchLabels", "kubernetes.io/metadata.name"] as? String == "apps")
            let rules = (webhook["rules"] as? [[String: Any]])?.first ?? [:]
            #expect(rules["resources"] as? [String] == ["ingresses"])
            #expect(rules["operations"] as? [String] == ["CREATE", "UPDATE"])
            // The Service reaches the Pods' webhook port, which Postern listens on with cert-manager's certificate.
            let service = rendered.one("Service", named: "postern-admission")
            #expect((service?[path: "spec", "ports"] as? [[String: Any]])?.first?["targetPort"] as? String == "webhook")
            let ports = rendered.container["ports"] as? [[String: Any]] ?? []
            #expect(ports.contains { $0["name"] as? String == "webhook" && $0["containerPort"] as? Int == 8445 })
            let arguments = rendered.arguments
            #expect(arguments.firstIndex(of: "--admission-webhook-listen").map { arguments[$0 + 1] } == "0.0.0.0:8445")
            #expect(arguments.firstIndex(of: "--admission-webhook-certificate").map { arguments[$0 + 1] } == "/etc/postern-admission/tls.crt")
            let certificate = rendered.one("Certificate")
            #expect(certificate?[path: "spec", "secretName"] as? String == "postern-admission")
            #expect((certificate?[path: "spec", "dnsNames"] as? [String])?.first == "postern-admission.ingress.svc")
            let volumes = rendered.podSpec["volumes"] as? [[String: Any]] ?? []
            #expect(volumes.contains { $0[path: "secret", "secretName"] as? String == "postern-admission" })
        },
        ChartVariant(
            name: "admission webhook with the certificate managed by Postern",
            values: """
                controller:
                  admissionWebhooks: {enabled: true}
                """
        ) { rendered in
            // The default: no cert-manager objects; Postern's leader fills in the caBundle.
            #expect(rendered.all("Certificate").isEmpty && rendered.all("Issuer").isEmpty)
            let configuration = rendered.one("ValidatingWebhookConfiguration")
            #expect(configuration?[path: "metadata", "annotations"] == nil)
            #expect(configuration?[path: "metadata", "name"] as? String == "postern-admission")
            let webhook = (configuration?["webhooks"] as? [[String: Any]])?.first ?? [:]
            #expect(webhook["failurePolicy"] as? String == "Fail")
            #expect(webhook["timeoutSeconds"] as? Int == 5)
            #expect(webhook[path: "clientConfig", "caBundle"] == nil)
            let arguments = rendered.arguments
            func value(_ flag: String) -> String? { arguments.firstIndex(of: flag).map { arguments[$0 + 1] } }
            #expect(value("--admission-webhook-secret") == "postern-admission")
            #expect(value("--admission-webhook-configuration") == "postern-admission")
            #expect(value("--admission-webhook-service") == "postern-admission")
            #expect(!arguments.contains("--admission-webhook-certificate"))
            let volumes = rendered.podSpec["volumes"] as? [[String: Any]] ?? []
            #expect(!volumes.contains { $0[path: "secret", "secretName"] as? String == "postern-admission" })
            // Only that Secret and that configuration may be read and updated.
            let clusterRules = rendered.one("ClusterRole")?["rules"] as? [[String: Any]] ?? []
            #expect(clusterRules.contains {
                $0["resources"] as? [String] == ["validatingwebhookconfigurations"] && $0["resourceNames"] as? [String] == ["postern-admission"]
                    && $0["verbs"] as? [String] == ["get", "update"]
            })
            let roleRules = rendered.all("Role").flatMap { $0["rules"] as? [[String: Any]] ?? [] }
            #expect(roleRules.contains {
                $0["resources"] as? [String] == ["secrets"] && $0["resourceNames"] as? [String] == ["postern-admission"]
                    && $0["verbs"] as? [String] == ["get", "update"]
            })
        },
        ChartVariant(
            name: "proxy settings keep their types",
            values: """
                controller:
                  defaultSSLCertificate: ingress/wildcard
                  watchIngressWithoutClass: true
                  config:
                    hsts-max-age: 63072000
                    hsts-include-subdomains: true
                    http2-max-concurrent-streams: 250
                    proxy-read-timeout: 120s
                    upstream-keepalive-connections: 320
                    use-http2: false
                """
        ) { rendered in
            // Numbers and booleans become the strings Postern reads (ConfigMap data is strings).
            let data = rendered.settingsData
            for (key, value) in [("hsts-max-age", "63072000"), ("hsts-include-subdomains", "true"), ("http2-max-concurrent-streams", "250"),
                                 ("proxy-read-timeout", "120s"), ("upstream-keepalive-connections", "320"), ("use-http2", "false")] {
                #expect(data[key] == value, "\(key) in \(data)")
            }
            let settings = rendered.settingsText
            for line in ["default-ssl-certificate: ingress/wildcard", "watch-ingress-without-class: true"] {
                #expect(settings.contains(line + "\n"), "\(line) missing from \(settings)")
            }
        },
    ]

    @Test(arguments: variants) func valuesLintAndRenderAsOperatorsExpect(_ variant: ChartVariant) throws {
        let lint = try Helm.lint(variant.values)
        #expect(lint.status == 0, "helm lint --strict: \(lint.output)")
        let rendered = try Helm.render(variant.values)
        try #require(rendered.workload != nil)
        variant.check(rendered)
        // Whatever the values, Postern accepts the flags and the settings the chart writes.
        try ChartTests.expectPosternRunAccepts(rendered.arguments)
        try ChartTests.expectPosternCheckAccepts(rendered)
    }

    @Test func secondReleaseGetsItsOwnClassControllerValueAndLease() throws {
        let first = try Helm.render("{}", release: "postern", namespace: "ingress")
        let second = try Helm.render("{}", release: "internal", namespace: "ingress")
        func identity(_ rendered: Rendered) -> (String?, String?, String?, String?) {
            let index = rendered.arguments.firstIndex(of: "--election-id")
            return (
                rendered.one("IngressClass")?[path: "metadata", "name"] as? String,
                rendered.one("IngressClass")?[path: "spec", "controller"] as? String,
                index.map { rendered.arguments[$0 + 1] },
                rendered.one("ClusterRole")?[path: "metadata", "name"] as? String
            )
        }
        let (firstClass, firstController, firstLease, firstRole) = identity(first)
        let (secondClass, secondController, secondLease, secondRole) = identity(second)
        #expect(firstClass == "postern" && secondClass == "internal-postern")
        #expect(firstController != secondController)
        #expect(firstLease != secondLease)
        #expect(firstRole != secondRole)
        // Each release's Postern serves its own class only.
        #expect(second.settingsText.contains("controller-class: \(secondController ?? "?")\n"))
        #expect(second.settingsText.contains("ingress-class: internal-postern\n"))
    }

    @Test(arguments: [
        ("controller: {kind: StatefulSet}", "/controller/kind"),
        ("controller: {replicaCount: two}", "/controller/replicaCount"),
        ("controller: {replicas: 3}", "replicas"),
        ("controller: {config: {hsts-max-age: {seconds: 1}}}", "/controller/config/hsts-max-age"),
        ("controller: {config: {http-listen: \"0.0.0.0:80\"}}", "http-listen"),
        ("controller: {config: {default-ssl-certificate: ingress/wildcard}}", "default-ssl-certificate"),
        ("controller: {config: {proxy-body-size: [8m]}}", "/controller/config/proxy-body-size"),
        ("controller: {image: {digest: latest}}", "/controller/image/digest"),
        ("controller: {service: {type: External}}", "/controller/service/type"),
        ("rbac: {scope: true}", "rbac.scope needs controller.scope.enabled"),
        ("controller: {hostNetwork: true, hostPort: {enabled: true}}", "must equal controller.containerPort"),
        ("controller: {admissionWebhooks: {timeoutSeconds: 60}}", "/controller/admissionWebhooks/timeoutSeconds"),
        ("controller: {admissionWebhooks: {failurePolicy: Sometimes}}", "/controller/admissionWebhooks/failurePolicy"),
    ])
    func badValuesAreRefusedNamingTheValue(values: String, named: String) throws {
        switch try Helm.template(values) {
        case .success: Issue.record("helm accepted \(values)")
        case let .failure(failure): #expect(failure.message.contains(named), "\(failure.message)")
        }
    }

    @Test func quotedFloatOfTheOldChartIsWhatPosternRefuses() throws {
        // The defect the chart had: `quote` on 31536000 gave "3.1536e+07".
        // Postern refuses it, so the check above would catch the regression.
        let folder = try ChartTests.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "hsts-max-age: \"3.1536e+07\"\nmanifests: \(folder)\n".write(toFile: folder + "/postern.yaml", atomically: true, encoding: .utf8)
        let check = try ChartTests.run(["check", "--config", folder + "/postern.yaml"])
        #expect(check.status == 2)
        #expect(check.output.contains("hsts-max-age"))
    }
}
