import Glibc
import HTTP1
import Reactor

/// One client connection: keep-alive, pipelining, HTTP/1.0 and 1.1.
///
/// Runs on its worker's loop only. Memory is bounded: the input buffer grows
/// only while a head or a chunked trailer section is incomplete (both are
/// limited by the parser), the output buffer holds at most about 64 KiB plus
/// one response head, and at most 64 KiB of a request body is kept.
final class EchoConnection: EventHandler {
    /// Where the connection is in its request/response cycle.
    enum Phase: Equatable {
        /// Waiting for (or parsing) the next request head.
        case awaitingHead
        /// Reading the body of the current request.
        case readingBody
        /// `/sleep/MS`: waiting for the timer; reading paused.
        case sleeping
        /// Sending `/bytes` or `/chunked` data from the pattern block.
        case streaming
        /// The last response is queued; close once it is written.
        case closingAfterWrite
        /// Write side shut down; discarding input until EOF or a deadline, so
        /// the close does not turn into an RST that destroys the response.
        case lingering
        case closed
    }

    static let initialInputBytes = 16 * 1024
    /// Head limit (32 KiB) plus trailer limit and slack: input never grows past this.
    static let maxInputBytes = 96 * 1024
    /// Stop producing responses (and reading) while this much output is queued.
    static let outputHighWater = 64 * 1024
    /// First bytes of a body kept for the JSON echo.
    static let keptBodyBytes = 64 * 1024
    static let chunkBytes = 16 * 1024
    static let lingerMilliseconds: UInt64 = 2_000

    let fd: CInt
    unowned let worker: EchoWorker
    var registration: Registration?
    /// Per-process ordinal of this connection (1 for the first accepted).
    let ordinal: Int
    let input = ByteBuffer(capacity: EchoConnection.initialInputBytes)
    let output = ByteBuffer(capacity: EchoConnection.outputHighWater + 4096)
    var head = HTTP1RequestHead()
    let limits = HTTP1Limits()
    var phase: Phase = .awaitingHead
    /// The peer sent FIN.
    var readClosed = false
    var requestsOnConnection = 0
    var lingerDeadline: UInt64 = 0

    // The current request.
    var route: EchoRoute = .echo
    var keepAlive = true
    var isHEAD = false
    var version: HTTP1Version = .http11
    var echoInfo: EchoRequestInfo?
    var bodyBytes: UInt64 = 0
    var bodyPrefix: [UInt8] = []
    var bodyIsChunked = false
    var bodyRemaining: UInt64 = 0
    var chunkedDecoder = HTTP1ChunkedDecoder()

    // The current `/bytes` or `/chunked` stream.
    var streamRemaining: UInt64 = 0
    var streamPhase = 0
    var streamChunked = false

    init(fd: CInt, worker: EchoWorker, ordinal: Int) {
        self.fd = fd
        self.worker = worker
        self.ordinal = ordinal
    }

    var loop: EventLoop { worker.loop }

    // MARK: Events

    func handleReadiness(_ readiness: Readiness) {
        guard phase != .closed else { return }
        if readiness.contains(.error) {
            return close()
        }
        let wantsInput = phase == .awaitingHead || phase == .readingBody || phase == .lingering
        if wantsInput && !readClosed
            && (readiness.contains(.readable) || readiness.contains(.readHangup) || readiness.contains(.hangup))
        {
            readOnce()
            guard phase != .closed else { return }
        } else if readiness.contains(.hangup) {
            // Both directions gone: nothing can be delivered.
            return close()
        } else if readiness.contains(.readHangup) && phase == .sleeping {
            // Level-triggered RDHUP would fire on every iteration while the
            // timer runs; a client that hung up does not need the answer.
            return close()
        }
        drive()
    }

    func tick(now: UInt64) {
        if phase == .lingering && now >= lingerDeadline { close() }
    }

