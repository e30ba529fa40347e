import Dispatch
import Glibc
import Reactor
import RouteModel
import Routing
import TLS
import Telemetry
import Testing

@testable import Proxy

/// One worker on its own thread, with no routes (every request is answered
/// 404 by the pipeline) and the self-signed default certificate; connections
/// are handed to it over socketpair(2) instead of through its listener, so
/// tests drive the real connection types (HTTP/1.1 and HTTP/2, plain and
/// TLS) byte by byte, and control when bytes arrive.
final class WorkerHarness: @unchecked Sendable {
    let worker: Worker
    private var thread: pthread_t?

    /// `configure` adjusts the worker's settings (short timeouts, PROXY protocol).
    init(configure: (inout ProxyConfiguration) -> Void = { _ in }) throws {
        // As in `postern`: a write to a closed peer is an error result, not a signal.
        signal(SIGPIPE, SIG_IGN)
        var settings = TLSServerSettings()
        settings.alpnProtocols = ["h2", "http/1.1"]
        let builder = try TLSStoreBuilder(settings: settings, defaultCertificate: nil)
        let (store, _) = builder.build([])
        let secure = SecurePolicy(certificates: store, model: TLSModel())
        let address = SocketAddress(bytes: [127, 0, 0, 1], port: 0)
        let listenFD = try Socket.listen(at: address, reusePort: false)
        var configuration = ProxyConfiguration(httpListen: address, workers: 1)
        configure(&configuration)
        worker = try Worker(
            index: 0, configuration: configuration, listenFD: listenFD, httpsListenFD: nil,
            table: RoutingTable(model: RouteModel(virtualHosts: [], clusters: []), generation: 1), secure: secure,
            metrics: WorkerMetrics(), errorResponses: ErrorResponseTable())
        let worker = self.worker
        thread = try WorkerThread.start(name: "harness") {
            do { try worker.run() } catch { Issue.record("the harness worker did not run: \(error)") }
        }
    }

    /// Stops the loop (closing what is left) and joins its thread.
    func stop() {
        worker.drain(timeoutMilliseconds: 0)
        if let thread { WorkerThread.join(thread) }
        thread = nil
    }

    /// Runs `body` on the worker's loop and returns its result.
    func onLoop<T>(_ body: @escaping () -> T) -> T {
        let done = DispatchSemaphore(value: 0)
        var result: T?
        worker.loop.execute {
            result = body()
            done.signal()
        }
        done.wait()
        return result!
    }

    /// A connection accepted as if on the HTTPS (`tls`) or HTTP listener; the
    /// returned descriptor is the client's end (blocking, 5 s timeouts).
    func connect(tls: Bool) -> CInt {
        var pair: [CInt] = [0, 0]
        precondition(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        let server = pair[0]
        _ = fcntl(server, F_SETFL, fcntl(server, F_GETFL) | O_NONBLOCK)
        BlockingSocket.setTimeouts(pair[1], receiveMilliseconds: 5_000, sendMilliseconds: 5_000)
        let worker = self.worker
        worker.loop.execute { worker.accepted(fd: server, peer: nil, isTLS: tls) }
        return pair[1]
    }

    /// Polls the loop (every 10 ms, at most `attempts` times) until `condition` holds.
    func eventually(attempts: Int = 500, _ condition: @escaping () -> Bool) -> Bool {
        for _ in 0..<attempts {
            if onLoop(condition) { return true }
            usleep(10_000)
        }
        return false
    }
}

/// The client side of a test connection: TLS driven by hand over a
/// non-blocking descriptor that the test relays to the server's, so that a
/// test decides which bytes reach the server together.
final class RelayedTLSClient {
    let tls: TLSConnection
    /// The client's own end (TLS runs on it).
    let clientFD: CInt
    /// The other end of the client's pair: what the client wrote is read here.
    let relayFD: CInt
    /// The server connection's client end (from `WorkerHarness.connect`).
    let serverFD: CInt

