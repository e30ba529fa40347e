import Foundation
import Glibc
import Reactor
import Synchronization
import Testing

@Suite struct ByteBufferTests {
    @Test func consumingEverythingResetsToTheStart() {
        let buffer = ByteBuffer(capacity: 8)
        buffer.append(Array("abcdef".utf8))
        buffer.consume(6)
        #expect(buffer.isEmpty)
        #expect(buffer.readerIndex == 0 && buffer.writerIndex == 0)
    }

    @Test func reserveCompactsBeforeGrowingAndKeepsUnreadBytes() {
        let buffer = ByteBuffer(capacity: 8)
        buffer.append(Array("abcdefgh".utf8))
        buffer.consume(5)
        buffer.reserveWritable(4)
        #expect(buffer.capacity == 8)
        #expect(Array(buffer.readable) == Array("fgh".utf8))
        buffer.reserveWritable(20)
        #expect(buffer.capacity >= 23)
        #expect(Array(buffer.readable) == Array("fgh".utf8))
    }
}

@Suite struct SocketAddressTests {
    @Test func parsesIPv4IPv6AndEmptyHost() throws {
        let v4 = try #require(SocketAddress(parsing: "127.0.0.1:8080"))
        #expect(v4.port == 8080 && v4.family == .v4 && v4.description == "127.0.0.1:8080")
        let v6 = try #require(SocketAddress(parsing: "[::1]:443"))
        #expect(v6.family == .v6 && v6.description == "[::1]:443")
        #expect(SocketAddress(parsing: ":80")?.description == "0.0.0.0:80")
    }

    @Test func rejectsNamesAndBadPorts() {
        #expect(SocketAddress(parsing: "example.com:80") == nil)
        #expect(SocketAddress(parsing: "127.0.0.1:99999") == nil)
        #expect(SocketAddress(parsing: "127.0.0.1") == nil)
    }
}

@Suite struct EventLoopTests {
    /// Runs a loop on its own thread for the duration of `body`.
    func withRunningLoop(_ body: (EventLoop) throws -> Void) throws {
        let loop = try EventLoop(name: "test")
        let thread = try WorkerThread.start(name: "test-loop") { loop.run() }
        defer {
            loop.stop()
            WorkerThread.join(thread)
        }
        try body(loop)
    }

    @Test func tasksPostedFromAnotherThreadRunOnTheLoopInOrder() throws {
        try withRunningLoop { loop in
            let seen = Mutex<[Int]>([])
            let done = DispatchSemaphore(value: 0)
            for index in 0..<100 {
                loop.execute {
                    precondition(loop.inLoop)
                    seen.withLock { $0.append(index) }
                    if index == 99 { done.signal() }
                }
            }
            #expect(done.wait(timeout: .now() + 5) == .success)
            #expect(seen.withLock { $0 } == Array(0..<100))
        }
    }

    @Test func scheduledTimersFireAfterTheirDelay() throws {
        try withRunningLoop { loop in
            let fired = DispatchSemaphore(value: 0)
            let elapsed = Mutex<UInt64>(0)
            loop.execute {
                let start = loop.now
                loop.schedule(afterMilliseconds: 150) {
                    elapsed.withLock { $0 = loop.now - start }
                    fired.signal()
                }
            }
            #expect(fired.wait(timeout: .now() + 5) == .success)
            #expect(elapsed.withLock { $0 } >= 150)
        }
    }

    /// A handler that records readability of a socket pair end.
    final class Recorder: EventHandler {
        let readable = DispatchSemaphore(value: 0)
        var ticks = 0
        func handleReadiness(_ readiness: Readiness) {
            if readiness.contains(.readable) { readable.signal() }
        }
        func tick(now: UInt64) { ticks += 1 }
    }

