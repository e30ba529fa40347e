import FoundationEssentials
import Kube
import RouteModel
import Routing
import Support
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
/// informers fill a `KubeObjectStore`, and nothing is published until every
/// watched resource has completed its initial list. After that, a failing
/// API server changes nothing: the store keeps its objects and the last
/// table keeps serving. The store source does not debounce; it publishes
/// at once when quiet and coalesces when busy:
/// - the first change after a quiet period (no round in the last
///   `coalescingWindow`) is translated and published at once;
/// - changes that arrive while a round runs, or within `coalescingWindow`
///   after it ended, are taken together by the next round, which starts
///   when the current window has passed; the window is `coalescingWindow`
///   after a quiet round and doubles with each busy one, up to `maximumCoalescingWindow`,
///   so a long burst costs a few rounds a second (each round has a cost
///   that grows with the size of the configuration: comparing and patching
///   the table);
/// - a round reads at most `roundUpsertLimit` added or changed objects
///   other than endpoints; the rest follows in the next rounds, at once
///   (removals, which are cheap, are all taken together);
/// - an EndpointSlice or Endpoints change takes another path, on a thread
///   of its own (the endpoint path, like Envoy's EDS beside its routes). It
///   resolves the clusters of the changed Services again from its own view
///   of the endpoint objects (`EndpointView`) and the Service in the store,
///   without the translator, and publishes the table in service with only
///   those clusters' endpoints replaced, in time proportional to the
///   number of clusters (a copy of one array), not to hosts and routes. It
///   never takes `reloadLock`: what it waits for is `publishLock` (held by
///   a round only to apply endpoint patches to its table and publish it)
///   and the CPU. The translator reads the same changes in the next round
///   (`endpointBacklog`), which the endpoint path wakes; a round whose
///   translation did not include an endpoint step gets that step's
///   clusters applied to its table before it is published
///   (`endpointPatches`), so no table ever goes back to older endpoints.
/// So a change other than endpoints is published at most `maximumCoalescingWindow` plus the
/// round in progress plus its own round after its watch event, an endpoint
/// change after its own resolution and patch plus at most the publication
/// of a round in progress, and a bulk delete,
/// a namespace deletion or a relist that drops thousands of objects costs a
/// few rounds, not one per object.
///
/// Translation is incremental (`IncrementalTranslator`): a round hands the
/// translator only the objects that changed since the last one (read from
/// the store through a change cursor, or found by comparing the directory's
/// objects) and gets the same model a full translation of every object
/// would give, for work proportional to the change.
///
/// Threading: `publish` and `report` run on a controller thread (with the
/// store source, the routes thread or the endpoint thread), never two at
/// once, in the order of the tables' generations. Counters may be read
/// from any thread. Call `loadInitial()` (optional) before `start()`.
public final class ControllerLoop: @unchecked Sendable {
    /// The manifest directory.
    public let directory: String
    /// The translation options in force: those given at `init`, then those
    /// of the last good settings ConfigMap (`configMap`).
    public var options: TranslateOptions { reloadLock.withLock { currentOptions } }
    private var currentOptions: TranslateOptions
    /// How often file stamps are compared.
    public let pollInterval: Duration
    /// Directory source: quiet time after the last change before reloading.
    public let holdoff: Duration
    /// Directory source: longest delay between the first change and the
    /// reload, even if changes continue.
    public let maximumHoldoff: Duration
    /// Store source: after a round, how long further changes are gathered
    /// before the next round (endpoint changes excepted), when the round
    /// before was on a quiet system.
    public let coalescingWindow: Duration
    /// Store source: the longest window; while changes keep coming, each
    /// window is twice the one before, up to this.
    public let maximumCoalescingWindow: Duration

    /// Receives each round's new snapshot: the table and/or the certificate
    /// model that changed, together (see `ControllerPublication`).
    private let publishSnapshot: @Sendable (ControllerPublication) -> Void
    private let report: @Sendable ([Diagnostic]) -> Void
    /// The settings ConfigMap followed (`--configmap`), if any.
    public let configMap: ConfigMapFollower?
    /// The ConfigMap's data last given to `configMap.apply` (nil: absent),
    /// and the diagnostics it gave (guarded by `reloadLock`).
    private var lastConfigMapData: [String: String]?? = .none
    private var configMapDiagnostics: [Diagnostic] = []
    private var lastConfigMapDiagnostics: [Diagnostic] = []
    /// `--default-ssl-certificate`: `namespace/name` of a TLS Secret.
    public let defaultCertificateSecret: String?

