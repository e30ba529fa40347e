import FoundationEssentials

/// The writes Postern makes: Ingress status and Events.
extension KubeAPIClient {
    /// Sets `status.loadBalancer.ingress` of one Ingress with a JSON merge
    /// patch on the `status` subresource (a merge patch replaces the list whole).
    public func patchIngressStatus(namespace: String, name: String, addresses: [LoadBalancerIngress]) throws {
        struct Patch: Encodable {
            struct Status: Encodable { var loadBalancer: LoadBalancerStatus }
            var status: Status
        }
        let body = try JSONEncoder().encode(Patch(status: .init(loadBalancer: LoadBalancerStatus(ingress: addresses))))
        _ = try sendExpectingSuccess(
            method: "PATCH", path: "/apis/networking.k8s.io/v1/namespaces/\(namespace)/ingresses/\(name)/status",
            body: Array(body), contentType: "application/merge-patch+json")
    }

    /// Creates an `events.k8s.io/v1` Event about `regarding`.
    public func createEvent(_ event: KubeEvent) throws {
        let body = try JSONEncoder().encode(event)
        _ = try sendExpectingSuccess(
            method: "POST", path: "/apis/events.k8s.io/v1/namespaces/\(event.metadata.namespace)/events", body: Array(body))
    }
}

/// An `events.k8s.io/v1` Event, with the fields the API server requires.
public struct KubeEvent: Codable, Sendable {
    public struct Meta: Codable, Sendable {
        public var name: String
        public var namespace: String
    }

    /// `regarding`: the object the Event is about.
    public struct Reference: Codable, Sendable {
        public var apiVersion: String
        public var kind: String
        public var namespace: String?
        public var name: String
        public var uid: String?
        public var resourceVersion: String?
    }

    public var apiVersion = "events.k8s.io/v1"
    public var kind = "Event"
    public var metadata: Meta
    /// MicroTime.
    public var eventTime: String
    public var reportingController: String
    public var reportingInstance: String
    public var action: String
    public var reason: String
    public var note: String
    public var type: String
    public var regarding: Reference

    /// An Event about `object`; the note is cut to the API's 1 KiB limit.
    public init(
        regarding object: ObjectKey, apiVersion: String, uid: String?, resourceVersion: String?, namespaced: Bool,
        type: String, reason: String, note: String, action: String, controller: String, instance: String, time: Date
    ) {
        let suffix = String(UInt64(time.timeIntervalSince1970 * 1_000_000), radix: 16)
        let namespace = namespaced ? object.namespace : "default"
        metadata = Meta(name: "\(object.name).\(suffix)", namespace: namespace)
        eventTime = LeaseSpec.microTime(time)
        reportingController = controller
        reportingInstance = String(instance.prefix(128))
        self.action = action
        self.reason = reason
        self.note = String(note.utf8.prefix(1024)) ?? String(note.prefix(1000))
        self.type = type
        regarding = Reference(
            apiVersion: apiVersion, kind: object.kind, namespace: namespaced ? object.namespace : nil, name: object.name,
            uid: uid, resourceVersion: resourceVersion)
    }
}
