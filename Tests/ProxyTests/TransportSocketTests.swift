import Glibc
import Reactor
import RouteModel
import TLS
import Testing

@testable import Proxy

/// The connection types over socketpair(2), plain and TLS: what a client
/// notices of the transport (its TLS, the input OpenSSL holds that epoll
/// never announces, the buffers given back while idle).
@Suite(.serialized) struct TransportSocketTests {
    @Test func aPlainRequestGetsItsResponse() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        #expect(notFoundRequest.withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        let response = readPlain(client, until: hasResponseHead)
        #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 404 "))
    }

    @Test func aTLSRequestSplitOverManyRecordsGetsItsResponse() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true))
        #expect(client.handshakeKeepingLastFlight())
        client.sendToServer(client.takeClientBytes())
        // One record per byte: the server's reads each find one record.
        client.write(notFoundRequest, recordSize: 1)
        client.sendToServer(client.takeClientBytes())
        let response = client.read(until: hasResponseHead)
        #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 404 "))
    }

    @Test func aTLSRequestThatArrivesWithTheHandshakeIsAnswered() throws {
        // The client's Finished and its request reach the server in one
        // write: the handshake's read takes both, and the request stays
        // inside OpenSSL where epoll cannot see it.
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true))
        #expect(client.handshakeKeepingLastFlight())
        client.write(notFoundRequest, recordSize: 16)
        client.sendToServer(client.takeClientBytes())
        let response = client.read(until: hasResponseHead)
        #expect(String(decoding: response, as: UTF8.self).hasPrefix("HTTP/1.1 404 "))
    }

    @Test func http2FramesThatArriveWithTheHandshakeAreRead() throws {
        // ALPN h2: the connection becomes an HTTP2ClientConnection, which must
        // read the preface and SETTINGS held inside OpenSSL to acknowledge them.
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true), alpn: ["h2"])
        #expect(client.handshakeKeepingLastFlight())
        client.write(http2Preface)
        client.sendToServer(client.takeClientBytes())
        #expect(hasSettingsAcknowledgement(client.read(until: hasSettingsAcknowledgement)))
    }

    @Test func anHTTP2ClientWhoseCloseNotifyFollowsItsFramesIsClosed() throws {
        // The frames and close_notify arrive in one segment: the read that
        // takes the frames meets the end behind them, and no event follows.
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true), alpn: ["h2"])
        #expect(client.handshakeKeepingLastFlight())
        client.sendToServer(client.takeClientBytes())
        #expect(client.relayFromServer())
        #expect(harness.eventually { harness.worker.downstream.count == 1 })
        client.write(http2Preface)
        client.tls.shutdown()
        client.sendToServer(client.takeClientBytes())
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
    }

    @Test func cleartextHTTP2WithPriorKnowledgeIsAcknowledged() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = harness.connect(tls: false)
        defer { close(client) }
        #expect(http2Preface.withUnsafeBytes { BlockingSocket.writeAll(client, $0) })
        #expect(hasSettingsAcknowledgement(readPlain(client, until: hasSettingsAcknowledgement)))
    }

    @Test func aClientThatClosesMidHandshakeIsClosedAndCounted() throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let client = try RelayedTLSClient(serverFD: harness.connect(tls: true))
        // Part of a ClientHello, then the end of the stream.
        #expect(client.sendPartOfClientHello())
        shutdown(client.serverFD, CInt(SHUT_WR))
        // The server closes its end: the client reads the end of the stream.
        _ = readPlain(client.serverFD) { _ in false }
        #expect(harness.eventually { harness.worker.downstream.isEmpty })
        #expect(harness.worker.metrics.tlsHandshakeFailures.current == 1)
    }

    @Test(arguments: [false, true])
    func anIdleConnectionGivesItsBuffersBackAndServesTheNextRequest(tls: Bool) throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let plain = tls ? -1 : harness.connect(tls: false)
        let client = tls ? try RelayedTLSClient(serverFD: harness.connect(tls: true)) : nil
        defer { if plain >= 0 { close(plain) } }
        func exchange() -> String {
            if let client {
                client.write(notFoundRequest)
                client.sendToServer(client.takeClientBytes())
                return String(decoding: client.read(until: hasResponseHead), as: UTF8.self)
            }
            _ = notFoundRequest.withUnsafeBytes { BlockingSocket.writeAll(plain, $0) }
            return String(decoding: readPlain(plain, until: hasResponseHead), as: UTF8.self)
        }
        if let client {
            #expect(client.handshakeKeepingLastFlight())
            client.sendToServer(client.takeClientBytes())
        }
        #expect(exchange().hasPrefix("HTTP/1.1 404 "))
        // Waiting for the next request, the connection holds no chunk of the
        // worker's pool (200 ms after its response, counted by the loop's tick).
        #expect(harness.eventually { harness.worker.bufferPool.outstanding == 0 })
        #expect(harness.onLoop { harness.worker.downstream.count } == 1)
        #expect(exchange().hasPrefix("HTTP/1.1 404 "))
    }
}

