import Kube
import RouteModel
import SeededRandom
import Testing
@testable import Translate

/// Random objects from small pools of names, hosts, paths and annotations,
/// so that Ingresses collide, reference each other's Services and Secrets,
/// and come and go.
struct ObjectGenerator {
    var random: SplitMix

    static let certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    static let otherCertificate = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
    static let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"

    let namespaces = ["a", "b"]
    let ingressNames = ["i0", "i1", "i2", "i3", "i4", "i5"]
    let serviceNames = ["s0", "s1", "s2"]
    let sliceNames = ["s0-x", "s0-y", "s1-x", "s2-x"]
    let secretNames = ["tls-a", "tls-b", "ca"]
    let classNames = ["postern", "other", "pdefault"]

    mutating func object() -> KubeObject {
        switch random.next() % 100 {
        case 0..<40: return .ingress(ingress())
        case 40..<55: return .service(service())
        case 55..<70: return .endpointSlice(slice())
        case 70..<75: return .endpoints(endpoints())
        case 75..<90: return .secret(secret())
        default: return .ingressClass(ingressClass())
        }
    }

    mutating func backend() -> IngressBackend {
        let service = IngressServiceBackend(
            name: random.pick(serviceNames + ["s9"]),
            port: random.pick([
                ServiceBackendPort(number: 80), ServiceBackendPort(number: 81), ServiceBackendPort(number: 82),
                ServiceBackendPort(name: "http"), ServiceBackendPort(name: "grpc"), ServiceBackendPort(number: 80),
                ServiceBackendPort(name: "http"), ServiceBackendPort(number: 0), ServiceBackendPort(name: ""),
                ServiceBackendPort(number: 80, name: "http"), ServiceBackendPort(),
            ] + (random.chance(3) ? [ServiceBackendPort(name: "80")] : [])))
        let resource = TypedLocalObjectReference(apiGroup: "k8s.example.com", kind: "Bucket", name: random.pick(["b1", "b2"]))
        switch random.next() % 10 {
        case 0: return IngressBackend(resource: resource)
        case 1: return IngressBackend(service: service, resource: resource)
        case 2: return IngressBackend()
        default: return IngressBackend(service: service)
        }
    }

    mutating func ingress() -> Ingress {
        var annotations: [String: String] = [:]
        let choices: [(String, [String])] = [
            ("kubernetes.io/ingress.class", ["postern", "other"]),
            ("nginx.ingress.kubernetes.io/use-regex", ["true", "false", "maybe"]),
            ("nginx.ingress.kubernetes.io/rewrite-target", ["/$1", "/x", "bad"]),
            ("nginx.ingress.kubernetes.io/backend-protocol", ["HTTPS", "GRPC", "GRPCS", "bogus"]),
            ("nginx.ingress.kubernetes.io/proxy-ssl-verify", ["on", "bogus"]),
            ("nginx.ingress.kubernetes.io/proxy-ssl-secret", ["ca", "b/ca", "missing"]),
            ("nginx.ingress.kubernetes.io/proxy-ssl-name", ["backend.example.com"]),
            ("nginx.ingress.kubernetes.io/ssl-redirect", ["false", "maybe"]),
            ("nginx.ingress.kubernetes.io/force-ssl-redirect", ["true"]),
            ("nginx.ingress.kubernetes.io/auth-tls-secret", ["ca", "missing"]),
            ("nginx.ingress.kubernetes.io/auth-tls-verify-client", ["optional", "off", "bogus"]),
            ("nginx.ingress.kubernetes.io/auth-tls-verify-depth", ["2", "x"]),
            ("nginx.ingress.kubernetes.io/auth-url", ["http://auth.example/verify"]),
            ("nginx.ingress.kubernetes.io/whitelist-source-range", ["10.0.0.0/8", "2001:db8::/32, 192.0.2.1", "10.0.0.0/33"]),
            ("nginx.ingress.kubernetes.io/denylist-source-range", ["10.1.0.0/16", "bad"]),
            ("nginx.ingress.kubernetes.io/proxy-body-size", ["8m", "0", "lots"]),
            ("nginx.ingress.kubernetes.io/canary", ["true", "false"]),
            ("nginx.ingress.kubernetes.io/affinity", ["cookie"]),
        ]
        for (key, values) in choices where random.chance(12) { annotations[key] = random.pick(values) }
        let hosts: [String?] = [nil, "", "x.example.com", "X.Example.com", "*.example.com", "y.example.com", "bad host"]
        var rules: [IngressRule] = []
        for _ in 0..<random.upTo(3) {
            var paths: [HTTPIngressPath] = []
            for _ in 0..<random.upTo(3) {
                paths.append(HTTPIngressPath(
                    path: random.pick(["/", "/a", "/a/", "/a", "a", "", "/r/(\\d+)", "/(", "/q q"]),
                    pathType: random.pick(["Exact", "Prefix", "Prefix", "ImplementationSpecific", nil, "Bogus"]),
                    backend: backend()))
            }
            rules.append(IngressRule(host: random.pick(hosts), http: random.chance(85) ? HTTPIngressRuleValue(paths: paths) : nil))
        }
        var tls: [IngressTLS] = []
        for _ in 0..<random.upTo(2) {
            tls.append(IngressTLS(
                hosts: ["x.example.com", "y.example.com", "*.example.com", "", "X.example.com"].filter { _ in random.chance(40) },
                secretName: random.pick([nil, "", "tls-a", "tls-b", "missing", "ca"])))
        }
        return Ingress(
            metadata: ObjectMeta(
                name: random.pick(ingressNames), namespace: random.pick(namespaces),
                creationTimestamp: random.pick([nil, "2024-01-01T00:00:00Z", "2024-01-01T00:00:01Z", "2024-01-01T00:00:01Z", "junk"]),
                annotations: annotations),
            spec: IngressSpec(
                ingressClassName: random.pick([nil, "postern", "postern", "other", "pdefault", ""]),
                defaultBackend: random.chance(30) ? backend() : nil, tls: tls, rules: rules),
            status: LoadBalancerStatus(ingress: random.chance(50) ? [LoadBalancerIngress(ip: "192.0.2.1")] : []))
    }

