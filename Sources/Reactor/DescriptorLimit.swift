import Glibc

/// The process's file-descriptor limit, and the part of it the proxy keeps
/// for everything that is not a proxied connection.
///
/// The kernel hands out the lowest free descriptor. So when the proxy keeps
/// only descriptors below a ceiling (closing at once any accepted or
/// connected socket at or above it), the descriptors above the ceiling stay
/// free for the admin endpoint (`/metrics`, `/healthz`), the manifest
/// directory watch and the Kubernetes client, however many clients connect.
public enum DescriptorLimit {
    /// The soft RLIMIT_NOFILE, or nil when unlimited or unreadable.
    public static func current() -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        // RLIM_INFINITY is all ones (the macro does not import).
        if limit.rlim_cur == rlim_t.max || limit.rlim_cur > rlim_t(Int32.max) { return nil }
        return Int(limit.rlim_cur)
    }

    /// Descriptors kept free for the rest of the process under `limit`: an
    /// eighth of it, at least 8 and at most 64.
    public static func reserve(forLimit limit: Int) -> Int {
        min(64, max(8, limit / 8))
    }

    /// The lowest descriptor number the proxy must not keep (`Int32.max`
    /// without a limit).
    public static func ceiling(forLimit limit: Int?) -> CInt {
        guard let limit else { return .max }
        return CInt(max(limit - reserve(forLimit: limit), 1))
    }

    /// errno values that mean the process or the system is out of descriptors.
    @inline(__always)
    public static func isExhaustion(_ error: CInt) -> Bool {
        error == EMFILE || error == ENFILE
    }

    /// `EMFILE` or `ENFILE`, for log lines.
    public static func name(_ error: CInt) -> String {
        switch error {
        case EMFILE: return "EMFILE"
        case ENFILE: return "ENFILE"
        default: return "errno \(error)"
        }
    }
}
