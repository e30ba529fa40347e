import Controller
import Foundation
import Kube
import RouteModel
import Testing
import Translate

/// What the controller hands the proxy: one publication per round with the
/// table and the certificate model together, and the settings ConfigMap
/// followed through translation.
@Suite(.serialized) struct SnapshotPublicationTests {
    let ingresses = WatchedResource(kind: .ingress)
    let services = WatchedResource(kind: .service)
    let slices = WatchedResource(kind: .endpointSlice)
    let secrets = WatchedResource(kind: .secret)
    let configMaps = WatchedResource(kind: .configMap, namespace: "ingress", fieldSelector: "metadata.name=postern")

    final class Publications: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [ControllerPublication] = []
        private var reported: [Diagnostic] = []
        func add(_ item: ControllerPublication) { lock.withLock { items.append(item) } }
        func report(_ diagnostics: [Diagnostic]) { lock.withLock { reported += diagnostics } }
        var all: [ControllerPublication] { lock.withLock { items } }
        var diagnostics: [Diagnostic] { lock.withLock { reported } }
    }

    func ingress(_ name: String, host: String, tls: Bool = false, secret: String? = nil) -> KubeObject {
        .ingress(Ingress(
            metadata: ObjectMeta(name: name, annotations: ["kubernetes.io/ingress.class": "postern"]),
            spec: IngressSpec(
                tls: tls ? [IngressTLS(hosts: [host], secretName: secret ?? "\(name)-tls")] : [],
                rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [
                    HTTPIngressPath(path: "/", pathType: "Prefix", backend: IngressBackend(service: IngressServiceBackend(name: "svc", port: ServiceBackendPort(number: 80))))
                ]))])))
    }

    /// A TLS Secret whose PEM has the right shape (Translate checks no more).
    func tlsSecret(_ name: String, certificate: String = "AAAA") -> KubeObject {
        .secret(Secret(
            metadata: ObjectMeta(name: name), type: "kubernetes.io/tls",
            stringData: [
                "tls.crt": "-----BEGIN CERTIFICATE-----\n\(certificate)\n-----END CERTIFICATE-----\n",
                "tls.key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ]))
    }

    func configMap(_ data: [String: String]) -> KubeObject {
        .configMap(ConfigMap(metadata: ObjectMeta(name: "postern", namespace: "ingress"), data: data))
    }

    /// A follower that reads `proxy-body-size` (bytes) and refuses anything else.
    static let follower = ConfigMapFollower(namespace: "ingress", name: "postern") { found in
        var options = TranslateOptions()
        for (key, value) in found?.data ?? [:] {
            guard key == "proxy-body-size", let bytes = UInt64(value) else {
                return .init(options: nil, diagnostics: [
                    Diagnostic(.error, ObjectKey(kind: "ConfigMap", namespace: "ingress", name: "postern"), field: "data.\(key)",
                        reason: "InvalidConfigMap", message: "\(key): \(value) refused"),
                ])
            }
            options.global.maximumBodySize = bytes
        }
        return .init(options: options, diagnostics: [])
    }

    func start(configMapData: [String: String]? = nil) -> (KubeObjectStore, ControllerLoop, Publications) {
        let store = KubeObjectStore(expected: [ingresses, services, slices, secrets, configMaps])
        let publications = Publications()
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: .milliseconds(20), configMap: Self.follower,
            publishSnapshot: { publications.add($0) }, report: { publications.report($0) })
        loop.start()
        store.apply(.replaced([ingress("web", host: "a.example.com")]), from: ingresses)
        store.apply(.replaced([.service(Service(metadata: ObjectMeta(name: "svc"), spec: ServiceSpec(ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080))])))]), from: services)
        store.apply(.replaced([]), from: slices)
        store.apply(.replaced([tlsSecret("web-tls")]), from: secrets)
        store.apply(.replaced(configMapData.map { [configMap($0)] } ?? []), from: configMaps)
        return (store, loop, publications)
    }

    func bodySizes(_ publication: ControllerPublication?) -> [UInt64?] {
        publication?.model.virtualHosts.flatMap { $0.routes.map(\.policy.maximumBodySize) } ?? []
    }

    @Test func aChangeToRoutesAndCertificatesIsOnePublicationCarryingBoth() {
        let (store, loop, publications) = start()
        defer { loop.stop() }
        #expect(waitUntil { publications.all.count == 1 })
        let first = publications.all[0]
        #expect(first.table != nil && first.tls != nil, "the first round carries the table and the certificate model")
        // One change moves a.example.com to TLS and adds a host: new routes and new certificates.
        store.apply(.replaced([ingress("web", host: "a.example.com", tls: true), ingress("more", host: "b.example.com")]), from: ingresses)
        #expect(waitUntil { publications.all.count == 2 })
        Thread.sleep(forTimeInterval: 0.2)
        let all = publications.all
        #expect(all.count == 2, "one publication for the change, not one for the table and one for the certificates")
        #expect(all.last?.table?.model.virtualHosts.count == 2)
        #expect(all.last?.table?.model.httpsHosts == ["a.example.com"], "the host's redirect is the table's")
        #expect(all.last?.tls?.certificates.map(\.secret) == ["default/web-tls"], "the certificates of the same round travel with the table")
    }

    @Test func aCertificateOnlyChangeIsPublishedWithoutATable() {
        let (store, loop, publications) = start()
        defer { loop.stop() }
        #expect(waitUntil { publications.all.count == 1 })
        // a.example.com gains TLS: its routes now redirect, so a table goes too.
        store.apply(.replaced([ingress("web", host: "a.example.com", tls: true)]), from: ingresses)
        #expect(waitUntil { publications.all.count == 2 })
        #expect(publications.all.last?.table?.model.httpsHosts == ["a.example.com"])
        // Same routes and TLS hosts; only the certificate in the Secret changes.
        store.apply(.replaced([tlsSecret("web-tls", certificate: "BBBB")]), from: secrets)
        #expect(waitUntil { publications.all.count == 3 })
        #expect(publications.all.last?.table == nil)
        #expect(publications.all.last?.tls?.certificates.first?.certificateChainPEM.contains(UInt8(ascii: "B")) == true)
    }

    @Test func theSettingsConfigMapIsAppliedAndABadVersionKeepsTheLastGoodOne() {
        let (store, loop, publications) = start(configMapData: ["proxy-body-size": "1024"])
        defer { loop.stop() }
        #expect(waitUntil { publications.all.count == 1 })
        #expect(bodySizes(publications.all.last) == [1024], "the ConfigMap at the first round")
        store.apply(.upserted(configMap(["proxy-body-size": "4096"])), from: configMaps)
        #expect(waitUntil { bodySizes(publications.all.last) == [4096] }, "a change applies without a restart")
        store.apply(.upserted(configMap(["proxy-body-size": "lots"])), from: configMaps)
        #expect(waitUntil { publications.diagnostics.contains { $0.reason == "InvalidConfigMap" } })
        #expect(bodySizes(publications.all.last) == [4096], "the last good settings stay")
        #expect(loop.options.global.maximumBodySize == 4096)
        #expect(loop.currentDiagnostics.contains { $0.kind == "ConfigMap" && $0.fieldPath == "data.proxy-body-size" })
        store.apply(.deleted(configMap([:])), from: configMaps)
        #expect(waitUntil { bodySizes(publications.all.last) == [nil] }, "a deleted ConfigMap leaves the file and flag settings")
        #expect(!loop.currentDiagnostics.contains { $0.kind == "ConfigMap" }, "and its diagnostic goes away")
    }
}
