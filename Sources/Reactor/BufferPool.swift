import CPosternShim
import Glibc

/// A per-worker free list of fixed-size byte chunks for connection buffers,
/// so that a connection holds buffer memory only while bytes are in flight
/// (`ByteBuffer.releaseStorage()` when it goes idle).
///
/// Chunks are mapped with `mmap` one by one and unmapped when the pool gives
/// them up, never `malloc`ed: glibc keeps freed 16 KiB blocks in its heap
/// (measured: RSS stayed at the storm's peak), while an unmapped chunk is
/// returned to the kernel at once. The pool keeps at most `keepLimit` free
/// chunks, and `trim()` (called about once a second by the worker) unmaps
/// the free chunks that no connection took since the previous trim, so RSS
/// comes back after a burst of connections while steady traffic keeps its
/// working set (no system call per request).
///
/// Loop-bound: one pool per event loop, used from that loop's thread only.
public final class BufferPool {
    /// Bytes in every chunk (a multiple of the page size).
    public let chunkSize: Int
    /// Most free chunks kept; more given back are unmapped at once.
    public let keepLimit: Int
    @usableFromInline var free: [UnsafeMutableRawPointer] = []
    /// The fewest free chunks seen since the last trim: that many were idle all along.
    @usableFromInline var lowWater = 0
    /// Chunks handed out and not given back.
    public private(set) var outstanding = 0
    /// Chunks mapped and not unmapped (outstanding + free).
    public var mapped: Int { outstanding + free.count }

    /// A pool of `chunkSize`-byte chunks (rounded up to whole pages).
    public init(chunkSize: Int, keepLimit: Int) {
        let page = max(Int(sysconf(CInt(_SC_PAGESIZE))), 4096)
        self.chunkSize = (chunkSize + page - 1) / page * page
        self.keepLimit = keepLimit
        free.reserveCapacity(keepLimit)
    }

    deinit {
        for chunk in free { Self.unmap(chunk, chunkSize) }
    }

    /// A chunk of `chunkSize` bytes, from the free list or freshly mapped.
    public func take() -> UnsafeMutableRawPointer {
        outstanding += 1
        if let chunk = free.popLast() {
            if free.count < lowWater { lowWater = free.count }
            return chunk
        }
        lowWater = 0
        guard let chunk = mmap(nil, chunkSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            chunk != UnsafeMutableRawPointer(bitPattern: -1)
        else {
            // Out of address space or map count: nothing sensible is left to do.
            preconditionFailure("BufferPool: mmap of \(chunkSize) bytes failed (errno \(errno))")
        }
        return chunk
    }

    /// Gives back a chunk taken from this pool.
    public func give(_ chunk: UnsafeMutableRawPointer) {
        precondition(outstanding > 0, "BufferPool: a chunk given back that was not taken")
        outstanding -= 1
        if free.count < keepLimit {
            free.append(chunk)
        } else {
            Self.unmap(chunk, chunkSize)
        }
    }

    /// Unmaps the free chunks no one took since the last call (at most all
    /// of them); returns how many.
    @discardableResult
    public func trim() -> Int {
        let surplus = min(lowWater, free.count)
        for _ in 0..<surplus { Self.unmap(free.removeLast(), chunkSize) }
        lowWater = free.count
        return surplus
    }

    private static func unmap(_ chunk: UnsafeMutableRawPointer, _ size: Int) {
        _ = munmap(chunk, size)
    }
}

/// The C heap, for giving memory back after a burst of connections.
public enum HeapTrim {
    /// Returns whole free pages of every malloc arena to the kernel (glibc
    /// `malloc_trim(0)`). glibc keeps the pages of freed connection objects
    /// otherwise, and RSS stays at a storm's peak. Takes a few milliseconds
    /// on a large heap and locks each arena in turn: call it rarely (after
    /// thousands of connections closed), never per request.
    public static func giveBackFreePages() {
        _ = postern_malloc_trim()
    }
}
