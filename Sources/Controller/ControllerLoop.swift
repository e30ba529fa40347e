import Foundation
import Kube
import RouteModel
import Routing
import Translate

/// Watches a manifest directory and publishes a new `RoutingTable` whenever
/// the routing configuration it describes changes.
///
/// The pipeline of one round, all on the controller's own thread: poll the
/// directory's file stamps (every `pollInterval`) → debounce (wait until no
/// change for `holdoff`, at most `maximumHoldoff` after the first change) →
/// load changed files → translate → compare with the last model → compile and
/// `publish` only when it changed (the first load always publishes) →
/// `report` diagnostics that were not reported in the previous round.
///
/// The same loop serves the Kubernetes API source (`init(store:...)`): then
/// informers fill a `KubeObjectStore`, every store change starts the
/// debounce, and nothing is published until every watched resource has
/// completed its initial list. After that, a failing API server changes
/// nothing: the store keeps its objects and the last table keeps serving.
///
/// Translation is incremental (`IncrementalTranslator`): a round hands the
/// translator only the objects that changed since the last one (read from
/// the store through a change cursor, or found by comparing the directory's
/// objects) and gets the same model a full translation of every object
/// would give, for work proportional to the change.
///
/// Threading: `publish` and `report` run on the controller thread. Counters
/// may be read from any thread. Call `loadInitial()` (optional) before `start()`.
public final class ControllerLoop: @unchecked Sendable {
    /// The manifest directory.
    public let directory: String
    public let options: TranslateOptions
    /// How often file stamps are compared.
    public let pollInterval: Duration
    /// Quiet time after the last change before reloading.
    public let holdoff: Duration
    /// Longest delay between the first change and the reload, even if changes continue.
    public let maximumHoldoff: Duration

    private let publish: @Sendable (RoutingTable, RouteModel) -> Void
    private let report: @Sendable ([Diagnostic]) -> Void
    /// Receives the certificate model when it changes (before `publish` of the same round).
    private let publishTLS: (@Sendable (TLSModel) -> Void)?
    /// `--default-ssl-certificate`: `namespace/name` of a TLS Secret.
    public let defaultCertificateSecret: String?

    private enum Lifecycle {
        case idle
        case running
        case stopping
        case stopped
    }

    /// Guards `lifecycle` and the counters; signalled on `stop()` and thread exit.
    private let condition = NSCondition()
    private var lifecycle = Lifecycle.idle
    private var threadFinished = false
    private var reloadCount = 0
    private var reloadFailureCount = 0
    private var lastSuccess: Date? = nil
    private var currentGeneration: UInt64 = 0

    /// Serialises reloads (`loadInitial` against the thread) and guards the state below.
    private let reloadLock = NSLock()
    /// The directory source (nil with the store source).
    private let manifests: ManifestDirectory?
    /// The Kubernetes API source (nil with the directory source).
    public let store: KubeObjectStore?
    /// Store changes signalled and not yet taken by the loop (guarded by `condition`).
    private var storeChanges: UInt64 = 0
    private var lastModel: RouteModel? = nil
    /// The last table built: the next compilation shares its unchanged clusters.
    private var lastTable: RoutingTable? = nil
    private var lastTLS: TLSModel? = nil
    private var reported: Set<Diagnostic> = []
    /// Keeps the translation up to date with the objects (guarded by `reloadLock`).
    private let translator: IncrementalTranslator
    /// The store changes this loop has not translated yet (store source only).
    private let storeCursor: KubeObjectStore.ChangeCursor?
    /// The translator's diagnostics of the last round and what they became
    /// (store source: unchanged diagnostics are not merged and sorted again).
    private var lastTranslatedDiagnostics: (routes: [Diagnostic], tls: [Diagnostic])? = nil
    private var lastDiagnostics: [Diagnostic] = []

    /// Creates a loop; nothing happens until `loadInitial()` or `start()`.
    public init(
        directory: String, options: TranslateOptions,
        pollInterval: Duration = .milliseconds(200), holdoff: Duration = .milliseconds(100),
        maximumHoldoff: Duration = .milliseconds(500),
        defaultCertificateSecret: String? = nil,
        publish: @escaping @Sendable (RoutingTable, RouteModel) -> Void,
        publishTLS: (@Sendable (TLSModel) -> Void)? = nil,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.defaultCertificateSecret = defaultCertificateSecret
        self.publishTLS = publishTLS
        self.directory = directory
        self.options = options
        self.pollInterval = pollInterval
        self.holdoff = holdoff
        self.maximumHoldoff = maximumHoldoff
        self.publish = publish
        self.report = report
        self.manifests = ManifestDirectory(path: directory)
        self.store = nil
        translator = IncrementalTranslator(options: options, defaultCertificateSecret: defaultCertificateSecret)
        storeCursor = nil
    }

