import Glibc
import Reactor
import TLS
import Testing

@testable import Proxy

/// The smallest owner of a `TransportSocket`, driven by the harness's loop
/// as a connection drives its own: it reads whatever arrives into
/// `received`, writes what `send` queues, asks epoll for what the transport
/// says it needs, and counts its wake-ups (a transport that makes its owner
/// spin shows up there). Loop-bound.
final class TransportProbe: EventHandler {
    var socket: TransportSocket
    let loop: EventLoop
    var received: [UInt8] = []
    /// `handleReadiness` calls so far.
    var wakeUps = 0
    var handshakeDone = false
    var ended = false

    init(socket: consuming TransportSocket, loop: EventLoop) {
        self.socket = socket
        self.loop = loop
    }

    /// A probe on one end of a new socketpair, registered on `harness`'s
    /// loop: a server TLS session with the harness's certificates when
    /// `tls`, else plain. Returns the probe and the other end (blocking,
    /// 5 s timeouts). `sendBufferBytes` shrinks the probe's send buffer.
    static func start(on harness: WorkerHarness, tls: Bool, sendBufferBytes: CInt? = nil) throws -> (TransportProbe, CInt) {
        var pair: [CInt] = [0, 0]
        precondition(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let (probeFD, peerFD) = (pair[0], pair[1])
        _ = fcntl(probeFD, F_SETFL, fcntl(probeFD, F_GETFL) | O_NONBLOCK)
        BlockingSocket.setTimeouts(peerFD, receiveMilliseconds: 5_000, sendMilliseconds: 5_000)
        if var size = sendBufferBytes {
            _ = setsockopt(probeFD, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        let worker = harness.worker
        let probe = harness.onLoop { () -> TransportProbe? in
            let socket: TransportSocket
            if tls {
                guard let secure = TransportSocket(
                    acceptedTLS: probeFD, secure: worker.secure, loop: worker.loop, readPool: worker.bufferPool,
                    writePool: worker.bufferPool)
                else { return nil }
                socket = secure
            } else {
                socket = TransportSocket(plain: probeFD, loop: worker.loop, readPool: worker.bufferPool, writePool: worker.bufferPool)
            }
            let probe = TransportProbe(socket: socket, loop: worker.loop)
            probe.handshakeDone = !tls
            do { try probe.socket.register(on: worker.loop, interest: .read, handler: probe) } catch { return nil }
            return probe
        }
        guard let probe else { throw ProbeError() }
        return (probe, peerFD)
    }

    struct ProbeError: Error {}

    func handleReadiness(_ event: Readiness) {
        wakeUps += 1
        if ended { return }
        guard handshakeDone else {
            switch socket.handshake() {
            case .complete:
                handshakeDone = true
                // As an HTTP/1.1 connection: a record at a time from here on.
                socket.settleForHTTP1()
                readAll()
            case .waiting:
                break
            case .failed:
                ended = true
                return
            }
            updateInterest()
            return
        }
        let readiness = socket.translate(event)
        if readiness.contains(.writable) { flush() }
        if !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) { readAll() }
        updateInterest()
    }

    func tick(now: UInt64) {}

    /// Reads until the transport has nothing more now.
    func readAll() {
        repeat {
            switch socket.read() {
            case .bytes:
                received += socket.readBuffer.readable
                socket.readBuffer.clear()
            case .wouldBlock:
                return
            case .endOfFile, .failed:
                ended = true
                socket.close(loop: loop, notify: false)
                return
            }
        } while socket.hasUnannouncedInput
    }

    /// Queues `bytes` and writes what the socket takes now.
    func send(_ bytes: [UInt8]) {
        socket.writeBuffer.append(bytes)
        flush()
        updateInterest()
    }

    /// Writes what the socket takes; a broken stream ends the probe, as it
    /// ends a connection.
    private func flush() {
        while !socket.writeBuffer.isEmpty, !ended {
            switch socket.write() {
            case .bytes:
                continue
            case .wouldBlock, .endOfFile:
                return
            case .failed:
                ended = true
                socket.close(loop: loop, notify: false)
            }
        }
    }

    /// Reading always (the probe has room), writing while bytes wait; the
    /// transport adds what TLS needs.
    func updateInterest() {
        if ended { return }
        var wanted: Interest = .read
        if !socket.writeBuffer.isEmpty { wanted.insert(.write) }
        socket.setInterest(socket.interest(for: wanted), on: loop)
    }
}

/// Fills `fd`'s send buffer with filler bytes until the socket takes no
/// more (non-blocking `fd`); returns how many it took.
func fillSendBuffer(_ fd: CInt) -> Int {
    var total = 0
    let chunk = [UInt8](repeating: 0x5A, count: 4096)
    for size in [4096, 512, 64, 1] {
        while true {
            let sent = chunk.withUnsafeBytes { send(fd, $0.baseAddress, size, CInt(MSG_DONTWAIT)) }
            if sent <= 0 { break }
            total += sent
        }
    }
    return total
}

/// Reads and drops exactly `count` bytes from the blocking `fd`.
func discard(_ count: Int, from fd: CInt) -> Bool {
    var left = count
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while left > 0 {
        let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min(left, $0.count), 0) }
        if got <= 0 { return false }
        left -= got
    }
    return true
}
