#if canImport(Glibc)
    import Glibc
#endif

/// Scheduling priority of the calling thread.
enum ThreadPriority {
    /// Raises the calling thread's nice value to `nice` (lower priority).
    /// On Linux the nice value belongs to a thread, and `who` 0 is the
    /// calling one; raising it needs no privilege. Failure is ignored: the
    /// thread then runs at the process's priority, as before.
    static func lowerCurrentThread(to nice: Int32) {
        #if canImport(Glibc)
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice)
        #endif
    }
}
