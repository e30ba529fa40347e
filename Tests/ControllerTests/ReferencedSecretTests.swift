@testable import Controller
import FakeKubeAPI
import Foundation
import Kube
import Testing

@Suite(.serialized) struct ReferencedSecretTests {
    func ingress(annotation: String?) -> String {
        let annotations = annotation.map { #","annotations":{"nginx.ingress.kubernetes.io/proxy-ssl-secret":"\#($0)"}"# } ?? ""
        return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"default"\#(annotations)},"spec":{"ingressClassName":"postern"}}"#
    }

    func secret(_ name: String, type: String) -> String {
        #"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"\#(name)","namespace":"default"},"type":"\#(type)","data":{"ca.crt":"Y2E="}}"#
    }

    func secretNames(_ store: KubeObjectStore) -> Set<String> {
        Set(store.snapshot().secrets.map(\.metadata.name))
    }

    @Test func opaqueSecretsNamedByAnnotationsAreWatchedByNameAndOthersNever() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        try server.apply(secret("ca-bundle", type: "Opaque"))
        try server.apply(secret("unrelated", type: "Opaque"))
        try server.apply(secret("site-tls", type: "kubernetes.io/tls"))
        try server.apply(ingress(annotation: "default/ca-bundle"))
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port))
        let source = KubernetesSource(client: client, namespaces: [], log: { _ in })
        source.start()
        defer { source.stop() }
        #expect(waitUntil(5) { secretNames(source.store) == ["ca-bundle", "site-tls"] })
        // The named Secret changes: the store follows.
        try server.apply(secret("ca-bundle", type: "Opaque").replacingOccurrences(of: "Y2E=", with: "Y2EtMg=="))
        #expect(waitUntil(5) {
            source.store.snapshot().secrets.first { $0.metadata.name == "ca-bundle" }?.data["ca.crt"] == "Y2EtMg=="
        })
        // The annotation goes away: so does the Secret (and its watch).
        try server.apply(ingress(annotation: nil))
        #expect(waitUntil(5) { secretNames(source.store) == ["site-tls"] && source.referencedSecrets.isEmpty })
        let selectors = Set(server.requests.filter { $0.path.hasSuffix("/secrets") }.compactMap { $0.query["fieldSelector"] })
        #expect(selectors == ["type=kubernetes.io/tls", "metadata.name=ca-bundle,type!=kubernetes.io/tls"])
        #expect(!server.requests.contains { $0.path.hasSuffix("/secrets") && $0.query["fieldSelector"] == nil })
    }

    @Test func annotationValuesThatCannotNameASecretAreIgnored() {
        let ingress = Ingress(metadata: ObjectMeta(name: "web", annotations: [
            "nginx.ingress.kubernetes.io/auth-tls-secret": "other/ca&watch=1",
            "nginx.ingress.kubernetes.io/proxy-ssl-secret": "bare-name",
        ]))
        let resources = Array(ReferencedSecretWatcher.referenced(by: [ingress], namespaces: []))
        #expect(resources.map(\.namespace) == ["default"])
        #expect(resources.map(\.fieldSelector) == ["metadata.name=bare-name,type!=kubernetes.io/tls"])
    }
}

/// ConfigMaps named by annotations (`custom-headers`) are a watched kind:
/// namespaced, by name, only those referenced; never the settings ConfigMap.
@Suite struct ReferencedConfigMapTests {
    @Test func configMapsNamedByAnnotationsAreWatchedByNameInTheirNamespace() {
        let ingress = Ingress(metadata: ObjectMeta(name: "web", namespace: "shop", annotations: [
            "nginx.ingress.kubernetes.io/custom-headers": "headers",
            "nginx.ingress.kubernetes.io/auth-tls-secret": "ca",
        ]))
        let other = Ingress(metadata: ObjectMeta(name: "api", namespace: "shop", annotations: [
            "nginx.ingress.kubernetes.io/custom-headers": "ingress/security-headers",
        ]))
        let resources = ReferencedSecretWatcher.referenced(by: [ingress, other], namespaces: [])
        #expect(resources == [
            WatchedResource(kind: .configMap, namespace: "shop", fieldSelector: "metadata.name=headers"),
            WatchedResource(kind: .configMap, namespace: "ingress", fieldSelector: "metadata.name=security-headers"),
            WatchedResource(kind: .secret, namespace: "shop", fieldSelector: "metadata.name=ca,type!=kubernetes.io/tls"),
        ])
        #expect(resources.allSatisfy { $0.path.contains("/namespaces/") }, "never a cluster-wide list")
    }

    @Test func theSettingsConfigMapIsNeverTakenOverByAReference() {
        let settings = WatchedResource(kind: .configMap, namespace: "ingress", fieldSelector: "metadata.name=postern")
        let ingress = Ingress(metadata: ObjectMeta(name: "web", namespace: "shop", annotations: [
            "nginx.ingress.kubernetes.io/custom-headers": "ingress/postern",
        ]))
        #expect(ReferencedSecretWatcher.referenced(by: [ingress], namespaces: [], excluded: [settings]).isEmpty)
    }

    @Test func aReferencedConfigMapReachesTheStoreAndLeavesItWithTheReference() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        func configMap(_ name: String) -> String {
            #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","namespace":"default"},"data":{"X-Frame-Options":"DENY"}}"#
        }
        func ingress(_ reference: String?) -> String {
            let annotations = reference.map { #"{"nginx.ingress.kubernetes.io/custom-headers":"\#($0)"}"# } ?? "{}"
            return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"default","annotations":\#(annotations)},"spec":{}}"#
        }
        try server.apply(configMap("headers"))
        try server.apply(configMap("unrelated"))
        try server.apply(ingress("headers"))
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port))
        let source = KubernetesSource(client: client, namespaces: [], log: { _ in })
        source.start()
        defer { source.stop() }
        #expect(waitUntil(5) { source.store.snapshot().configMaps.map(\.metadata.name) == ["headers"] })
        try server.apply(ingress(nil))
        #expect(waitUntil(5) { source.store.snapshot().configMaps.isEmpty && source.referencedSecrets.isEmpty })
        let selectors = Set(server.requests.filter { $0.path.hasSuffix("/configmaps") }.compactMap { $0.query["fieldSelector"] })
        #expect(selectors == ["metadata.name=headers"], "only the referenced ConfigMap, by name")
    }

    @Test func configMapsOutsideTheWatchedNamespacesAreNotWatched() {
        let ingress = Ingress(metadata: ObjectMeta(name: "web", namespace: "shop", annotations: [
            "nginx.ingress.kubernetes.io/custom-headers": "elsewhere/headers",
        ]))
        #expect(ReferencedSecretWatcher.referenced(by: [ingress], namespaces: ["shop"]).isEmpty)
    }
}
