import Synchronization

/// Problems with the Kubernetes API that leave the proxy serving its last
/// table but need an operator: requests the API server refused with 403
/// (the ServiceAccount lacks a permission) and leader Leases lost while
/// running. Counted for `/metrics`; the latest of each is shown by `/readyz`.
///
/// Threading: any thread.
public final class KubeAPIHealth: Sendable {
    private struct State {
        var forbidden: UInt64 = 0
        var leaseLosses: UInt64 = 0
        var lastForbidden: String?
        var lastLeaseLoss: String?
    }

    private let state = Mutex(State())

    public init() {}

    /// A request answered 403 Forbidden; `message` says which.
    public func recordForbidden(_ message: String) {
        state.withLock {
            $0.forbidden &+= 1
            $0.lastForbidden = message
        }
    }

    /// This replica stopped leading without being asked to stop.
    public func recordLeaseLost(_ message: String) {
        state.withLock {
            $0.leaseLosses &+= 1
            $0.lastLeaseLoss = message
        }
    }

    public var forbiddenCount: UInt64 { state.withLock { $0.forbidden } }
    public var leaseLossCount: UInt64 { state.withLock { $0.leaseLosses } }

    /// One line per kind of problem seen since start, for `/readyz`.
    public var details: [String] {
        state.withLock { state in
            var lines: [String] = []
            if let last = state.lastForbidden {
                lines.append("warning: the API server refused \(state.forbidden) request(s) with 403 Forbidden; last: \(last)")
            }
            if let last = state.lastLeaseLoss {
                lines.append("warning: the leader Lease was lost \(state.leaseLosses) time(s); last: \(last)")
            }
            return lines
        }
    }

    /// The counters in the Prometheus text format.
    public func renderPrometheus() -> String {
        let (forbidden, losses) = state.withLock { ($0.forbidden, $0.leaseLosses) }
        return "# HELP postern_kube_forbidden_total API requests refused with 403 Forbidden (missing RBAC permissions).\n"
            + "# TYPE postern_kube_forbidden_total counter\npostern_kube_forbidden_total \(forbidden)\n"
            + "# HELP postern_leader_lease_losses_total Times this replica lost the leader Lease while running.\n"
            + "# TYPE postern_leader_lease_losses_total counter\npostern_leader_lease_losses_total \(losses)\n"
    }
}
