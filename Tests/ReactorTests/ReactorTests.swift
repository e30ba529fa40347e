import Foundation
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
