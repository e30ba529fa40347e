import FoundationEssentials
import Support

/// Timing of leader election (client-go's defaults: 15 s, 10 s, 2 s).
public struct LeaderElectionTiming: Sendable {
    /// How long a Lease holds without renewal before others may take it.
    public var leaseDuration: Double
    /// The leader gives up when it could not renew for this long.
    public var renewDeadline: Double
    /// How often candidates retry and the leader renews.
    public var retryPeriod: Double

    public init(leaseDuration: Double = 15, renewDeadline: Double = 10, retryPeriod: Double = 2) {
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
    }
}

/// Leader election with a `coordination.k8s.io/v1` Lease, as client-go's
/// `leaderelection` does: create the Lease or take it over when its holder
/// did not renew within `leaseDuration` (measured on this replica's clock
/// from the moment it last saw the Lease change, so clock skew between
/// replicas does not matter); the leader renews every `retryPeriod` and
/// steps down when it could not renew for `renewDeadline`. Updates carry
/// the Lease's resourceVersion, so two candidates never both win (409).
///
/// Threading: its own thread; `onChange` is called there.
public final class LeaderElector: @unchecked Sendable {
    public let client: KubeAPIClient
    public let namespace: String
    public let name: String
    public let identity: String
    public let timing: LeaderElectionTiming
    private let changeLock = Lock()
    private var changeHandler: @Sendable (Bool) -> Void
    /// Called on the election thread when leadership starts or ends; set before `start()`.
    public var onChange: @Sendable (Bool) -> Void {
        get { changeLock.withLock { changeHandler } }
        set { changeLock.withLock { changeHandler = newValue } }
    }
    private let log: @Sendable (String) -> Void

    private let condition = Condition()
    private var stopping = false
    private var finished = true
    private var leading = false

    /// Last Lease record seen and when this replica saw it change.
    private var observedRecord: LeaseSpec?
    private var observedAt = Date.distantPast
    private var lastRenew = Date.distantPast

