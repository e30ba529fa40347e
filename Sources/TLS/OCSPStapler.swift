import COpenSSL
import Glibc
import Synchronization

/// OCSP stapling knobs (`enable-ocsp` and the `ocsp-*` keys).
public struct OCSPSettings: Sendable, Equatable {
    /// Longest time between two fetches of a good response (`ocsp-refresh-interval`).
    /// A response is also refetched halfway to its `nextUpdate`, whichever is sooner.
    public var refreshIntervalSeconds = 3600
    /// First retry after a failed fetch (`ocsp-retry-interval`); it doubles
    /// on each failure in a row, up to five minutes (or the refresh interval
    /// when that is shorter).
    public var retryIntervalSeconds = 10
    /// Connect plus transfer time allowed per fetch (`ocsp-timeout`); also the
    /// longest a certificate publish waits for the first response of a
    /// must-staple certificate.
    public var timeoutSeconds = 5

    public init() {}

    /// Seconds to wait before retrying after `failures` failures in a row (1 or more).
    func retryDelay(afterFailures failures: Int) -> Int {
        let cap = max(retryIntervalSeconds, min(300, refreshIntervalSeconds))
        let shift = min(max(failures - 1, 0), 20)
        return min(retryIntervalSeconds << shift, cap)
    }

    /// Seconds until the next fetch of a good response valid until `nextUpdate`.
    func refreshDelay(now: Int, nextUpdate: Int) -> Int {
        max(1, min(refreshIntervalSeconds, (nextUpdate - now) / 2))
    }
}

/// What the stapler reports for logs (the TLS target has no logger).
public struct OCSPLogEntry: Sendable {
    public enum Level: Sendable { case info, warning, error }
    public let level: Level
    public let message: String
    /// The Secret (`namespace/name`) whose certificate this is about.
    public let certificate: String
}

/// The OCSP state of one served certificate (keyed by its leaf), shared
/// by every context serving that leaf.
///
/// Threading: the staple is read by workers in the status callback during
/// handshakes (a short lock: a pointer copy) and replaced by the stapler's
/// thread. The scheduling fields belong to the stapler's lock.
final class OCSPEntry: @unchecked Sendable {
    let subject: OCSPSubject
    /// The first Secret seen with this certificate, for logs and metrics.
    let name: String
    private let staple = Mutex<OCSPStaple?>(nil)

    // Guarded by `OCSPStapler.lock`.
    var nextAttempt: Int
    var failuresInARow = 0
    var attempted = false
    var lastFailure: OCSPFailure?

    init(subject: OCSPSubject, name: String, now: Int) {
        self.subject = subject
        self.name = name
        self.nextAttempt = now
    }

    /// The staple to send at `now`, nil when none is current.
    @inline(__always)
    func current(at now: Int) -> OCSPStaple? {
        staple.withLock { staple in
            guard let staple, staple.isCurrent(at: now) else { return nil }
            return staple
        }
    }

    func replace(with new: OCSPStaple?) { staple.withLock { $0 = new } }

    /// The last verified staple, current or not.
    var last: OCSPStaple? { staple.withLock { $0 } }
}

/// Fetches, verifies, caches and refreshes OCSP responses for served
/// certificates, on one background thread of its own (never a worker),
/// and staples the current one in handshakes that ask for it.
///
/// Responses are cached by leaf certificate across certificate publishes:
/// a new store reuses the entries of the certificates it keeps. A response
/// is stapled only while it verifies and is current; the last good one
/// keeps being stapled while the responder fails, until its `nextUpdate`.
/// A revoked status is never stapled (and drops the previous staple).
public final class OCSPStapler: @unchecked Sendable {
    public let settings: OCSPSettings
    /// Fetches a DER response for a DER request from a responder URL (blocking, bounded by the timeout).
    typealias Fetch = @Sendable (_ url: String, _ request: [UInt8], _ timeoutSeconds: Int) -> Result<[UInt8], OCSPFailure>
    private let fetch: Fetch
    private let clock: @Sendable () -> Int
    private let log: @Sendable (OCSPLogEntry) -> Void
    private let lock = ConditionLock()

    // Guarded by `lock`.
    private var entries: [[UInt8]: OCSPEntry] = [:]
    private var failureCounts: [OCSPFailureReason: UInt64] = [:]
    private var fetchCount: UInt64 = 0
    private var thread: ThreadState = .notStarted

    private enum ThreadState { case notStarted, running, stopping }

