import Controller
import SeededRandom
import Kube
import RouteModel
import Routing
import Testing
import Translate

private let web = documents(
    ingressClass,
    service("web"),
    slice("web-abc", service: "web", addresses: ["10.0.0.2", "10.0.0.1"]),
    ingress("web", rules: [(host: "Example.COM", path: "/app/", type: "Prefix", service: "web")]))

private func ip(_ text: String) -> IPAddress {
    IPAddress(parsing: text) ?? .v4(0, 0, 0, 0)
}

private func reasons(_ result: TranslationResult) -> [String] {
    result.diagnostics.map(\.reason)
}

@Suite struct IngressTranslation {
    @Test func ingressServiceAndSliceBecomeAHostRouteAndCluster() {
        let result = translate(web)
        #expect(result.diagnostics.isEmpty)
        // ssl-redirect is on by default (it redirects once the host has TLS).
        #expect(result.model == RouteModel(
            virtualHosts: [VirtualHost(host: .exact("example.com"), routes: [
                Route(path: "/app", match: .prefix, cluster: "default/web:http", source: "default/web",
                      location: "spec.rules[0].http.paths[0]", httpsRedirect: HTTPSRedirect(sslRedirect: true)),
            ])],
            clusters: [Cluster(name: "default/web:http", endpoints: [
                Endpoint(address: .v4(10, 0, 0, 1), port: 8080),
                Endpoint(address: .v4(10, 0, 0, 2), port: 8080),
            ])],
            defaultHTTPSRedirect: HTTPSRedirect(sslRedirect: true)))
    }

    @Test func translatedModelRoutesRequests() {
        let table = RoutingTable(model: translate(web).model, generation: 1)
        guard case let .cluster(cluster) = table.route(host: "example.com:443", path: "/app/index.html") else {
            Issue.record("request was not routed")
            return
        }
        #expect(cluster.name == "default/web:http")
        #expect(cluster.endpoints.count == 2)
    }

    @Test func sameObjectsInAnyOrderGiveAnEqualModel() {
        let all = objects(documents(
            ingressClass, service("web"), service("api"),
            slice("web-a", service: "web", addresses: ["10.0.0.1", "10.0.0.3"]),
            slice("web-b", service: "web", addresses: ["10.0.0.2"]),
            slice("api-a", service: "api", addresses: ["10.0.1.1"]),
            ingress("one", created: "2024-01-01T00:00:00Z", rules: [
                (host: "a.example.com", path: "/", type: "Prefix", service: "web"),
                (host: "*.example.com", path: "/x", type: "Exact", service: "api"),
            ]),
            ingress("two", created: "2024-01-02T00:00:00Z", rules: [
                (host: "a.example.com", path: "/", type: "Prefix", service: "api"),
                (host: nil, path: "/api", type: "Prefix", service: "api"),
            ])))
        let expected = translate(ObjectSnapshot(objects: all), options: TranslateOptions())
        var generator = SplitMix(seed: 42)
        for _ in 0..<20 {
            let shuffled = all.shuffled(using: &generator)
            let result = translate(ObjectSnapshot(objects: shuffled), options: TranslateOptions())
            #expect(result == expected)
        }
    }

    @Test func serviceThenIngressEqualsIngressThenService() {
        let serviceFirst = translate(documents(ingressClass, service("web"), slice("s", service: "web", addresses: ["10.0.0.1"]),
            ingress("web", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])))
        let ingressFirst = translate(documents(ingress("web", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")]),
            slice("s", service: "web", addresses: ["10.0.0.1"]), service("web"), ingressClass))
        #expect(serviceFirst == ingressFirst)
        #expect(serviceFirst.model.clusters.first?.endpoints.count == 1)
    }

    @Test func wildcardHostBecomesASuffixMatch() {
        let result = translate(documents(ingressClass, service("web"),
            ingress("w", rules: [(host: "*.Example.com", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.virtualHosts.map(\.host) == [.wildcard(suffix: ".example.com")])
    }

    @Test func rulesWithoutHostGoToTheAnyHost() {
        let result = translate(documents(ingressClass, service("web"),
            ingress("w", rules: [(host: nil, path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.virtualHosts.map(\.host) == [.any])
    }

    @Test func malformedHostIsReportedAndSkipped() {
        let result = translate(documents(ingressClass, service("web"),
            ingress("w", rules: [(host: "a.*.example.com", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.virtualHosts.isEmpty)
        #expect(reasons(result) == ["InvalidHost"])
    }
}

@Suite struct PathRules {
    private func paths(_ rules: [(path: String, type: String)]) -> TranslationResult {
        translate(documents(ingressClass, service("web"),
            ingress("w", rules: rules.map { (host: "h.example", path: $0.path, type: $0.type, service: "web") })))
    }

    @Test func pathNotStartingWithSlashIsReportedAndSkipped() {
        let result = paths([(path: "app", type: "Prefix"), (path: "/ok", type: "Prefix")])
        #expect(result.model.virtualHosts.first?.routes.map(\.path) == ["/ok"])
        #expect(reasons(result) == ["InvalidPath"])
        #expect(result.diagnostics.first?.message.contains("must start with") == true)
        #expect(result.diagnostics.first?.name == "w")
    }

    @Test func prefixLosesTrailingSlashButRootKeepsIt() {
        let result = paths([(path: "/a/", type: "Prefix"), (path: "/", type: "Prefix"), (path: "/e/", type: "Exact")])
        let routes = result.model.virtualHosts.first?.routes.map { "\($0.path) \($0.match)" }
        #expect(routes == ["/ prefix", "/a prefix", "/e/ exact"])
    }

    @Test func implementationSpecificIsTreatedAsPrefix() {
        let result = paths([(path: "/legacy", type: "ImplementationSpecific")])
        #expect(result.model.virtualHosts.first?.routes.first?.match == .prefix)
        #expect(result.diagnostics.isEmpty)
    }

    @Test func unknownPathTypeIsReportedAndSkipped() {
        let result = paths([(path: "/re.*", type: "Regex")])
        #expect(result.model.virtualHosts.first?.routes.isEmpty == true)
        #expect(reasons(result) == ["InvalidPath"])
    }

    @Test func oldestIngressWinsAConflictAndTheOtherIsTold() {
        let result = translate(documents(ingressClass, service("old"), service("new"),
            ingress("newer", created: "2024-06-01T00:00:00Z", rules: [(host: "h.example", path: "/", type: "Prefix", service: "new")]),
            ingress("older", created: "2024-01-01T00:00:00+02:00", rules: [(host: "h.example", path: "/", type: "Prefix", service: "old")])))
        let route = result.model.virtualHosts.first?.routes.first
        #expect(route?.cluster == "default/old:http")
        #expect(route?.source == "default/older")
        let conflict = result.diagnostics.first { $0.reason == "PathConflict" }
        #expect(conflict?.name == "newer")
        #expect(conflict?.message.contains("default/older") == true)
    }

    @Test func withoutTimestampsTheConflictGoesToNamespaceThenName() {
        let result = translate(documents(ingressClass, service("a"), service("b"),
            ingress("b", rules: [(host: "h.example", path: "/x", type: "Exact", service: "b")]),
            ingress("a", rules: [(host: "h.example", path: "/x", type: "Exact", service: "a")])))
        #expect(result.model.virtualHosts.first?.routes.first?.source == "default/a")
        #expect(result.diagnostics.map(\.name) == ["b"])
    }

    @Test func exactAndPrefixOfTheSamePathDoNotConflict() {
        let result = translate(documents(ingressClass, service("a"), service("b"),
            ingress("a", rules: [(host: "h.example", path: "/x", type: "Exact", service: "a")]),
            ingress("b", rules: [(host: "h.example", path: "/x", type: "Prefix", service: "b")])))
        #expect(result.model.virtualHosts.first?.routes.count == 2)
        #expect(result.diagnostics.isEmpty)
    }
}

@Suite struct IngressClassSelection {
    private func served(_ ingressYAML: String, classes: String = ingressClass, options: TranslateOptions = TranslateOptions()) -> Bool {
        let result = translate(documents(classes, service("web"), ingressYAML), options: options)
        return !result.model.virtualHosts.isEmpty
    }

    private let rule = [(host: String?.some("h.example"), path: "/", type: "Prefix", service: "web")]

    @Test func ingressOfOurClassIsServed() {
        #expect(served(ingress("w", className: "postern", rules: rule)))
    }

    @Test func ingressOfAnotherControllersClassIsIgnoredSilently() {
        let nginx = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\nspec: {controller: k8s.io/ingress-nginx}"
        let result = translate(documents(ingressClass, nginx, service("web"), ingress("w", className: "nginx", rules: rule)))
        #expect(result.model.virtualHosts.isEmpty)
        #expect(result.diagnostics.isEmpty)
    }

    @Test func classNameMatchingOurClassIsServedWithoutAnIngressClassObject() {
        let result = translate(documents(service("web"), ingress("w", className: "postern", rules: rule)))
        #expect(result.model.virtualHosts.count == 1)
    }

    @Test func classlessIngressIsIgnoredWithoutADefaultClass() {
        #expect(!served(ingress("w", className: nil, rules: rule)))
    }

    @Test func classlessIngressIsServedWhenOurClassIsDefault() {
        let defaultClass = """
            apiVersion: networking.k8s.io/v1
            kind: IngressClass
            metadata:
              name: postern
              annotations:
                ingressclass.kubernetes.io/is-default-class: "true"
            spec:
              controller: postern.dev/ingress-controller
            """
        #expect(served(ingress("w", className: nil, rules: rule), classes: defaultClass))
    }

    @Test func classlessIngressIsServedWhenWatchingIngressesWithoutClass() {
        #expect(served(ingress("w", className: nil, rules: rule), options: TranslateOptions(watchIngressWithoutClass: true)))
    }

    @Test func legacyAnnotationSelectsTheClass() {
        let annotated = ingress("w", className: nil, rules: rule).replacingOccurrences(
            of: "  namespace: default", with: "  namespace: default\n  annotations:\n    kubernetes.io/ingress.class: postern")
        #expect(served(annotated))
        let other = annotated.replacingOccurrences(of: "ingress.class: postern", with: "ingress.class: nginx")
        #expect(!served(other, options: TranslateOptions(watchIngressWithoutClass: true)))
    }
}

@Suite struct Backends {
    @Test func missingServiceGivesA503ClusterAndADiagnostic() {
        let result = translate(documents(ingressClass,
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "ghost")])))
        let cluster = result.model.clusters.first
        #expect(cluster?.name == "default/ghost:http")
        #expect(cluster?.endpoints.isEmpty == true)
        #expect(cluster?.unavailableReason?.contains("not found") == true)
        #expect(reasons(result) == ["MissingService"])
        #expect(result.diagnostics.first?.kind == "Ingress")
    }

    @Test func resourceBackendIsUnsupported() {
        let yaml = ingress("w", rules: [], extraSpec: """

              defaultBackend:
                resource:
                  apiGroup: k8s.example.com
                  kind: StorageBucket
                  name: assets
            """)
        let result = translate(documents(ingressClass, yaml))
        #expect(reasons(result) == ["UnsupportedBackend"])
        #expect(result.model.virtualHosts.first?.defaultCluster == result.model.clusters.first?.name)
        #expect(result.model.clusters.first?.endpoints.isEmpty == true)
    }

    @Test func onlyReadyNonTerminatingEndpointsAreUsed() {
        let slice = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-x
              labels: {kubernetes.io/service-name: web}
            addressType: IPv4
            ports: [{name: http, port: 9000}]
            endpoints:
              - addresses: ["10.0.0.1"]
                conditions: {ready: true}
              - addresses: ["10.0.0.2"]
                conditions: {ready: false}
              - addresses: ["10.0.0.3"]
              - addresses: ["10.0.0.4"]
                conditions: {ready: true, terminating: true}
              - addresses: ["10.0.0.5", "10.0.0.6"]
            """
        let result = translate(documents(ingressClass, service("web"), slice,
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.clusters.first?.endpoints == [
            Endpoint(address: ip("10.0.0.1"), port: 9000),
            Endpoint(address: ip("10.0.0.3"), port: 9000),
            Endpoint(address: ip("10.0.0.5"), port: 9000),
        ])
    }

    @Test func slicePortIsFoundByTheServicePortName() {
        let service = service("web", ports: "  - name: metrics\n    port: 9090\n  - name: http\n    port: 80\n    targetPort: web")
        let slice = """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-x
              labels: {kubernetes.io/service-name: web}
            addressType: IPv6
            ports: [{name: metrics, port: 9090}, {name: http, port: 3000}]
            endpoints:
              - addresses: ["fd00::1"]
            """
        let yaml = documents(ingressClass, service, slice,
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")]))
        let result = translate(yaml)
        #expect(result.model.clusters.first?.endpoints.map(\.description) == ["[fd00::1]:3000"])
    }

    @Test func coreEndpointsAreUsedWhenThereIsNoSlice() {
        let endpoints = """
            apiVersion: v1
            kind: Endpoints
            metadata: {name: web}
            subsets:
              - addresses: [{ip: 10.1.0.1}, {ip: 10.1.0.2}]
                notReadyAddresses: [{ip: 10.1.0.9}]
                ports: [{name: http, port: 8081}]
            """
        let result = translate(documents(ingressClass, service("web"), endpoints,
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.clusters.first?.endpoints.map(\.description) == ["10.1.0.1:8081", "10.1.0.2:8081"])
    }

    @Test func hostNameEndpointIsRejectedWithoutDNS() {
        let result = translate(documents(ingressClass, service("web"),
            slice("s", service: "web", addresses: ["pod.example.internal", "10.0.0.1"]),
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.clusters.first?.endpoints.count == 1)
        #expect(reasons(result) == ["InvalidEndpointAddress"])
        #expect(result.diagnostics.first?.kind == "EndpointSlice")
    }

    @Test func serviceWithoutReadyEndpointsSaysWhy() {
        let result = translate(documents(ingressClass, service("web"),
            ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])))
        #expect(result.model.clusters.first?.endpoints.isEmpty == true)
        #expect(result.model.clusters.first?.unavailableReason?.contains("no ready endpoints") == true)
    }
}

@Suite struct DefaultBackendTranslation {
    private let defaultBackend = """

          defaultBackend:
            service:
              name: fallback
              port: {number: 80}
        """

    @Test func ingressDefaultBackendBecomesItsHostsDefault() {
        let result = translate(documents(ingressClass, service("web"), service("fallback", ports: "  - port: 80"),
            ingress("w", rules: [(host: "h.example", path: "/app", type: "Prefix", service: "web")], extraSpec: defaultBackend)))
        #expect(result.model.virtualHosts.map(\.defaultCluster) == ["default/fallback:80"])
        #expect(result.diagnostics.isEmpty)
    }

    @Test func ingressWithOnlyADefaultBackendCatchesUnmatchedHosts() {
        let result = translate(documents(ingressClass, service("fallback", ports: "  - port: 80"),
            ingress("catch-all", rules: [], extraSpec: defaultBackend)))
        #expect(result.model.virtualHosts == [VirtualHost(host: .any, routes: [], defaultCluster: "default/fallback:80")])
    }

    @Test func globalDefaultUsesTheServicesFirstPort() {
        let result = translate(
            documents(service("errors", namespace: "ops", ports: "  - port: 8080\n  - port: 9090")),
            options: TranslateOptions(defaultBackendService: "ops/errors"))
        #expect(result.model.defaultCluster == "ops/errors:8080")
        #expect(result.model.clusters.map(\.name) == ["ops/errors:8080"])
    }

    @Test func malformedGlobalDefaultIsReported() {
        let result = translate(documents(service("errors")), options: TranslateOptions(defaultBackendService: "errors"))
        #expect(result.model.defaultCluster == nil)
        #expect(reasons(result) == ["InvalidOption"])
    }
}

@Suite struct ObjectDecoding {
    @Test func wrongTypeIsReportedWithTheFieldPath() {
        let bad = ingress("w", rules: [(host: "h.example", path: "/", type: "Prefix", service: "web")])
            .replacingOccurrences(of: "name: http", with: "name: [http]")
        guard case let .success(parsed) = ManifestParser.parse(yaml: bad, file: "w.yaml") else {
            Issue.record("the file is valid YAML")
            return
        }
        #expect(parsed.objects.isEmpty)
        let message = parsed.diagnostics.first?.message ?? ""
        #expect(message.contains("spec.rules[0].http.paths[0].backend.service.port.name"), "\(message)")
        #expect(parsed.diagnostics.first?.name == "w")
        #expect(parsed.diagnostics.first?.file == "w.yaml")
    }

    /// Scalars are typed as a Kubernetes user expects: unquoted numbers are
    /// numbers (and still strings where a string is wanted), quoted ones are
    /// strings, `true`/`false` are booleans, `~`/`null` are absent, merge
    /// keys work. (The parser resolves only booleans and merge keys by tag.)
    @Test func scalarsAreTypedLikeKubernetesManifests() throws {
        let yaml = documents(
            """
            apiVersion: v1
            kind: Service
            metadata:
              name: s
              namespace: x
              annotations: {flag: true, count: 120, quoted: "80"}
            spec:
              ports:
              - &web {name: web, port: 80, targetPort: 8080}
              - {name: named, port: 81, targetPort: http}
              - {name: quoted, port: 82, targetPort: "9090"}
              - {<<: *web, name: merged, port: 83}
            """,
            """
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata: {name: s-1, namespace: x, labels: {kubernetes.io/service-name: s}}
            addressType: IPv4
            endpoints:
            - {addresses: [10.0.0.1], conditions: {ready: true, serving: ~, terminating: false}}
            - {addresses: [10.0.0.2], conditions: {ready: false, serving: null}}
            ports: [{name: web, port: 8080}]
            """,
            """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata: {name: i, namespace: x}
            spec: {ingressClassName: ~, defaultBackend: {service: {name: s, port: {number: 80}}}}
            """,
            "~")
        guard case let .success(parsed) = ManifestParser.parse(yaml: yaml, file: nil) else {
            Issue.record("the file is valid YAML")
            return
        }
        #expect(parsed.diagnostics.isEmpty, "\(parsed.diagnostics)")
        #expect(parsed.objects.count == 3)
        guard case let .service(service) = parsed.objects.first,
              case let .endpointSlice(slice) = parsed.objects.dropFirst().first,
              case let .ingress(ingress) = parsed.objects.last
        else {
            Issue.record("a Service, an EndpointSlice and an Ingress: \(parsed.objects.map(\.kind))")
            return
        }
        #expect(service.metadata.annotations == ["flag": "true", "count": "120", "quoted": "80"])
        #expect(service.spec.ports.map(\.targetPort) == [.int(8080), .string("http"), .string("9090"), .int(8080)])
        #expect(service.spec.ports.map(\.port) == [80, 81, 82, 83])
        #expect(service.spec.ports.map(\.name) == ["web", "named", "quoted", "merged"])
        #expect(slice.endpoints.map(\.conditions.ready) == [true, false])
        #expect(slice.endpoints.map(\.conditions.serving) == [nil, nil])
        #expect(slice.endpoints.first?.conditions.terminating == false)
        #expect(ingress.spec.ingressClassName == nil)
    }

    @Test func missingRequiredFieldIsNamed() {
        let result = ManifestParser.parse(yaml: "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}", file: nil)
        guard case let .success(parsed) = result else {
            Issue.record("the file is valid YAML")
            return
        }
        #expect(parsed.diagnostics.first?.message.contains("metadata.name: required field is missing") == true)
    }

    @Test func unknownKindsAreTypedAndUnknownFieldsIgnored() {
        let yaml = documents(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}",
            "apiVersion: networking.k8s.io/v1beta1\nkind: Ingress\nmetadata: {name: old}",
            "apiVersion: v1\nkind: Service\nmetadata: {name: s, futureField: 1}\nspec: {ports: [{port: 80}], sessionAffinity: None}")
        guard case let .success(parsed) = ManifestParser.parse(yaml: yaml, file: nil) else {
            Issue.record("the file is valid YAML")
            return
        }
        #expect(parsed.objects.map(\.kind) == ["Deployment", "Ingress", "Service"])
        if case let .unsupported(object) = parsed.objects[1] {
            #expect(object.apiVersion == "networking.k8s.io/v1beta1")
        } else {
            Issue.record("a v1beta1 Ingress must be unsupported")
        }
        #expect(parsed.diagnostics.map(\.reason) == ["UnsupportedKind", "UnsupportedKind"])
        #expect(parsed.objects[2].metadata?.namespace == "default")
    }

    @Test func targetPortIsANumberOrAName() {
        let parsed = objects("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, targetPort: 8080}, {port: 81, targetPort: web}, {port: 82, targetPort: \"8082\"}]")
        guard case let .service(service)? = parsed.first else {
            Issue.record("expected a Service")
            return
        }
        #expect(service.spec.ports.map(\.targetPort) == [.int(8080), .string("web"), .string("8082")])
    }

    @Test func secretDataIsBase64AndStringDataWins() {
        let parsed = objects("apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: aGVs\n    bG8=\n  tls.key: eA==\nstringData:\n  tls.key: plain")
        guard case let .secret(secret)? = parsed.first else {
            Issue.record("expected a Secret")
            return
        }
        #expect(secret.value(forKey: "tls.crt") == Array("hello".utf8))
        #expect(secret.value(forKey: "tls.key") == Array("plain".utf8))
        #expect(secret.value(forKey: "missing") == nil)
    }

    @Test func creationTimestampsCompareAcrossZones() {
        let utc = KubeTimestamp(rfc3339: "2024-03-01T10:00:00Z")
        let plusTwo = KubeTimestamp(rfc3339: "2024-03-01T11:30:00.5+02:00")
        #expect(utc?.seconds == 1_709_287_200)
        if let utc, let plusTwo {
            #expect(plusTwo < utc)
        } else {
            Issue.record("both timestamps must parse")
        }
        #expect(KubeTimestamp(rfc3339: "yesterday") == nil)
    }
}

/// Seeded shuffles and picks, reproducible from the seed.
typealias SplitMix = SplitMix64
