import FakeKubeAPI
import Foundation
import Kube
import Testing

/// Objects from the API server are kept with only what Postern reads.
@Suite(.serialized) struct TrimmingTests {
    static let lastApplied = KubeObject.lastAppliedAnnotation

    /// Objects as a cluster holds them after `kubectl apply`: managedFields,
    /// the last-applied annotation, labels, Pod references.
    static let ingressJSON = #"""
        {"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"web","namespace":"shop",
         "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Ingress\",\"spec\":{}}\n",
                        "nginx.ingress.kubernetes.io/rewrite-target":"/"},
         "labels":{"app.kubernetes.io/name":"web"},
         "managedFields":[{"manager":"kubectl-client-side-apply","operation":"Update","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
         "spec":{"rules":[{"host":"shop.example.com","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}
        """#

    static func sliceJSON(_ name: String) -> String {
        #"""
        {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"\#(name)","namespace":"shop",
         "labels":{"kubernetes.io/service-name":"web","endpointslice.kubernetes.io/managed-by":"endpointslice-controller.k8s.io"},
         "annotations":{"endpoints.kubernetes.io/last-change-trigger-time":"2026-11-27T08:00:00Z"},
         "ownerReferences":[{"apiVersion":"v1","kind":"Service","name":"web","uid":"u-1","controller":true}],
         "managedFields":[{"manager":"kube-controller-manager","operation":"Update"}]},
         "addressType":"IPv4",
         "endpoints":[{"addresses":["10.0.0.7"],"conditions":{"ready":true},"nodeName":"node-1","hostname":"web-0",
                       "targetRef":{"kind":"Pod","name":"web-0","namespace":"shop"}}],
         "ports":[{"name":"http","port":8080}]}
        """#
    }

    func client(_ server: FakeKubeAPIServer) throws -> KubeAPIClient {
        try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port))
    }

    @Test func informersDropTheLastAppliedAnnotationAndKeepTheAnnotationsTranslateReads() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        try server.apply(Self.ingressJSON)
        let log = UpdateLog()
        let received = Received()
        let informer = Informer(resource: WatchedResource(kind: .ingress), client: try client(server)) { update in
            log.record(update)
            received.record(update)
        }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { log.currentNames == ["web"] })
        // The same object again, through the watch this time.
        try server.apply(Self.ingressJSON.replacingOccurrences(of: "shop.example.com", with: "shop2.example.com"))
        #expect(eventually { received.ingresses.count == 2 })
        for ingress in received.ingresses {
            #expect(ingress.metadata.annotations == ["nginx.ingress.kubernetes.io/rewrite-target": "/"])
            #expect(ingress.metadata.labels.isEmpty)
            #expect(ingress.metadata.creationTimestamp != nil, "the age order of conflicting Ingresses needs it")
        }
    }

    @Test func endpointSlicesKeepOnlyTheServiceNameLabelAndTheAddresses() throws {
        let data = Data(Self.sliceJSON("web-abc").utf8)
        let decoded = try JSONDecoder().decode(KubeObject.self, from: data)
        guard case let .endpointSlice(slice) = decoded.keepingOnlyWhatPosternReads(interner: StringInterner()) else {
            Issue.record("not a slice")
            return
        }
        #expect(slice.metadata.labels == [EndpointSlice.serviceNameLabel: "web"])
        #expect(slice.metadata.annotations.isEmpty)
        #expect(slice.serviceName == "web")
        #expect(slice.endpoints.map(\.addresses) == [["10.0.0.7"]])
        #expect(slice.endpoints.first?.conditions.ready == true)
        #expect(slice.endpoints.first?.nodeName == nil)
    }

    @Test func repeatedStringsFromDifferentObjectsShareOneCopy() throws {
        let interner = StringInterner()
        var keys: [String] = []
        for name in ["a", "b", "c"] {
            let decoded = try JSONDecoder().decode(KubeObject.self, from: Data(Self.sliceJSON(name).utf8))
            guard case let .endpointSlice(slice) = decoded.keepingOnlyWhatPosternReads(interner: interner) else { continue }
            keys.append(contentsOf: slice.metadata.labels.keys)
        }
        #expect(keys.count == 3)
        var addresses: Set<UInt> = []
        for var key in keys {
            key.withUTF8 { addresses.insert(UInt(bitPattern: $0.baseAddress)) }
        }
        #expect(addresses.count == 1, "three decodes of one label key should share one buffer")
    }

    /// Copies of an object share its fields (the store, the translator and
    /// snapshots hold one Ingress): trimming one, or changing one field of
    /// one, must leave every other copy as it was.
    @Test func changingOneCopyOfAnObjectLeavesTheOthersAsTheyWere() throws {
        let decoded = try JSONDecoder().decode(KubeObject.self, from: Data(Self.sliceJSON("web-abc").utf8))
        guard case let .endpointSlice(original) = decoded,
              case var .endpointSlice(trimmed) = decoded.keepingOnlyWhatPosternReads(interner: StringInterner())
        else {
            Issue.record("not a slice")
            return
        }
        #expect(original.endpoints.first?.nodeName == "node-1")
        #expect(original.metadata.labels.count == 2)
        #expect(trimmed.endpoints.first?.nodeName == nil)
        var copy = trimmed
        copy.endpoints[0].addresses = ["10.0.0.8"]
        copy.metadata.name = "other"
        #expect(trimmed.endpoints.map(\.addresses) == [["10.0.0.7"]])
        #expect(trimmed.metadata.name == "web-abc")
        #expect(copy != trimmed)
        trimmed.endpoints[0].addresses = ["10.0.0.8"]
        trimmed.metadata.name = "other"
        #expect(copy == trimmed, "equal fields are equal, whichever copy holds them")
    }
}

/// The objects an informer handed on.
final class Received: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Ingress] = []

    func record(_ update: InformerUpdate) {
        lock.withLock {
            switch update {
            case let .replaced(objects):
                for case let .ingress(ingress) in objects { list.append(ingress) }
            case let .upserted(.ingress(ingress)):
                list.append(ingress)
            default:
                break
            }
        }
    }

    var ingresses: [Ingress] { lock.withLock { list } }
}