    public init(
        client: KubeAPIClient, namespace: String, name: String, identity: String, timing: LeaderElectionTiming = LeaderElectionTiming(),
        log: @escaping @Sendable (String) -> Void, onChange: @escaping @Sendable (Bool) -> Void
    ) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.log = log
        self.changeHandler = onChange
    }

    /// Whether this replica leads now.
    public var isLeader: Bool { condition.withLock { leading } }

    var path: String { "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(name)" }

    public func start() {
        condition.withLock { finished = false }
        let thread = Thread { [self] in
            run()
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-leader-election"
        thread.start()
    }

    /// Stops campaigning; a leader releases the Lease so another replica takes over at once.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
        if isLeader {
            release()
            setLeading(false)
        }
    }

    private func setLeading(_ value: Bool) {
        let changed = condition.withLock { () -> Bool in
            guard leading != value else { return false }
            leading = value
            return true
        }
        if changed {
            log(value ? "became leader (Lease \(namespace)/\(name), identity \(identity))" : "stopped leading (Lease \(namespace)/\(name))")
            onChange(value)
        }
    }

    private func run() {
        while true {
            let acquired = tryAcquireOrRenew()
            let now = Date()
            if acquired {
                lastRenew = now
                setLeading(true)
            } else if isLeader, now.timeIntervalSince(lastRenew) >= timing.renewDeadline
                || !(observedRecord?.holderIdentity ?? "").isEmpty && observedRecord?.holderIdentity != identity {
                // Could not renew in time, or another replica holds the Lease now.
                setLeading(false)
            }
            let wait = timing.retryPeriod * (acquired || isLeader ? 1 : Double.random(in: 1...1.2))
            let deadline = Date().addingTimeInterval(wait)
            condition.lock()
            while !stopping, condition.wait(until: deadline) {}
            let stop = stopping
            condition.unlock()
            if stop { return }
        }
    }

    /// One round; true when this replica holds the Lease afterwards.
    func tryAcquireOrRenew() -> Bool {
        let now = Date()
        let response: KubeResponse
        do {
            response = try client.send(method: "GET", path: path)
        } catch {
            log("leader election: cannot read Lease \(namespace)/\(name): \(error)")
            return false
        }
        let mine = LeaseSpec(
            holderIdentity: identity, leaseDurationSeconds: Int(timing.leaseDuration.rounded(.up)),
            acquireTime: LeaseSpec.microTime(now), renewTime: LeaseSpec.microTime(now), leaseTransitions: 0)
        if response.status == 404 {
            let lease = Lease(metadata: LeaseMeta(name: name, namespace: namespace, resourceVersion: nil), spec: mine)
            return write(method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases", lease: lease)
        }
        guard response.status == 200, let current = try? JSONDecoder().decode(Lease.self, from: Data(response.body)) else {
            log("leader election: Lease \(namespace)/\(name): \(KubeAPIClient.statusError(response))")
            return false
        }
        if current.spec != observedRecord {
            observedRecord = current.spec
            observedAt = now
        }
        let holder = current.spec.holderIdentity ?? ""
        let duration = Double(current.spec.leaseDurationSeconds ?? Int(timing.leaseDuration))
        if !holder.isEmpty, holder != identity, now.timeIntervalSince(observedAt) < duration {
            return false
        }
        var next = mine
        if holder == identity {
            next.acquireTime = current.spec.acquireTime
            next.leaseTransitions = current.spec.leaseTransitions ?? 0
        } else {
            next.leaseTransitions = (current.spec.leaseTransitions ?? 0) + 1
        }
        var lease = current
        lease.spec = next
        return write(method: "PUT", path: path, lease: lease)
    }

    private func write(method: String, path: String, lease: Lease) -> Bool {
        do {
            let body = try JSONEncoder().encode(lease)
            let response = try client.send(method: method, path: path, body: Array(body))
            if (200..<300).contains(response.status) {
                if let stored = try? JSONDecoder().decode(Lease.self, from: Data(response.body)) {
                    observedRecord = stored.spec
                    observedAt = Date()
                }
                return true
            }
            if response.status != 409 {
                log("leader election: \(method) Lease \(namespace)/\(name): \(KubeAPIClient.statusError(response))")
            }
            return false
        } catch {
            log("leader election: \(method) Lease \(namespace)/\(name): \(error)")
            return false
        }
    }

    /// Gives the Lease up (holder cleared, 1 s duration), like client-go's ReleaseOnCancel.
    private func release() {
        guard let response = try? client.send(method: "GET", path: path), response.status == 200,
              var lease = try? JSONDecoder().decode(Lease.self, from: Data(response.body)),
              lease.spec.holderIdentity == identity
        else { return }
        lease.spec.holderIdentity = ""
        lease.spec.leaseDurationSeconds = 1
        lease.spec.renewTime = LeaseSpec.microTime(Date())
        _ = write(method: "PUT", path: path, lease: lease)
    }
}

/// `coordination.k8s.io/v1` Lease.
struct Lease: Codable {
    var apiVersion = "coordination.k8s.io/v1"
    var kind = "Lease"
    var metadata: LeaseMeta
    var spec: LeaseSpec

    init(metadata: LeaseMeta, spec: LeaseSpec) {
        self.metadata = metadata
        self.spec = spec
    }
}

struct LeaseMeta: Codable {
    var name: String
    var namespace: String
    var resourceVersion: String?
}

/// `LeaseSpec`; times are MicroTime (RFC 3339 with microseconds).
struct LeaseSpec: Codable, Equatable {
    var holderIdentity: String?
    var leaseDurationSeconds: Int?
    var acquireTime: String?
    var renewTime: String?
    var leaseTransitions: Int?

    static func microTime(_ date: Date) -> String {
        TextEncoding.rfc3339(date, fractionDigits: 6)
    }
}
