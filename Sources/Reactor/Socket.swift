import CPosternShim
import Glibc

/// The result of a non-blocking I/O call.
public enum IOResult: Equatable {
    /// This many bytes were transferred (never 0 for reads: see `.endOfFile`).
    case bytes(Int)
    /// The call would block: wait for readiness.
    case wouldBlock
    /// The peer closed its side (read returned 0).
    case endOfFile
    /// A connection error such as ECONNRESET or EPIPE, as an errno value.
    case failed(CInt)
}

/// A failed set-up system call, with the errno value and what was attempted.
public struct SystemError: Error, CustomStringConvertible {
    public let call: String
    public let errno: CInt

    public init(_ call: String, errno: CInt) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno)))"
    }
}

/// A listening address another socket already holds exclusively, or
/// through SO_REUSEPORT in another process.
public struct AddressInUseError: Error, CustomStringConvertible {
    public let address: SocketAddress

    public init(address: SocketAddress) { self.address = address }

    public var description: String {
        "listen \(address): address already in use (another process is listening there)"
    }
}

/// Every socket system call Postern makes, wrapped once. Calls retry on
/// EINTR, map EAGAIN to `.wouldBlock`, and stop the process on EBADF/EFAULT
/// (those mean a descriptor was mixed up: a bug, never input).
public enum Socket {
    @inline(__always)
    static func checkFatal(_ error: CInt, _ call: StaticString) {
        if error == EBADF || error == EFAULT || error == ENOTSOCK {
            preconditionFailure("\(call) failed with errno \(error): descriptor bookkeeping is broken")
        }
    }