    /// A stapler that fetches over HTTP and logs with `log` (default: one line on stderr).
    public convenience init(settings: OCSPSettings, log: (@Sendable (OCSPLogEntry) -> Void)? = nil) {
        self.init(
            settings: settings, fetch: OCSPHTTP.post, clock: { Int(time(nil)) },
            log: log ?? OCSPStapler.logToStandardError)
    }

    /// `background: false` (tests) never starts the thread: `refresh` is called by hand.
    init(
        settings: OCSPSettings, fetch: @escaping Fetch, clock: @escaping @Sendable () -> Int,
        log: @escaping @Sendable (OCSPLogEntry) -> Void, background: Bool = true
    ) {
        self.settings = settings
        self.thread = background ? .notStarted : .stopping
        self.fetch = fetch
        self.clock = clock
        self.log = log
    }

    static let logToStandardError: @Sendable (OCSPLogEntry) -> Void = { entry in
        let level: String
        switch entry.level {
        case .info: level = "info"
        case .warning: level = "warning"
        case .error: level = "error"
        }
        fputs("\(level): ocsp: \(entry.message) secret=\(entry.certificate)\n", stderr)
    }

    // MARK: Certificates (controller thread)

    /// The entry for the certificate of `chainPEM` (nil: it names no
    /// responder), created and scheduled for an immediate fetch when new.
    /// Throws when it names a responder that cannot be used.
    func entry(forChainPEM chainPEM: [UInt8], name: String) throws -> OCSPEntry? {
        guard let subject = try OCSPSubject.make(certificateChainPEM: chainPEM, name: name) else { return nil }
        return lock.withLock {
            if let existing = entries[subject.leafDER] { return existing }
            let entry = OCSPEntry(subject: subject, name: name, now: clock())
            entries[subject.leafDER] = entry
            startThreadIfNeeded()
            lock.broadcast()
            return entry
        }
    }

    /// Stops fetching for every certificate not in `kept` (no longer served).
    func keepOnly(_ kept: [OCSPEntry]) {
        let keys = Set(kept.map(\.subject.leafDER))
        lock.withLock { entries = entries.filter { keys.contains($0.key) } }
    }

    /// Waits until each of `waited` has had its first fetch answered (or
    /// failed), at most `seconds`. Called off the worker loops (the
    /// controller thread builds stores) so that a must-staple certificate is
    /// first served with its staple.
    func waitForFirstAttempt(_ waited: [OCSPEntry], seconds: Int) {
        guard !waited.isEmpty else { return }
        let deadline = clock() + seconds
        lock.withLock {
            // Bounded by the deadline; the count only caps wake-ups (one a
            // second, plus one per fetch answered meanwhile).
            for _ in 0..<((seconds + 2) * 64) {
                if waited.allSatisfy(\.attempted) || clock() >= deadline { return }
                lock.wait(seconds: 1)
            }
        }
    }

    /// The last failure of `entry` (nil: its last fetch succeeded, or none yet).
    func lastFailure(of entry: OCSPEntry) -> OCSPFailure? { lock.withLock { entry.lastFailure } }

    /// Stops the background thread (it exits after its current fetch).
    public func stop() {
        lock.withLock {
            if thread == .running { thread = .stopping }
            lock.broadcast()
        }
    }

    // MARK: Fetching (the stapler's thread, or a test)

    /// Fetches and verifies one response for `entry` now and applies the result.
    func refresh(_ entry: OCSPEntry) {
        let outcome = fetch(entry.subject.responderURL, entry.subject.requestDER(), settings.timeoutSeconds)
            .flatMap { entry.subject.verify(responseDER: $0, now: clock()) }
        apply(outcome, to: entry)
    }