    private enum Lifecycle {
        case idle
        case running
        case stopping
        case stopped
    }

    /// Guards `lifecycle` and the counters; signalled on `stop()` and thread exit.
    private let condition = Condition()
    private var lifecycle = Lifecycle.idle
    private var threadFinished = false
    /// Store source: the endpoint thread has exited (true when there is none).
    private var endpointThreadFinished = true
    private var endpointPublicationCount = 0
    private var reloadCount = 0
    private var reloadFailureCount = 0
    private var lastSuccess: Date? = nil
    private var currentGeneration: UInt64 = 0

    /// Serialises reloads (`loadInitial` against the thread) and guards the state below.
    private let reloadLock = Lock()
    /// The directory source (nil with the store source).
    private let manifests: ManifestDirectory?
    /// The Kubernetes API source (nil with the directory source).
    public let store: KubeObjectStore?
    /// Store changes signalled and not yet taken by the loop (guarded by `condition`).
    private var storeChanges: UInt64 = 0
    private var lastModel: RouteModel? = nil

    // MARK: Publication state (guarded by `publishLock`; taken inside `reloadLock` and `endpointLock` when both are)

    /// Serialises publications and guards the state below.
    private let publishLock = Lock()
    /// The table in service (the last one published): the next compilation
    /// starts from it, the endpoint path patches it.
    private var servedTable: RoutingTable? = nil
    /// The number of the last endpoint step (each endpoint path round that
    /// read changes takes the next one).
    private var endpointStep: UInt64 = 0
    /// The endpoint changes the translator has not read yet, in order: the
    /// next routes round gives them to it (and reports their diagnostics).
    private var endpointBacklog: [(key: ObjectKey, object: KubeObject?)] = []
    /// The clusters each endpoint step patched into the table in service,
    /// kept until the translator has read that step's changes: a routes
    /// round applies those of later steps than it translated to its table
    /// before publishing it, so no table goes back to older endpoints.
    private var endpointPatches: [(step: UInt64, clusters: [Cluster])] = []

    /// Guards `endpointView` (the endpoint thread holds it for a step);
    /// taken inside `reloadLock` and before `publishLock` when both are.
    private let endpointLock = Lock()
    /// The endpoint objects as the endpoint path read them.
    private var endpointView = EndpointView()
    private var lastTLS: TLSModel? = nil
    private var reported: Set<Diagnostic> = []
    /// Keeps the translation up to date with the objects (guarded by `reloadLock`).
    private var translator: IncrementalTranslator
    /// The most objects the translator held since it was made (guarded by `reloadLock`).
    private var translatorPeak = 0
    /// The store changes this loop has not translated yet (store source
    /// only): every kind but endpoints, and endpoints (the endpoint path's).
    private let storeCursor: KubeObjectStore.ChangeCursor?
    private let endpointCursor: KubeObjectStore.ChangeCursor?
    /// The translator's diagnostics of the last round and what they became
    /// (store source: unchanged diagnostics are not merged and sorted again).
    private var lastTranslatedDiagnostics: (routes: [Diagnostic], tls: [Diagnostic])? = nil
    private var lastDiagnostics: [Diagnostic] = []

    /// Creates a loop; nothing happens until `loadInitial()` or `start()`.
    public convenience init(
        directory: String, options: TranslateOptions,
        pollInterval: Duration = .milliseconds(200), holdoff: Duration = .milliseconds(100),
        maximumHoldoff: Duration = .milliseconds(500),
        defaultCertificateSecret: String? = nil,
        publish: @escaping @Sendable (RoutingTable, RouteModel) -> Void,
        publishTLS: (@Sendable (TLSModel) -> Void)? = nil,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.init(
            directory: directory, options: options, pollInterval: pollInterval, holdoff: holdoff, maximumHoldoff: maximumHoldoff,
            defaultCertificateSecret: defaultCertificateSecret, configMap: nil,
            publishSnapshot: ControllerPublication.splitting(publish: publish, publishTLS: publishTLS), report: report)
    }

