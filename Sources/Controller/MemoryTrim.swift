#if canImport(Glibc)
    import Glibc
#endif

/// Gives memory the allocator keeps after frees back to the system.
///
/// glibc's malloc keeps freed blocks in its arenas; after a bulk delete of
/// thousands of objects, RSS stays at its peak unless `malloc_trim` asks it
/// to release whole free pages. The functions are looked up at run time
/// because the Glibc module does not export `<malloc.h>`; on another C
/// library this does nothing.
enum MemoryTrim {
    private typealias TrimFunction = @convention(c) (Int) -> Int32
    private typealias OptionFunction = @convention(c) (Int32, Int32) -> Int32

    /// Releases free memory at the top of the heap and whole free pages
    /// inside it (glibc `malloc_trim(0)`). Takes milliseconds on a large
    /// heap: call it off the data path, after a large removal.
    static func giveBackFreedMemory() {
        #if canImport(Glibc)
            // RTLD_DEFAULT (a null handle): the symbol wherever it is loaded.
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
            _ = unsafeBitCast(symbol, to: TrimFunction.self)(0)
        #endif
    }

    /// Blocks of at least this many bytes get pages of their own.
    static let largeBlockBytes: Int32 = 4 * 1024 * 1024
    /// A thread's heap gives back free room at its top past this many bytes.
    static let heapTopBytes: Int32 = 256 * 1024

    /// Fixes glibc's thresholds (`mallopt`) so that large blocks (the hash
    /// tables of a large cluster: megabytes each) get pages of their own,
    /// returned when freed, and a thread's heap gives back free room at its
    /// top past `heapTopBytes`. Process-wide; idempotent.
    ///
    /// Why: by default both thresholds grow with the largest block freed
    /// (up to 32 MiB and 64 MiB), so once the controller freed a table of
    /// a few MiB its next tables were carved from the thread heaps, and
    /// `malloc_trim` did not give those heaps back: after deleting 10,000
    /// sets RSS stayed 10.7 MiB above a new process's, with two thread
    /// heaps of 40 and 10 MB holding 0.4 MB in use; with fixed thresholds
    /// (glibc tunables, same run), 2.8 MiB. Blocks below 4 MiB are served
    /// from the heaps: with 256 KiB, the arrays an endpoint change copies
    /// (1-2 MB at 20,000 clusters) were mapped and unmapped on every
    /// change, and a quiet EndpointSlice change took a median of 6.1 ms
    /// instead of 4.2 (one A/B run each).
    static func returnLargeBlocksWhenFreed() {
        #if canImport(Glibc)
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
            let mallopt = unsafeBitCast(symbol, to: OptionFunction.self)
            // <malloc.h>: M_TRIM_THRESHOLD -1, M_MMAP_THRESHOLD -3. Setting
            // either turns off glibc's dynamic adjustment of both.
            _ = mallopt(-3, largeBlockBytes)
            _ = mallopt(-1, heapTopBytes)
        #endif
    }
}