    mutating func service() -> Service {
        let ports = [
            ServicePort(name: "http", port: 80, targetPort: .int(8080)),
            ServicePort(name: "grpc", port: 81, targetPort: .string("grpc-port")),
            ServicePort(port: 82),
        ].filter { _ in random.chance(70) }
        return Service(
            metadata: ObjectMeta(name: random.pick(serviceNames), namespace: random.pick(namespaces)),
            spec: ServiceSpec(type: random.chance(10) ? "ExternalName" : nil, ports: ports))
    }

    mutating func slice() -> EndpointSlice {
        let name = random.pick(sliceNames)
        var labels: [String: String] = [:]
        if random.chance(90) { labels[EndpointSlice.serviceNameLabel] = random.chance(70) ? String(name.prefix(2)) : random.pick(serviceNames) }
        var endpoints: [EndpointSliceEndpoint] = []
        for _ in 0..<random.upTo(3) {
            endpoints.append(EndpointSliceEndpoint(
                addresses: [random.pick(["10.0.0.1", "10.0.0.2", "10.0.0.1", "fd00::1", "host.example"])],
                conditions: EndpointConditions(ready: random.pick([nil, true, false]), terminating: random.pick([nil, nil, true]))))
        }
        let ports: [EndpointSlicePort]? = random.pick([
            [EndpointSlicePort(name: "http", port: 8080)],
            [EndpointSlicePort(name: "grpc", port: 9090), EndpointSlicePort(name: "http", port: 8080)],
            [], nil, [EndpointSlicePort(port: 7070)], [EndpointSlicePort(name: "http", port: 70000)],
        ])
        return EndpointSlice(
            metadata: ObjectMeta(name: name, namespace: random.pick(namespaces), labels: labels),
            addressType: random.pick(["IPv4", "IPv4", "IPv6", "FQDN"]), endpoints: endpoints, ports: ports)
    }

    mutating func endpoints() -> Endpoints {
        let subset = EndpointSubset(
            addresses: [EndpointAddress(ip: random.pick(["10.0.1.1", "10.0.1.2", "not-an-ip"]))],
            ports: random.pick([[EndpointPort(name: "http", port: 8080)], [EndpointPort(port: 8081)], []]))
        return Endpoints(
            metadata: ObjectMeta(name: random.pick(serviceNames), namespace: random.pick(namespaces)),
            subsets: random.chance(80) ? [subset] : [])
    }

    mutating func secret() -> Secret {
        var data: [String: String] = [:]
        if random.chance(80) { data["tls.crt"] = random.pick([Self.certificate, Self.otherCertificate, "junk"]) }
        if random.chance(80) { data["tls.key"] = random.pick([Self.key, "junk"]) }
        if random.chance(50) { data["ca.crt"] = random.pick([Self.certificate, Self.otherCertificate, "junk"]) }
        return Secret(
            metadata: ObjectMeta(name: random.pick(secretNames), namespace: random.pick(namespaces)),
            type: random.pick(["kubernetes.io/tls", "Opaque"]), stringData: data)
    }