    /// Creates a loop on a manifest directory that hands each round's
    /// table and certificate model to `publishSnapshot` in one call.
    public init(
        directory: String, options: TranslateOptions,
        pollInterval: Duration = .milliseconds(200), holdoff: Duration = .milliseconds(100),
        maximumHoldoff: Duration = .milliseconds(500),
        defaultCertificateSecret: String? = nil,
        configMap: ConfigMapFollower?,
        publishSnapshot: @escaping @Sendable (ControllerPublication) -> Void,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.defaultCertificateSecret = defaultCertificateSecret
        self.publishSnapshot = publishSnapshot
        self.configMap = configMap
        self.directory = directory
        self.currentOptions = options
        self.pollInterval = pollInterval
        self.holdoff = holdoff
        self.maximumHoldoff = maximumHoldoff
        self.coalescingWindow = holdoff
        self.maximumCoalescingWindow = maximumHoldoff
        self.report = report
        self.manifests = ManifestDirectory(path: directory)
        self.store = nil
        translator = IncrementalTranslator(options: options, defaultCertificateSecret: defaultCertificateSecret)
        storeCursor = nil
        endpointCursor = nil
    }

    /// Creates a loop fed by the Kubernetes API through `store` (whose
    /// informers the caller starts). The first table is published by the
    /// loop itself once the store is synced.
    public convenience init(
        store: KubeObjectStore, options: TranslateOptions,
        coalescingWindow: Duration = .milliseconds(50), maximumCoalescingWindow: Duration = .milliseconds(150),
        defaultCertificateSecret: String? = nil,
        publish: @escaping @Sendable (RoutingTable, RouteModel) -> Void,
        publishTLS: (@Sendable (TLSModel) -> Void)? = nil,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.init(
            store: store, options: options, coalescingWindow: coalescingWindow, maximumCoalescingWindow: maximumCoalescingWindow,
            defaultCertificateSecret: defaultCertificateSecret, configMap: nil,
            publishSnapshot: ControllerPublication.splitting(publish: publish, publishTLS: publishTLS), report: report)
    }

