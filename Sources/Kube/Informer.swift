import FoundationEssentials
import Support

/// What an informer tells its store.
public enum InformerUpdate: Sendable {
    /// A complete list: replaces every object of this resource at once.
    case replaced([KubeObject])
    /// An object was added or changed.
    case upserted(KubeObject)
    /// An object was deleted.
    case deleted(KubeObject)
    /// A problem worth a log line (decode failure, reconnect, relist).
    case problem(String)
}

/// Exponential backoff with full jitter, capped (client-go's defaults are similar).
public struct Backoff: Sendable {
    public var initial: Double
    public var maximum: Double
    private var attempt = 0

    public init(initialSeconds: Double = 0.5, maximumSeconds: Double = 30) {
        initial = initialSeconds
        maximum = maximumSeconds
    }

    /// The next delay in seconds: a random value in [d/2, d] where d doubles each failure.
    public mutating func next<R: RandomNumberGenerator>(using random: inout R) -> Double {
        let ceiling = min(maximum, initial * Double(1 << min(attempt, 30)))
        attempt += 1
        return ceiling / 2 + Double.random(in: 0...(ceiling / 2), using: &random)
    }

    public mutating func reset() { attempt = 0 }
}

/// List-then-watch of one resource on its own thread, like client-go's
/// reflector: list (paginated) → replace; watch from the list's
/// resourceVersion with bookmarks → apply events; resume the watch from the
/// last resourceVersion when it ends; relist on 410 Gone (an HTTP 410 on
/// the list, or an ERROR event with code 410 in the watch); back off with
/// jitter on failures. `update` is called on the informer's thread. Objects
/// are trimmed to what Postern reads before they are handed on
/// (`KubeObject.keepingOnlyWhatPosternReads`).
public final class Informer: @unchecked Sendable {
    public let resource: WatchedResource
    private let client: KubeAPIClient
    private let update: @Sendable (InformerUpdate) -> Void
    /// Items per list page.
    public let pageSize: Int
    /// `timeoutSeconds` of each watch is chosen in [min, 2*min) like client-go.
    public let watchTimeoutSeconds: Int

    private let condition = Condition()
    private var stopping = false
    private var finished = false
    private var started = false
    private var currentStream: KubeWatchStream?
    private var syncedOnce = false
    private var lists = 0
    private var lastVersion: String?
    /// Shares repeated strings among this informer's objects (its thread only).
    private let interner = StringInterner()

    public init(
        resource: WatchedResource, client: KubeAPIClient, pageSize: Int = 500, watchTimeoutSeconds: Int = 300,
        update: @escaping @Sendable (InformerUpdate) -> Void
    ) {
        self.resource = resource
        self.client = client
        self.pageSize = pageSize
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.update = update
    }

    /// Complete lists done (1 after the initial sync; more after relists).
    public var listCount: Int { condition.withLock { lists } }
    /// The last resourceVersion seen.
    public var resourceVersion: String? { condition.withLock { lastVersion } }

    public func start() {
        let go = condition.withLock { () -> Bool in
            guard !started else { return false }
            started = true
            return true
        }
        guard go else { return }
        let thread = Thread { [self] in
            run()
            condition.withLock {
                finished = true
                condition.broadcast()
            }
        }
        thread.name = "postern-informer-\(resource.kind.resource)"
        thread.start()
    }

    /// Stops the thread (interrupting an open watch) and waits for it.
    public func stop() {
        condition.lock()
        defer { condition.unlock() }
        stopping = true
        currentStream?.cancel()
        condition.broadcast()
        guard started else { return }
        while !finished { condition.wait() }
    }

    private var isStopping: Bool { condition.withLock { stopping } }

    /// Sleeps, returning false early when stopping.
    private func pause(_ seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        condition.lock()
        defer { condition.unlock() }
        while !stopping {
            if !condition.wait(until: deadline) { break }
        }
        return !stopping
    }