    init(serverFD: CInt, alpn: [String] = []) throws {
        var pair: [CInt] = [0, 0]
        precondition(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
        clientFD = pair[0]
        relayFD = pair[1]
        self.serverFD = serverFD
        _ = fcntl(clientFD, F_SETFL, fcntl(clientFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(relayFD, F_SETFL, fcntl(relayFD, F_GETFL) | O_NONBLOCK)
        let context = try TLSClientContext(verify: false, certificateAuthoritiesPEM: nil)
        if !alpn.isEmpty { try context.offerApplicationProtocols(alpn) }
        tls = try TLSConnection(fd: clientFD, client: context, serverName: "")
    }

    deinit {
        close(clientFD)
        close(relayFD)
        close(serverFD)
    }

    /// Everything the client wrote so far (not yet relayed).
    func takeClientBytes() -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(relayFD, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }

    /// Sends `bytes` to the server in one write.
    func sendToServer(_ bytes: [UInt8]) {
        if bytes.isEmpty { return }
        let sent = bytes.withUnsafeBytes { BlockingSocket.writeAll(serverFD, $0) }
        precondition(sent, "the server end refused bytes")
    }

    /// Moves what the server sent (waiting up to `milliseconds` for the
    /// first byte) to the client; false when nothing came.
    @discardableResult
    func relayFromServer(waitingMilliseconds milliseconds: Int32 = 5_000) -> Bool {
        guard BlockingSocket.waitFor(serverFD, events: Int16(POLLIN), timeoutMilliseconds: milliseconds) else { return false }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var moved = false
        while BlockingSocket.waitFor(serverFD, events: Int16(POLLIN), timeoutMilliseconds: 0) {
            let count = chunk.withUnsafeMutableBytes { recv(serverFD, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            let sent = chunk.withUnsafeBytes { BlockingSocket.writeAll(relayFD, UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            precondition(sent, "the client end refused bytes")
            moved = true
        }
        return moved
    }

    /// Runs the client handshake to its end, relaying every flight at once
    /// (the client's last flight stays unrelayed: the caller sends it, with
    /// whatever it wants behind it). False when the handshake failed.
    func handshakeKeepingLastFlight() -> Bool {
        for _ in 0..<20 {
            switch tls.handshake() {
            case .bytes:
                return true
            case .wantRead:
                sendToServer(takeClientBytes())
                guard relayFromServer() else { return false }
            case .wantWrite:
                continue
            case .closed, .failed:
                return false
            }
        }
        return false
    }

    /// Starts the handshake and sends the server only the first 20 bytes
    /// of the ClientHello; false when the client did not wait for the server.
    func sendPartOfClientHello() -> Bool {
        guard case .wantRead = tls.handshake() else { return false }
        let hello = takeClientBytes()
        guard hello.count > 20 else { return false }
        sendToServer(Array(hello[0..<20]))
        return true
    }

    /// Encrypts `bytes` as one record per `recordSize` bytes (not yet relayed).
    func write(_ bytes: [UInt8], recordSize: Int = .max) {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + min(recordSize, bytes.count))
            let result = bytes[offset..<end].withUnsafeBytes { tls.write($0) }
            guard case let .bytes(count) = result else {
                Issue.record("client TLS write: \(result)")
                return
            }
            offset += count
        }
    }

    /// Decrypted bytes from the server until `done` says enough, or nothing
    /// more comes within the timeout.
    func read(until done: ([UInt8]) -> Bool) -> [UInt8] {
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while !done(received) {
            let result = chunk.withUnsafeMutableBytes { tls.read(into: $0) }
            switch result {
            case let .bytes(count):
                received += chunk[0..<count]
            case .wantRead:
                guard relayFromServer() else { return received }
            case .wantWrite:
                continue
            case .closed, .failed:
                return received
            }
        }
        return received
    }
}

/// A socketpair(2) for an upstream connection under test: the connection's
/// end (non-blocking) and the endpoint's end (left blocking).
func upstreamSocketPair() -> (upstream: CInt, endpoint: CInt) {
    var pair: [CInt] = [0, 0]
    precondition(socketpair(AF_UNIX, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
    _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
    return (pair[0], pair[1])
}

/// Reads from a blocking descriptor until `done` says enough, the peer
/// closes, or the 5 s receive timeout passes.
func readPlain(_ fd: CInt, until done: ([UInt8]) -> Bool) -> [UInt8] {
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while !done(received) {
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        received += chunk[0..<count]
    }
    return received
}

/// True once `bytes` hold a whole response head.
func hasResponseHead(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 4 && (0...(bytes.count - 4)).contains { bytes[$0..<$0 + 4].elementsEqual([13, 10, 13, 10]) }
}

/// True once `bytes` hold a whole HTTP/2 SETTINGS frame with the ACK flag.
func hasSettingsAcknowledgement(_ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset + 9 <= bytes.count {
        let length = Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        if bytes[offset + 3] == 0x4, bytes[offset + 4] & 0x1 != 0 { return true }
        offset += 9 + length
    }
    return false
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
let http2Preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]

/// A request the empty routing table answers with 404.
let notFoundRequest: [UInt8] = Array("GET /nothing/here HTTP/1.1\r\nHost: harness.test\r\nUser-Agent: harness\r\n\r\n".utf8)
