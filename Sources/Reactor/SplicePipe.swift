import CPosternShim
import Glibc

/// A kernel pipe that bytes pass through on their way from one socket to
/// another with `splice(2)`, without being copied into user space.
///
/// The pipe's pages hold only the bytes in flight (at most `capacity`);
/// an empty pipe costs two descriptors and no buffer memory. A pipe that
/// still holds bytes when its transfer is abandoned must be closed, never
/// reused: those bytes belong to another response.
public final class SplicePipe {
    /// Read end: `splice` from here into the destination socket.
    public let readEnd: CInt
    /// Write end: `splice` from the source socket into here.
    public let writeEnd: CInt
    /// Bytes the kernel lets a pipe hold by default (16 pages); a `splice`
    /// into the pipe asks for no more than this so it never blocks half-way.
    public static let capacity = 64 * 1024

    private init(readEnd: CInt, writeEnd: CInt) {
        self.readEnd = readEnd
        self.writeEnd = writeEnd
    }

    /// A new non-blocking pipe, or nil when the process is out of descriptors
    /// (the caller copies through user space instead).
    public static func make() -> SplicePipe? {
        var fds: (CInt, CInt) = (-1, -1)
        let result = withUnsafeMutableBytes(of: &fds) { raw in
            postern_pipe_nonblocking(raw.baseAddress!.assumingMemoryBound(to: CInt.self))
        }
        guard result == 0 else { return nil }
        return SplicePipe(readEnd: fds.0, writeEnd: fds.1)
    }

    deinit {
        Socket.close(readEnd)
        Socket.close(writeEnd)
    }
}

/// `splice(2)` between a socket and a pipe, with the same outcome mapping
/// as `Socket.read` and `Socket.write`.
public enum Splice {
    /// Moves up to `count` bytes from `source` to `destination` (one of them
    /// a pipe) without blocking. `more` tells the kernel further bytes follow
    /// (SPLICE_F_MORE), so a socket destination need not push a short segment.
    ///
    /// `.endOfFile` means the source socket reached its end; EPIPE or
    /// ECONNRESET from a closed destination come back as `.failed` (SIGPIPE is
    /// ignored process-wide: `Socket.ignoreSIGPIPE`).
    public static func move(from source: CInt, to destination: CInt, count: Int, more: Bool) -> IOResult {
        precondition(count > 0, "splice of nothing")
        while true {
            let moved = postern_splice(source, destination, count, more ? 1 : 0)
            if moved > 0 { return .bytes(moved) }
            if moved == 0 { return .endOfFile }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            Socket.checkFatal(error, "splice")
            return .failed(error)
        }
    }
}

/// A per-worker free list of empty `SplicePipe`s, so that a large response
/// costs no `pipe2` and `close` calls once the worker is warm.
///
/// Loop-bound: one pool per event loop, used from that loop's thread only.
public final class SplicePipePool {
    /// Most idle pipes kept (two descriptors each); more given back are closed.
    public let keepLimit: Int
    private var idle: [SplicePipe] = []
    /// Pipes created since start (each is two `pipe2` descriptors).
    public private(set) var created = 0

    public init(keepLimit: Int) {
        self.keepLimit = keepLimit
    }

    /// Idle pipes held now.
    public var idleCount: Int { idle.count }

    /// An empty pipe: an idle one, or a new one; nil when none can be made.
    public func take() -> SplicePipe? {
        if let pipe = idle.popLast() { return pipe }
        guard let pipe = SplicePipe.make() else { return nil }
        created += 1
        return pipe
    }

    /// Takes back a pipe whose transfer finished, so it is empty. A pipe
    /// abandoned with bytes in it must be dropped instead (its `deinit`
    /// closes it).
    public func giveBack(_ pipe: SplicePipe) {
        if idle.count < keepLimit { idle.append(pipe) }
    }
}