    /// Creates a non-blocking listening TCP socket with SO_REUSEADDR and,
    /// when `reusePort`, SO_REUSEPORT (one listener per worker, the kernel
    /// spreads connections).
    public static func listen(at address: SocketAddress, reusePort: Bool, backlog: CInt = 1024) throws -> CInt {
        let domain = address.family == .v4 ? AF_INET : AF_INET6
        let fd = Glibc.socket(domain, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        if reusePort {
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<CInt>.size))
        }
        let bound = address.withSockAddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let error = errno
            Glibc.close(fd)
            throw SystemError("bind \(address)", errno: error)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw SystemError("listen \(address)", errno: error)
        }
        return fd
    }

    /// Fails with `AddressInUseError` when some socket already listens on
    /// `address`, by binding a probe socket there *without* SO_REUSEPORT
    /// (and closing it). The workers' SO_REUSEPORT listeners would otherwise
    /// join another process's listeners on the same port and split its
    /// traffic. SO_REUSEADDR stays on, so connections of a previous run in
    /// TIME_WAIT do not stop a restart in place. Port 0 needs no probe.
    ///
    /// A process that binds the port between the probe and the listeners
    /// (a window of microseconds at start-up) is not seen.
    public static func probeExclusive(_ address: SocketAddress) throws {
        guard address.port != 0 else { return }
        let domain = address.family == .v4 ? AF_INET : AF_INET6
        let fd = Glibc.socket(domain, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        defer { Glibc.close(fd) }
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let bound = address.withSockAddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let error = errno
            if error == EADDRINUSE { throw AddressInUseError(address: address) }
            throw SystemError("bind \(address)", errno: error)
        }
    }

    /// The address a socket is bound to (after binding port 0, the real port).
    public static func localAddress(_ fd: CInt) -> SocketAddress? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { return nil }
        return withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!) }
    }

    /// The outcome of `accept`.
    public enum AcceptResult {
        case accepted(CInt, SocketAddress?)
        case wouldBlock
        /// A transient failure (EMFILE, ENFILE, ENOBUFS, ECONNABORTED...): try later.
        case failed(CInt)
    }

    /// Accepts one connection as a non-blocking, close-on-exec socket.
    public static func accept(_ listener: CInt) -> AcceptResult {
        var storage = sockaddr_storage()
        while true {
            var length = UInt32(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) { postern_accept4_nonblocking(listener, $0, &length) }
            if fd >= 0 {
                let peer = withUnsafeBytes(of: &storage) { SocketAddress(storage: $0.baseAddress!) }
                return .accepted(fd, peer)
            }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            checkFatal(error, "accept4")
            return .failed(error)
        }
    }

    /// Starts a non-blocking connect. `.bytes(0)` means connected at once,
    /// `.wouldBlock` means in progress (wait for writability, then check
    /// `pendingError`).
    public static func connect(to address: SocketAddress) -> (CInt, IOResult) {
        let domain = address.family == .v4 ? AF_INET : AF_INET6
        let fd = Glibc.socket(domain, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return (-1, .failed(errno)) }
        setNoDelay(fd)
        while true {
            let result = address.withSockAddr { Glibc.connect(fd, $0, $1) }
            if result == 0 { return (fd, .bytes(0)) }
            let error = errno
            if error == EINTR { continue }
            if error == EINPROGRESS { return (fd, .wouldBlock) }
            return (fd, .failed(error))
        }
    }

    /// The pending error of a socket (SO_ERROR): 0 once a connect succeeded.
    public static func pendingError(_ fd: CInt) -> CInt {
        var value: CInt = 0
        var length = socklen_t(MemoryLayout<CInt>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) == 0 else { return errno }
        return value
    }

    /// Disables Nagle's algorithm: proxied requests and responses are sent whole.
    public static func setNoDelay(_ fd: CInt) {
        var one: CInt = 1
        setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<CInt>.size))
    }

    /// Reads into `buffer`'s writable space (which must not be empty).
    @inline(__always)
    public static func read(_ fd: CInt, into buffer: ByteBuffer) -> IOResult {
        read(fd, into: buffer, atMost: .max)
    }

    /// Reads at most `limit` bytes into `buffer`'s free space: leaves the
    /// rest in the socket (for `splice`, which moves it without a copy).
    public static func read(_ fd: CInt, into buffer: ByteBuffer, atMost limit: Int) -> IOResult {
        let space = buffer.writable
        precondition(space.count > 0 && limit > 0, "read into a full buffer")
        while true {
            let count = Glibc.read(fd, space.baseAddress, min(space.count, limit))
            if count > 0 {
                buffer.didWrite(count)
                return .bytes(count)
            }
            if count == 0 { return .endOfFile }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            checkFatal(error, "read")
            return .failed(error)
        }
    }

    /// Copies up to `space.count` bytes the socket holds into `space`
    /// without taking them (`MSG_PEEK`): a PROXY protocol header is looked
    /// at before the bytes behind it (a TLS ClientHello) are left to TLS.
    public static func peek(_ fd: CInt, into space: UnsafeMutableRawBufferPointer) -> IOResult {
        receive(fd, into: space, flags: CInt(MSG_PEEK))
    }

    /// Takes exactly what `recv` returns into `space` (at most `space.count`).
    public static func receive(_ fd: CInt, into space: UnsafeMutableRawBufferPointer) -> IOResult {
        receive(fd, into: space, flags: 0)
    }

    private static func receive(_ fd: CInt, into space: UnsafeMutableRawBufferPointer, flags: CInt) -> IOResult {
        precondition(space.count > 0, "receive into no space")
        while true {
            let count = Glibc.recv(fd, space.baseAddress, space.count, flags)
            if count > 0 { return .bytes(count) }
            if count == 0 { return .endOfFile }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            checkFatal(error, "recv")
            return .failed(error)
        }
    }

    /// Writes as much of `buffer`'s readable bytes as the socket takes and
    /// consumes what was written.
    @inline(__always)
    public static func write(_ fd: CInt, from buffer: ByteBuffer) -> IOResult {
        let bytes = buffer.readable
        if bytes.count == 0 { return .bytes(0) }
        while true {
            // MSG_NOSIGNAL: a peer that closed must give EPIPE, not SIGPIPE.
            let count = Glibc.send(fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
            if count >= 0 {
                buffer.consume(count)
                return .bytes(count)
            }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            checkFatal(error, "send")
            return .failed(error)
        }
    }

    /// Shuts down the write side (sends FIN) so a peer reading until close
    /// sees the end of the response.
    public static func shutdownWrite(_ fd: CInt) {
        _ = Glibc.shutdown(fd, CInt(SHUT_WR))
    }

    /// Closes a descriptor. A close that fails with EBADF is a bookkeeping bug.
    public static func close(_ fd: CInt) {
        if Glibc.close(fd) != 0 {
            checkFatal(errno, "close")
        }
    }

    /// Ignores SIGPIPE process-wide (writes use MSG_NOSIGNAL too; this covers
    /// any other path).
    public static func ignoreSIGPIPE() {
        signal(SIGPIPE, SIG_IGN)
    }
}