    /// Creates a loop fed by `store` that hands each round's table and
    /// certificate model to `publishSnapshot` in one call.
    public init(
        store: KubeObjectStore, options: TranslateOptions,
        coalescingWindow: Duration = .milliseconds(50), maximumCoalescingWindow: Duration = .milliseconds(150),
        defaultCertificateSecret: String? = nil,
        configMap: ConfigMapFollower?,
        publishSnapshot: @escaping @Sendable (ControllerPublication) -> Void,
        report: @escaping @Sendable ([Diagnostic]) -> Void
    ) {
        self.defaultCertificateSecret = defaultCertificateSecret
        self.publishSnapshot = publishSnapshot
        self.configMap = configMap
        self.directory = ""
        self.currentOptions = options
        self.pollInterval = .milliseconds(200)
        self.holdoff = coalescingWindow
        self.maximumHoldoff = coalescingWindow
        self.coalescingWindow = coalescingWindow
        self.maximumCoalescingWindow = max(coalescingWindow, maximumCoalescingWindow)
        self.report = report
        self.manifests = nil
        self.store = store
        translator = IncrementalTranslator(options: options, defaultCertificateSecret: defaultCertificateSecret)
        storeCursor = store.makeCursor(kinds: Self.routeKinds)
        endpointCursor = store.makeCursor(kinds: Self.endpointKinds)
        store.onChange { [weak self] in self?.storeChanged() }
        // A cluster's objects and translation come and go in bulk: large
        // tables must go back to the system when freed (see MemoryTrim).
        MemoryTrim.returnLargeBlocksWhenFreed()
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
    /// Store source: tables published by the endpoint path (endpoint changes patched into the table in service).
    public var endpointPublications: Int { condition.withLock { endpointPublicationCount } }

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
        if store != nil {
            condition.withLock { endpointThreadFinished = false }
            let endpointThread = Thread { [self] in
                runEndpointPath()
                condition.withLock {
                    endpointThreadFinished = true
                    condition.broadcast()
                }
            }
            endpointThread.name = "postern-endpoints"
            endpointThread.start()
        }
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
            while !threadFinished || !endpointThreadFinished { condition.wait() }
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

    /// Kinds the endpoint path takes (`ObjectKey.kind` spellings).
    static let endpointKinds: Set<String> = [WatchedKind.endpointSlice.rawValue, "Endpoints"]
    /// Every other kind: the routes path's.
    static let routeKinds: Set<String> = Set(WatchedKind.allCases.map(\.rawValue)).subtracting(endpointKinds)

    /// The loop of the Kubernetes source: a round at once when quiet, then
    /// coalesced rounds while changes keep coming (see the type's comment).
    private func runStoreSource() {
        guard let store else { return }
        let clock = ContinuousClock()
        // Signals before this point are covered by `pending`: counting them
        // again would start a round with nothing in it.
        var seen = condition.withLock { storeChanges }
        // The store may have synced before the loop started.
        var pending = store.isSynced
        var firstPending = clock.now
        var lastRoundEnd: ContinuousClock.Instant? = nil
        var window = coalescingWindow
        var touchedSinceTrim = 0
        var trimDue: ContinuousClock.Instant? = nil
        while true {
            let now = clock.now
            var timeout: Duration? = nil
            // No table before every initial list is complete.
            if (pending || hasBacklog) && store.isSynced {
                // Quiet: the first change came later than `coalescingWindow`
                // after the last round (whatever the window has grown to).
                let quiet = lastRoundEnd.map { firstPending >= $0 + coalescingWindow } ?? true
                var due = now
                if let end = lastRoundEnd, !quiet, !hasBacklog {
                    due = max(now, end + window)
                }
                if due <= now {
                    pending = false
                    let round = reload(force: false)
                    // A round that found nothing new does not start a window.
                    if round.changesTaken > 0 {
                        lastRoundEnd = clock.now
                        // While changes keep coming, each window doubles (up to
                        // the maximum), so a long burst costs a few rounds a second.
                        window = quiet ? coalescingWindow : min(maximumCoalescingWindow, window * 2)
                    }
                    touchedSinceTrim += round.objectsTouched
                    if touchedSinceTrim >= Self.trimAfterObjects {
                        // A second after the last such round, once the workers
                        // have let go of the old tables.
                        trimDue = clock.now + .seconds(1)
                    }
                    continue
                }
                timeout = due - now
            }
            if let due = trimDue {
                if due <= now {
                    trimDue = nil
                    touchedSinceTrim = 0
                    MemoryTrim.giveBackFreedMemory()
                    continue
                }
                timeout = min(timeout ?? (due - now), due - now)
            }
            guard let changed = waitForStoreChanges(seen: &seen, timeout: timeout) else { return }
            if changed && !pending {
                pending = true
                firstPending = clock.now
            }
        }
    }

    /// Objects added, changed or removed (over one or more rounds) after
    /// which freed memory is given back to the system, a second after the
    /// last such round. Removals free objects and their translation; a
    /// bulk add (a first sync, `kubectl apply` of a large directory) leaves
    /// the garbage of decoding and of outgrown tables between the objects
    /// kept, in pages the C library keeps unless asked (at 10,000 sets,
    /// about a sixth of the heap).
    static let trimAfterObjects = 1000

    private func lastModelIsEmpty() -> Bool {
        reloadLock.withLock { lastModel == nil }
    }

    private struct Round {
        var table: RoutingTable?
        var model: RouteModel
        var tls: TLSModel
        var diagnostics: [Diagnostic]
        /// Objects this round added, changed or removed (store source; every
        /// object on a first, complete read).
        var objectsTouched = 0
        /// Changes this round took from the store (store source; 1 for a first, complete read).
        var changesTaken = 0
    }

    /// Changes taken from the store and not yet given to the translator,
    /// by key (nil: removed); the next round follows at once while any are
    /// left (guarded by `reloadLock`).
    private var backlog: [ObjectKey: KubeObject?] = [:]

    /// At most this many added or changed objects in one routes round: a
    /// bounded round keeps the part the endpoint path may wait for (reading
    /// changes and translating them) short. 64 keeps a round on the
    /// patching paths: above 64 changed hosts the translator sorts every
    /// host again, and a table with many changed hosts is compiled afresh
    /// (perf at 10,000 sets: those two were a third of a burst's CPU with
    /// 500 per round). Removals are cheap and are all taken at once.
    static let roundUpsertLimit = 64

    private var hasBacklog: Bool { reloadLock.withLock { !backlog.isEmpty } }

    /// After most objects went away (a bulk delete, a namespace deletion),
    /// replaces the translator by one made from the objects left: its
    /// tables never give back their capacity, a new one's fit what is left.
    /// Costs one translation of what is left. Lock `reloadLock` held.
    private func compactTranslatorIfSparse() {
        let count = translator.objectCount
        translatorPeak = max(translatorPeak, count)
        guard translatorPeak >= Self.compactionMinimumPeak, count * 8 < translatorPeak else { return }
        let fresh = IncrementalTranslator(options: currentOptions, defaultCertificateSecret: defaultCertificateSecret)
        let left = translator.snapshot()
        var objects: [KubeObject] = left.ingressClasses.map(KubeObject.ingressClass) + left.ingresses.map(KubeObject.ingress)
        objects += left.services.map(KubeObject.service) + left.endpointSlices.map(KubeObject.endpointSlice)
        objects += left.endpoints.map(KubeObject.endpoints) + left.secrets.map(KubeObject.secret)
        fresh.replaceAll(with: objects)
        // Same objects, same translation (a property test of Translate holds
        // the translator to a full translation); should it differ, the next
        // round's comparison with `lastModel` publishes the difference.
        _ = fresh.translate()
        translator = fresh
        translatorPeak = count
        lastTranslatedDiagnostics = nil
    }

    /// Below this many objects at the peak, a translator is not worth rebuilding.
    static let compactionMinimumPeak = 4000

    /// Hands the translator what changed in the store since the last round
    /// (see `backlog`); the first read also takes every endpoint object (the
    /// endpoint path starts from there). Returns the number of changes taken
    /// (1 for a first, complete read) and of objects given to the
    /// translator or removed from it. Lock `reloadLock` held.
    private func applyStoreChanges(_ store: KubeObjectStore, cursor: KubeObjectStore.ChangeCursor) -> (taken: Int, touched: Int) {
        let changes = store.changes(since: cursor)
        if changes.isComplete {
            backlog = [:]
            var objects = changes.objects
            var endpointRemovals: [ObjectKey] = []
            if let endpointCursor {
                // The endpoint path starts from this read (it waits for the first table).
                endpointLock.withLock {
                    let endpoints = store.changes(since: endpointCursor)
                    objects += endpoints.objects
                    endpointRemovals = endpoints.removed
                    endpointView = EndpointView(endpoints.objects)
                }
            }
            translator.replaceAll(with: objects)
            for key in endpointRemovals { translator.remove(key) }
            return (1, objects.count + endpointRemovals.count)
        }
        // Newer versions replace what the backlog held for the same key.
        for object in changes.objects { backlog[object.key] = .some(object) }
        for key in changes.removed { backlog[key] = .some(nil) }
        var takenKeys: [ObjectKey] = []
        var upserts = 0
        for (key, value) in backlog {
            if value != nil {
                if upserts >= Self.roundUpsertLimit { continue }
                upserts += 1
            }
            takenKeys.append(key)
        }
        for key in takenKeys {
            guard let value = backlog.removeValue(forKey: key) else { continue }
            if let object = value {
                translator.apply(object)
            } else {
                translator.remove(key)
            }
        }
        if backlog.isEmpty { backlog = [:] }
        return (takenKeys.count, takenKeys.count)
    }

    /// Merges the translator's diagnostics with the load's and the
    /// ConfigMap's; unchanged ones are not merged and sorted again (store
    /// source). Returns them, whether they changed, and those not reported
    /// before (marked reported). Lock `reloadLock` held.
    private func mergeDiagnostics(_ output: IncrementalTranslator.Translation, load: ManifestLoad)
        -> (all: [Diagnostic], fresh: [Diagnostic])
    {
        let translation = output.routes
        let tls = output.tls
        if manifests == nil, let last = lastTranslatedDiagnostics, last.routes == translation.diagnostics,
           last.tls == tls.diagnostics, lastConfigMapDiagnostics == configMapDiagnostics
        {
            // Nothing to merge, sort or compare again (the arrays are the
            // translator's own, so this comparison is usually by identity).
            return (lastDiagnostics, [])
        }
        var merged = load.diagnostics + configMapDiagnostics
        lastConfigMapDiagnostics = configMapDiagnostics
        for var diagnostic in translation.diagnostics + tls.diagnostics {
            if diagnostic.file == nil {
                diagnostic.file = load.files[diagnostic.object]
            }
            merged.append(diagnostic)
        }
        merged.sort()
        lastTranslatedDiagnostics = (translation.diagnostics, tls.diagnostics)
        lastDiagnostics = merged
        let fresh = merged.filter { !reported.contains($0) }
        reported = Set(merged)
        return (merged, fresh)
    }

    private func nextGeneration() -> UInt64 {
        condition.withLock { () -> UInt64 in
            currentGeneration += 1
            return currentGeneration
        }
    }

    /// One round of the routes path (both sources): read the changes and
    /// translate them under `reloadLock`; compare and compile outside it
    /// (the endpoint path may run meanwhile); then, under `publishLock`,
    /// apply the endpoint patches published meanwhile and publish. `force`
    /// builds a table even when the model is unchanged (and then does not
    /// publish or report: the caller does).
    private func reload(force: Bool) -> Round {
        reloadLock.lock()
        let load = manifests?.load()
            ?? ManifestLoad(objects: [], files: [:], diagnostics: [], failedFiles: [])
        var objectsTouched = 0
        var changesTaken = 0
        // The last endpoint step whose changes this round translates.
        var endpointStepTranslated: UInt64 = 0
        if let store, let storeCursor {
            (changesTaken, objectsTouched) = applyStoreChanges(store, cursor: storeCursor)
            let endpoints = applyEndpointBacklog()
            endpointStepTranslated = endpoints.step
            objectsTouched += endpoints.count
        } else {
            translator.replaceAll(with: load.objects)
        }
        if let configMap {
            followConfigMap(configMap, objects: store == nil ? load.objects : nil)
        }
        let output = translator.translate()
        let model = output.routes.model
        let tls = output.tls
        let diagnostics = mergeDiagnostics(output, load: load)
        let previousModel = lastModel
        lastModel = model
        if manifests == nil { compactTranslatorIfSparse() }
        let tlsChanged = lastTLS != tls.model
        lastTLS = tls.model
        reloadLock.unlock()

        // Outside `reloadLock`: O(hosts + clusters) at worst.
        var table: RoutingTable? = nil
        var base: RoutingTable? = nil
        if force || previousModel != model {
            base = publishLock.withLock { servedTable }
            // A round that only caught up with endpoint changes the
            // endpoint path published already has nothing to show.
            if force || base?.model != model {
                table = RoutingTable(model: model, generation: nextGeneration(), reusing: base)
            }
        }
        condition.withLock {
            reloadCount += 1
            if load.failedFiles.isEmpty {
                lastSuccess = Date()
            } else {
                reloadFailureCount += 1
            }
        }
        publishLock.lock()
        // The table this round replaces is released after the lock: when
        // this is its last holder, freeing it (tens of thousands of hosts
        // and clusters at size) must not hold up the endpoint path.
        let retired = servedTable
        if let built = table {
            // Endpoint steps this round did not translate, oldest first.
            var latest: [String: Cluster] = [:]
            for patch in endpointPatches where patch.step > endpointStepTranslated {
                for cluster in patch.clusters { latest[cluster.name] = cluster }
            }
            if servedTable !== base {
                // The endpoint path published patches of `base` meanwhile:
                // this table goes out after them, so it takes a newer
                // generation and states its index map against the table
                // in service (same indexes as `base`).
                table = built.replacingClusters(Array(latest.values), generation: nextGeneration(), following: servedTable)
            } else if !latest.isEmpty {
                table = built.replacingClusters(Array(latest.values), generation: built.generation, following: base)
            }
        }
        endpointPatches.removeAll { $0.step <= endpointStepTranslated }
        if let table { servedTable = table }
        let published = table?.model ?? model
        // One call for the table and the certificates of one round: the
        // proxy installs both in one task per worker.
        if !force, table != nil || tlsChanged {
            publishSnapshot(ControllerPublication(table: table, model: published, tls: tlsChanged ? tls.model : nil))
        }
        publishLock.unlock()
        withExtendedLifetime((retired, base)) {}
        if !force, !diagnostics.fresh.isEmpty { report(diagnostics.fresh) }
        return Round(table: table, model: published, tls: tls.model, diagnostics: diagnostics.all, objectsTouched: objectsTouched,
                     changesTaken: changesTaken)
    }

    // MARK: The endpoint path

    /// The endpoint thread (store source): after the first table is
    /// published, each endpoint change is resolved and patched into the
    /// table in service at once.
    private func runEndpointPath() {
        guard let store, let endpointCursor else { return }
        let clock = ContinuousClock()
        var seen = condition.withLock { storeChanges }
        var touchedSinceTrim = 0
        var trimDue: ContinuousClock.Instant? = nil
        while true {
            // Nothing before the routes path published the first table (it
            // reads the endpoints' first, complete state itself).
            if publishLock.withLock({ servedTable == nil }) {
                guard sleep(.milliseconds(20)) else { return }
                continue
            }
            if store.hasPendingChanges(since: endpointCursor, ofKinds: Self.endpointKinds) {
                touchedSinceTrim += publishEndpointChanges(store, cursor: endpointCursor)
                if touchedSinceTrim >= Self.trimAfterObjects {
                    // As on the routes path: a second after the last such round.
                    trimDue = clock.now + .seconds(1)
                }
                continue
            }
            var timeout: Duration? = nil
            if let due = trimDue {
                if due <= clock.now {
                    trimDue = nil
                    touchedSinceTrim = 0
                    MemoryTrim.giveBackFreedMemory()
                    continue
                }
                timeout = due - clock.now
            }
            guard waitForStoreChanges(seen: &seen, timeout: timeout) != nil else { return }
        }
    }

    /// One step of the endpoint path: takes the endpoint changes, resolves
    /// the clusters of the Services they belong to again (`EndpointView`,
    /// with each Service as the store holds it) and publishes the table in
    /// service with the clusters that changed replaced. It never takes
    /// `reloadLock`: the translator reads the same changes in the next
    /// routes round (`endpointBacklog`), which this step wakes. Returns the
    /// number of objects changed or removed.
    private func publishEndpointChanges(_ store: KubeObjectStore, cursor: KubeObjectStore.ChangeCursor) -> Int {
        endpointLock.lock()
        defer { endpointLock.unlock() }
        let changes = store.changes(since: cursor)
        var backlog: [(key: ObjectKey, object: KubeObject?)] = []
        var services: Set<String> = []
        // (A first, complete read was taken by the routes path: `objects` are then upserts too.)
        for object in changes.objects {
            services.formUnion(endpointView.apply(object))
            backlog.append((object.key, object))
        }
        for key in changes.removed {
            if let service = endpointView.remove(key) { services.insert(service) }
            backlog.append((key, nil))
        }
        if !changes.removed.isEmpty { endpointView.compactIfSparse() }
        guard !backlog.isEmpty else { return 0 }
        var clusters: [Cluster] = []
        if let served = publishLock.withLock({ servedTable }) {
            for service in services {
                guard let slash = service.firstIndex(of: "/") else { continue }
                let key = ObjectKey(
                    kind: WatchedKind.service.rawValue, namespace: String(service[..<slash]),
                    name: String(service[service.index(after: slash)...]))
                var object: Service? = nil
                if case let .service(found)? = store.object(key) { object = found }
                clusters += endpointView.changedClusters(of: service, object: object, in: served.model)
            }
        }

        publishLock.lock()
        // Released after the lock (see `reload`).
        var retired: RoutingTable? = nil
        endpointStep += 1
        endpointBacklog += backlog
        if !clusters.isEmpty, let served = servedTable {
            let table = served.replacingClusters(clusters, generation: nextGeneration())
            endpointPatches.append((endpointStep, clusters))
            retired = served
            servedTable = table
            publishSnapshot(ControllerPublication(table: table, model: table.model, tls: nil))
            condition.withLock { endpointPublicationCount += 1 }
        }
        publishLock.unlock()
        withExtendedLifetime(retired) {}
        // The routes thread gives the changes to the translator.
        storeChanged()
        return backlog.count
    }

    /// Gives the translator the endpoint changes the endpoint path took
    /// since the last round. Returns the last endpoint step among them and
    /// their number. Lock `reloadLock` held.
    private func applyEndpointBacklog() -> (step: UInt64, count: Int) {
        let (backlog, step) = publishLock.withLock { () -> ([(key: ObjectKey, object: KubeObject?)], UInt64) in
            defer { endpointBacklog = [] }
            return (endpointBacklog, endpointStep)
        }
        for change in backlog {
            if let object = change.object {
                translator.apply(object)
            } else {
                translator.remove(change.key)
            }
        }
        return (step, backlog.count)
    }
}

/// What one controller round hands the proxy: a new table, a new
/// certificate model, or both, in one call, so that they are installed
/// together (a request never sees a new table with old certificates).
public struct ControllerPublication: Sendable {
    /// The new routing table, nil when the routes did not change.
    public var table: RoutingTable?
    /// The model the table in service was compiled from (this round's).
    public var model: RouteModel
    /// The new certificate model, nil when it did not change.
    public var tls: TLSModel?

