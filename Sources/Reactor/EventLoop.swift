import CPosternShim
import Glibc
import Synchronization

/// Readiness reported by epoll for one descriptor.
public struct Readiness: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = Readiness(rawValue: UInt32(POSTERN_EPOLLIN))
    public static let writable = Readiness(rawValue: UInt32(POSTERN_EPOLLOUT))
    public static let hangup = Readiness(rawValue: UInt32(POSTERN_EPOLLHUP))
    public static let error = Readiness(rawValue: UInt32(POSTERN_EPOLLERR))
    public static let readHangup = Readiness(rawValue: UInt32(POSTERN_EPOLLRDHUP))
}

/// Which readiness a registration wants to hear about (level-triggered).
public struct Interest: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = Interest(rawValue: UInt32(POSTERN_EPOLLIN))
    public static let write = Interest(rawValue: UInt32(POSTERN_EPOLLOUT))
    public static let none: Interest = []
    /// Not an epoll bit: leaves EPOLLRDHUP (otherwise always asked for) out
    /// of the registration. For a socket whose peer already half-closed:
    /// level-triggered, RDHUP would wake every wait until the socket closes.
    /// Hang-ups and errors are still reported.
    public static let ignoringReadHangup = Interest(rawValue: 1 << 27)

    /// The epoll event mask for this interest.
    @inline(__always)
    var epollEvents: UInt32 {
        contains(.ignoringReadHangup)
            ? rawValue & ~Interest.ignoringReadHangup.rawValue : rawValue | UInt32(POSTERN_EPOLLRDHUP)
    }
}

/// An object driven by an event loop: sockets (listeners, connections).
///
/// All methods run on the loop's thread.
public protocol EventHandler: AnyObject {
    /// The descriptor is ready as described by `readiness`.
    func handleReadiness(_ readiness: Readiness)
    /// Called about every `EventLoop.tickMilliseconds` with the loop's
    /// monotonic clock, to enforce deadlines (timeouts).
    func tick(now: UInt64)
}

/// Work a handler postpones until every event of the current loop iteration
/// was handled: typically a connection's output flush, so that responses
/// produced by several events in one iteration leave in one write.
public protocol DeferredWork: AnyObject {
    /// Runs once per `EventLoop.defer(_:)`, after the iteration's events.
    func runDeferredWork()
}

/// A registered descriptor: the loop's handle for it.
public struct Registration: Equatable, Sendable {
    let slot: UInt32
    let generation: UInt32
    public let fd: CInt
}

/// One epoll event loop, run by one thread. Shares nothing with other loops
/// except its task queue (an eventfd plus a mutex-protected list), which is
/// how other threads hand it work: new routing tables, drain requests.
///
/// Level-triggered: a handler that leaves data unread is called again.
public final class EventLoop: @unchecked Sendable {
    /// How often handlers get `tick(now:)`, which bounds timeout precision.
    public static let tickMilliseconds: UInt64 = 100

    private let epollFD: CInt
    private let wakeFD: CInt
    private var handlers: [EventHandler?] = []
    private var generations: [UInt32] = []
    private var interests: [Interest] = []
    private var freeSlots: [UInt32] = []
    private let pendingTasks = Mutex<[() -> Void]>([])
    private var timers: [(deadline: UInt64, sequence: UInt64, task: () -> Void)] = []
    private var timerSequence: UInt64 = 0
    /// Deferred work of this iteration, and its spare array (swapped to run
    /// without allocating).
    private var deferredWork: [any DeferredWork] = []
    private var runningDeferredWork: [any DeferredWork] = []
    private var running = false
    private var stopRequested = false
    private var thread: pthread_t?
    private var lastTick: UInt64 = 0
    /// The loop's monotonic clock in milliseconds, read once per wake-up.
    public private(set) var now: UInt64

    /// A name for logs and thread names, e.g. `worker-0`.
    public let name: String

    /// Creates a loop; `run()` must then be called on the thread that owns it.
    public init(name: String) throws {
        self.name = name
        let epollFD = postern_epoll_create()
        guard epollFD >= 0 else { throw SystemError("epoll_create1", errno: errno) }
        let wakeFD = postern_eventfd_nonblocking()
        guard wakeFD >= 0 else {
            Glibc.close(epollFD)
            throw SystemError("eventfd", errno: errno)
        }
        self.epollFD = epollFD
        self.wakeFD = wakeFD
        self.now = EventLoop.monotonicMilliseconds()
        // Slot 0 is reserved for the wake-up eventfd.
        handlers.append(nil)
        generations.append(0)
        interests.append(.read)
        guard postern_epoll_ctl(epollFD, Int32(POSTERN_EPOLL_CTL_ADD), wakeFD, Interest.read.rawValue, 0) == 0 else {
            throw SystemError("epoll_ctl(eventfd)", errno: errno)
        }
    }

    deinit {
        Glibc.close(epollFD)
        Glibc.close(wakeFD)
    }

