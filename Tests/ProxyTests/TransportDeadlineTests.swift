import Glibc
import Reactor
import RouteModel
import TLS
import Telemetry
import Testing

@testable import Proxy

/// The transport owns the deadline: it stamps progress when bytes move and
/// says when the armed timeout passed; connections only arm the timeout of
/// their state. Over socketpair(2), on the harness's loop, with timeouts
/// short enough to wait for.
@Suite(.serialized) struct TransportDeadlineTests {
    /// A kind of timeout for the probe (a connection has its own enum).
    enum ProbeTimeout: UInt8, TransportTimeout {
        case waiting = 1
    }

    /// Arms `ProbeTimeout.waiting` for `milliseconds` on `probe`; returns the loop's clock then.
    private func arm(_ probe: TransportProbe, on harness: WorkerHarness, after milliseconds: UInt64, restartedBy clock: TimeoutClock) -> UInt64 {
        let loop = harness.worker.loop
        return harness.onLoop { () -> UInt64 in
            probe.socket.arm(ProbeTimeout.waiting, after: milliseconds, restartedBy: clock)
            return loop.now
        }
    }

    @Test func anArmedDeadlineExpiresAndProgressItCountsRestartsIt() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (probe, peer) = try TransportProbe.start(on: harness, tls: false)
        defer { close(peer) }
        let armedAt = arm(probe, on: harness, after: 1_000, restartedBy: .input)
        #expect(harness.onLoop { probe.socket.expired(now: armedAt + 999, as: ProbeTimeout.self) } == nil)
        #expect(harness.onLoop { probe.socket.expired(now: armedAt + 1_000, as: ProbeTimeout.self) } == .waiting)
        // Bytes read (a wake-up at least 20 ms later) restart the clock; bytes
        // written do not restart a wait for input.
        usleep(20_000)
        #expect([UInt8(ascii: "x")].withUnsafeBytes { BlockingSocket.writeAll(peer, $0) })
        #expect(harness.eventually { probe.received.count == 1 })
        harness.onLoop { probe.send([UInt8(ascii: "y")]) }
        #expect(harness.onLoop { probe.socket.expired(now: armedAt + 1_000, as: ProbeTimeout.self) } == nil)
        #expect(harness.onLoop { probe.socket.expired(now: armedAt + 60_000, as: ProbeTimeout.self) } == .waiting)
        // A budget for the whole phase ignores progress; disarmed, nothing expires.
        let rearmedAt = arm(probe, on: harness, after: 500, restartedBy: .armed)
        usleep(20_000)
        #expect([UInt8(ascii: "z")].withUnsafeBytes { BlockingSocket.writeAll(peer, $0) })
        #expect(harness.eventually { probe.received.count == 2 })
        #expect(harness.onLoop { probe.socket.expired(now: rearmedAt + 500, as: ProbeTimeout.self) } == .waiting)
        harness.onLoop { probe.socket.disarm() }
        #expect(harness.onLoop { probe.socket.expired(now: rearmedAt + 60_000, as: ProbeTimeout.self) } == nil)
    }

    @Test func outputStallsOnlyWhileNoBytesAreWritten() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (probe, peer) = try TransportProbe.start(on: harness, tls: false)
        defer { close(peer) }
        let armedAt = arm(probe, on: harness, after: 1_000, restartedBy: .output)
        #expect(harness.onLoop { probe.socket.outputStalled(for: 300, now: armedAt + 300) })
        usleep(20_000)
        harness.onLoop { probe.send(Array("bytes for the peer".utf8)) }
        #expect(!harness.onLoop { probe.socket.outputStalled(for: 300, now: armedAt + 300) })
        #expect(harness.onLoop { probe.socket.outputStalled(for: 300, now: armedAt + 60_000) })
        #expect(harness.onLoop { probe.socket.expired(now: armedAt + 1_000, as: ProbeTimeout.self) } == nil)
    }

    @Test func aStalledTLSHandshakeTimesOutAndIsCounted() throws {
        let harness = try WorkerHarness { $0.clientHeaderTimeoutMilliseconds = 400 }
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true))
        // Part of a ClientHello, then nothing.
        #expect(client.sendPartOfClientHello())
        #expect(harness.eventually { harness.worker.downstream.count == 1 })
        usleep(150_000)
        #expect(harness.onLoop { harness.worker.downstream.count } == 1)
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
        #expect(harness.worker.metrics.tlsHandshakeFailures.current == 1)
        // The server closed its end: the client reads the end of the stream.
        #expect(readPlain(client.serverFD) { _ in false }.isEmpty)
    }

    @Test func anIdleKeepAliveConnectionIsClosedAfterTheKeepAliveTimeout() throws {
        let harness = try WorkerHarness { $0.keepAliveTimeoutMilliseconds = 400 }
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        #expect(notFoundRequest.withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        #expect(String(decoding: readPlain(client, until: hasResponseHead), as: UTF8.self).hasPrefix("HTTP/1.1 404 "))
        usleep(150_000)
        #expect(harness.onLoop { harness.worker.downstream.count } == 1)
        // The server closes: the client reads the end of the stream.
        #expect(readPlain(client) { _ in false }.isEmpty)
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
    }

    @Test func aRequestHeadThatNeverEndsGets408() throws {
        let harness = try WorkerHarness { $0.clientHeaderTimeoutMilliseconds = 400 }
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        let partial = Array("GET /slow HTTP/1.1\r\nHost: harness.test\r\n".utf8)
        #expect(partial.withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        let response = String(decoding: readPlain(client, until: hasResponseHead), as: UTF8.self)
        #expect(response.hasPrefix("HTTP/1.1 408 "))
        #expect(harness.worker.metrics.downstreamErrors[DownstreamErrorKind.headerTimeout.rawValue].current == 1)
    }

    @Test func aPROXYHeaderThatNeverComesClosesTheConnection() throws {
        let harness = try WorkerHarness {
            $0.clientAddress.useProxyProtocol = true
            $0.clientAddress.proxyProtocolHeaderTimeoutMilliseconds = 400
        }
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        #expect(Array("PROXY TCP4 ".utf8).withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        #expect(readPlain(client) { _ in false }.isEmpty)
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
        #expect(harness.worker.metrics.downstreamErrors[DownstreamErrorKind.proxyProtocol.rawValue].current == 1)
    }

    @Test func anIdleHTTP2ConnectionSaysGoAwayAndCloses() throws {
        let harness = try WorkerHarness { $0.keepAliveTimeoutMilliseconds = 400 }
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        #expect(http2Preface.withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        let received = readPlain(client) { _ in false }
        #expect(hasSettingsAcknowledgement(received))
        #expect(hasFrame(ofType: 0x7, in: received), "no GOAWAY before the close")
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
    }
}

