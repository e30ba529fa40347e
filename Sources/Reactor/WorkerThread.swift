import CPosternShim
import Glibc

/// Starts OS threads for event loops and reports the CPUs available.
public enum WorkerThread {
    /// CPUs this process may run on (respects taskset and cgroup cpusets).
    public static var availableCPUs: Int { Int(postern_available_cpus()) }

    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Starts a detached-style joinable thread running `body`; returns its handle.
    public static func start(name: String, _ body: @escaping () -> Void) throws -> pthread_t {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError("pthread_create", errno: result)
        }
        return thread
    }

    /// Waits for a thread started by `start` to finish.
    public static func join(_ thread: pthread_t) {
        pthread_join(thread, nil)
    }

    /// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (and in threads
    /// it starts afterwards), so that `waitForSignal` receives them.
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits for SIGTERM, SIGINT or SIGHUP and returns the signal number.
    public static func waitForSignal() -> CInt {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        var signal: CInt = 0
        sigwait(&set, &signal)
        return signal
    }
}