    /// Reads CLOCK_MONOTONIC in milliseconds.
    public static func monotonicMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1000 + UInt64(time.tv_nsec) / 1_000_000
    }

    /// True when called on the loop's own thread.
    public var inLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    @inline(__always)
    func assertInLoop() {
        assert(!running || inLoop, "\(name): loop-bound method called from another thread")
    }

    /// Adds a descriptor to the loop with the given interest.
    public func register(fd: CInt, interest: Interest, handler: EventHandler) throws -> Registration {
        assertInLoop()
        let slot: UInt32
        if let free = freeSlots.popLast() {
            slot = free
            handlers[Int(slot)] = handler
            interests[Int(slot)] = interest
        } else {
            slot = UInt32(handlers.count)
            handlers.append(handler)
            generations.append(0)
            interests.append(interest)
        }
        let generation = generations[Int(slot)]
        let data = UInt64(generation) << 32 | UInt64(slot)
        let events = interest.epollEvents
        guard postern_epoll_ctl(epollFD, Int32(POSTERN_EPOLL_CTL_ADD), fd, events, data) == 0 else {
            let error = errno
            handlers[Int(slot)] = nil
            freeSlots.append(slot)
            throw SystemError("epoll_ctl(add)", errno: error)
        }
        return Registration(slot: slot, generation: generation, fd: fd)
    }

    /// Changes what a registration listens for; a no-op when unchanged.
    @inline(__always)
    public func setInterest(_ registration: Registration, _ interest: Interest) {
        let slot = Int(registration.slot)
        guard generations[slot] == registration.generation, interests[slot] != interest else { return }
        interests[slot] = interest
        let data = UInt64(registration.generation) << 32 | UInt64(registration.slot)
        let events = interest.epollEvents
        if postern_epoll_ctl(epollFD, Int32(POSTERN_EPOLL_CTL_MOD), registration.fd, events, data) != 0 {
            Socket.checkFatal(errno, "epoll_ctl(mod)")
        }
    }

    /// Removes a descriptor from the loop. Events already collected for it in
    /// this iteration are dropped. Does not close the descriptor.
    public func deregister(_ registration: Registration) {
        let slot = Int(registration.slot)
        guard generations[slot] == registration.generation else { return }
        _ = postern_epoll_ctl(epollFD, Int32(POSTERN_EPOLL_CTL_DEL), registration.fd, 0, 0)
        handlers[slot] = nil
        generations[slot] &+= 1
        freeSlots.append(registration.slot)
    }

    /// Number of registered descriptors (listeners and connections).
    public var registrationCount: Int { handlers.count - 1 - freeSlots.count }

    /// Runs `task` on the loop thread soon. Safe from any thread.
    public func execute(_ task: @escaping () -> Void) {
        pendingTasks.withLock { $0.append(task) }
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Runs `task` on the loop after `milliseconds`. Loop thread only.
    public func schedule(afterMilliseconds milliseconds: UInt64, _ task: @escaping () -> Void) {
        assertInLoop()
        timerSequence += 1
        timers.append((now + milliseconds, timerSequence, task))
    }

    /// Runs `work.runDeferredWork()` after the events of the current iteration
    /// (before the loop waits again). Loop thread only. The caller keeps a flag
    /// so that it defers at most once per iteration; deferring during the
    /// deferred phase runs in the same phase.
    @inline(__always)
    public func `defer`(_ work: any DeferredWork) {
        deferredWork.append(work)
    }

    private func runDeferredWork() {
        while !deferredWork.isEmpty {
            swap(&deferredWork, &runningDeferredWork)
            for work in runningDeferredWork { work.runDeferredWork() }
            runningDeferredWork.removeAll(keepingCapacity: true)
        }
    }

    /// Asks the loop to return from `run()`. Safe from any thread.
    public func stop() {
        execute { [unowned self] in self.stopRequested = true }
    }

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
        thread = pthread_self()
        running = true
        defer { running = false }
        let capacity = 256
        let events = UnsafeMutablePointer<postern_epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        lastTick = EventLoop.monotonicMilliseconds()
        while !stopRequested {
            let timeout = nextTimeout()
            let count = postern_epoll_wait(epollFD, events, CInt(capacity), timeout)
            now = EventLoop.monotonicMilliseconds()
            if count < 0 {
                let error = errno
                if error == EINTR { continue }
                preconditionFailure("\(name): epoll_wait failed with errno \(error)")
            }
            for index in 0..<Int(count) {
                let event = events[index]
                let slot = Int(event.data & 0xFFFF_FFFF)
                if slot == 0 {
                    drainWakeups()
                    continue
                }
                let generation = UInt32(truncatingIfNeeded: event.data >> 32)
                guard generations[slot] == generation, let handler = handlers[slot] else { continue }
                handler.handleReadiness(Readiness(rawValue: event.events))
            }
            runDeferredWork()
            runTasks()
            runTimers()
            runDeferredWork()
            if now &- lastTick >= EventLoop.tickMilliseconds {
                lastTick = now
                for slot in 1..<handlers.count {
                    handlers[slot]?.tick(now: now)
                }
                runDeferredWork()
            }
        }
    }

    private func nextTimeout() -> CInt {
        var wait = EventLoop.tickMilliseconds
        let current = EventLoop.monotonicMilliseconds()
        for timer in timers {
            wait = min(wait, timer.deadline > current ? timer.deadline - current : 0)
        }
        return CInt(wait)
    }

    private func drainWakeups() {
        var value: UInt64 = 0
        _ = Glibc.read(wakeFD, &value, 8)
    }

    private func runTasks() {
        let tasks = pendingTasks.withLock { tasks -> [() -> Void] in
            if tasks.isEmpty { return [] }
            let taken = tasks
            tasks.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks { task() }
    }

    private func runTimers() {
        guard !timers.isEmpty else { return }
        let due = timers.filter { $0.deadline <= now }.sorted { $0.sequence < $1.sequence }
        guard !due.isEmpty else { return }
        timers.removeAll { $0.deadline <= now }
        for timer in due { timer.task() }
    }
}