    public init(table: RoutingTable?, model: RouteModel, tls: TLSModel?) {
        self.table = table
        self.model = model
        self.tls = tls
    }

    /// A snapshot callback for the older two-callback form: certificates
    /// first, then the table (tests written against that form).
    static func splitting(
        publish: @escaping @Sendable (RoutingTable, RouteModel) -> Void, publishTLS: (@Sendable (TLSModel) -> Void)?
    ) -> @Sendable (ControllerPublication) -> Void {
        { publication in
            if let tls = publication.tls, let publishTLS { publishTLS(tls) }
            if let table = publication.table { publish(table, publication.model) }
        }
    }
}

/// The settings ConfigMap the loop follows (`--configmap NAMESPACE/NAME`):
/// each round reads it (from the store, or among the manifest directory's
/// objects) and, when its data changed, asks `apply` what it means.
public struct ConfigMapFollower: Sendable {
    /// What a ConfigMap's data makes of the settings.
    public struct Outcome: Sendable {
        /// The translation options to use, nil when the ConfigMap is refused
        /// (a bad value or an unknown key): the last good options stay.
        public var options: TranslateOptions?
        /// Problems and notes (refusal, "takes effect at restart"), about
        /// the ConfigMap; reported, logged and recorded as Events like any
        /// other diagnostic, as long as the ConfigMap stays as it is.
        public var diagnostics: [Diagnostic]