    private func apply(_ outcome: Result<OCSPStaple, OCSPFailure>, to entry: OCSPEntry) {
        let now = clock()
        var report: OCSPLogEntry?
        switch outcome {
        case .success(let staple):
            entry.replace(with: staple)
            lock.withLock {
                if entry.lastFailure != nil || !entry.attempted {
                    report = OCSPLogEntry(
                        level: .info, message: "stapling the response from \(entry.subject.responderURL) (good, next update \(staple.nextUpdate))",
                        certificate: entry.name)
                }
                fetchCount += 1
                entry.failuresInARow = 0
                entry.lastFailure = nil
                entry.attempted = true
                entry.nextAttempt = now + settings.refreshDelay(now: now, nextUpdate: staple.nextUpdate)
                lock.broadcast()
            }
        case .failure(let failure):
            if failure.reason == .revoked { entry.replace(with: nil) }
            let kept = entry.current(at: now)
            lock.withLock {
                fetchCount += 1
                failureCounts[failure.reason, default: 0] += 1
                entry.lastFailure = failure
                entry.attempted = true
                if failure.reason == .revoked {
                    // Not a transient failure: ask again at the normal pace.
                    entry.failuresInARow = 0
                    entry.nextAttempt = now + settings.refreshIntervalSeconds
                } else {
                    entry.failuresInARow += 1
                    entry.nextAttempt = now + settings.retryDelay(afterFailures: entry.failuresInARow)
                }
                lock.broadcast()
            }
            let consequence =
                failure.reason == .revoked
                ? "the certificate is REVOKED; no OCSP response is stapled: replace the certificate"
                : kept.map { "still stapling the last good response until \($0.nextUpdate)" } ?? "no OCSP response is stapled"
            report = OCSPLogEntry(
                level: failure.reason == .revoked ? .error : .warning,
                message: "OCSP response from \(entry.subject.responderURL) not used (\(failure)); \(consequence)",
                certificate: entry.name)
        }
        if let report { log(report) }
    }

    private func startThreadIfNeeded() {
        guard thread == .notStarted else { return }
        thread = .running
        let box = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let created = pthread_create(
            &handle, nil,
            { argument in
                guard let argument else { return nil }
                let stapler = Unmanaged<OCSPStapler>.fromOpaque(argument).takeRetainedValue()
                stapler.run()
                return nil
            }, box)
        if created == 0 {
            pthread_detach(handle)
        } else {
            Unmanaged<OCSPStapler>.fromOpaque(box).release()
            thread = .notStarted
            log(OCSPLogEntry(level: .error, message: "cannot start the OCSP thread (error \(created)); nothing is stapled", certificate: "-"))
        }
    }

    /// The thread's loop: fetch what is due, then sleep until the next due
    /// time (or a new certificate, or stop).
    private func run() {
        while true {
            let due: [OCSPEntry]? = lock.withLock {
                while thread == .running {
                    let now = clock()
                    let ready = entries.values.filter { $0.nextAttempt <= now }
                    if !ready.isEmpty { return ready }
                    let earliest = entries.values.map(\.nextAttempt).min() ?? now + 3600
                    lock.wait(seconds: max(1, min(earliest - now, 3600)))
                }
                return nil
            }
            guard let due else { return }
            // A new must-staple certificate first: a publish may be waiting for it.
            let waitedFor = due.filter { entry in entry.subject.mustStaple && !lock.withLock { entry.attempted } }
            for entry in waitedFor + due.filter({ entry in !waitedFor.contains { $0 === entry } }) { refresh(entry) }
        }
    }

    // MARK: Metrics

    /// `postern_ocsp_*` metrics in the Prometheus text format, for a collector.
    public func renderPrometheus() -> String {
        let now = clock()
        let (served, failures, fetches) = lock.withLock {
            (entries.values.sorted { $0.name < $1.name }, failureCounts, fetchCount)
        }
        var out = "# HELP postern_ocsp_staple_age_seconds Age (now minus thisUpdate) of the OCSP response stapled for a certificate; absent while none is stapled.\n"
        out += "# TYPE postern_ocsp_staple_age_seconds gauge\n"
        var stapled = 0
        for entry in served {
            guard let staple = entry.current(at: now) else { continue }
            stapled += 1
            out += "postern_ocsp_staple_age_seconds{certificate=\"\(Self.escapeLabel(entry.name))\"} \(max(0, now - staple.thisUpdate))\n"
        }
        out += "# HELP postern_ocsp_certificates Served certificates that name an OCSP responder, by whether a current response is stapled.\n"
        out += "# TYPE postern_ocsp_certificates gauge\n"
        out += "postern_ocsp_certificates{stapled=\"true\"} \(stapled)\n"
        out += "postern_ocsp_certificates{stapled=\"false\"} \(served.count - stapled)\n"
        out += "# HELP postern_ocsp_fetches_total OCSP responses fetched (or attempted).\n# TYPE postern_ocsp_fetches_total counter\n"
        out += "postern_ocsp_fetches_total \(fetches)\n"
        out += "# HELP postern_ocsp_fetch_failures_total OCSP fetches whose response was not stapled, by reason.\n"
        out += "# TYPE postern_ocsp_fetch_failures_total counter\n"
        for reason in OCSPFailureReason.allCases {
            out += "postern_ocsp_fetch_failures_total{reason=\"\(reason.rawValue)\"} \(failures[reason] ?? 0)\n"
        }
        return out
    }

    private static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}

