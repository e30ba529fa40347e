/// A growable byte buffer with separate read and write positions, owned by
/// one connection (no allocation per request).
///
/// A buffer made with a `BufferPool` holds storage only while bytes are in
/// flight: its owner calls `releaseStorage()` when it goes idle, and the
/// next read (`ensureStorage()`) or append takes a chunk from the pool
/// again. Without storage, `capacity` is 0.
///
/// Readable bytes live in `readerIndex..<writerIndex`. Not thread-safe: a
/// buffer belongs to the event loop of its connection.
public final class ByteBuffer {
    @usableFromInline var storage: UnsafeMutableRawPointer
    @usableFromInline var _capacity: Int
    /// Where storage comes from and goes back to (nil: plain allocation).
    @usableFromInline let pool: BufferPool?
    /// `storage` is one of `pool`'s chunks (else allocated, or none).
    @usableFromInline var storageIsPooled = false
    /// Stands in for storage while there is none: never read or written
    /// through, every view of it is empty.
    @usableFromInline static var noStorage: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 16)! }
    /// Bytes allocated for `storage`.
    @inlinable public var capacity: Int { _capacity }
    @usableFromInline var _readerIndex: Int = 0
    @usableFromInline var _writerIndex: Int = 0
    /// Offset of the first unread byte.
    @inlinable public var readerIndex: Int { _readerIndex }
    /// Offset one past the last written byte.
    @inlinable public var writerIndex: Int { _writerIndex }

    /// Creates a buffer with `capacity` bytes preallocated.
    public init(capacity: Int) {
        precondition(capacity > 0, "ByteBuffer capacity must be positive")
        self._capacity = capacity
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        self.pool = nil
    }

    /// Creates a buffer without storage that takes `pool`'s chunks when it
    /// needs room (and may grow beyond one chunk like any buffer).
    public init(pool: BufferPool) {
        self._capacity = 0
        self.storage = Self.noStorage
        self.pool = pool
    }

    deinit { dropStorage() }

    /// True when the buffer holds no storage (released or never needed).
    @inlinable public var hasStorage: Bool { _capacity > 0 }

    /// Takes storage if the buffer has none, so that `writable` is not empty.
    @inlinable public func ensureStorage() {
        if _capacity == 0 { takeStorage(atLeast: 1) }
    }

    /// Gives the storage back (to the pool, or frees it) when nothing is
    /// buffered; a no-op otherwise. The next `ensureStorage()` or append
    /// takes storage again.
    @inlinable public func releaseStorage() {
        guard _capacity > 0, _writerIndex == _readerIndex else { return }
        dropStorage()
        _readerIndex = 0
        _writerIndex = 0
    }

    @usableFromInline
    func takeStorage(atLeast count: Int) {
        if let pool, count <= pool.chunkSize {
            storage = pool.take()
            _capacity = pool.chunkSize
            storageIsPooled = true
        } else {
            var size = 4096
            while size < count { size *= 2 }
            storage = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            _capacity = size
            storageIsPooled = false
        }
    }

    @usableFromInline
    func dropStorage() {
        guard _capacity > 0 else { return }
        if storageIsPooled, let pool { pool.give(storage) } else { storage.deallocate() }
        storage = Self.noStorage
        _capacity = 0
        storageIsPooled = false
    }

    /// Number of bytes waiting to be read.
    @inlinable public var readableBytes: Int { writerIndex - readerIndex }

    /// True when nothing is waiting to be read.
    @inlinable public var isEmpty: Bool { writerIndex == readerIndex }

    /// The unread bytes. Valid until the next mutating call.
    @inlinable public var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: storage + readerIndex, count: writerIndex - readerIndex)
    }

    /// Space after `writerIndex`, for a `read` system call to fill. Call
    /// `didWrite(_:)` with the number of bytes written.
    @inlinable public var writable: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: storage + writerIndex, count: capacity - writerIndex)
    }

    /// Space left after `writerIndex` without compacting or growing.
    @inlinable public var writableBytes: Int { capacity - writerIndex }

    /// Records that `count` bytes were written into `writable`.
    @inlinable public func didWrite(_ count: Int) {
        precondition(count >= 0 && writerIndex + count <= capacity, "ByteBuffer write past capacity")
        _writerIndex += count
    }

    /// Marks `count` readable bytes as consumed.
    @inlinable public func consume(_ count: Int) {
        precondition(count >= 0 && count <= readableBytes, "ByteBuffer consumed more than readable")
        _readerIndex += count
        if readerIndex == writerIndex {
            _readerIndex = 0
            _writerIndex = 0
        }
    }

    /// Drops all content, keeping the allocation.
    @inlinable public func clear() {
        _readerIndex = 0
        _writerIndex = 0
    }

    /// Makes at least `count` bytes writable: first by moving unread bytes
    /// to the front, then by growing the allocation.
    @inlinable
    public func reserveWritable(_ count: Int) {
        // The common case (room already) stays inline in the caller.
        if capacity - _writerIndex >= count { return }
        makeRoom(count)
    }

    @usableFromInline
    func makeRoom(_ count: Int) {
        if _capacity == 0 {
            takeStorage(atLeast: count)
            return
        }
        if readerIndex > 0 {
            let unread = readableBytes
            if unread > 0 { (storage).copyMemory(from: storage + readerIndex, byteCount: unread) }
            _readerIndex = 0
            _writerIndex = unread
            if capacity - writerIndex >= count { return }
        }
        var newCapacity = capacity
        while newCapacity - writerIndex < count { newCapacity *= 2 }
        let newStorage = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        newStorage.copyMemory(from: storage, byteCount: writerIndex)
        if storageIsPooled, let pool { pool.give(storage) } else { storage.deallocate() }
        storageIsPooled = false
        storage = newStorage
        _capacity = newCapacity
    }

    /// Moves unread bytes to the front so that `writable` is as large as the
    /// allocation allows.
    public func compact() {
        guard readerIndex > 0 else { return }
        let unread = readableBytes
        if unread > 0 { storage.copyMemory(from: storage + readerIndex, byteCount: unread) }
        _readerIndex = 0
        _writerIndex = unread
    }

    /// Appends bytes, growing if needed.
    @inlinable public func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        reserveWritable(bytes.count)
        (storage + writerIndex).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        _writerIndex += bytes.count
    }

    /// Appends an array of bytes, growing if needed.
    @inlinable public func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends a compile-time string's UTF-8 bytes.
    @inlinable public func append(_ string: StaticString) {
        append(UnsafeRawBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }

    /// Appends one byte.
    @inlinable public func append(byte: UInt8) {
        reserveWritable(1)
        storage.storeBytes(of: byte, toByteOffset: writerIndex, as: UInt8.self)
        _writerIndex += 1
    }
}
