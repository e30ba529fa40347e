import Controller
import Foundation
import Kube
import RouteModel
import Testing
import Translate

/// The store source's publication rule: at once when quiet, coalesced when
/// busy, endpoint changes not held by the window, and one round (not one per
/// object) for bulk deletes and relists. Windows here are long (seconds) so
/// that "at once" and "after the window" are far apart even on a busy machine.
@Suite(.serialized) struct PublicationRuleTests {
    let ingresses = WatchedResource(kind: .ingress)
    let services = WatchedResource(kind: .service)
    let slices = WatchedResource(kind: .endpointSlice)

    func ingress(_ name: String, host: String, service: String = "svc") -> KubeObject {
        .ingress(Ingress(
            metadata: ObjectMeta(name: name, annotations: ["kubernetes.io/ingress.class": "postern"]),
            spec: IngressSpec(rules: [IngressRule(host: host, http: HTTPIngressRuleValue(paths: [
                HTTPIngressPath(path: "/", pathType: "Prefix", backend: IngressBackend(service: IngressServiceBackend(name: service, port: ServiceBackendPort(number: 80))))
            ]))])))
    }

    func service(_ name: String = "svc") -> KubeObject {
        .service(Service(metadata: ObjectMeta(name: name), spec: ServiceSpec(ports: [ServicePort(name: "http", port: 80, targetPort: .int(8080))])))
    }

    func slice(_ address: String, service: String = "svc") -> KubeObject {
        .endpointSlice(EndpointSlice(
            metadata: ObjectMeta(name: "\(service)-0", labels: [EndpointSlice.serviceNameLabel: service]), addressType: "IPv4",
            endpoints: [EndpointSliceEndpoint(addresses: [address], conditions: EndpointConditions(ready: true))],
            ports: [EndpointSlicePort(name: "http", port: 8080)]))
    }