    private func readOnce() {
        if input.writableBytes == 0 {
            input.compact()
            if input.writableBytes == 0 {
                guard input.capacity < EchoConnection.maxInputBytes else {
                    // Cannot happen within the parser's limits; refuse rather than grow.
                    return respondWithError(400)
                }
                input.reserveWritable(input.capacity)
            }
        }
        switch Socket.read(fd, into: input) {
        case .bytes:
            if phase == .lingering { input.clear() }
        case .wouldBlock:
            break
        case .endOfFile:
            readClosed = true
            if phase == .lingering { close() }
        case .failed:
            close()
        }
    }

    // MARK: The request/response cycle

    /// Makes all the progress the buffers allow, then writes and sets interest.
    private func drive() {
        var rounds = 0
        loop: while phase != .closed {
            switch phase {
            case .awaitingHead:
                guard output.readableBytes < EchoConnection.outputHighWater else { break loop }
                if input.isEmpty {
                    if readClosed && output.isEmpty { return close() }
                    break loop
                }
                switch HTTP1Parser.parseRequestHead(input.readable, limits: limits, into: &head) {
                case .incomplete:
                    if readClosed {
                        // A truncated head that can never complete.
                        if output.isEmpty { return close() }
                        phase = .closingAfterWrite
                    }
                    break loop
                case .failed(let error):
                    respondWithError(error.statusCode)
                case .complete:
                    startRequest()
                }
            case .readingBody:
                if input.isEmpty {
                    if readClosed { return close() }
                    break loop
                }
                if !readBody() { break loop }
            case .streaming:
                fillStream()
                if !flush() { return }
                if phase == .streaming {
                    rounds += 1
                    // Yield to other connections now and then; write interest
                    // brings us back at once.
                    if !output.isEmpty || rounds >= 32 { break loop }
                }
            case .sleeping, .closingAfterWrite, .lingering, .closed:
                break loop
            }
        }
        guard phase != .closed, flush() else { return }
        if phase == .closingAfterWrite && output.isEmpty {
            Socket.shutdownWrite(fd)
            if readClosed { return close() }
            phase = .lingering
            lingerDeadline = loop.now + EchoConnection.lingerMilliseconds
            input.clear()
        }
        updateInterest()
    }

    /// The head in `head` is complete at the start of `input`: take what the
    /// response needs from it, then move on to the body.
    private func startRequest() {
        let bytes = input.readable
        route = EchoRoute.route(target: UnsafeRawBufferPointer(rebasing: bytes[head.target]))
        keepAlive = head.keepAlive
        isHEAD = head.isHEAD
        version = head.version
        echoInfo = route.echoesRequest ? EchoRequestInfo(head: head, bytes: bytes) : nil
        bodyBytes = 0
        bodyPrefix.removeAll(keepingCapacity: true)
        input.consume(head.headLength)

        switch head.framing {
        case .none, .untilClose, .contentLength(0):
            dispatch()
            return
        case .contentLength(let length):
            bodyIsChunked = false
            bodyRemaining = length
        case .chunked:
            bodyIsChunked = true
            chunkedDecoder = HTTP1ChunkedDecoder()
        }
        if head.expectsContinue {
            // RFC 9110 §10.1.1: the client waits for this before sending the body.
            output.append("HTTP/1.1 100 Continue\r\n\r\n")
        }
        phase = .readingBody
    }

    /// Consumes body bytes from `input`. Returns false when more input is needed.
    private func readBody() -> Bool {
        if !bodyIsChunked {
            let available = UInt64(input.readableBytes)
            let take = min(available, bodyRemaining)
            absorbBody(UnsafeRawBufferPointer(rebasing: input.readable[0..<Int(take)]))
            input.consume(Int(take))
            bodyRemaining -= take
            if bodyRemaining == 0 { dispatch() }
            return bodyRemaining == 0
        }
        switch chunkedDecoder.next(input.readable) {
        case .data(let range, let consumed):
            absorbBody(UnsafeRawBufferPointer(rebasing: input.readable[range]))
            input.consume(consumed)
            return true
        case .needMore(let consumed):
            input.consume(consumed)
            return consumed > 0
        case .end(_, let consumed):
            input.consume(consumed)
            dispatch()
            return true
        case .failed(let error):
            respondWithError(error.statusCode)
            return true
        }
    }