/// True when `bytes` (HTTP/2 frames from the server's first frame on) hold a frame of `type`.
func hasFrame(ofType type: UInt8, in bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset + 9 <= bytes.count {
        let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        if bytes[offset + 3] == type { return true }
        offset += 9 + length
    }
    return false
}

/// Drives an `HTTP1UpstreamConnection` without refreshing its deadline
/// itself: reads what arrives, and notes when the connection timed out.
/// Loop-bound.
private final class PatientOwner: UpstreamOwner {
    var received = 0
    var timedOut = false

    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt) {}

    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        guard !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) else { return }
        if case .bytes = connection.readResponse(headDone: true) {
            received += connection.readBuffer.readableBytes
            connection.readBuffer.clear()
        }
    }

    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) {
        timedOut = true
        connection.close()
    }
}

extension TransportDeadlineTests {
    @Test func anUpstreamThatKeepsSendingIsNotTimedOutAndOneThatStopsIs() throws {
        // proxy-read-timeout 1 s; the endpoint sends a byte every 100 ms for
        // 1.5 s: the transport's own stamps keep the deadline ahead (the
        // owner never re-arms it). Then the endpoint stops.
        let harness = try WorkerHarness { $0.upstreamReadTimeoutMilliseconds = 1_000 }
        defer { harness.stop() }
        let (upstreamFD, endpointFD) = upstreamSocketPair()
        defer { close(endpointFD) }
        let owner = PatientOwner()
        let worker = harness.worker
        harness.onLoop {
            let connection = HTTP1UpstreamConnection(
                fd: upstreamFD, endpoint: Endpoint(address: .v4(127, 0, 0, 1), port: 1), worker: worker, connecting: false,
                secure: nil, serverName: "")
            connection.owner = owner
            do { try connection.register(interest: .read) } catch { Issue.record("register: \(error)") }
            // The request is sent: the response is awaited under the read timeout.
            connection.refreshDeadline(requestPending: false, readPaused: false)
        }
        for _ in 0..<15 {
            usleep(100_000)
            #expect([UInt8(ascii: "b")].withUnsafeBytes { BlockingSocket.writeAll(endpointFD, $0) })
        }
        #expect(harness.eventually { owner.received == 15 })
        #expect(!harness.onLoop { owner.timedOut })
        #expect(harness.eventually { owner.timedOut })
    }
}
