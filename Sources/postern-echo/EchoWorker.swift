import Reactor
import Synchronization

/// Counters shared by all workers, read by `GET /stats`.
///
/// The connection ordinal is process-wide (one atomic increment per
/// connection); requests are counted per worker and summed on read, so the
/// per-request path touches no shared cache line.
final class EchoCounters: Sendable {
    /// Connections accepted so far, by all workers.
    let connections = Atomic<Int>(0)
    /// One request counter per worker.
    let requestsByWorker: [RequestCounter]

    init(workers: Int) {
        requestsByWorker = (0..<workers).map { _ in RequestCounter() }
    }

    /// Requests served by all workers.
    var totalRequests: Int {
        requestsByWorker.reduce(0) { $0 + $1.value.load(ordering: .relaxed) }
    }
}

/// Requests served by one worker; written only by that worker.
final class RequestCounter: Sendable {
    let value = Atomic<Int>(0)
}

/// The bytes `/bytes/N` and `/chunked/N` send: `abc…z` repeated, allocated once
/// per worker. Holds 64 KiB plus one period so that a slice of up to 64 KiB can
/// start at any phase of the pattern.
final class PatternBlock {
    /// Largest slice handed out at once.
    static let sliceBytes = 64 * 1024
    static let period = 26
    let storage: UnsafeMutableRawBufferPointer

    init() {
        storage = UnsafeMutableRawBufferPointer.allocate(
            byteCount: PatternBlock.sliceBytes + PatternBlock.period, alignment: 16)
        for index in 0..<storage.count {
            storage[index] = UInt8(ascii: "a") &+ UInt8(index % PatternBlock.period)
        }
    }

    deinit { storage.deallocate() }

    /// `count` (at most `sliceBytes`) pattern bytes starting at pattern offset `phase`.
    @inline(__always)
    func slice(phase: Int, count: Int) -> UnsafeRawBufferPointer {
        precondition(count <= PatternBlock.sliceBytes && phase < PatternBlock.period, "pattern slice out of range")
        return UnsafeRawBufferPointer(rebasing: storage[phase..<(phase + count)])
    }
}

/// One event loop with its own listener: accepts connections and owns them.
final class EchoWorker: EventHandler {
    let loop: EventLoop
    let listenFD: CInt
    let serverName: String
    let counters: EchoCounters
    let requests: RequestCounter
    let pattern = PatternBlock()
    var registration: Registration?

    init(index: Int, listenFD: CInt, serverName: String, counters: EchoCounters) throws {
        self.loop = try EventLoop(name: "echo-\(index)")
        self.listenFD = listenFD
        self.serverName = serverName
        self.counters = counters
        self.requests = counters.requestsByWorker[index]
    }

    /// Registers the listener and runs the loop on the calling thread, forever.
    func run() {
        do {
            registration = try loop.register(fd: listenFD, interest: .read, handler: self)
        } catch {
            preconditionFailure("echo: cannot register listener: \(error)")
        }
        loop.run()
    }

    func handleReadiness(_ readiness: Readiness) {
        // Bounded so one busy listener cannot starve established connections.
        for _ in 0..<64 {
            switch Socket.accept(listenFD) {
            case .accepted(let fd, _):
                Socket.setNoDelay(fd)
                let ordinal = counters.connections.add(1, ordering: .relaxed).newValue
                let connection = EchoConnection(fd: fd, worker: self, ordinal: ordinal)
                if let registration = try? loop.register(fd: fd, interest: .read, handler: connection) {
                    connection.registration = registration
                } else {
                    Socket.close(fd)
                }
            case .wouldBlock, .failed:
                return
            }
        }
    }

    func tick(now: UInt64) {}
}
