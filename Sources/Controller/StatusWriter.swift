import FoundationEssentials
import Kube
import Support
import Translate

/// Where the Ingress status addresses come from.
public enum StatusAddressSource: Sendable, Equatable {
    /// `--publish-service NAMESPACE/NAME`: that Service's load-balancer
    /// ingress, else its external IPs.
    case service(namespace: String, name: String)
    /// `--publish-status-address`: IPs become `ip`, names `hostname`.
    case addresses([String])
}

/// Keeps `status.loadBalancer.ingress` of every served Ingress equal to
/// the published addresses, while this replica leads; removes them from
/// Ingresses it no longer serves (and, with `clearOnShutdown`, from every
/// Ingress when it stops). Writes only what differs from the store.
///
/// Threading: its own thread; `setLeader` and `wake` from any thread.
public final class StatusWriter: @unchecked Sendable {
    private let client: KubeAPIClient
    private let store: KubeObjectStore
    private let options: TranslateOptions
    private let source: StatusAddressSource
    private let clearOnShutdown: Bool
    private let log: @Sendable (String) -> Void
    /// Full resync interval (changes also wake the writer).
    public let interval: Double

    private let condition = Condition()
    private var leader = false
    private var pending = true
    private var stopping = false
    private var finished = true
    private var writes = 0

    public init(
        client: KubeAPIClient, store: KubeObjectStore, options: TranslateOptions, source: StatusAddressSource,
        clearOnShutdown: Bool, interval: Double = 5, log: @escaping @Sendable (String) -> Void
    ) {
        self.client = client
        self.store = store
        self.options = options
        self.source = source
        self.clearOnShutdown = clearOnShutdown
        self.interval = interval
        self.log = log
        store.onChange { [weak self] in self?.wake() }
    }

    /// Status writes done (for tests and metrics).
    public var writeCount: Int { condition.withLock { writes } }

    /// Leadership changed.
    public func setLeader(_ value: Bool) {
        condition.withLock {
            leader = value
            pending = true
            condition.broadcast()
        }
    }

    /// Something changed in the store.
    public func wake() {
        condition.withLock {
            pending = true
            condition.broadcast()
        }
    }

    public func start() {
        condition.withLock { finished = false }
        let thread = Thread { [self] in
            run()
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-status"
        thread.start()
    }

    /// Stops; with `clearOnShutdown` a leader first removes its addresses.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        let wasLeader = leader
        condition.unlock()
        if clearOnShutdown && wasLeader && store.isSynced {
            let ours = Set(desiredAddresses())
            for ingress in store.snapshot(of: [.ingress, .ingressClass]).ingresses where !ours.isDisjoint(with: ingress.status.ingress) {
                write(ingress, ingress.status.ingress.filter { !ours.contains($0) })
            }
        }
    }

    private func run() {
        while true {
            condition.lock()
            let deadline = Date().addingTimeInterval(interval)
            while !stopping && !pending {
                if !condition.wait(until: deadline) { break }
            }
            let stop = stopping
            let lead = leader
            pending = false
            condition.unlock()
            if stop { return }
            // Let a burst of watch events settle (100 ms: status writes need no haste).
            Thread.sleep(forTimeInterval: 0.1)
            if lead && store.isSynced { reconcile() }
        }
    }

    func desiredAddresses() -> [LoadBalancerIngress] {
        switch source {
        case let .addresses(list):
            return list.map { text in
                isIPAddress(text) ? LoadBalancerIngress(ip: text) : LoadBalancerIngress(hostname: text)
            }
        case let .service(namespace, name):
            guard case let .service(service)? = store.object(ObjectKey(kind: "Service", namespace: namespace, name: name)) else {
                return []
            }
            return service.publishedAddresses
        }
    }

    private func reconcile() {
        let desired = desiredAddresses()
        let snapshot = store.snapshot(of: [.ingress, .ingressClass])
        let served = IngressClassFilter(options: options, classes: snapshot.ingressClasses)
        let ours = Set(desired)
        for ingress in snapshot.ingresses {
            if served.serves(ingress) {
                if ingress.status.ingress != desired { write(ingress, desired) }
            } else if !ours.isEmpty, !ours.isDisjoint(with: ingress.status.ingress) {
                write(ingress, ingress.status.ingress.filter { !ours.contains($0) })
            }
        }
    }

    private func write(_ ingress: Ingress, _ addresses: [LoadBalancerIngress]) {
        do {
            try client.patchIngressStatus(namespace: ingress.metadata.namespace, name: ingress.metadata.name, addresses: addresses)
            condition.withLock { writes += 1 }
        } catch {
            log("status of Ingress \(ingress.metadata.namespace)/\(ingress.metadata.name) not written: \(error)")
        }
    }

    private func isIPAddress(_ text: String) -> Bool {
        let v4 = text.split(separator: ".", omittingEmptySubsequences: false)
        if v4.count == 4, v4.allSatisfy({ UInt8($0) != nil }) { return true }
        return text.contains(":") && text.allSatisfy { $0.isHexDigit || $0 == ":" || $0 == "." }
    }
}
