import Controller
import Foundation
import Kube
import RouteModel
import Routing
import Testing
import Translate

/// Records what the loop publishes.
final class Published: @unchecked Sendable {
    private let lock = NSLock()
    private var models: [RouteModel] = []
    func add(_ model: RouteModel) { lock.withLock { models.append(model) } }
    var all: [RouteModel] { lock.withLock { models } }
}

func waitUntil(_ seconds: Double = 3, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

@Suite struct StoreSourceTests {
    let ingresses = WatchedResource(kind: .ingress)
    let services = WatchedResource(kind: .service)

    func ingress(_ host: String) -> KubeObject {
        .ingress(Ingress(
            metadata: ObjectMeta(name: "web", annotations: ["kubernetes.io/ingress.class": "postern"]),
            spec: IngressSpec(rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [
                HTTPIngressPath(path: "/", pathType: "Prefix", backend: IngressBackend(service: IngressServiceBackend(name: "svc", port: ServiceBackendPort(number: 80))))
            ]))])))
    }

    func makeLoop(_ store: KubeObjectStore, _ published: Published) -> ControllerLoop {
        ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: .milliseconds(20),
            publish: { _, model in published.add(model) }, report: { _ in })
    }

    @Test func publishesNothingUntilEveryResourceListedOnce() throws {
        let store = KubeObjectStore(expected: [ingresses, services])
        let published = Published()
        let loop = makeLoop(store, published)
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([ingress("a.example.com")]), from: ingresses)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(published.all.isEmpty)
        store.apply(.replaced([]), from: services)
        #expect(waitUntil { published.all.count == 1 })
        #expect(published.all.first?.virtualHosts.count == 1)
    }

    @Test func relistWithTheSameObjectsPublishesNothingNew() throws {
        let store = KubeObjectStore(expected: [ingresses])
        let published = Published()
        let loop = makeLoop(store, published)
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([ingress("a.example.com")]), from: ingresses)
        #expect(waitUntil { published.all.count == 1 })
        store.apply(.replaced([ingress("a.example.com")]), from: ingresses)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(published.all.count == 1)
        store.apply(.upserted(ingress("b.example.com")), from: ingresses)
        #expect(waitUntil { published.all.count == 2 })
    }

    @Test func aCursorReadsEveryObjectFirstAndThenOnlyWhatChanged() {
        let store = KubeObjectStore(expected: [ingresses])
        let cursor = store.makeCursor()
        store.apply(.replaced([ingress("a.example.com")]), from: ingresses)
        let first = store.changes(since: cursor)
        #expect(first.isComplete && first.objects.count == 1)
        #expect(store.changes(since: cursor).objects.isEmpty)

        let other = KubeObject.ingress(Ingress(metadata: ObjectMeta(name: "other")))
        store.apply(.upserted(other), from: ingresses)
        let added = store.changes(since: cursor)
        #expect(!added.isComplete && added.objects == [other] && added.removed.isEmpty)

        // A relist reports only what differs from the objects before it.
        store.apply(.replaced([ingress("b.example.com"), other]), from: ingresses)
        let relisted = store.changes(since: cursor)
        #expect(relisted.objects.map(\.key.name) == ["web"] && relisted.removed.isEmpty)
        store.apply(.replaced([ingress("b.example.com"), other]), from: ingresses)
        #expect(store.changes(since: cursor).objects.isEmpty)

        store.apply(.deleted(other), from: ingresses)
        let deleted = store.changes(since: cursor)
        #expect(deleted.objects.isEmpty && deleted.removed == [other.key])
    }

    @Test func aDeletedIngressLeavesThePublishedModel() throws {
        let store = KubeObjectStore(expected: [ingresses])
        let published = Published()
        let loop = makeLoop(store, published)
        loop.start()
        defer { loop.stop() }
        let second = KubeObject.ingress(Ingress(
            metadata: ObjectMeta(name: "second", annotations: ["kubernetes.io/ingress.class": "postern"]),
            spec: IngressSpec(rules: [IngressRule(host: "b.example.com")])))
        store.apply(.replaced([ingress("a.example.com"), second]), from: ingresses)
        #expect(waitUntil { published.all.last?.virtualHosts.count == 2 })
        store.apply(.deleted(second), from: ingresses)
        #expect(waitUntil { published.all.last?.virtualHosts.map(\.host) == [.exact("a.example.com")] })
    }

    @Test func burstOfChangesIsDebouncedIntoFewTables() throws {
        let store = KubeObjectStore(expected: [ingresses])
        let published = Published()
        let loop = makeLoop(store, published)
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([]), from: ingresses)
        #expect(waitUntil { published.all.count == 1 })
        for index in 0..<50 {
            store.apply(.upserted(ingress("h\(index).example.com")), from: ingresses)
        }
        #expect(waitUntil { published.all.last?.virtualHosts.count == 1 })
        #expect(published.all.count <= 4)
    }
}