/// Drives an `HTTP1UpstreamConnection` as a client connection or HTTP/2 stream
/// would: sends one request once connected, collects the response bytes.
/// Loop-bound (called by the connection on the harness's loop).
private final class RecordingOwner: UpstreamOwner {
    var connectError: CInt?
    var received: [UInt8] = []
    var ended = false
    let request: [UInt8]

    init(request: [UInt8]) { self.request = request }

    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt) {
        connectError = error
        guard error == 0 else { return }
        connection.writeBuffer.append(request)
        _ = connection.transportWrite()
        connection.updateInterest(readPaused: false)
    }

    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        if readiness.contains(.writable), !connection.writeBuffer.isEmpty { _ = connection.transportWrite() }
        guard !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) else { return }
        // Read as the response path does, handing the bytes on at once; a
        // full buffer leaves the rest to a read without an event.
        repeat {
            switch connection.readResponse(headDone: true) {
            case .bytes:
                received += connection.readBuffer.readable
                connection.readBuffer.consume(connection.readBuffer.readableBytes)
            case .endOfFile, .failed:
                ended = true
                connection.close()
                return
            case .wouldBlock, .pause, .headTooLarge:
                return
            }
        } while connection.hasUnannouncedInput
        connection.updateInterest(readPaused: false)
    }

    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) {
        connection.close()
    }
}

extension TransportSocketTests {
    @Test(arguments: [false, true])
    func anUpstreamResponseInManyRecordsArrivesWhole(tls: Bool) throws {
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (upstreamFD, endpointFD) = upstreamSocketPair()
        defer { close(endpointFD) }
        _ = fcntl(endpointFD, F_SETFL, fcntl(endpointFD, F_GETFL) | O_NONBLOCK)
        let request = Array("GET /big HTTP/1.1\r\nHost: endpoint.test\r\n\r\n".utf8)
        let owner = RecordingOwner(request: request)
        let worker = harness.worker
        harness.onLoop {
            let secure: UpstreamTLSContext? =
                tls ? worker.upstreams.tlsContext(for: UpstreamTLS(serverName: "", verify: false, certificateAuthoritiesPEM: nil)) : nil
            let connection = HTTP1UpstreamConnection(
                fd: upstreamFD, endpoint: Endpoint(address: .v4(127, 0, 0, 1), port: 1), worker: worker, connecting: true,
                secure: secure, serverName: "")
            connection.owner = owner
            do { try connection.register(interest: .write) } catch { Issue.record("register: \(error)") }
        }
        // The endpoint: TLS with the harness's certificate, or plain.
        let store = try #require(harness.onLoop { worker.secure?.certificates })
        let session = tls ? try TLSConnection(fd: endpointFD, store: store) : nil
        var handshakeDone = !tls
        for _ in 0..<200 where !handshakeDone {
            switch session!.handshake() {
            case .bytes: handshakeDone = true
            case .wantRead, .wantWrite: _ = BlockingSocket.waitFor(endpointFD, events: Int16(POLLIN), timeoutMilliseconds: 50)
            case .closed, .failed: Issue.record("the endpoint's handshake failed")
            }
        }
        #expect(handshakeDone)
        // The request arrives.
        var seen: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<200 where !hasResponseHead(seen) {
            _ = BlockingSocket.waitFor(endpointFD, events: Int16(POLLIN), timeoutMilliseconds: 50)
            let count: Int
            if let session {
                guard case let .bytes(n) = chunk.withUnsafeMutableBytes({ session.read(into: $0) }) else { continue }
                count = n
            } else {
                count = chunk.withUnsafeMutableBytes { recv(endpointFD, $0.baseAddress, $0.count, 0) }
            }
            if count > 0 { seen += chunk[0..<count] }
        }
        #expect(seen == request)
        // A response of 100 KiB in records of 10,000 bytes, read through the
        // transport's client side (its handshake, its record reads).
        let body = (0..<(100 * 1024)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        let response = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        var offset = 0
        for _ in 0..<2_000 where offset < response.count {
            let end = min(response.count, offset + 10_000)
            let written: Int
            if let session {
                guard case let .bytes(n) = response[offset..<end].withUnsafeBytes({ session.write($0) }) else {
                    _ = BlockingSocket.waitFor(endpointFD, events: Int16(POLLOUT), timeoutMilliseconds: 50)
                    continue
                }
                written = n
            } else {
                written = response[offset..<end].withUnsafeBytes { send(endpointFD, $0.baseAddress, $0.count, 0) }
                if written <= 0 {
                    _ = BlockingSocket.waitFor(endpointFD, events: Int16(POLLOUT), timeoutMilliseconds: 50)
                    continue
                }
            }
            offset += written
        }
        #expect(offset == response.count)
        #expect(harness.eventually { owner.received.count >= response.count })
        #expect(harness.onLoop { owner.connectError } == 0)
        #expect(harness.onLoop { owner.received == response })
    }
}

/// An owner whose client does not read for a while: it keeps what the
/// upstream sent until the read buffer is full, pauses, and takes it all
/// when `resume` says the client drained. Loop-bound.
private final class PausingOwner: UpstreamOwner {
    var received: [UInt8] = []
    var paused = false
    var draining = false
    let request: [UInt8]