    /// A synced store, a running loop, and what it published.
    func start(window: Duration, objects: [KubeObject] = []) -> (KubeObjectStore, ControllerLoop, Published) {
        let store = KubeObjectStore(expected: [ingresses, services, slices])
        let published = Published()
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: window,
            publish: { _, model in published.add(model) }, report: { _ in })
        loop.start()
        store.apply(.replaced(objects.filter { $0.kind == "Ingress" }), from: ingresses)
        store.apply(.replaced(objects.filter { $0.kind == "Service" }), from: services)
        store.apply(.replaced(objects.filter { $0.kind == "EndpointSlice" }), from: slices)
        return (store, loop, published)
    }

    func addresses(_ model: RouteModel?) -> [String] {
        model?.clusters.flatMap { $0.endpoints.map { "\($0.address)" } } ?? []
    }

    @Test func aChangeAfterAQuietPeriodIsPublishedWithoutWaitingForTheWindow() throws {
        let window = Duration.seconds(2)
        let (store, loop, published) = start(window: window, objects: [service(), slice("10.0.0.1")])
        defer { loop.stop() }
        #expect(waitUntil { published.all.count == 1 })
        // Quiet: no round for longer than the window.
        Thread.sleep(forTimeInterval: 2.2)
        let written = Date()
        store.apply(.upserted(ingress("web", host: "a.example.com")), from: ingresses)
        #expect(waitUntil(1.5) { published.all.last?.virtualHosts.count == 1 })
        #expect(Date().timeIntervalSince(written) < 1.5, "published before a 2 s window would have ended")
    }

    @Test func changesDuringTheWindowAreCoalescedIntoOneRound() throws {
        let (store, loop, published) = start(window: .seconds(1))
        defer { loop.stop() }
        #expect(waitUntil { published.all.count == 1 })
        for index in 0..<40 {
            store.apply(.upserted(ingress("i\(index)", host: "h\(index).example.com")), from: ingresses)
        }
        #expect(waitUntil(5) { published.all.last?.virtualHosts.count == 40 })
        Thread.sleep(forTimeInterval: 1.2)
        // The initial table, perhaps a round for the first change (quiet
        // until then), and one for the rest: not one per change.
        #expect(published.all.count <= 3)
        #expect(loop.reloads <= 3)
    }

    @Test func aLongBurstCostsAFewRoundsASecondNotOnePerWindow() throws {
        let store = KubeObjectStore(expected: [ingresses])
        let published = Published()
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: .milliseconds(50), maximumCoalescingWindow: .milliseconds(400),
            publish: { _, model in published.add(model) }, report: { _ in })
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([]), from: ingresses)
        #expect(waitUntil { loop.reloads == 1 })
        // A change every 10 ms for 3 s: with a fixed 50 ms window, about 50 rounds.
        for index in 0..<300 {
            store.apply(.upserted(ingress("i\(index)", host: "h\(index).example.com")), from: ingresses)
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(waitUntil(5) { published.all.last?.virtualHosts.count == 300 })
        #expect(loop.reloads <= 16, "\(loop.reloads) rounds for a 3 s burst")
    }

    @Test func afterALongBurstAChangeOnAQuietSystemIsPublishedAtOnceAgain() throws {
        let store = KubeObjectStore(expected: [ingresses])
        let published = Published()
        let loop = ControllerLoop(
            store: store, options: TranslateOptions(), coalescingWindow: .milliseconds(50), maximumCoalescingWindow: .seconds(3),
            publish: { _, model in published.add(model) }, report: { _ in })
        loop.start()
        defer { loop.stop() }
        store.apply(.replaced([]), from: ingresses)
        #expect(waitUntil { loop.reloads == 1 })
        // A burst long enough for the window to grow past a second.
        for index in 0..<150 {
            store.apply(.upserted(ingress("i\(index)", host: "h\(index).example.com")), from: ingresses)
            Thread.sleep(forTimeInterval: 0.01)
        }
        #expect(waitUntil(8) { published.all.last?.virtualHosts.count == 150 })
        // Quiet for longer than the base window, far shorter than the grown one.
        Thread.sleep(forTimeInterval: 0.3)
        let written = Date()
        store.apply(.upserted(ingress("late", host: "late.example.com")), from: ingresses)
        #expect(waitUntil(3) { published.all.last?.virtualHosts.count == 151 })
        #expect(Date().timeIntervalSince(written) < 1, "waited for the grown window")
    }

    @Test func anEndpointChangeDoesNotWaitForTheWindow() throws {
        let window = Duration.seconds(2)
        let (store, loop, published) = start(window: window, objects: [ingress("web", host: "a.example.com"), service(), slice("10.0.0.1")])
        defer { loop.stop() }
        #expect(waitUntil { addresses(published.all.last) == ["10.0.0.1"] })
        Thread.sleep(forTimeInterval: 2.2)
        // A round after the quiet period starts a window...
        let started = Date()
        store.apply(.upserted(ingress("other", host: "b.example.com")), from: ingresses)
        #expect(waitUntil(1.5) { published.all.last?.virtualHosts.count == 2 })
        // ...and an endpoint change inside it is still published at once.
        store.apply(.upserted(slice("10.0.0.2")), from: slices)
        #expect(waitUntil(1.5) { addresses(published.all.last) == ["10.0.0.2"] })
        #expect(Date().timeIntervalSince(started) < 1.9, "published before the 2 s window ended")
    }

    @Test func endpointChangesArePublishedBeforeALargeIngressBurstTakenWithThem() throws {
        let (store, loop, published) = start(window: .seconds(2), objects: [ingress("web", host: "a.example.com"), service(), slice("10.0.0.1")])
        defer { loop.stop() }
        #expect(waitUntil { addresses(published.all.last) == ["10.0.0.1"] })
        store.apply(.upserted(ingress("first", host: "first.example.com")), from: ingresses)
        // Set-up, not the rule under test: a loaded machine may take more than the 2 s window.
        #expect(waitUntil(5) { published.all.last?.virtualHosts.count == 2 })
        let before = published.all.count
        // Inside the window: a burst of Ingresses, then an endpoint change.
        for index in 0..<400 {
            store.apply(.upserted(ingress("burst-\(index)", host: "burst-\(index).example.com")), from: ingresses)
        }
        store.apply(.upserted(slice("10.0.0.2")), from: slices)
        #expect(waitUntil(5) { published.all.last?.virtualHosts.count == 402 })
        let rounds = Array(published.all.dropFirst(before))
        // The endpoint change went out in a table of its own, before the burst.
        let endpointFirst = rounds.first { addresses($0) == ["10.0.0.2"] }
        #expect(endpointFirst?.virtualHosts.count == 2)
        #expect(rounds.last.map(addresses) == ["10.0.0.2"])
    }

    @Test func aLargeIngressBurstIsPublishedInBoundedRoundsThatFollowAtOnce() throws {
        let (store, loop, published) = start(window: .seconds(1))
        defer { loop.stop() }
        #expect(waitUntil { published.all.count == 1 })
        store.apply(.upserted(ingress("first", host: "first.example.com")), from: ingresses)
        #expect(waitUntil(2) { published.all.last?.virtualHosts.count == 1 })
        let before = published.all.count
        for index in 0..<1200 {
            store.apply(.upserted(ingress("burst-\(index)", host: "burst-\(index).example.com")), from: ingresses)
        }
        #expect(waitUntil(10) { published.all.last?.virtualHosts.count == 1201 })
        let counts = [1] + published.all.dropFirst(before).map(\.virtualHosts.count)
        // At most 64 Ingresses read per round, so a round stays short.
        #expect(zip(counts, counts.dropFirst()).allSatisfy { $1 - $0 <= 64 }, "\(counts)")
        #expect(counts.count >= 1200 / 64)
    }

    @Test func aBulkDeleteIsTranslatedInAFewRoundsNotOnePerObject() throws {
        let objects = (0..<1500).map { ingress("ing-\($0)", host: "h\($0).example.com") } + [service(), slice("10.0.0.1")]
        let (store, loop, published) = start(window: .milliseconds(200), objects: objects)
        defer { loop.stop() }
        #expect(waitUntil(10) { published.all.last?.virtualHosts.count == 1500 })
        let before = loop.reloads
        for object in objects.prefix(1500).sorted(by: { $0.key < $1.key }) {
            store.apply(.deleted(object), from: ingresses)
        }
        #expect(waitUntil(10) { published.all.last?.virtualHosts.isEmpty == true })
        Thread.sleep(forTimeInterval: 0.5)
        #expect(loop.reloads - before <= 3, "1,500 delete events cost \(loop.reloads - before) rounds")
    }

    @Test func afterMostObjectsAreDeletedTheRestKeepsBeingServedAndUpdated() throws {
        // Enough objects that the loop rebuilds its translator after the deletes.
        let objects = (0..<4200).map { ingress("ing-\($0)", host: "h\($0).example.com") } + [service(), slice("10.0.0.1")]
        let (store, loop, published) = start(window: .milliseconds(100), objects: objects)
        defer { loop.stop() }
        #expect(waitUntil(30) { published.all.last?.virtualHosts.count == 4200 })
        for object in objects.prefix(4000) { store.apply(.deleted(object), from: ingresses) }
        #expect(waitUntil(10) { published.all.last?.virtualHosts.count == 200 })
        // The rebuilt state still follows changes to what is left, and new objects.
        store.apply(.deleted(objects[4100]), from: ingresses)
        store.apply(.upserted(ingress("new", host: "new.example.com")), from: ingresses)
        store.apply(.upserted(slice("10.0.0.9")), from: slices)
        #expect(waitUntil(10) {
            let hosts = Set(published.all.last?.virtualHosts.map(\.host) ?? [])
            return hosts.count == 200 && hosts.contains(.exact("new.example.com")) && !hosts.contains(.exact("h4100.example.com"))
        })
        #expect(waitUntil(5) { addresses(published.all.last) == ["10.0.0.9"] })
    }

    @Test func aRelistThatDropsThousandsOfObjectsIsOneRound() throws {
        let objects = (0..<1500).map { ingress("ing-\($0)", host: "h\($0).example.com") }
        let (store, loop, published) = start(window: .milliseconds(200), objects: objects)
        defer { loop.stop() }
        #expect(waitUntil(10) { published.all.last?.virtualHosts.count == 1500 })
        Thread.sleep(forTimeInterval: 0.3)
        let before = loop.reloads
        store.apply(.replaced([]), from: ingresses)
        #expect(waitUntil(10) { published.all.last?.virtualHosts.isEmpty == true })
        Thread.sleep(forTimeInterval: 0.5)
        #expect(loop.reloads - before == 1)
    }
}
