import Controller
import FakeKubeAPI
import Foundation
import Kube
import Testing
import Translate

@Suite(.serialized) struct EventRecorderTests {
    func setUp() throws -> (FakeKubeAPIServer, KubeObjectStore, KubeAPIClient) {
        let server = FakeKubeAPIServer()
        try server.start()
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port))
        let resource = WatchedResource(kind: .ingress)
        let store = KubeObjectStore(expected: [resource])
        let ingresses = (0..<20).map { KubeObject.ingress(Ingress(metadata: ObjectMeta(name: "web-\($0)", uid: "uid-\($0)", resourceVersion: "7"))) }
        store.apply(.replaced(ingresses), from: resource)
        return (server, store, client)
    }

    func diagnostic(_ index: Int, message: String = "path \"foo\" must start with \"/\"") -> Diagnostic {
        Diagnostic(.error, ObjectKey(kind: "Ingress", namespace: "default", name: "web-\(index)"), field: "spec.rules[0].http.paths[0].path",
                   reason: "InvalidPath", message: message)
    }

    @Test func aHotLoopOfDistinctProblemsIsCappedByTheTokenBucket() throws {
        let (server, store, client) = try setUp()
        defer { server.stop() }
        let recorder = EventRecorder(client: client, store: store, controllerName: "postern.dev/ingress-controller", instance: "test",
                                     burst: 3, refillInterval: 1000, log: { _ in })
        recorder.start()
        defer { recorder.stop() }
        recorder.record((0..<20).map { diagnostic($0) })
        let deadline = Date().addingTimeInterval(5)
        while recorder.counts.sent < 3 && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(recorder.counts.sent == 3)
        #expect(recorder.counts.dropped == 17)
        #expect(server.objects(resource: "events").count == 3)
    }

    @Test func theSameProblemIsRecordedOncePerWindowAndOnlyWhileLeading() throws {
        let (server, store, client) = try setUp()
        defer { server.stop() }
        let recorder = EventRecorder(client: client, store: store, controllerName: "postern.dev/ingress-controller", instance: "test", log: { _ in })
        recorder.start()
        defer { recorder.stop() }
        recorder.setEnabled(false)
        recorder.record([diagnostic(1)])
        recorder.setEnabled(true)
        for _ in 0..<10 { recorder.record([diagnostic(2)]) }
        recorder.record([diagnostic(2, message: "another problem")])
        let deadline = Date().addingTimeInterval(5)
        while recorder.counts.sent < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        Thread.sleep(forTimeInterval: 0.2)
        let events = server.objects(resource: "events")
        #expect(events.count == 2)
        #expect(events.allSatisfy { ($0["regarding"] as? [String: Any])?["name"] as? String == "web-2" })
        #expect(events.allSatisfy { ($0["regarding"] as? [String: Any])?["uid"] as? String == "uid-2" })
        #expect(events.allSatisfy { $0["type"] as? String == "Warning" && $0["reason"] as? String == "InvalidPath" })
    }
}
