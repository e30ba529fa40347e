import Glibc
import Reactor

/// A large response body in transit from the upstream socket to the client
/// socket through a kernel pipe (`splice(2)`), without passing through user
/// space: neither the `read` copy out of the kernel, nor the copy between
/// buffers, nor the `send` copy back in.
///
/// Only for a cleartext client and a cleartext upstream, a body framed by
/// Content-Length, and at least `HTTP1ClientConnection.spliceThreshold` bytes
/// still to come: the body passes through byte for byte, so nothing in it
/// needs looking at. Everything else (the head, bytes read with the head,
/// chunked bodies, TLS) takes the buffered path.
struct ResponseSplice {
    /// The pipe, taken from the worker's pool for this body.
    let pipe: SplicePipe
    /// Body bytes still to take from the upstream socket.
    var remaining: UInt64
    /// Bytes in the pipe that the client socket has not taken yet.
    var inPipe = 0
}

extension HTTP1ClientConnection {
    /// Smallest remaining body worth a pipe: below it the buffered path
    /// costs no more system calls (one 16 KiB read and one write).
    static let spliceThreshold: UInt64 = 16 * 1024

    /// The first read of a response for a cleartext client: room for a
    /// typical head and a small body, so that a small response still takes
    /// one read while a large body is left in the socket for the pipe.
    static let spliceHeadReadBytes = 4096

    /// Most bytes moved in one turn before other connections of the worker
    /// get theirs (epoll is level-triggered: the rest is announced again).
    static let spliceTurnBytes = 256 * 1024

    /// Switches the rest of a Content-Length body to the pipe path when it
    /// qualifies. Called with the upstream's read buffer empty, so every
    /// byte still to come is in the socket. Returns false to keep buffering.
    func startSplice(_ connection: HTTP1UpstreamConnection, remaining: UInt64) -> Bool {
        guard remaining >= Self.spliceThreshold, socket.spliceDescriptor != nil, connection.spliceDescriptor != nil,
            let pipe = worker.splicePipes.take()
        else { return false }
        exchange.splice = ResponseSplice(pipe: pipe, remaining: remaining)
        return true
    }

    /// Moves body bytes upstream → pipe → client until one side would block,
    /// the body is complete, or this turn's share is used; then sets both
    /// sides' epoll interest and deadlines for what it waits on.
    func continueSplice() {
        guard let connection = upstream, var relay = exchange.splice else { return }
        // The response head (and body bytes read with it) go out first.
        guard writeQueuedOutput() else { return }
        if !writeBuffer.isEmpty {
            waitForClient(connection)
            return
        }
        var moved = 0
        var forwarded: UInt64 = 0
        defer { if forwarded > 0 { worker.metrics.responseBytesOut.add(forwarded) } }
        while moved < Self.spliceTurnBytes {
            if relay.inPipe > 0 {
                switch socket.splice(from: relay.pipe, count: relay.inPipe) {
                case let .bytes(count):
                    relay.inPipe -= count
                    moved += count
                    forwarded += UInt64(count)
                    continue
                case .wouldBlock:
                    exchange.splice = relay
                    waitForClient(connection)
                    return
                case .endOfFile, .failed:
                    exchange.splice = nil
                    worker.metrics.count(.clientReset)
                    abort()
                    return
                }
            }
            if relay.remaining == 0 {
                // The pipe is empty and the body complete: the pipe can serve another body.
                exchange.splice = nil
                worker.splicePipes.giveBack(relay.pipe)
                exchange.responseBody = .none
                finishResponse(connection)
                return
            }
            let want = Int(min(relay.remaining, UInt64(SplicePipe.capacity)))
            switch connection.splice(into: relay.pipe, count: want) {
            case let .bytes(count):
                relay.remaining -= UInt64(count)
                relay.inPipe = count
                exchange.responseBody = .contentLength(remaining: relay.remaining)
            case .wouldBlock:
                exchange.splice = relay
                waitForUpstream(connection)
                return
            case .endOfFile:
                // The upstream closed before Content-Length bytes: the body
                // is cut short, and the client must see the connection end.
                exchange.splice = nil
                upstreamClosed(connection, reset: false)
                return
            case .failed:
                exchange.splice = nil
                upstreamClosed(connection, reset: true)
                return
            }
        }
        // This turn's share is used: both sides stay as they are, and
        // level-triggered epoll announces them again after the other
        // connections' events.
        exchange.splice = relay
        if relay.inPipe > 0 { waitForClient(connection) } else { waitForUpstream(connection) }
    }

    /// Bytes wait for the client: stop reading the upstream (no upstream
    /// deadline while the client sets the pace); the client's send timeout
    /// runs (`tick`: the transport stamps each splice into the client).
    private func waitForClient(_ connection: HTTP1UpstreamConnection) {
        exchange.upstreamReadPaused = true
        refreshUpstreamDeadline(connection)
        updateUpstreamInterest(connection)
        updateDownstreamInterest()
    }

    /// The pipe is empty and the upstream has sent nothing more yet: wait
    /// for it under its read timeout.
    private func waitForUpstream(_ connection: HTTP1UpstreamConnection) {
        exchange.upstreamReadPaused = false
        refreshUpstreamDeadline(connection)
        updateUpstreamInterest(connection)
        updateDownstreamInterest()
    }

    /// Bytes toward the client are queued, in the write buffer or in the
    /// pipe: the client's send timeout applies and epoll must report writability.
    @inline(__always)
    var clientOutputPending: Bool {
        !writeBuffer.isEmpty || (exchange.splice.map { $0.inPipe > 0 } ?? false)
    }
}