    @inline(__always)
    private func absorbBody(_ bytes: UnsafeRawBufferPointer) {
        bodyBytes += UInt64(bytes.count)
        if echoInfo != nil && bodyPrefix.count < EchoConnection.keptBodyBytes {
            let keep = min(bytes.count, EchoConnection.keptBodyBytes - bodyPrefix.count)
            bodyPrefix.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<keep]))
        }
    }

    /// The whole request has been read: answer it.
    private func dispatch() {
        requestsOnConnection += 1
        worker.requests.value.add(1, ordering: .relaxed)
        switch route {
        case .echo:
            respondWithEcho()
        case .close:
            keepAlive = false
            respondWithEcho()
        case .sleep(let milliseconds):
            phase = .sleeping
            loop.schedule(afterMilliseconds: milliseconds) { [weak self] in self?.wakeFromSleep() }
        case .bytes(let count):
            output.append("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ")
            appendDecimal(count)
            output.append("\r\n")
            appendConnectionHeader()
            output.append("\r\n")
            startStream(count: count, chunked: false)
        case .truncated(let count):
            // The close after half the body is the point: no keep-alive.
            keepAlive = false
            output.append("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ")
            appendDecimal(count)
            output.append("\r\n\r\n")
            startStream(count: count / 2, chunked: false)
        case .chunked(let count):
            output.append("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n")
            if version == .http10 {
                // RFC 9112 §7: no chunked coding for HTTP/1.0; the close ends the body.
                keepAlive = false
            } else {
                output.append("Transfer-Encoding: chunked\r\nTrailer: x-echo-trailer\r\n")
            }
            appendConnectionHeader()
            output.append("\r\n")
            startStream(count: count, chunked: version == .http11)
        case .status(let code):
            appendStatusLine(code)
            if code != 204 && code != 304 { output.append("Content-Length: 0\r\n") }
            appendConnectionHeader()
            output.append("\r\n")
            finishResponse()
        case .reset:
            reset()
        case .malformed:
            output.append("HTTP/1.1 abc\r\n\r\n")
            keepAlive = false
            finishResponse()
        case .stats:
            respondWithJSON(
                "{\"connections\":\(worker.counters.connections.load(ordering: .relaxed)),\"requests\":\(worker.counters.totalRequests)}\n")
        case .sink:
            respondWithJSON("{\"body_bytes\":\(bodyBytes)}\n")
        case .invalid:
            appendStatusLine(400)
            output.append("Content-Type: text/plain\r\nContent-Length: 30\r\n")
            appendConnectionHeader()
            output.append("\r\nunusable parameter in the path\n")
            finishResponse()
        }
    }

    private func wakeFromSleep() {
        guard phase == .sleeping else { return }
        respondWithEcho()
        drive()
    }

    private func respondWithEcho() {
        guard let info = echoInfo else { preconditionFailure("echo route without request info") }
        let body = JSONText.echo(
            serverName: worker.serverName, request: info, bodyBytes: bodyBytes, bodyPrefix: bodyPrefix,
            connection: ordinal, requestOnConnection: requestsOnConnection)
        respondWithJSON(body)
        echoInfo = nil
    }

    private func respondWithJSON(_ body: String) {
        var body = body
        output.append("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ")
        appendDecimal(UInt64(body.utf8.count))
        output.append("\r\n")
        appendConnectionHeader()
        output.append("\r\n")
        if !isHEAD {
            body.withUTF8 { output.append(UnsafeRawBufferPointer($0)) }
        }
        finishResponse()
    }

    /// Answers a request that cannot be parsed (or framed) and closes.
    private func respondWithError(_ status: Int) {
        keepAlive = false
        appendStatusLine(status)
        output.append("Content-Length: 0\r\nConnection: close\r\n\r\n")
        input.clear()
        phase = .closingAfterWrite
    }

    private func finishResponse() {
        phase = keepAlive ? .awaitingHead : .closingAfterWrite
    }

    // MARK: Streaming from the pattern block

    private func startStream(count: UInt64, chunked: Bool) {
        streamRemaining = isHEAD ? 0 : count
        streamPhase = 0
        streamChunked = chunked
        if streamRemaining == 0 {
            if chunked && !isHEAD { output.append("0\r\nx-echo-trailer: done\r\n\r\n") }
            finishResponse()
        } else {
            phase = .streaming
        }
    }

    /// Tops the output buffer up to the high-water mark from the pattern block.
    private func fillStream() {
        while streamRemaining > 0 {
            guard output.readableBytes < EchoConnection.outputHighWater else { return }
            output.compact()
            // Room for data plus chunk framing (size line and CRLF); the
            // buffer never grows past its initial capacity.
            let room = output.capacity - output.writerIndex - 32
            guard room > 0 else { return }
            let limit = streamChunked ? EchoConnection.chunkBytes : PatternBlock.sliceBytes
            let count = Int(min(streamRemaining, UInt64(min(limit, room))))
            if streamChunked {
                appendHex(count)
                output.append("\r\n")
            }
            output.append(worker.pattern.slice(phase: streamPhase, count: count))
            if streamChunked { output.append("\r\n") }
            streamPhase = (streamPhase + count) % PatternBlock.period
            streamRemaining -= UInt64(count)
        }
        if streamChunked { output.append("0\r\nx-echo-trailer: done\r\n\r\n") }
        finishResponse()
    }

    // MARK: Output

    /// Writes queued output until done or the socket is full. Returns false
    /// when the connection was closed because the peer went away.
    private func flush() -> Bool {
        while !output.isEmpty {
            switch Socket.write(fd, from: output) {
            case .bytes:
                continue
            case .wouldBlock:
                return true
            case .endOfFile, .failed:
                close()
                return false
            }
        }
        return true
    }

    private func updateInterest() {
        guard let registration, phase != .closed else { return }
        var interest: Interest = []
        switch phase {
        case .awaitingHead, .readingBody:
            if !readClosed && output.readableBytes < EchoConnection.outputHighWater { interest.insert(.read) }
        case .lingering:
            interest.insert(.read)
        case .sleeping, .streaming, .closingAfterWrite, .closed:
            break
        }
        if !output.isEmpty || phase == .streaming { interest.insert(.write) }
        loop.setInterest(registration, interest)
    }

    private func appendConnectionHeader() {
        if !keepAlive {
            output.append("Connection: close\r\n")
        } else if version == .http10 {
            output.append("Connection: keep-alive\r\n")
        }
    }

    private func appendStatusLine(_ status: Int) {
        var line: [UInt8] = []
        HTTP1Serializer.appendStatusLine(status, to: &line)
        output.append(line)
    }

    @inline(__always)
    private func appendDecimal(_ value: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: room for 20 digits
        withUnsafeMutableBytes(of: &digits) { raw in
            var index = raw.count
            var rest = value
            repeat {
                index -= 1
                raw[index] = UInt8(truncatingIfNeeded: rest % 10) &+ 0x30
                rest /= 10
            } while rest > 0
            output.append(UnsafeRawBufferPointer(rebasing: raw[index...]))
        }
    }

    private func appendHex(_ value: Int) {
        var line: [UInt8] = []
        HTTP1Serializer.appendHex(UInt64(value), to: &line)
        output.append(line)
    }

    // MARK: Closing

    /// Closes without answering; SO_LINGER 0 makes the kernel send RST.
    private func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        if let registration { loop.deregister(registration) }
        registration = nil
        Socket.close(fd)
    }
}