    mutating func ingressClass() -> IngressClass {
        let name = random.pick(classNames)
        let annotations = random.chance(40) ? [IngressClass.isDefaultClassAnnotation: "true"] : [:]
        return IngressClass(
            metadata: ObjectMeta(name: name, annotations: annotations),
            spec: IngressClassSpec(controller: random.pick(["postern.dev/ingress-controller", "example.com/other"])))
    }
}

@Suite struct IncrementalTranslation {
    static let configurations: [(TranslateOptions, String?)] = [
        (TranslateOptions(), nil),
        (TranslateOptions(watchIngressWithoutClass: true, defaultBackendService: "a/s0"), "a/tls-a"),
        (TranslateOptions(defaultBackendService: "a/s9"), "b/missing"),
        (TranslateOptions(defaultBackendService: "not a reference"), nil),
    ]

    /// Compares the incremental output with a full translation of the same objects.
    func expectSameAsFullTranslation(
        _ output: IncrementalTranslator.Translation, _ objects: [ObjectKey: KubeObject], options: TranslateOptions,
        defaultCertificateSecret: String?, _ context: String
    ) -> Bool {
        let snapshot = ObjectSnapshot(objects: objects.values)
        let routes = translate(snapshot, options: options)
        let tls = translateTLS(snapshot, options: options, defaultCertificateSecret: defaultCertificateSecret)
        let sameModel = output.routes.model == routes.model
        let sameDiagnostics = output.routes.diagnostics == routes.diagnostics
        let sameTLS = output.tls == tls
        #expect(sameModel, "model differs, \(context):\n\(output.routes.model)\nfull: \(routes.model)")
        #expect(sameDiagnostics, "diagnostics differ, \(context): \(Set(output.routes.diagnostics).symmetricDifference(routes.diagnostics))")
        #expect(sameTLS, "TLS differs, \(context):\n\(output.tls)\nfull: \(tls)")
        return sameModel && sameDiagnostics && sameTLS
    }

    @Test(arguments: 0..<400)
    func randomChangesTranslateLikeAFullTranslation(seed: Int) {
        let (options, defaultCertificate) = Self.configurations[seed % Self.configurations.count]
        var generator = ObjectGenerator(random: SplitMix(seed: UInt64(seed) &* 7919))
        // Half the runs rebuild sorted lists by sorting, half patch them in place.
        let translator = IncrementalTranslator(
            options: options, defaultCertificateSecret: defaultCertificate, patchLimit: (seed / Self.configurations.count) % 2 == 0 ? 64 : 0)
        var objects: [ObjectKey: KubeObject] = [:]
        for step in 0..<40 {
            for _ in 0...generator.random.upTo(3) {
                if !objects.isEmpty, generator.random.chance(25) {
                    let key = generator.random.pick(Array(objects.keys).sorted())
                    objects[key] = nil
                    translator.remove(key)
                } else {
                    let object = generator.object()
                    objects[object.key] = object
                    translator.apply(object)
                }
            }
            if generator.random.chance(5) {
                // The directory source hands over whole sets.
                translator.replaceAll(with: objects.values)
            }
            let output = translator.translate()
            guard expectSameAsFullTranslation(
                output, objects, options: options, defaultCertificateSecret: defaultCertificate, "seed \(seed) step \(step)")
            else { return }
        }
    }

