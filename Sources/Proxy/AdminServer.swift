import Glibc
import HTTP1
import Reactor
import Telemetry

/// The operator's endpoint, on its own address and thread, away from the
/// data path: `/metrics` (Prometheus text), `/healthz` (the process runs) and
/// `/readyz` (a routing table is published). One request per connection.
public final class AdminServer: @unchecked Sendable {
    /// What the admin endpoint reports.
    public struct Status: Sendable {
        public var metrics: MetricsRegistry
        /// The routing configuration in service as JSON (`/debug/routes`).
        public var routesJSON: @Sendable () -> String
        public init(metrics: MetricsRegistry, routesJSON: @escaping @Sendable () -> String = { "{}\n" }) {
            self.metrics = metrics
            self.routesJSON = routesJSON
        }
    }

    let loop: EventLoop
    let listenFD: CInt
    let status: Status
    private var thread: pthread_t?
    private var listener: AdminListener?
    /// The address actually bound.
    public let boundAddress: SocketAddress

    /// Binds `address`; fails fast when it cannot.
    public init(address: SocketAddress, status: Status) throws {
        self.loop = try EventLoop(name: "admin")
        self.listenFD = try Socket.listen(at: address, reusePort: false, backlog: 64)
        self.boundAddress = Socket.localAddress(listenFD) ?? address
        self.status = status
    }

    /// Starts the admin thread.
    public func start() throws {
        let listener = AdminListener(server: self)
        self.listener = listener
        thread = try WorkerThread.start(name: "postern-admin") { [self] in
            do {
                listener.registration = try loop.register(fd: listenFD, interest: .read, handler: listener)
            } catch {
                return
            }
            loop.run()
        }
    }

    /// Stops the admin thread and closes its socket.
    public func stop() {
        loop.stop()
        if let thread { WorkerThread.join(thread) }
        thread = nil
        Socket.close(listenFD)
    }

    func response(forPath path: String) -> [UInt8] {
        let (code, contentType, body): (Int, String, String)
        switch path {
        case "/metrics":
            (code, contentType, body) = (200, "text/plain; version=0.0.4; charset=utf-8", status.metrics.renderPrometheus())
        case "/healthz":
            (code, contentType, body) = (200, "text/plain", "ok\n")
        case "/debug/routes":
            (code, contentType, body) = (200, "application/json", status.routesJSON())
        case "/readyz":
            let ready = status.metrics.ready.load(ordering: .relaxed)
            (code, contentType, body) = ready ? (200, "text/plain", "ready\n") : (503, "text/plain", "no routing table published yet\n")
        default:
            (code, contentType, body) = (404, "text/plain", "not found: try /metrics, /healthz, /readyz or /debug/routes\n")
        }
        let head = "HTTP/1.1 \(code) \(HTTP1Serializer.reasonPhrase(code))\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        return Array((head + body).utf8)
    }
}

final class AdminListener: EventHandler {
    unowned let server: AdminServer
    var registration: Registration?

    init(server: AdminServer) { self.server = server }

    /// After a failed accept (out of descriptors), accepting pauses until then.
    private var pausedUntil: UInt64 = 0

    func handleReadiness(_ readiness: Readiness) {
        while true {
            switch Socket.accept(server.listenFD) {
            case let .accepted(fd, _):
                let connection = AdminConnection(fd: fd, server: server)
                if let registration = try? server.loop.register(fd: fd, interest: .read, handler: connection) {
                    connection.registration = registration
                } else {
                    Socket.close(fd)
                }
            case .wouldBlock:
                return
            case .failed:
                // The pending connection stays: a level-triggered listener
                // would wake at once, again and again. Retry shortly.
                if let registration { server.loop.setInterest(registration, .none) }
                pausedUntil = server.loop.now + 100
                return
            }
        }
    }

    func tick(now: UInt64) {
        if pausedUntil != 0, now >= pausedUntil, let registration {
            pausedUntil = 0
            server.loop.setInterest(registration, .read)
        }
    }
}

final class AdminConnection: EventHandler {
    let fd: CInt
    unowned let server: AdminServer
    var registration: Registration?
    let input = ByteBuffer(capacity: 8192)
    let output = ByteBuffer(capacity: 8192)
    var head = HTTP1RequestHead()
    let openedAt: UInt64

    init(fd: CInt, server: AdminServer) {
        self.fd = fd
        self.server = server
        self.openedAt = server.loop.now
    }

    func handleReadiness(_ readiness: Readiness) {
        if readiness.contains(.writable) {
            flush()
            return
        }
        guard output.isEmpty else { return }
        guard input.writableBytes > 0 else { return close() }
        switch Socket.read(fd, into: input) {
        case .bytes:
            switch HTTP1Parser.parseRequestHead(input.readable, limits: HTTP1Limits(), into: &head) {
            case .incomplete:
                return
            case .failed:
                output.append("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            case .complete:
                let target = Array(UnsafeRawBufferPointer(rebasing: input.readable[head.target]))
                let path = String(decoding: target.prefix { $0 != UInt8(ascii: "?") }, as: UTF8.self)
                output.append(server.response(forPath: path))
            }
            flush()
        case .wouldBlock:
            return
        case .endOfFile, .failed:
            close()
        }
    }

    func flush() {
        switch Socket.write(fd, from: output) {
        case .failed: return close()
        default: break
        }
        if output.isEmpty {
            close()
        } else if let registration {
            server.loop.setInterest(registration, .write)
        }
    }

    func tick(now: UInt64) {
        if now &- openedAt > 10_000 { close() }
    }

    func close() {
        guard let registration else { return }
        server.loop.deregister(registration)
        self.registration = nil
        Socket.close(fd)
    }
}