    /// Reads one byte when readable and defers one shared flush per iteration,
    /// the way a connection defers its output.
    final class PipeReader: EventHandler {
        let fd: CInt
        let name: String
        let flusher: Flusher
        unowned let loop: EventLoop
        init(fd: CInt, name: String, flusher: Flusher, loop: EventLoop) {
            self.fd = fd
            self.name = name
            self.flusher = flusher
            self.loop = loop
        }
        func handleReadiness(_ readiness: Readiness) {
            var byte: UInt8 = 0
            guard Glibc.read(fd, &byte, 1) == 1 else { return }
            flusher.log.withLock { $0.append(name) }
            flusher.request(on: loop)
        }
        func tick(now: UInt64) {}
    }

    final class Flusher: DeferredWork {
        let log = Mutex<[String]>([])
        let done = DispatchSemaphore(value: 0)
        var requested = false
        func request(on loop: EventLoop) {
            guard !requested else { return }
            requested = true
            loop.defer(self)
        }
        func runDeferredWork() {
            requested = false
            log.withLock { $0.append("flush") }
            done.signal()
        }
    }

    @Test func deferredWorkRunsOnceAfterAllEventsOfTheIteration() throws {
        try withRunningLoop { loop in
            let flusher = Flusher()
            var pipes: [[CInt]] = []
            var readers: [PipeReader] = []
            for name in ["a", "b", "c"] {
                var ends: [CInt] = [0, 0]
                #expect(pipe(&ends) == 0)
                // Written before registration: all three are readable in the loop's next wait.
                var byte: UInt8 = 1
                #expect(Glibc.write(ends[1], &byte, 1) == 1)
                pipes.append(ends)
                readers.append(PipeReader(fd: ends[0], name: name, flusher: flusher, loop: loop))
            }
            defer { for ends in pipes { Glibc.close(ends[0]); Glibc.close(ends[1]) } }
            loop.execute {
                for reader in readers { _ = try? loop.register(fd: reader.fd, interest: .read, handler: reader) }
            }
            #expect(flusher.done.wait(timeout: .now() + 5) == .success)
            usleep(50_000)
            let log = flusher.log.withLock { $0 }
            #expect(log.count == 4, "\(log)")
            #expect(Set(log.prefix(3)) == ["a", "b", "c"], "\(log)")
            #expect(log.last == "flush", "\(log)")
        }
    }

    @Test func reportsReadabilityOfARegisteredListener() throws {
        try withRunningLoop { loop in
            let listenFD = try Socket.listen(at: #require(SocketAddress(parsing: "127.0.0.1:0")), reusePort: false)
            let port = try #require(Socket.localAddress(listenFD)).port
            let recorder = Recorder()
            let registered = DispatchSemaphore(value: 0)
            loop.execute {
                _ = try? loop.register(fd: listenFD, interest: .read, handler: recorder)
                registered.signal()
            }
            #expect(registered.wait(timeout: .now() + 5) == .success)
            let (client, _) = Socket.connect(to: try #require(SocketAddress(parsing: "127.0.0.1:\(port)")))
            defer { Socket.close(client) }
            #expect(recorder.readable.wait(timeout: .now() + 5) == .success)
        }
    }
}

@Suite struct DescriptorLimitTests {
    @Test func keepsAnEighthOfTheLimitBetweenEightAndSixtyFour() {
        #expect(DescriptorLimit.reserve(forLimit: 256) == 32)
        #expect(DescriptorLimit.ceiling(forLimit: 256) == 224)
        #expect(DescriptorLimit.reserve(forLimit: 32) == 8)
        #expect(DescriptorLimit.reserve(forLimit: 1_048_576) == 64)
        #expect(DescriptorLimit.ceiling(forLimit: nil) == .max)
    }

    @Test func readsTheProcessLimitAndNamesExhaustion() {
        if let limit = DescriptorLimit.current() { #expect(limit > 0) }
        #expect(DescriptorLimit.isExhaustion(EMFILE) && DescriptorLimit.isExhaustion(ENFILE))
        #expect(!DescriptorLimit.isExhaustion(ECONNABORTED))
        #expect(DescriptorLimit.name(EMFILE) == "EMFILE")
    }
}
