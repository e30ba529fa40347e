import CPosternShim
import Glibc

/// Blocking socket calls for controller threads (the Kubernetes API client
/// and the fake API server used by tests), never for worker loops.
///
/// Every call retries on EINTR. Reads and writes honour the socket's receive
/// and send timeouts (`setTimeouts`), so a stalled peer cannot hold a
/// controller thread forever.
public enum BlockingSocket {
    /// Resolves `host` (a name or a numeric address) and connects to the
    /// first address that accepts within `timeoutMilliseconds`. The returned
    /// descriptor is blocking and close-on-exec.
    public static func connect(host: String, port: UInt16, timeoutMilliseconds: Int32) throws -> CInt {
        var hints = addrinfo()
        hints.ai_socktype = CInt(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let status = getaddrinfo(name, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw SystemError("resolve \(host)", errno: status == EAI_SYSTEM ? errno : EHOSTUNREACH)
        }
        defer { freeaddrinfo(first) }
        var lastError: CInt = ECONNREFUSED
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let info = current.pointee
            let fd = Glibc.socket(info.ai_family, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_NONBLOCK.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                lastError = errno
                continue
            }
            var result = Glibc.connect(fd, info.ai_addr, info.ai_addrlen)
            var error: CInt = result == 0 ? 0 : errno
            while result != 0 && error == EINTR {
                result = Glibc.connect(fd, info.ai_addr, info.ai_addrlen)
                error = result == 0 ? 0 : errno
            }
            if error == EINPROGRESS {
                error = waitFor(fd, events: Int16(POLLOUT), timeoutMilliseconds: timeoutMilliseconds) ? Socket.pendingError(fd) : ETIMEDOUT
            }
            if error == 0 {
                setBlocking(fd)
                Socket.setNoDelay(fd)
                return fd
            }
            lastError = error
            Glibc.close(fd)
        }
        throw SystemError("connect \(host):\(port)", errno: lastError)
    }

    /// Waits until `fd` is ready for `events` (POLLIN, POLLOUT); false on timeout.
    public static func waitFor(_ fd: CInt, events: Int16, timeoutMilliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let result = poll(&entry, 1, timeoutMilliseconds)
            if result > 0 { return true }
            if result == 0 { return false }
            if errno == EINTR { continue }
            return true
        }
    }

    /// Waits up to `timeoutMilliseconds` for a connection on a (non-blocking)
    /// listener; the accepted descriptor is made blocking. Nil on timeout.
    public static func accept(_ listener: CInt, timeoutMilliseconds: Int32) -> CInt? {
        guard waitFor(listener, events: Int16(POLLIN), timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        guard case let .accepted(fd, _) = Socket.accept(listener) else { return nil }
        setBlocking(fd)
        return fd
    }

    /// Clears O_NONBLOCK.
    public static func setBlocking(_ fd: CInt) {
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~CInt(O_NONBLOCK)) }
    }

    /// Sets SO_RCVTIMEO and SO_SNDTIMEO (0 means no timeout).
    public static func setTimeouts(_ fd: CInt, receiveMilliseconds: Int, sendMilliseconds: Int) {
        func option(_ name: CInt, _ milliseconds: Int) {
            var value = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
            setsockopt(fd, SOL_SOCKET, name, &value, socklen_t(MemoryLayout<timeval>.size))
        }
        option(SO_RCVTIMEO, receiveMilliseconds)
        option(SO_SNDTIMEO, sendMilliseconds)
    }

    /// Reads into `buffer`: a byte count (> 0), 0 at end of stream, or nil on
    /// an error or a receive timeout.
    public static func read(_ fd: CInt, into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            return nil
        }
    }

    /// Writes all of `bytes`; false when the peer is gone or the send timed out.
    public static func writeAll(_ fd: CInt, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, CInt(MSG_NOSIGNAL))
            if count > 0 {
                offset += count
                continue
            }
            if count < 0 && errno == EINTR { continue }
            return false
        }
        return true
    }

    /// Shuts down both directions: a thread blocked reading `fd` wakes with
    /// end of stream. The descriptor stays open until `close`.
    public static func shutdown(_ fd: CInt) {
        _ = Glibc.shutdown(fd, CInt(SHUT_RDWR))
    }
}
