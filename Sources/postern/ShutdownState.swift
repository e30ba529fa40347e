import Dispatch
import FoundationEssentials
import Glibc
import Kube
import Logging
import Reactor
import Support
import Telemetry

/// The process's shutdown phase, read by `/readyz`: once SIGTERM arrives the
/// replica leaves the Service's endpoints at once (503), while it still
/// serves for the grace period the connections kube-proxy and cloud load
/// balancers keep sending until they see the endpoint removed.
///
/// Threading: `begin` and the wait on the main thread; `readinessReason` on the admin thread.
final class ShutdownState: @unchecked Sendable {
    private let lock = Lock()
    private var reason: String?

    /// Whether shutdown has begun (a Lease lost from now on is expected).
    var isShuttingDown: Bool { lock.withLock { reason != nil } }

    /// What `/readyz` says while shutting down, or nil before.
    var readinessReason: String? { lock.withLock { reason } }

    func begin(gracePeriodSeconds: Double) {
        lock.withLock {
            reason = gracePeriodSeconds > 0
                ? "shutting down: still serving for the \(gracePeriodSeconds) s grace period, then draining"
                : "shutting down: draining"
        }
    }

    /// Sleeps `seconds`; returns true early when SIGTERM or SIGINT arrives
    /// again (an operator in a hurry, or a runtime's second signal).
    func waitForGracePeriodOrSignal(seconds: Double) -> Bool {
        let second = DispatchSemaphore(value: 0)
        // Termination signals are blocked on every thread (sigwait consumes
        // them); this thread waits for the next one. It stays blocked if none
        // comes, until the process exits.
        let waiter = Thread {
            while true {
                let signal = WorkerThread.waitForSignal()
                if signal == SIGTERM || signal == SIGINT { break }
            }
            second.signal()
        }
        waiter.name = "postern-second-signal"
        waiter.start()
        return second.wait(timeout: .now() + seconds) == .success
    }
}

/// Messages of the Kubernetes source and the leader duties, logged at their
/// usual level except a 403 Forbidden from the API server (a missing RBAC
/// permission: the operator must act), which is an error, counted in
/// `postern_kube_forbidden_total` and shown by `/readyz`. Leadership lost
/// while running is an error too (`postern_leader_lease_losses_total`).
final class KubeProblemLog: @unchecked Sendable {
    let logger: Logger
    let health: KubeAPIHealth

    init(logger: Logger, health: KubeAPIHealth) {
        self.logger = logger
        self.health = health
    }

    func log(_ text: String, level: Logger.Level) {
        // `KubeAPIError.status` describes itself as "API server answered CODE REASON: ...".
        if text.contains("API server answered 403") {
            health.recordForbidden(text)
            logger.error("\(text)", metadata: ["hint": "the ServiceAccount lacks this permission: see docs/deployment.md, RBAC"])
        } else {
            logger.log(level: level, "\(text)")
        }
    }

    /// Reports leadership that ends while the process is not shutting down.
    func watchLeadership(of elector: LeaderElector, shutdown: ShutdownState) {
        let previous = elector.onChange
        let lease = "\(elector.namespace)/\(elector.name)"
        elector.onChange = { [health, logger] leading in
            previous(leading)
            guard !leading, !shutdown.isShuttingDown else { return }
            let message = "lost the leader Lease \(lease): could not renew it in time or another replica took it"
            health.recordLeaseLost(message)
            logger.error("\(message)", metadata: ["lease": "\(lease)"])
        }
    }
}