    /// Creates a loop fed by the Kubernetes API through `store` (whose
    /// informers the caller starts). The first table is published by the
    /// loop itself once the store is synced.
    public init(
        store: KubeObjectStore, options: TranslateOptions,
        holdoff: Duration = .milliseconds(100), maximumHoldoff: Duration = .milliseconds(500),
        defaultCertificateSecret: String? = nil,
        publish: @escaping @Sendable (RoutingTable, RouteModel) -> Void,
        publishTLS: (@Sendable (TLSModel) -> Void)? = nil,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.defaultCertificateSecret = defaultCertificateSecret
        self.publishTLS = publishTLS
        self.directory = ""
        self.options = options
        self.pollInterval = .milliseconds(200)
        self.holdoff = holdoff
        self.maximumHoldoff = maximumHoldoff
        self.publish = publish
        self.report = report
        self.manifests = nil
        self.store = store
        translator = IncrementalTranslator(options: options, defaultCertificateSecret: defaultCertificateSecret)
        storeCursor = store.makeCursor()
        store.onChange { [weak self] in self?.storeChanged() }
    }

    private func storeChanged() {
        condition.withLock {
            storeChanges &+= 1
            condition.broadcast()
        }
    }

    /// Every diagnostic of the last round (not only the new ones), sorted.
    public var currentDiagnostics: [Diagnostic] { reloadLock.withLock { reported.sorted() } }

    /// The last model built (nil before the first table), for `/debug/routes`-style views.
    public var currentModel: RouteModel? { reloadLock.withLock { lastModel } }

    // MARK: Counters

    /// Reloads done (including the initial load).
    public var reloads: Int { condition.withLock { reloadCount } }
    /// Reloads in which a file or the directory could not be read or parsed
    /// (the last good objects of that file were kept).
    public var reloadFailures: Int { condition.withLock { reloadFailureCount } }
    /// When the last reload without such a failure finished.
    public var lastSuccessfulReload: Date? { condition.withLock { lastSuccess } }
    /// Generation of the last table built (0 before the first).
    public var generation: UInt64 { condition.withLock { currentGeneration } }

    // MARK: Lifecycle

    /// Loads, translates and compiles synchronously, for start-up. Does not
    /// call `publish` or `report`: the caller installs the table and logs the
    /// diagnostics; the loop then reports only what changes after this.
    public func loadInitial() -> (table: RoutingTable, model: RouteModel, diagnostics: [Diagnostic]) {
        let initial = loadInitialConfiguration()
        return (initial.table, initial.model, initial.diagnostics)
    }

    /// `loadInitial()` plus the certificate model.
    public func loadInitialConfiguration() -> (table: RoutingTable, model: RouteModel, tls: TLSModel, diagnostics: [Diagnostic]) {
        let round = reload(force: true)
        // `force` always builds a table.
        let table = round.table ?? RoutingTable(model: round.model, generation: generation)
        return (table, round.model, round.tls, round.diagnostics)
    }

    /// Starts the controller thread. Does nothing if already started.
    public func start() {
        let shouldStart = condition.withLock { () -> Bool in
            guard lifecycle == .idle else { return false }
            lifecycle = .running
            return true
        }
        guard shouldStart else { return }
        let thread = Thread { [self] in
            run()
            condition.withLock {
                threadFinished = true
                lifecycle = .stopped
                condition.broadcast()
            }
        }
        thread.name = "postern-controller"
        thread.start()
    }

    /// Stops the controller thread and waits until it has exited (at most one
    /// reload in progress finishes first). Safe to call more than once.
    public func stop() {
        condition.lock()
        defer { condition.unlock() }
        switch lifecycle {
        case .idle:
            lifecycle = .stopped
            return
        case .stopped:
            return
        case .running, .stopping:
            lifecycle = .stopping
            condition.broadcast()
            while !threadFinished { condition.wait() }
        }
    }

    private var isRunning: Bool { condition.withLock { lifecycle == .running } }

    /// Sleeps up to `duration`, returning early (false) when stopping.
    private func sleep(_ duration: Duration) -> Bool {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
        let deadline = Date().addingTimeInterval(max(0, seconds))
        condition.lock()
        defer { condition.unlock() }
        while lifecycle == .running {
            if !condition.wait(until: deadline) { return lifecycle == .running }
        }
        return false
    }

    private func run() {
        if store != nil {
            runStoreSource()
            return
        }
        let clock = ContinuousClock()
        if lastModelIsEmpty() {
            _ = reload(force: false)
        }
        // Compare against what was loaded, not what is there now: a write
        // between `loadInitial()` and this point must still count as a change.
        var stamps = loadedStamps()
        var firstChange: ContinuousClock.Instant? = nil
        var lastChange = clock.now
        var wait = pollInterval
        while sleep(wait) {
            let now = clock.now
            let current = manifests?.fingerprint()
            if current != stamps {
                stamps = current
                lastChange = now
                if firstChange == nil { firstChange = now }
            }
            wait = pollInterval
            guard let first = firstChange else { continue }
            let quiet = now - lastChange
            let pending = now - first
            if quiet >= holdoff || pending >= maximumHoldoff {
                firstChange = nil
                _ = reload(force: false)
                // Files written during the reload differ from these and are seen by the next poll.
                stamps = loadedStamps()
            } else {
                wait = min(pollInterval, holdoff - quiet, maximumHoldoff - pending)
            }
        }
    }

