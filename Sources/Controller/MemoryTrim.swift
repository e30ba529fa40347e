#if canImport(Glibc)
    import Glibc
#endif

/// Gives memory the allocator keeps after frees back to the system.
///
/// glibc's malloc keeps freed blocks in its arenas; after a bulk delete of
/// thousands of objects, RSS stays at its peak unless `malloc_trim` asks it
/// to release whole free pages. The function is looked up at run time
/// because the Glibc module does not export `<malloc.h>`; on another C
/// library this does nothing.
enum MemoryTrim {
    private typealias TrimFunction = @convention(c) (Int) -> Int32

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
}
