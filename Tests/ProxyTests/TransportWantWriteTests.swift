import Glibc
import Reactor
import TLS
import Testing

@testable import Proxy

/// OpenSSL's want-read/want-write, driven for real over socketpair(2): a
/// read that must write first (a TLS 1.3 KeyUpdate answered into a full
/// socket) and writes that block half-way, TLS and plain. The transport
/// must wait for the readiness it needs (no spinning, no stall) and lose
/// or reorder no byte.
@Suite(.serialized) struct TransportWantWriteTests {
    @Test func aReadThatMustFinishAKeyUpdateWaitsForWritabilityWithoutSpinning() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (probe, peer) = try TransportProbe.start(on: harness, tls: true, sendBufferBytes: 4096)
        let client = try RelayedTLSClient(serverFD: peer)
        #expect(client.handshakeKeepingLastFlight())
        client.sendToServer(client.takeClientBytes())
        #expect(harness.eventually { probe.handshakeDone })
        #expect(client.tls.protocolVersion == "TLSv1.3")
        // What the server wrote with its handshake (session tickets) goes to
        // the client now: from here on, the server's socket holds only filler.
        client.relayFromServer(waitingMilliseconds: 500)
        let probeFD = harness.onLoop { probe.socket.fd }
        let filler = fillSendBuffer(probeFD)
        #expect(filler > 0)

        // The client asks the server to update its keys too (RFC 8446
        // §4.6.3), and sends data under its own new keys. OpenSSL answers
        // with the server's next write.
        #expect(client.tls.requestKeyUpdate())
        let first = (0..<3_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        client.write(first)
        client.sendToServer(client.takeClientBytes())
        #expect(harness.eventually { probe.received.count >= first.count })
        // The server replies: its KeyUpdate goes first and meets the full
        // socket, so the reply waits.
        let reply = Array("the server's reply, after its key update".utf8)
        harness.onLoop { probe.send(reply) }
        #expect(harness.onLoop { probe.socket.writeBuffer.readableBytes } == reply.count)
        // More data from the client: reading it must first finish writing the
        // KeyUpdate (OpenSSL says want-write from the read). The transport
        // waits for writability; the record stays in the socket, and the
        // owner must not be woken for it again and again.
        let second = (0..<2_000).map { UInt8(truncatingIfNeeded: $0 &* 11 &+ 1) }
        client.write(second)
        client.sendToServer(client.takeClientBytes())
        let before = harness.onLoop { probe.wakeUps }
        usleep(300_000)
        let state = harness.onLoop { (probe.wakeUps, probe.received.count, probe.socket.interest) }
        #expect(state.1 == first.count, "the second message was read before the KeyUpdate left")
        #expect(state.2.contains(.write))
        #expect(state.0 - before < 10, "the owner woke \(state.0 - before) times in 300 ms while the socket was full")

        // The peer reads the filler: the KeyUpdate and the reply leave, and
        // the second message arrives, byte for byte.
        #expect(discard(filler, from: peer))
        #expect(harness.eventually { probe.received.count >= first.count + second.count })
        #expect(harness.onLoop { probe.received } == first + second)
        #expect(client.read { $0.count >= reply.count } == reply)
        // Both directions go on under the new keys.
        let third = Array("and more from the client".utf8)
        client.write(third)
        client.sendToServer(client.takeClientBytes())
        #expect(harness.eventually { probe.received.count >= first.count + second.count + third.count })
        #expect(harness.onLoop { Array(probe.received.suffix(third.count)) } == third)
        let last = Array("and from the server".utf8)
        harness.onLoop { probe.send(last) }
        #expect(client.read { $0.count >= last.count } == last)
    }

    @Test(arguments: [true, false])
    func aLargeWriteThatBlocksHalfWayArrivesWholeAndInOrder(tls: Bool) throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (probe, peer) = try TransportProbe.start(on: harness, tls: tls, sendBufferBytes: 4096)
        defer { close(peer) }
        // The peer: a blocking TLS client on its end (5 s timeouts), or plain reads.
        let session = tls ? try TLSConnection(fd: peer, client: TLSClientContext(verify: false, certificateAuthoritiesPEM: nil), serverName: "") : nil
        if let session {
            #expect(session.handshake() == .bytes(0))
            #expect(harness.eventually { probe.handshakeDone })
        }
        let body = (0..<(512 * 1024)).map { UInt8(truncatingIfNeeded: $0 % 253) }
        harness.onLoop { probe.send(body) }
        // The socket took what fits: the rest waits in the transport, which
        // asks for writability.
        let waiting = harness.onLoop { (probe.socket.writeBuffer.readableBytes, probe.socket.interest) }
        #expect(waiting.0 > 0)
        if !tls { #expect(waiting.0 < body.count) }
        #expect(waiting.1.contains(.write))
        // The peer reads at its pace: every byte arrives, in order.
        var received: [UInt8] = []
        if let session {
            var chunk = [UInt8](repeating: 0, count: 16_384)
            while received.count < body.count {
                guard case let .bytes(count) = chunk.withUnsafeMutableBytes({ session.read(into: $0) }) else { break }
                received += chunk[0..<count]
            }
        } else {
            received = readPlain(peer) { $0.count >= body.count }
        }
        #expect(received.count == body.count)
        #expect(received == body)
        #expect(harness.eventually { probe.socket.writeBuffer.isEmpty && !probe.socket.interest.contains(.write) })
    }
}
