import Glibc
import Reactor
import TLS

/// The byte stream under HTTP on one socket: the socket itself, or TLS on
/// top of it. One place for the mapping of TLS outcomes to `IOResult`, used
/// by client, HTTP/2 and upstream connections alike.
enum Transport {
    /// What a read or write needs before it can progress, beyond `IOResult`:
    /// TLS may need the opposite readiness (a read that must write first).
    enum Need {
        case none
        case writable
        case readable
    }

    /// Reads into `buffer`'s free space.
    @inline(__always)
    static func read(fd: CInt, tls: TLSConnection?, into buffer: ByteBuffer, need: inout Need) -> IOResult {
        // A connection back from idle takes its buffer from the worker's pool now.
        buffer.ensureStorage()
        guard let tls else { return Socket.read(fd, into: buffer) }
        switch tls.read(into: buffer.writable) {
        case let .bytes(count):
            buffer.didWrite(count)
            return .bytes(count)
        case .wantRead:
            return .wouldBlock
        case .wantWrite:
            need = .writable
            return .wouldBlock
        case .closed:
            return .endOfFile
        case .failed:
            return .failed(EPROTO)
        }
    }

    /// Writes `buffer`'s readable bytes, consuming what was sent.
    @inline(__always)
    static func write(fd: CInt, tls: TLSConnection?, from buffer: ByteBuffer, need: inout Need) -> IOResult {
        guard let tls else { return Socket.write(fd, from: buffer) }
        switch tls.write(buffer.readable) {
        case let .bytes(count):
            buffer.consume(count)
            return .bytes(count)
        case .wantWrite:
            return .wouldBlock
        case .wantRead:
            need = .readable
            return .wouldBlock
        case .closed, .failed:
            return .failed(EPIPE)
        }
    }
}
