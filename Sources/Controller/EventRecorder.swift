import FoundationEssentials
import Kube
import Support
import Translate

/// Turns translation diagnostics into `events.k8s.io/v1` Events on the
/// offending objects, deduplicated and rate-limited so that a hot loop
/// cannot flood the API server:
///
/// - the same (object, reason, message) is sent at most once per
///   `deduplicationWindow` (10 minutes, like client-go's correlator);
/// - a token bucket (`burst` Events, then one per `refillInterval`) caps
///   the rate overall; what it refuses is counted and dropped;
/// - a bounded queue decouples the controller thread from the API server.
///
/// Only the leader records Events (`setEnabled`), so replicas do not repeat them.
/// Threading: `record` from the controller thread; sending on its own thread.
public final class EventRecorder: @unchecked Sendable {
    private let client: KubeAPIClient
    private let store: KubeObjectStore
    private let controllerName: String
    private let instance: String
    private let log: @Sendable (String) -> Void
    public let deduplicationWindow: Double
    public let burst: Double
    public let refillInterval: Double
    public let queueLimit: Int

    private let condition = Condition()
    private var enabled = true
    private var queue: [KubeEvent] = []
    private var lastSent: [String: Date] = [:]
    private var tokens: Double
    private var lastRefill = Date()
    private var stopping = false
    private var finished = true
    private var sent = 0
    private var dropped = 0

    public init(
        client: KubeAPIClient, store: KubeObjectStore, controllerName: String, instance: String,
        deduplicationWindow: Double = 600, burst: Double = 25, refillInterval: Double = 1, queueLimit: Int = 100,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.client = client
        self.store = store
        self.controllerName = controllerName
        self.instance = instance
        self.deduplicationWindow = deduplicationWindow
        self.burst = burst
        self.refillInterval = refillInterval
        self.queueLimit = queueLimit
        self.log = log
        tokens = burst
    }

    /// Events sent and Events dropped (deduplicated ones are neither).
    public var counts: (sent: Int, dropped: Int) { condition.withLock { (sent, dropped) } }

    /// Records only while enabled (the leader).
    public func setEnabled(_ value: Bool) {
        condition.withLock { enabled = value }
    }

    /// Queues Events for the diagnostics about API objects.
    public func record(_ diagnostics: [Diagnostic], now: Date = Date()) {
        var events: [KubeEvent] = []
        for diagnostic in diagnostics where !diagnostic.kind.isEmpty && !diagnostic.name.isEmpty {
            let key = ObjectKey(kind: diagnostic.kind, namespace: diagnostic.namespace, name: diagnostic.name)
            guard let object = store.object(key), let apiVersion = EventRecorder.apiVersion(of: diagnostic.kind) else { continue }
            let note = diagnostic.fieldPath.map { "\($0): \(diagnostic.message)" } ?? diagnostic.message
            events.append(KubeEvent(
                regarding: key, apiVersion: apiVersion, uid: object.metadata?.uid, resourceVersion: object.metadata?.resourceVersion,
                namespaced: diagnostic.kind != "IngressClass", type: diagnostic.severity == .error ? "Warning" : "Normal",
                reason: diagnostic.reason, note: note, action: "Translate", controller: controllerName, instance: instance, time: now))
        }
        guard !events.isEmpty else { return }
        condition.withLock {
            guard enabled else { return }
            lastSent = lastSent.filter { now.timeIntervalSince($0.value) < deduplicationWindow }
            for event in events {
                let key = "\(event.regarding.kind)/\(event.regarding.namespace ?? "")/\(event.regarding.name)/\(event.reason)/\(event.note)"
                if lastSent[key] != nil { continue }
                tokens = min(burst, tokens + now.timeIntervalSince(lastRefill) / refillInterval)
                lastRefill = now
                guard tokens >= 1, queue.count < queueLimit else {
                    dropped += 1
                    continue
                }
                tokens -= 1
                lastSent[key] = now
                queue.append(event)
            }
            condition.broadcast()
        }
    }

    static func apiVersion(of kind: String) -> String? {
        switch kind {
        case "Ingress", "IngressClass": return "networking.k8s.io/v1"
        case "Service", "Secret", "Endpoints", "ConfigMap": return "v1"
        case "EndpointSlice": return "discovery.k8s.io/v1"
        default: return nil
        }
    }

    public func start() {
        condition.withLock { finished = false }
        let thread = Thread { [self] in
            while let event = next() {
                do {
                    try client.createEvent(event)
                    condition.withLock { sent += 1 }
                } catch {
                    log("Event \(event.reason) on \(event.regarding.kind) \(event.regarding.namespace ?? "")/\(event.regarding.name) not recorded: \(error)")
                }
            }
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-events"
        thread.start()
    }

    private func next() -> KubeEvent? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty && !stopping { condition.wait() }
        if stopping { return nil }
        return queue.removeFirst()
    }

    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }
}