        public init(options: TranslateOptions?, diagnostics: [Diagnostic]) {
            self.options = options
            self.diagnostics = diagnostics
        }
    }

    public var namespace: String
    public var name: String
    /// Called on the controller thread with the ConfigMap (nil when it does not exist).
    public var apply: @Sendable (ConfigMap?) -> Outcome

    public init(namespace: String, name: String, apply: @escaping @Sendable (ConfigMap?) -> Outcome) {
        self.namespace = namespace
        self.name = name
        self.apply = apply
    }

    /// The ConfigMap's identity.
    public var key: ObjectKey { ObjectKey(kind: WatchedKind.configMap.rawValue, namespace: namespace, name: name) }
}

extension ControllerLoop {
    /// Reads the followed ConfigMap; when its data changed, applies it, and
    /// when the options it gives differ from those in force, translates
    /// every object again with them (a new translator: a settings change
    /// is rare, and every route may carry a global value). `objects`: the
    /// directory's objects (nil with the store source). Lock `reloadLock` held.
    fileprivate func followConfigMap(_ follower: ConfigMapFollower, objects: [KubeObject]?) {
        var found: ConfigMap? = nil
        if let objects {
            for object in objects {
                if case let .configMap(candidate) = object, candidate.metadata.namespace == follower.namespace,
                    candidate.metadata.name == follower.name
                {
                    found = candidate
                }
            }
        } else if case let .configMap(candidate)? = store?.object(follower.key) {
            found = candidate
        }
        let data = found?.data
        if case let .some(last) = lastConfigMapData, last == data { return }
        lastConfigMapData = .some(data)
        let outcome = follower.apply(found)
        configMapDiagnostics = outcome.diagnostics
        guard let options = outcome.options, options != currentOptions else { return }
        currentOptions = options
        let fresh = IncrementalTranslator(options: options, defaultCertificateSecret: defaultCertificateSecret)
        if let objects {
            fresh.replaceAll(with: objects)
        } else {
            let left = translator.snapshot()
            var all: [KubeObject] = left.ingressClasses.map(KubeObject.ingressClass) + left.ingresses.map(KubeObject.ingress)
            all += left.services.map(KubeObject.service) + left.endpointSlices.map(KubeObject.endpointSlice)
            all += left.endpoints.map(KubeObject.endpoints) + left.secrets.map(KubeObject.secret)
            fresh.replaceAll(with: all)
        }
        translator = fresh
        translatorPeak = translator.objectCount
        lastTranslatedDiagnostics = nil
    }
}