    private func loadedStamps() -> [String: FileStamp]? {
        reloadLock.withLock { manifests?.loadedFingerprint }
    }

    /// Waits for store changes (or `timeout`); returns how many arrived, nil when stopping.
    private func waitForStoreChanges(seen: inout UInt64, timeout: Duration?) -> Bool? {
        let deadline = timeout.map { Date().addingTimeInterval(Double($0.components.seconds) + Double($0.components.attoseconds) * 1e-18) }
        condition.lock()
        defer { condition.unlock() }
        while lifecycle == .running {
            if storeChanges != seen {
                seen = storeChanges
                return true
            }
            if let deadline {
                if !condition.wait(until: deadline) { return lifecycle == .running ? false : nil }
            } else {
                condition.wait()
            }
        }
        return nil
    }

    /// The loop of the Kubernetes source: debounce store changes; reload once synced.
    private func runStoreSource() {
        guard let store else { return }
        let clock = ContinuousClock()
        var seen: UInt64 = 0
        var firstChange: ContinuousClock.Instant? = nil
        var lastChange = clock.now
        // The store may have synced before the loop started.
        if store.isSynced { firstChange = clock.now }
        while true {
            var timeout: Duration? = nil
            if let first = firstChange {
                let now = clock.now
                timeout = max(.zero, min(holdoff - (now - lastChange), maximumHoldoff - (now - first)))
            }
            guard let changed = waitForStoreChanges(seen: &seen, timeout: timeout) else { return }
            let now = clock.now
            if changed {
                lastChange = now
                if firstChange == nil { firstChange = now }
            }
            guard let first = firstChange else { continue }
            if now - lastChange >= holdoff || now - first >= maximumHoldoff {
                firstChange = nil
                // No table before every initial list is complete.
                if store.isSynced { _ = reload(force: false) }
            }
        }
    }

    private func lastModelIsEmpty() -> Bool {
        reloadLock.withLock { lastModel == nil }
    }

    private struct Round {
        var table: RoutingTable?
        var model: RouteModel
        var tls: TLSModel
        var diagnostics: [Diagnostic]
    }

    /// One full round. `force` builds a table even when the model is unchanged
    /// (and then does not publish or report: the caller does).
    private func reload(force: Bool) -> Round {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        let load = manifests?.load()
            ?? ManifestLoad(objects: [], files: [:], diagnostics: [], failedFiles: [])
        if let store, let storeCursor {
            let changes = store.changes(since: storeCursor)
            if changes.isComplete {
                translator.replaceAll(with: changes.objects)
            } else {
                for object in changes.objects { translator.apply(object) }
                for key in changes.removed { translator.remove(key) }
            }
        } else {
            translator.replaceAll(with: load.objects)
        }
        let output = translator.translate()
        let translation = output.routes
        let tls = output.tls
        let diagnostics: [Diagnostic]
        let diagnosticsChanged: Bool
        if manifests == nil, let last = lastTranslatedDiagnostics, last.routes == translation.diagnostics,
           last.tls == tls.diagnostics
        {
            // Nothing to merge, sort or compare again (the arrays are the
            // translator's own, so this comparison is usually by identity).
            diagnostics = lastDiagnostics
            diagnosticsChanged = false
        } else {
            var merged = load.diagnostics
            for var diagnostic in translation.diagnostics + tls.diagnostics {
                if diagnostic.file == nil {
                    diagnostic.file = load.files[diagnostic.object]
                }
                merged.append(diagnostic)
            }
            merged.sort()
            diagnostics = merged
            diagnosticsChanged = true
            lastTranslatedDiagnostics = (translation.diagnostics, tls.diagnostics)
            lastDiagnostics = merged
        }

        let changed = lastModel != translation.model
        var table: RoutingTable? = nil
        if changed || force {
            let generation = condition.withLock { () -> UInt64 in
                currentGeneration += 1
                return currentGeneration
            }
            table = RoutingTable(model: translation.model, generation: generation, reusing: lastTable)
            lastTable = table
        }
        lastModel = translation.model
        let tlsChanged = lastTLS != tls.model
        lastTLS = tls.model
        var fresh: [Diagnostic] = []
        if diagnosticsChanged {
            fresh = diagnostics.filter { !reported.contains($0) }
            reported = Set(diagnostics)
        }
        condition.withLock {
            reloadCount += 1
            if load.failedFiles.isEmpty {
                lastSuccess = Date()
            } else {
                reloadFailureCount += 1
            }
        }
        if !force {
            if tlsChanged, let publishTLS { publishTLS(tls.model) }
            if let table { publish(table, translation.model) }
            if !fresh.isEmpty { report(fresh) }
        }
        return Round(table: table, model: translation.model, tls: tls.model, diagnostics: diagnostics)
    }
}
