import FoundationEssentials
import Support

/// The CPUs the process may use under its cgroup's CPU quota: a container
/// limited to 1.5 CPUs on a 32-core node gets 2 workers, not 32 (each extra
/// worker would only add throttling and latency).
enum CPUQuota {
    /// cgroup v2's quota file as seen from inside a container.
    static let defaultPath = "/sys/fs/cgroup/cpu.max"

    /// Workers for `workers: 0` (the default): the quota in `path` rounded
    /// up, at most `availableCPUs`, at least 1. Without a quota (`max`, no
    /// file, cgroup v1 files saying -1): `availableCPUs`.
    static func workers(availableCPUs: Int, cpuMaxPath: String = defaultPath) -> Int {
        let cpus = max(1, availableCPUs)
        guard let quota = quota(cpuMaxPath: cpuMaxPath) else { return cpus }
        return max(1, min(cpus, Int(quota.rounded(.up))))
    }

    /// The quota in CPUs, or nil when there is none.
    static func quota(cpuMaxPath: String) -> Double? {
        if let text = read(cpuMaxPath) {
            // cgroup v2: "QUOTA PERIOD" in microseconds, or "max PERIOD".
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard fields.count >= 2, let quota = Double(fields[0]), let period = Double(fields[1]), quota > 0, period > 0 else {
                return nil
            }
            return quota / period
        }
        // cgroup v1 next to the v2 path's folder: cpu/cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
        let folder = TextEncoding.folder(of: cpuMaxPath)
        for v1 in [folder + "/cpu", folder + "/cpu,cpuacct"] {
            guard let quotaText = read(v1 + "/cpu.cfs_quota_us"), let periodText = read(v1 + "/cpu.cfs_period_us"),
                  let quota = Double(quotaText.trimmingWhitespace()),
                  let period = Double(periodText.trimmingWhitespace())
            else { continue }
            return quota > 0 && period > 0 ? quota / period : nil
        }
        return nil
    }

    private static func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
}