    /// Rounds with more changed hosts and clusters than a few (a burst of
    /// new Ingresses whose hosts sort before, between and after the ones
    /// served, some removals) patch the sorted lists in one pass; the result
    /// is still a full translation's.
    @Test func aBurstOfHostsAndClustersAcrossTheSortedListsTranslatesLikeAFullTranslation() {
        var all: [ObjectKey: KubeObject] = [:]
        func add(_ yaml: String) -> [KubeObject] {
            let added = objects(yaml)
            for object in added { all[object.key] = object }
            return added
        }
        let translator = IncrementalTranslator(options: TranslateOptions())
        var first = add(ingressClass)
        for index in stride(from: 10, to: 90, by: 4) {
            first += add(documents(
                service("s\(index)"),
                ingress("i\(index)", rules: [(host: "h\(index).example.com", path: "/", type: "Prefix", service: "s\(index)")])))
        }
        translator.replaceAll(with: first)
        _ = translator.translate()
        var round = 0
        for offsets in [Array(0..<40), Array(stride(from: 1, to: 99, by: 3)), [5, 47, 93]] {
            round += 1
            for index in offsets {
                let name = "r\(round)-\(index)"
                for object in add(documents(
                    service(name),
                    ingress(name, rules: [(host: "h\(index)-\(round).example.com", path: "/", type: "Prefix", service: name)])))
                {
                    translator.apply(object)
                }
            }
            for index in stride(from: 10 + round * 4, to: 90, by: 12) {
                let key = ObjectKey(kind: "Ingress", namespace: "default", name: "i\(index)")
                if all.removeValue(forKey: key) != nil { translator.remove(key) }
            }
            let output = translator.translate()
            #expect(output.routes.model.virtualHosts.count > 20)
            guard expectSameAsFullTranslation(output, all, options: TranslateOptions(), defaultCertificateSecret: nil, "round \(round)")
            else { return }
        }
    }

    /// Deleting everything leaves nothing behind in the translator's own
    /// tables (claims, route states, hosts, clusters in use, diagnostics):
    /// whatever stayed would be memory the deleted objects still cost.
    @Test(arguments: 0..<40)
    func removingEveryObjectLeavesNoState(seed: Int) {
        var generator = ObjectGenerator(random: SplitMix(seed: UInt64(seed) &* 104_729))
        let translator = IncrementalTranslator(options: TranslateOptions(), defaultCertificateSecret: nil, patchLimit: seed % 2 == 0 ? 64 : 0)
        var keys: Set<ObjectKey> = []
        for _ in 0..<5 {
            for _ in 0..<20 {
                let object = generator.object()
                keys.insert(object.key)
                translator.apply(object)
            }
            _ = translator.translate()
        }
        #expect(translator.derivedEntryCount > 0)
        for key in keys.sorted() {
            translator.remove(key)
            if generator.random.chance(20) { _ = translator.translate() }
        }
        let empty = translator.translate()
        #expect(translator.objectCount == 0)
        #expect(translator.derivedEntryCount == 0, "seed \(seed)")
        #expect(empty.routes.model.virtualHosts.isEmpty && empty.routes.model.clusters.isEmpty && empty.routes.diagnostics.isEmpty)
    }

    @Test func aRoundWithoutChangesReturnsTheSameOutput() {
        var generator = ObjectGenerator(random: SplitMix(seed: 1))
        let translator = IncrementalTranslator(options: TranslateOptions())
        for _ in 0..<30 { translator.apply(generator.object()) }
        let first = translator.translate()
        #expect(translator.translate() == first)
    }

    @Test func aStatusUpdateChangesNothing() {
        let all = objects(documents(
            ingressClass, service("web"), ingress("web", rules: [(host: "a.example.com", path: "/", type: "Prefix", service: "web")])))
        let translator = IncrementalTranslator(options: TranslateOptions())
        translator.replaceAll(with: all)
        let before = translator.translate()
        #expect(before.routes.model.virtualHosts.count == 1)
        guard case var .ingress(updated)? = all.last else {
            Issue.record("the fixture ends with the Ingress")
            return
        }
        updated.status = LoadBalancerStatus(ingress: [LoadBalancerIngress(ip: "192.0.2.7")])
        translator.apply(.ingress(updated))
        #expect(translator.translate() == before)
    }

    @Test func theOlderIngressTakesOverWhenTheHolderGoes() {
        let all = objects(documents(
            ingressClass, service("one"), service("two"),
            ingress("old", created: "2024-01-01T00:00:00Z", rules: [(host: "a.example.com", path: "/", type: "Prefix", service: "one")]),
            ingress("new", created: "2024-02-01T00:00:00Z", rules: [(host: "a.example.com", path: "/", type: "Prefix", service: "two")])))
        let translator = IncrementalTranslator(options: TranslateOptions())
        translator.replaceAll(with: all)
        let both = translator.translate().routes
        #expect(both.model.virtualHosts.first?.routes.first?.cluster == "default/one:http")
        #expect(both.diagnostics.map(\.reason) == ["PathConflict"])
        translator.remove(ObjectKey(kind: "Ingress", namespace: "default", name: "old"))
        let after = translator.translate().routes
        #expect(after.model.virtualHosts.first?.routes.first?.cluster == "default/two:http")
        #expect(after.diagnostics.isEmpty)
        #expect(after.model.clusters.map(\.name) == ["default/two:http"])
    }
}