/// Stapling on a server context: the status callback and its argument.
extension TLSServerContext {
    /// Staples `entry`'s current response in handshakes on this context
    /// that ask for one. Called once, before the context is published.
    func installStapling(_ entry: OCSPEntry) {
        precondition(ocspEntry == nil || ocspEntry === entry, "a context staples the responses of one certificate")
        guard ocspEntry == nil else { return }
        ocspEntry = entry
        _ = postern_SSL_CTX_set_tlsext_status_cb(context, ocspStatusRequested)
        _ = postern_SSL_CTX_set_tlsext_status_arg(context, Unmanaged.passUnretained(entry).toOpaque())
    }
}

/// Status callback (a worker, during a handshake whose client sent
/// status_request): staples a copy of the current response, or sends none.
/// The context holds its entry, so the argument outlives the handshake.
private func ocspStatusRequested(_ ssl: OpaquePointer?, _ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let ssl, let argument else { return SSL_TLSEXT_ERR_NOACK }
    let entry = Unmanaged<OCSPEntry>.fromOpaque(argument).takeUnretainedValue()
    guard let staple = entry.current(at: Int(time(nil))) else { return SSL_TLSEXT_ERR_NOACK }
    let stapled = staple.der.withUnsafeBufferPointer { postern_SSL_staple_copy(ssl, $0.baseAddress, $0.count) }
    return stapled == 1 ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK
}

/// OCSP over HTTP (RFC 6960 Appendix A.1: POST, `application/ocsp-request`).
enum OCSPHTTP {
    /// Largest response read: real ones are a few KiB.
    static let maximumResponseBytes = 64 * 1024

    /// POSTs `request` to `url`; blocking, bounded by `timeoutSeconds`.
    /// Proxies follow OpenSSL's rules (`http_proxy`, `no_proxy`).
    @Sendable static func post(url: String, request: [UInt8], timeoutSeconds: Int) -> Result<[UInt8], OCSPFailure> {
        defer { OpenSSLErrors.clear() }
        guard !request.isEmpty else { return .failure(OCSPFailure(.fetch, "cannot encode the OCSP request")) }
        var useTLS: Int32 = 0
        var host: UnsafeMutablePointer<CChar>?
        var port: UnsafeMutablePointer<CChar>?
        var path: UnsafeMutablePointer<CChar>?
        guard OSSL_HTTP_parse_url(url, &useTLS, nil, &host, &port, nil, &path, nil, nil) == 1 else {
            return .failure(OCSPFailure(.fetch, "cannot parse responder URL \(url)"))
        }
        defer {
            CRYPTO_free(host, nil, 0)
            CRYPTO_free(port, nil, 0)
            CRYPTO_free(path, nil, 0)
        }
        guard useTLS == 0 else { return .failure(OCSPFailure(.fetch, "https responders are not supported: \(url)")) }
        return request.withUnsafeBytes { raw -> Result<[UInt8], OCSPFailure> in
            guard let body = BIO_new_mem_buf(raw.baseAddress, Int32(raw.count)) else {
                return .failure(OCSPFailure(.fetch, "BIO_new_mem_buf failed"))
            }
            defer { BIO_free(body) }
            guard
                let answer = OSSL_HTTP_transfer(
                    nil, host, port, path, 0, nil, nil, nil, nil, nil, nil, 0, nil, "application/ocsp-request", body, nil, 1,
                    maximumResponseBytes, Int32(timeoutSeconds), 0)
            else {
                return .failure(OCSPFailure(.fetch, "no response from \(url)" + OpenSSLErrors.drain()))
            }
            defer { BIO_free_all(answer) }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            // Bounded: the body is at most maximumResponseBytes, held in memory.
            for _ in 0...(maximumResponseBytes / chunk.count + 1) {
                let read = chunk.withUnsafeMutableBytes { BIO_read(answer, $0.baseAddress, Int32($0.count)) }
                if read <= 0 { break }
                bytes += chunk[0..<Int(read)]
            }
            return bytes.isEmpty ? .failure(OCSPFailure(.fetch, "empty response from \(url)")) : .success(bytes)
        }
    }
}

/// A pthread mutex with a condition variable (the stapler's thread sleeps
/// on it until the next fetch is due).
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        precondition(pthread_cond_init(condition, nil) == 0, "pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits (lock held) for a broadcast or `seconds`.
    func wait(seconds: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += seconds
        _ = pthread_cond_timedwait(condition, mutex, &deadline)
    }

    func broadcast() { pthread_cond_broadcast(condition) }
}