    init(request: [UInt8]) { self.request = request }

    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt) {
        guard error == 0 else { return }
        connection.writeBuffer.append(request)
        _ = connection.transportWrite()
        connection.updateInterest(readPaused: false)
    }

    func upstreamReady(_ connection: HTTP1UpstreamConnection, _ readiness: Readiness) {
        if readiness.contains(.writable), !connection.writeBuffer.isEmpty { _ = connection.transportWrite() }
        guard !paused, !readiness.isDisjoint(with: [.readable, .hangup, .error, .readHangup]) else { return }
        switch connection.readResponse(headDone: true) {
        case .bytes:
            if draining { takeAll(connection) }
            connection.updateInterest(readPaused: false)
        case .pause:
            paused = true
            connection.updateInterest(readPaused: true)
        case .endOfFile, .failed:
            connection.close()
        case .wouldBlock, .headTooLarge:
            break
        }
    }

    func upstreamTimedOut(_ connection: HTTP1UpstreamConnection) { connection.close() }

    /// The client took what was queued: hand everything on, read again.
    func resume(_ connection: HTTP1UpstreamConnection) {
        takeAll(connection)
        paused = false
        draining = true
        connection.updateInterest(readPaused: false)
    }

    private func takeAll(_ connection: HTTP1UpstreamConnection) {
        received += connection.readBuffer.readable
        connection.readBuffer.consume(connection.readBuffer.readableBytes)
    }
}

extension TransportSocketTests {
    @Test(arguments: [false, true])
    func anUpstreamResponseHeldWhileTheClientDoesNotReadArrivesWhole(tls: Bool) throws {
        // Three records of 14,000 bytes: the 32 KiB read buffer fills inside
        // the last one, so with TLS its rest waits inside OpenSSL while the
        // socket is empty: no event announces it, neither before the owner
        // pauses nor after its client drained.
        let harness = try WorkerHarness()
        defer { harness.stop() }
        let (upstreamFD, endpointFD) = upstreamSocketPair()
        defer { close(endpointFD) }
        let request = Array("GET /slow HTTP/1.1\r\nHost: endpoint.test\r\n\r\n".utf8)
        let owner = PausingOwner(request: request)
        let worker = harness.worker
        let connection = harness.onLoop { () -> HTTP1UpstreamConnection in
            let secure: UpstreamTLSContext? =
                tls ? worker.upstreams.tlsContext(for: UpstreamTLS(serverName: "", verify: false, certificateAuthoritiesPEM: nil)) : nil
            let connection = HTTP1UpstreamConnection(
                fd: upstreamFD, endpoint: Endpoint(address: .v4(127, 0, 0, 1), port: 1), worker: worker, connecting: true,
                secure: secure, serverName: "")
            connection.owner = owner
            do { try connection.register(interest: .write) } catch { Issue.record("register: \(error)") }
            return connection
        }
        // The endpoint, blocking: TLS with the harness's certificate, or plain.
        BlockingSocket.setTimeouts(endpointFD, receiveMilliseconds: 5_000, sendMilliseconds: 5_000)
        let store = try #require(harness.onLoop { worker.secure?.certificates })
        let session = tls ? try TLSConnection(fd: endpointFD, store: store) : nil
        if let session { #expect(session.handshake() == .bytes(0)) }
        var seen: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !hasResponseHead(seen) {
            let count: Int
            if let session {
                guard case let .bytes(n) = chunk.withUnsafeMutableBytes({ session.read(into: $0) }) else { break }
                count = n
            } else {
                count = chunk.withUnsafeMutableBytes { recv(endpointFD, $0.baseAddress, $0.count, 0) }
            }
            if count <= 0 { break }
            seen += chunk[0..<count]
        }
        #expect(seen == request)
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: 41950\r\n\r\n".utf8)
        let response = head + (0..<(42_000 - head.count)).map { UInt8(truncatingIfNeeded: $0 % 251) }
        for start in stride(from: 0, to: response.count, by: 14_000) {
            let record = Array(response[start..<min(response.count, start + 14_000)])
            if let session {
                #expect(record.withUnsafeBytes { session.write($0) } == .bytes(record.count))
            } else {
                #expect(record.withUnsafeBytes { BlockingSocket.writeAll(endpointFD, $0) })
            }
        }
        #expect(harness.eventually { owner.paused })
        harness.onLoop { owner.resume(connection) }
        #expect(harness.eventually(attempts: 300) { owner.received.count >= response.count })
        #expect(harness.onLoop { owner.received == response })
    }
}