    private func run() {
        var random = SystemRandomNumberGenerator()
        var backoff = Backoff(initialSeconds: 0.5, maximumSeconds: 10)
        var version: String? = nil
        while !isStopping {
            if version == nil {
                do {
                    version = try listAll()
                    backoff.reset()
                } catch {
                    if isStopping { return }
                    update(.problem("\(resource): list failed: \(error)"))
                    if !pause(backoff.next(using: &random)) { return }
                    continue
                }
            }
            guard let from = version else { continue }
            let began = Date()
            do {
                version = try watch(from: from, backoff: &backoff, random: &random)
                // A server that ends watches at once must not make this a busy loop.
                if Date().timeIntervalSince(began) < 1, !pause(backoff.next(using: &random)) { return }
            } catch {
                if isStopping { return }
                update(.problem("\(resource): watch failed: \(error)"))
                if let status = (error as? KubeAPIError)?.statusCode, status == 410 { version = nil }
                if !pause(backoff.next(using: &random)) { return }
            }
        }
    }

    /// Lists every page; returns the list's resourceVersion.
    private func listAll() throws -> String {
        var objects: [KubeObject] = []
        var token: String? = nil
        var version = ""
        repeat {
            var query: [(String, String)] = [("limit", "\(pageSize)")]
            if let selector = resource.fieldSelector { query.append(("fieldSelector", selector)) }
            if let token { query.append(("continue", token)) }
            let response = try client.send(method: "GET", path: resource.path, query: query)
            if response.status == 410 {
                // The continue token expired: start over without it.
                update(.problem("\(resource): list continue token expired (410); listing again from the start"))
                objects = []
                token = nil
                continue
            }
            guard response.status == 200 else { throw KubeAPIClient.statusError(response) }
            let page = try KubeWire.decodeList(response.body, kind: resource.kind)
            for failure in page.failures {
                update(.problem("\(failure.key): skipped: \(failure.reason)"))
            }
            objects += page.objects.map { $0.keepingOnlyWhatPosternReads(interner: interner) }
            token = page.continueToken
            version = page.resourceVersion
        } while token != nil && !isStopping
        update(.replaced(objects))
        condition.withLock {
            lists += 1
            lastVersion = version
        }
        return version
    }

    /// Watches from `version` until the stream ends; returns the version to
    /// resume from, or nil to relist.
    private func watch<R: RandomNumberGenerator>(from version: String, backoff: inout Backoff, random: inout R) throws -> String? {
        let timeout = watchTimeoutSeconds + Int.random(in: 0..<max(1, watchTimeoutSeconds), using: &random)
        var query: [(String, String)] = [
            ("watch", "1"), ("resourceVersion", version), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "\(timeout)"),
        ]
        if let selector = resource.fieldSelector { query.append(("fieldSelector", selector)) }
        let stream = try client.openWatch(path: resource.path, query: query, idleTimeoutMilliseconds: (timeout + 30) * 1000)
        let proceed = condition.withLock { () -> Bool in
            guard !stopping else { return false }
            currentStream = stream
            return true
        }
        defer {
            condition.withLock { currentStream = nil }
            stream.close()
        }
        guard proceed else { return version }
        backoff.reset()
        var current = version
        while let line = try stream.nextLine() {
            let event: WatchEvent
            do {
                event = try KubeWire.decodeEvent(line, kind: resource.kind)
            } catch {
                update(.problem("\(resource): watch event skipped: \(error)"))
                continue
            }
            switch event {
            case let .added(object), let .modified(object):
                current = object.metadata?.resourceVersion ?? current
                update(.upserted(object.keepingOnlyWhatPosternReads(interner: interner)))
            case let .deleted(object):
                current = object.metadata?.resourceVersion ?? current
                update(.deleted(object))
            case let .bookmark(resourceVersion):
                current = resourceVersion
            case let .error(status):
                if status.code == 410 {
                    update(.problem("\(resource): resourceVersion \(current) expired (410 \(status.reason ?? "Gone")); relisting"))
                    return nil
                }
                throw KubeAPIError.status(code: status.code ?? 500, reason: status.reason ?? "", message: status.message ?? "")
            }
            condition.withLock { lastVersion = current }
        }
        return current
    }
}
