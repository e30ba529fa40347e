import HTTP1
import Reactor

private let webSocketToken: [UInt8] = Array("websocket".utf8)

/// WebSocket: an HTTP/1.1 `Upgrade: websocket` request is forwarded with
/// its Upgrade/Connection pair; after the upstream's `101` both connections
/// become a byte tunnel with backpressure both ways, closed when either side
/// closes or after `proxy-read-timeout` without traffic. The tunnel never
/// consults the routing table again, so configuration changes leave it open.
extension HTTP1ClientConnection {
    /// True for `GET` with `Connection: upgrade` and `Upgrade: websocket`.
    func isWebSocketUpgrade(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let upgrade = head.upgrade, head.framing == .none, head.version == .http11 else { return false }
        let method = bytes[head.method]
        guard method.count == 3, method.elementsEqual("GET".utf8) else { return false }
        return equalIgnoringCase(webSocketToken, bytes[upgrade])
    }

    /// The upstream answered 101: send the head to the client and splice.
    func startTunnel(_ connection: HTTP1UpstreamConnection, head bytes: UnsafeRawBufferPointer) {
        writeBuffer.append("HTTP/1.1 101 ")
        writeBuffer.append(bytes, responseHead.reason)
        writeBuffer.append("\r\n")
        var upgradeValue: Range<Int>?
        for field in responseHead.fields {
            if field.kind == .upgrade { upgradeValue = field.value }
            guard !field.isHopByHop else { continue }
            writeBuffer.append(bytes, field.name)
            writeBuffer.append(": ")
            writeBuffer.append(bytes, field.value)
            writeBuffer.append("\r\n")
        }
        writeBuffer.append("Connection: upgrade\r\nUpgrade: ")
        if let upgradeValue { writeBuffer.append(bytes, upgradeValue) } else { writeBuffer.append("websocket") }
        writeBuffer.append("\r\n\r\n")
        connection.readBuffer.consume(responseHead.headLength)
        worker.metrics.countResponse(status: 101)
        state = .tunneling
        // Idle means no byte either way on the client's side: its transport
        // stamps both; the upstream's own deadline is off.
        socket.arm(Timeout.tunnel, after: worker.configuration.upstreamReadTimeoutMilliseconds, restartedBy: .traffic)
        connection.disarmTimeout()
        exchange.upstreamReadPaused = false
        // Bytes that followed the 101 (a first frame) and bytes the client
        // sent after its request both go through now.
        tunnelUpstreamBytes(connection)
        tunnelClientBytes()
        flushDownstream()
    }

    /// Moves what the client sent to the upstream, up to the high-water mark.
    func tunnelClientBytes() {
        guard state == .tunneling, let upstream else { return }
        let room = worker.configuration.bufferHighWaterMark - upstream.writeBuffer.readableBytes
        if room > 0, !readBuffer.isEmpty {
            let count = min(room, readBuffer.readableBytes)
            upstream.writeBuffer.append(UnsafeRawBufferPointer(rebasing: readBuffer.readable[0..<count]))
            readBuffer.consume(count)
            worker.metrics.requestBytesIn.add(UInt64(count))
        }
        if !upstream.writeBuffer.isEmpty {
            switch upstream.transportWrite() {
            case .failed:
                closeTunnel()
                return
            default:
                break
            }
        }
        var wanted: Interest = exchange.upstreamReadPaused ? .none : .read
        if !upstream.writeBuffer.isEmpty { wanted.insert(.write) }
        upstream.setInterest(wanted)
        updateDownstreamInterest()
    }

    /// The upstream is readable during a tunnel.
    func tunnelUpstreamReadable(_ connection: HTTP1UpstreamConnection) {
        let buffer = connection.readBuffer
        buffer.ensureStorage()
        if buffer.writableBytes < 4096 { buffer.compact() }
        guard buffer.writableBytes > 0 else {
            exchange.upstreamReadPaused = true
            connection.setInterest(connection.writeBuffer.isEmpty ? .none : .write)
            return
        }
        switch connection.transportRead() {
        case .bytes:
            tunnelUpstreamBytes(connection)
            flushDownstream()
        case .wouldBlock:
            break
        case .endOfFile, .failed:
            // Deliver what is queued, then end the client side too.
            tunnelUpstreamBytes(connection)
            closeTunnel()
        }
    }

    /// Moves what the upstream sent to the client, up to the high-water mark.
    func tunnelUpstreamBytes(_ connection: HTTP1UpstreamConnection) {
        let input = connection.readBuffer
        let room = worker.configuration.bufferHighWaterMark - writeBuffer.readableBytes
        if room > 0, !input.isEmpty {
            let count = min(room, input.readableBytes)
            writeBuffer.append(UnsafeRawBufferPointer(rebasing: input.readable[0..<count]))
            input.consume(count)
            worker.metrics.responseBytesOut.add(UInt64(count))
        }
        exchange.upstreamReadPaused = !input.isEmpty || writeBuffer.readableBytes >= worker.configuration.bufferHighWaterMark
        guard connection.state != .closed else { return }
        var wanted: Interest = exchange.upstreamReadPaused ? .none : .read
        if !connection.writeBuffer.isEmpty { wanted.insert(.write) }
        connection.setInterest(wanted)
    }

    /// Ends a tunnel: what is queued for the client is written, then both close.
    func closeTunnel() {
        if let upstream {
            upstream.close()
            self.upstream = nil
        }
        resetExchange()
        state = .closingAfterWrite
        armSendTimeout()
        readBuffer.clear()
        flushDownstream()
    }
}
