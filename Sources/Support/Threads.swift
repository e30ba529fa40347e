import CPosternShim
import FoundationEssentials
import Glibc

// Foundation's NSLock, NSCondition and Thread live in Foundation proper, which
// brings ICU (~15 MB of idle RSS). These are the same few operations over
// pthreads, for the control-plane targets (Kube, Controller, postern); event
// loops use Reactor's WorkerThread.

/// A mutual-exclusion lock (a pthread mutex). Not recursive.
public final class Lock: @unchecked Sendable {
    /// The pthread mutex (also what `Condition` waits with).
    fileprivate let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    /// Creates an unlocked lock.
    public init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Takes the lock, waiting while another thread holds it.
    public func lock() {
        let result = pthread_mutex_lock(mutex)
        precondition(result == 0, "pthread_mutex_lock failed: \(result)")
    }

    /// Releases the lock; the calling thread must hold it.
    public func unlock() {
        let result = pthread_mutex_unlock(mutex)
        precondition(result == 0, "pthread_mutex_unlock failed: \(result)")
    }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A lock with a condition variable, used as NSCondition was: take the lock,
/// check the state, `wait` (which releases it while asleep), `broadcast`
/// after changing the state.
public final class Condition: @unchecked Sendable {
    private let mutex = Lock()
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    /// Creates an unlocked condition.
    public init() {
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deallocate()
    }

    /// Takes the lock.
    public func lock() { mutex.lock() }

    /// Releases the lock.
    public func unlock() { mutex.unlock() }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try mutex.withLock(body)
    }

    /// Sleeps until signalled (or woken spuriously); the caller holds the lock.
    public func wait() {
        pthread_cond_wait(condition, mutex.mutex)
    }

    /// Sleeps until signalled or `deadline` (wall clock, as NSCondition);
    /// false when the deadline passed. The caller holds the lock.
    @discardableResult
    public func wait(until deadline: Date) -> Bool {
        let seconds = deadline.timeIntervalSince1970
        guard seconds.isFinite else {
            wait()
            return true
        }
        var time = timespec()
        let whole = seconds.rounded(.down)
        time.tv_sec = Int(max(0, min(whole, Double(Int32.max) * 4)))
        time.tv_nsec = Int(max(0, min(999_999_999, (seconds - whole) * 1_000_000_000)))
        return pthread_cond_timedwait(condition, mutex.mutex, &time) == 0
    }

    /// Wakes one waiter.
    public func signal() {
        pthread_cond_signal(condition)
    }

    /// Wakes every waiter.
    public func broadcast() {
        pthread_cond_broadcast(condition)
    }
}

/// A named background thread that runs a closure once, used as Foundation's
/// Thread was: create, set `name`, `start()`. The thread is detached; callers
/// that wait for it do so with their own `Condition`.
public final class Thread: @unchecked Sendable {
    private let body: () -> Void
    /// The name shown in `top -H` and debuggers (at most 15 bytes are kept).
    public var name: String?

    /// Creates a thread that will run `block` once started.
    public init(block: @escaping () -> Void) {
        body = block
    }

    /// Starts the thread. A failure to create one is fatal: the controller
    /// cannot run without its threads.
    public func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let result = pthread_create(&handle, &attributes, { argument in
            let thread = Unmanaged<Thread>.fromOpaque(argument!).takeRetainedValue()
            if let name = thread.name {
                // Linux limits thread names to 15 bytes plus the terminator.
                _ = postern_set_thread_name(String(decoding: Array(name.utf8.prefix(15)), as: UTF8.self))
            }
            thread.body()
            return nil
        }, context)
        precondition(result == 0, "pthread_create failed: \(result)")
    }

    /// Sleeps the calling thread for `seconds`.
    public static func sleep(forTimeInterval seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }
}
