import Foundation
import Reactor
import TLS

/// A Kubernetes API server for tests, on loopback, speaking the real
/// protocol: the real paths and query parameters, lists with
/// `metadata.resourceVersion` and `continue` pagination, chunked watch
/// streams of one JSON event per line, bookmarks, 410 Gone as an `ERROR`
/// event inside a watch and as HTTP 410 on a list or an expired continue
/// token, `Status` bodies on errors, bearer-token authentication (401) and
/// authorisation (403), Lease optimistic concurrency (409), the Ingress
/// `status` subresource (PUT and merge-patch), Event creation, and
/// validating admission webhooks called on creates and updates
/// (`FakeKubeAPIServer+Admission.swift`).
///
/// Strict: unknown paths are 404, unknown query parameters, malformed
/// values and unsupported field selectors are 400, wrong content types are
/// 415, a write without the right resourceVersion is 409 — what a real API
/// server rejects, this one rejects.
///
/// Threading: one thread accepts, one thread per connection. Every method
/// may be called from any thread.
public final class FakeKubeAPIServer: @unchecked Sendable {
    /// A resource the fake serves.
    struct ResourceType {
        var groupVersion: String
        var prefix: String
        var kind: String
        var namespaced: Bool
        var hasStatus: Bool
    }

    static let resources: [String: ResourceType] = [
        "ingresses": ResourceType(groupVersion: "networking.k8s.io/v1", prefix: "/apis/networking.k8s.io/v1", kind: "Ingress", namespaced: true, hasStatus: true),
        "ingressclasses": ResourceType(groupVersion: "networking.k8s.io/v1", prefix: "/apis/networking.k8s.io/v1", kind: "IngressClass", namespaced: false, hasStatus: false),
        "services": ResourceType(groupVersion: "v1", prefix: "/api/v1", kind: "Service", namespaced: true, hasStatus: true),
        "secrets": ResourceType(groupVersion: "v1", prefix: "/api/v1", kind: "Secret", namespaced: true, hasStatus: false),
        "configmaps": ResourceType(groupVersion: "v1", prefix: "/api/v1", kind: "ConfigMap", namespaced: true, hasStatus: false),
        "validatingwebhookconfigurations": ResourceType(groupVersion: "admissionregistration.k8s.io/v1", prefix: "/apis/admissionregistration.k8s.io/v1", kind: "ValidatingWebhookConfiguration", namespaced: false, hasStatus: false),
        "endpointslices": ResourceType(groupVersion: "discovery.k8s.io/v1", prefix: "/apis/discovery.k8s.io/v1", kind: "EndpointSlice", namespaced: true, hasStatus: false),
        "leases": ResourceType(groupVersion: "coordination.k8s.io/v1", prefix: "/apis/coordination.k8s.io/v1", kind: "Lease", namespaced: true, hasStatus: false),
        "events": ResourceType(groupVersion: "events.k8s.io/v1", prefix: "/apis/events.k8s.io/v1", kind: "Event", namespaced: true, hasStatus: false),
    ]

    /// One recorded request.
    public struct RecordedRequest: Sendable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var headers: [String: String]
        public var body: String
    }

    private struct HistoryEntry {
        var resourceVersion: Int
        var type: String
        var resource: String
        var object: [String: Any]
    }

    final class Watcher {
        let resource: String
        let namespace: String?
        let selector: [(field: String, value: String, equal: Bool)]
        let bookmarks: Bool
        var queue: [[UInt8]] = []
        var closed = false
        init(resource: String, namespace: String?, selector: [(String, String, Bool)], bookmarks: Bool) {
            self.resource = resource
            self.namespace = namespace
            self.selector = selector
            self.bookmarks = bookmarks
        }
    }

    private let condition = NSCondition()
    private var listener: CInt = -1
    private var running = false
    private var acceptThreadDone = true
    private var connections: Set<CInt> = []
    private var watchers: [ObjectIdentifier: Watcher] = [:]
    /// resource → "namespace/name" → object
    private var objects: [String: [String: [String: Any]]] = [:]
    private var history: [HistoryEntry] = []
    private var version = 1000
    private var compactedBelow = 0
    private var stalled = false
    private var uidCounter = 0
    private var requestLog: [RecordedRequest] = []
    private var webhookCallLog: [WebhookCall] = []
    private var tlsStore: TLSCertificateStore?
    private var requireClientCertificate = false

    /// Serves HTTPS from now on with `certificateChainPEM`/`privateKeyPEM`;
    /// with `clientCertificateAuthorityPEM`, a client certificate signed by it
    /// is required (as kube-apiserver's `--client-ca-file`).
    public func enableTLS(certificateChainPEM: [UInt8], privateKeyPEM: [UInt8], clientCertificateAuthorityPEM: [UInt8]? = nil) throws {
        // Like kube-apiserver: a client certificate is asked for, verified when
        // given, and a request with neither a valid one nor a token is 401.
        let input = TLSCertificateInput(
            name: "fake-kube-api", hosts: ["localhost", "127.0.0.1"], certificateChainPEM: certificateChainPEM, privateKeyPEM: privateKeyPEM,
            clientVerification: clientCertificateAuthorityPEM.map {
                TLSClientVerification(required: false, certificateAuthoritiesPEM: $0, verifyDepth: 3, passCertificateToUpstream: true)
            })
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: input)
        let (store, problems) = builder.build([input])
        requireClientCertificate = clientCertificateAuthorityPEM != nil
        if let problem = problems.first(where: { $0.severity == .error }) { throw FakeKubeAPIError("TLS: \(problem)") }
        condition.withLock { tlsStore = store }
    }

    /// The port (fixed once started; a restart reuses it).
    public private(set) var port: UInt16 = 0
    /// When set, requests must carry `Authorization: Bearer` with one of these (else 401).
    public var acceptedTokens: Set<String>? {
        get { condition.withLock { _acceptedTokens } }
        set { condition.withLock { _acceptedTokens = newValue } }
    }
    private var _acceptedTokens: Set<String>?
    /// Paths (prefixes) answered 403 Forbidden.
    public var forbiddenPathPrefixes: [String] {
        get { condition.withLock { _forbidden } }
        set { condition.withLock { _forbidden = newValue } }
    }
    private var _forbidden: [String] = []
    /// Interval of BOOKMARK events on watches that asked for them.
    public let bookmarkInterval: Double
    /// Events kept for watches that resume from an older resourceVersion
    /// (nil: all). Older ones are compacted, as etcd does: a watch from
    /// before them gets 410; open watches are not affected. Benchmarks that
    /// write hundreds of thousands of objects set it to bound the fake's memory.
    public let historyLimit: Int?

    public init(bookmarkInterval: Double = 1.0, historyLimit: Int? = nil) {
        self.bookmarkInterval = bookmarkInterval
        self.historyLimit = historyLimit
    }

    deinit { stop() }

    // MARK: Lifecycle and hooks

    /// Listens on 127.0.0.1 (port 0 first time; the same port after `stop()`).
    public func start() throws {
        // Webhook calls write through OpenSSL to servers that may hang up
        // (a webhook without a certificate yet closes at once): EPIPE, not
        // a signal that ends the test process.
        Socket.ignoreSIGPIPE()
        let address = SocketAddress(bytes: [127, 0, 0, 1], port: port)
        let fd = try Socket.listen(at: address, reusePort: false, backlog: 128)
        guard let bound = Socket.localAddress(fd) else { throw SystemError("getsockname", errno: 0) }
        condition.withLock {
            listener = fd
            port = bound.port
            running = true
            acceptThreadDone = false
        }
        let thread = Thread { [self] in acceptLoop(fd) }
        thread.name = "fake-kube-accept"
        thread.start()
        let ticker = Thread { [self] in bookmarkLoop() }
        ticker.name = "fake-kube-bookmarks"
        ticker.start()
    }

    /// Stops listening and drops every connection (the API server "disappears").
    public func stop() {
        let fd: CInt = condition.withLock {
            running = false
            let fd = listener
            listener = -1
            condition.broadcast()
            return fd
        }
        condition.lock()
        while !acceptThreadDone { condition.wait() }
        condition.unlock()
        if fd >= 0 { Socket.close(fd) }
        dropConnections()
    }

    /// Closes every open connection (watches end abruptly, without the final chunk).
    public func dropConnections() {
        condition.withLock {
            for fd in connections { BlockingSocket.shutdown(fd) }
            for watcher in watchers.values { watcher.closed = true }
            condition.broadcast()
        }
    }

    /// Forgets history up to now: watches from an older resourceVersion get
    /// 410; every open watch receives an `ERROR` 410 event and ends.
    public func compact() {
        condition.withLock {
            compactedBelow = version + 1
            history.removeAll()
            let status = FakeKubeAPIServer.statusObject(code: 410, reason: "Expired", message: "too old resource version: compacted at \(version)")
            for watcher in watchers.values {
                watcher.queue.append(FakeKubeAPIServer.eventLine(type: "ERROR", object: status))
                watcher.closed = true
            }
            condition.broadcast()
        }
    }

    /// While stalled, watches receive nothing (events still happen and are kept).
    public func setWatchesStalled(_ value: Bool) {
        condition.withLock {
            stalled = value
            condition.broadcast()
        }
    }

    /// Every request received so far.
    public var requests: [RecordedRequest] { condition.withLock { requestLog } }

    /// Loopback ports of webhook Services ("namespace/name" → port): a
    /// webhook whose clientConfig names such a Service is dialled there.
    public var serviceEndpoints: [String: UInt16] {
        get { condition.withLock { _serviceEndpoints } }
        set { condition.withLock { _serviceEndpoints = newValue } }
    }
    private var _serviceEndpoints: [String: UInt16] = [:]

    /// Every validating webhook call made so far (see `FakeKubeAPIServer+Admission.swift`).
    public var webhookCalls: [WebhookCall] { condition.withLock { webhookCallLog } }

    func recordWebhookCall(_ call: WebhookCall) {
        condition.withLock { webhookCallLog.append(call) }
    }

    /// Number of watch streams open now.
    public var openWatchCount: Int { condition.withLock { watchers.count } }

    /// The current resourceVersion.
    public var resourceVersion: Int { condition.withLock { version } }

    // MARK: Objects (test side)

    /// Creates or replaces an object given as YAML-like JSON (`apiVersion`,
    /// `kind`, `metadata.name`, ...). Sets uid, resourceVersion, creationTimestamp.
    @discardableResult
    public func apply(_ json: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let kind = object["kind"] as? String,
              let resource = FakeKubeAPIServer.resources.first(where: { $0.value.kind == kind })?.key
        else { throw FakeKubeAPIError("apply: not an object of a served kind") }
        return try condition.withLock { try store(resource: resource, object: object, requireVersion: false) }
    }

    /// Deletes an object; false when absent.
    @discardableResult
    public func delete(resource: String, namespace: String?, name: String) -> Bool {
        condition.withLock {
            let key = "\(namespace ?? "")/\(name)"
            guard let old = objects[resource]?[key] else { return false }
            objects[resource]?[key] = nil
            version += 1
            var deleted = old
            var metadata = deleted["metadata"] as? [String: Any] ?? [:]
            metadata["resourceVersion"] = "\(version)"
            deleted["metadata"] = metadata
            record(type: "DELETED", resource: resource, object: deleted)
            return true
        }
    }

    /// An object as stored (nil when absent).
    public func object(resource: String, namespace: String?, name: String) -> [String: Any]? {
        condition.withLock { objects[resource]?["\(namespace ?? "")/\(name)"] }
    }

    /// Every object of a resource.
    public func objects(resource: String) -> [[String: Any]] {
        condition.withLock { Array((objects[resource] ?? [:]).values) }
    }

    // MARK: Internals: store

    /// Stores `object` (lock held). With `requireVersion`, a given
    /// metadata.resourceVersion must equal the stored one (409 otherwise).
    private func store(resource: String, object input: [String: Any], requireVersion: Bool, create: Bool = false) throws -> [String: Any] {
        guard let type = FakeKubeAPIServer.resources[resource] else { throw FakeKubeAPIError("unknown resource") }
        var object = input
        var metadata = object["metadata"] as? [String: Any] ?? [:]
        guard let name = metadata["name"] as? String, !name.isEmpty else { throw HTTPFailure(422, "Invalid", "metadata.name: Required value") }
        let namespace = type.namespaced ? (metadata["namespace"] as? String ?? "default") : nil
        let key = "\(namespace ?? "")/\(name)"
        let existing = objects[resource]?[key]
        if create, existing != nil {
            throw HTTPFailure(409, "AlreadyExists", "\(resource) \"\(name)\" already exists")
        }
        if requireVersion, let existing {
            let current = (existing["metadata"] as? [String: Any])?["resourceVersion"] as? String
            let given = metadata["resourceVersion"] as? String
            if given == nil || given != current {
                throw HTTPFailure(409, "Conflict",
                    "Operation cannot be fulfilled on \(resource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again")
            }
        } else if requireVersion, !create, existing == nil {
            throw HTTPFailure(404, "NotFound", "\(resource) \"\(name)\" not found")
        }
        version += 1
        object["apiVersion"] = type.groupVersion
        object["kind"] = type.kind
        if let namespace { metadata["namespace"] = namespace } else { metadata["namespace"] = nil }
        metadata["resourceVersion"] = "\(version)"
        let existingMeta = existing?["metadata"] as? [String: Any]
        if let uid = existingMeta?["uid"] {
            metadata["uid"] = uid
            metadata["creationTimestamp"] = existingMeta?["creationTimestamp"]
        } else {
            uidCounter += 1
            metadata["uid"] = String(format: "00000000-0000-4000-8000-%012d", uidCounter)
            metadata["creationTimestamp"] = FakeKubeAPIServer.timestamp()
        }
        object["metadata"] = metadata
        objects[resource, default: [:]][key] = object
        record(type: existing == nil ? "ADDED" : "MODIFIED", resource: resource, object: object)
        return object
    }

    private func record(type: String, resource: String, object: [String: Any]) {
        history.append(HistoryEntry(resourceVersion: version, type: type, resource: resource, object: object))
        if let historyLimit, history.count >= 2 * max(historyLimit, 1) {
            // Dropped in halves, so that the copy is amortised over many writes.
            history.removeFirst(history.count - historyLimit)
            compactedBelow = max(compactedBelow, (history.first?.resourceVersion ?? version) - 1)
        }
        for watcher in watchers.values where watcher.resource == resource && matches(watcher, object) {
            watcher.queue.append(FakeKubeAPIServer.eventLine(type: type, object: object))
        }
        condition.broadcast()
    }

    private func matches(_ watcher: Watcher, _ object: [String: Any]) -> Bool {
        FakeKubeAPIServer.matches(object, namespace: watcher.namespace, selector: watcher.selector)
    }

    static func matches(_ object: [String: Any], namespace: String?, selector: [(field: String, value: String, equal: Bool)]) -> Bool {
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        if let namespace, metadata["namespace"] as? String != namespace { return false }
        for term in selector {
            let actual: String?
            switch term.field {
            case "metadata.name": actual = metadata["name"] as? String
            case "metadata.namespace": actual = metadata["namespace"] as? String
            case "type": actual = object["type"] as? String ?? "Opaque"
            default: actual = nil
            }
            if (actual == term.value) != term.equal { return false }
        }
        return true
    }

    static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date())
    }

    static func statusObject(code: Int, reason: String, message: String) -> [String: Any] {
        ["kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Failure", "message": message, "reason": reason, "code": code]
    }

    static func eventLine(type: String, object: [String: Any]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: ["type": type, "object": object], options: [.sortedKeys])) ?? Data()
        return Array(data) + [10]
    }

    // MARK: Internals: connections

    private func acceptLoop(_ fd: CInt) {
        while condition.withLock({ running }) {
            guard let client = BlockingSocket.accept(fd, timeoutMilliseconds: 100) else { continue }
            condition.withLock { _ = connections.insert(client) }
            let thread = Thread { [self] in
                serve(client)
                condition.withLock { _ = connections.remove(client) }
                Socket.close(client)
            }
            thread.name = "fake-kube-conn"
            thread.start()
        }
        condition.withLock {
            acceptThreadDone = true
            condition.broadcast()
        }
    }

    private func bookmarkLoop() {
        while true {
            Thread.sleep(forTimeInterval: bookmarkInterval)
            let alive: Bool = condition.withLock {
                guard running else { return false }
                guard !stalled else { return true }
                for watcher in watchers.values where watcher.bookmarks {
                    let kind = FakeKubeAPIServer.resources[watcher.resource]!
                    let bookmark: [String: Any] = [
                        "kind": kind.kind, "apiVersion": kind.groupVersion,
                        "metadata": ["resourceVersion": "\(version)", "creationTimestamp": NSNull()] as [String: Any],
                    ]
                    watcher.queue.append(FakeKubeAPIServer.eventLine(type: "BOOKMARK", object: bookmark))
                }
                condition.broadcast()
                return true
            }
            if !alive { return }
        }
    }

    private func serve(_ socket: CInt) {
        BlockingSocket.setTimeouts(socket, receiveMilliseconds: 10_000, sendMilliseconds: 10_000)
        guard let fd = FakeIO(fd: socket, tls: condition.withLock { tlsStore }) else { return }
        guard let request = FakeHTTPRequest.read(fd) else { return }
        condition.withLock {
            requestLog.append(RecordedRequest(method: request.method, path: request.path, query: request.queryDictionary, headers: request.headers, body: String(decoding: request.body, as: UTF8.self)))
        }
        do {
            try handle(request, fd: fd)
        } catch let failure as HTTPFailure {
            respond(fd, status: failure.code, object: FakeKubeAPIServer.statusObject(code: failure.code, reason: failure.reason, message: failure.message))
        } catch {
            respond(fd, status: 500, object: FakeKubeAPIServer.statusObject(code: 500, reason: "InternalError", message: "\(error)"))
        }
    }

    func respond(_ fd: FakeIO, status: Int, object: [String: Any]) {
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        let head = "HTTP/1.1 \(status) \(FakeHTTPRequest.reason(status))\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + Array(body)
        _ = bytes.withUnsafeBytes { fd.writeAll($0) }
    }

    private func handle(_ request: FakeHTTPRequest, fd: FakeIO) throws {
        let (tokens, forbidden, needCertificate) = condition.withLock { (_acceptedTokens, _forbidden, requireClientCertificate) }
        if needCertificate, fd.tls?.escapedClientCertificate.isEmpty ?? true {
            throw HTTPFailure(401, "Unauthorized", "Unauthorized")
        }
        if let tokens {
            let header = request.headers["authorization"] ?? ""
            guard header.hasPrefix("Bearer "), tokens.contains(String(header.dropFirst(7))) else {
                throw HTTPFailure(401, "Unauthorized", "Unauthorized")
            }
        }
        if forbidden.contains(where: { request.path.hasPrefix($0) }) {
            throw HTTPFailure(403, "Forbidden", "forbidden: User \"system:serviceaccount:postern\" cannot access \(request.path)")
        }
        let route = try FakeRoute.parse(request.path)
        switch (request.method, route.name, route.subresource) {
        case ("GET", nil, nil):
            if let watch = request.query["watch"] {
                guard watch == "1" || watch == "true" else { throw HTTPFailure(400, "BadRequest", "watch: invalid value \"\(watch)\"") }
                try serveWatch(request, route: route, fd: fd)
            } else {
                respond(fd, status: 200, object: try list(request, route: route))
            }
        case ("GET", let name?, nil):
            try request.requireOnly([])
            guard let object = condition.withLock({ objects[route.resource]?["\(route.namespace ?? "")/\(name)"] }) else {
                throw HTTPFailure(404, "NotFound", "\(route.resource).\(route.type.groupVersion) \"\(name)\" not found")
            }
            respond(fd, status: 200, object: object)
        case ("POST", nil, nil):
            try request.requireOnly([])
            try request.requireContentType(["application/json"])
            var object = try request.jsonBody()
            var metadata = object["metadata"] as? [String: Any] ?? [:]
            if metadata["name"] == nil, let prefix = metadata["generateName"] as? String {
                metadata["name"] = prefix + String(format: "%05x", Int.random(in: 0..<0xfffff))
            }
            if route.type.namespaced {
                guard let namespace = route.namespace else { throw HTTPFailure(405, "MethodNotAllowed", "create needs a namespace in the path") }
                if let given = metadata["namespace"] as? String, given != namespace {
                    throw HTTPFailure(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
                }
                metadata["namespace"] = namespace
            }
            object["metadata"] = metadata
            try FakeKubeAPIServer.checkKind(object, route.type)
            if route.resource == "events" { try FakeKubeAPIServer.validateEvent(object) }
            // Admission runs before the write, as in kube-apiserver (an existing name is still 409 afterwards).
            try admit(operation: "CREATE", resource: route.resource, object: object, oldObject: nil)
            let stored = try condition.withLock { try store(resource: route.resource, object: object, requireVersion: false, create: true) }
            respond(fd, status: 201, object: stored)
        case ("PUT", let name?, nil):
            try request.requireOnly([])
            try request.requireContentType(["application/json"])
            let object = try request.jsonBody()
            try FakeKubeAPIServer.checkKind(object, route.type)
            guard (object["metadata"] as? [String: Any])?["name"] as? String == name else {
                throw HTTPFailure(400, "BadRequest", "the name of the object (\((object["metadata"] as? [String: Any])?["name"] ?? "")) does not match the name on the URL (\(name))")
            }
            guard let old = self.object(resource: route.resource, namespace: route.namespace, name: name) else {
                throw HTTPFailure(404, "NotFound", "\(route.resource) \"\(name)\" not found")
            }
            var incoming = object
            if route.type.namespaced, var metadata = incoming["metadata"] as? [String: Any] {
                metadata["namespace"] = route.namespace
                incoming["metadata"] = metadata
            }
            try admit(operation: "UPDATE", resource: route.resource, object: incoming, oldObject: old)
            let stored = try condition.withLock { () -> [String: Any] in
                guard objects[route.resource]?["\(route.namespace ?? "")/\(name)"] != nil else {
                    throw HTTPFailure(404, "NotFound", "\(route.resource) \"\(name)\" not found")
                }
                return try store(resource: route.resource, object: object, requireVersion: true)
            }
            respond(fd, status: 200, object: stored)
        case ("PUT", let name?, "status"), ("PATCH", let name?, "status"):
            try request.requireOnly([])
            guard route.type.hasStatus else { throw HTTPFailure(404, "NotFound", "the server could not find the requested resource") }
            if request.method == "PUT" {
                try request.requireContentType(["application/json"])
            } else {
                try request.requireContentType(["application/merge-patch+json", "application/strategic-merge-patch+json"])
            }
            let body = try request.jsonBody()
            let stored = try condition.withLock { () -> [String: Any] in
                guard var current = objects[route.resource]?["\(route.namespace ?? "")/\(name)"] else {
                    throw HTTPFailure(404, "NotFound", "\(route.resource) \"\(name)\" not found")
                }
                if request.method == "PUT" {
                    let given = (body["metadata"] as? [String: Any])?["resourceVersion"] as? String
                    let currentVersion = (current["metadata"] as? [String: Any])?["resourceVersion"] as? String
                    if let given, given != currentVersion {
                        throw HTTPFailure(409, "Conflict", "Operation cannot be fulfilled on \(route.resource) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again")
                    }
                    current["status"] = body["status"]
                } else {
                    // Only status may change through the subresource; a merge patch replaces lists whole.
                    if let status = body["status"] {
                        current["status"] = FakeKubeAPIServer.mergePatch(current["status"], status)
                    }
                }
                return try store(resource: route.resource, object: current, requireVersion: false)
            }
            respond(fd, status: 200, object: stored)
        case ("DELETE", let name?, nil):
            try request.requireOnly([])
            guard delete(resource: route.resource, namespace: route.namespace, name: name) else {
                throw HTTPFailure(404, "NotFound", "\(route.resource) \"\(name)\" not found")
            }
            respond(fd, status: 200, object: ["kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Success", "code": 200])
        default:
            throw HTTPFailure(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        }
    }

    /// events.k8s.io/v1 validation: the fields the API server requires.
    static func validateEvent(_ object: [String: Any]) throws {
        var missing: [String] = []
        for field in ["eventTime", "reportingController", "reportingInstance", "action", "reason", "type", "regarding"] where object[field] == nil {
            missing.append(field)
        }
        if let type = object["type"] as? String, type != "Normal" && type != "Warning" { missing.append("type (Normal or Warning)") }
        if let note = object["note"] as? String, note.utf8.count > 1024 { missing.append("note (at most 1 KiB)") }
        if let time = object["eventTime"] as? String, !time.contains(".") { missing.append("eventTime (MicroTime)") }
        guard missing.isEmpty else {
            throw HTTPFailure(422, "Invalid", "Event is invalid: \(missing.joined(separator: ", ")): Required value")
        }
    }

    static func checkKind(_ object: [String: Any], _ type: ResourceType) throws {
        guard object["apiVersion"] as? String == type.groupVersion, object["kind"] as? String == type.kind else {
            throw HTTPFailure(400, "BadRequest", "the API version in the data (\(object["apiVersion"] ?? "")) or kind (\(object["kind"] ?? "")) does not match the expected \(type.groupVersion) \(type.kind)")
        }
    }

    /// RFC 7386 JSON merge patch.
    static func mergePatch(_ target: Any?, _ patch: Any) -> Any? {
        guard let patchObject = patch as? [String: Any] else { return patch is NSNull ? nil : patch }
        var result = target as? [String: Any] ?? [:]
        for (key, value) in patchObject {
            if value is NSNull {
                result[key] = nil
            } else {
                result[key] = mergePatch(result[key], value)
            }
        }
        return result
    }

    private static func parseSelector(_ text: String?, resource: String) throws -> [(field: String, value: String, equal: Bool)] {
        guard let text, !text.isEmpty else { return [] }
        var terms: [(String, String, Bool)] = []
        for part in text.split(separator: ",") {
            let equal = !part.contains("!=")
            let pieces = part.components(separatedBy: equal ? (part.contains("==") ? "==" : "=") : "!=")
            guard pieces.count == 2 else { throw HTTPFailure(400, "BadRequest", "invalid field selector \"\(text)\"") }
            let field = pieces[0]
            let supported = ["metadata.name", "metadata.namespace"] + (resource == "secrets" ? ["type"] : [])
            guard supported.contains(field) else {
                throw HTTPFailure(400, "BadRequest", "\"\(field)\" is not a known field selector: only \"\(supported.joined(separator: "\", \""))\"")
            }
            terms.append((field, pieces[1], equal))
        }
        return terms
    }

    private func list(_ request: FakeHTTPRequest, route: FakeRoute) throws -> [String: Any] {
        try request.requireOnly(["limit", "continue", "resourceVersion", "resourceVersionMatch", "fieldSelector", "labelSelector", "timeoutSeconds"])
        let selector = try FakeKubeAPIServer.parseSelector(request.query["fieldSelector"], resource: route.resource)
        var limit = Int.max
        if let text = request.query["limit"] {
            guard let value = Int(text), value >= 0 else { throw HTTPFailure(400, "BadRequest", "limit: invalid value \"\(text)\"") }
            if value > 0 { limit = value }
        }
        return try condition.withLock { () -> [String: Any] in
            var start = ""
            var listVersion = version
            if let token = request.query["continue"] {
                guard let data = Data(base64Encoded: token),
                      let decoded = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let rv = decoded["rv"] as? Int, let after = decoded["start"] as? String
                else { throw HTTPFailure(400, "BadRequest", "continue key is not valid") }
                if rv < compactedBelow {
                    throw HTTPFailure(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                }
                start = after
                listVersion = rv
            }
            if let text = request.query["resourceVersion"], !text.isEmpty, text != "0" {
                guard let requested = Int(text) else { throw HTTPFailure(400, "BadRequest", "resourceVersion: invalid value \"\(text)\"") }
                if requested < compactedBelow {
                    throw HTTPFailure(410, "Expired", "too old resource version: \(requested) (\(compactedBelow))")
                }
            }
            let all = (objects[route.resource] ?? [:]).filter { FakeKubeAPIServer.matches($0.value, namespace: route.namespace, selector: selector) }
            let keys = all.keys.sorted().filter { $0 > start }
            let page = keys.prefix(limit)
            var items: [[String: Any]] = []
            for key in page {
                var item = all[key]!
                // Items of a typed list carry no kind/apiVersion.
                item["kind"] = nil
                item["apiVersion"] = nil
                items.append(item)
            }
            var metadata: [String: Any] = ["resourceVersion": "\(listVersion)"]
            if keys.count > page.count, let last = page.last {
                let token = try JSONSerialization.data(withJSONObject: ["rv": listVersion, "start": last])
                metadata["continue"] = token.base64EncodedString()
                metadata["remainingItemCount"] = keys.count - page.count
            }
            return ["kind": route.type.kind + "List", "apiVersion": route.type.groupVersion, "metadata": metadata, "items": items]
        }
    }

    private func serveWatch(_ request: FakeHTTPRequest, route: FakeRoute, fd: FakeIO) throws {
        try request.requireOnly(["watch", "resourceVersion", "resourceVersionMatch", "allowWatchBookmarks", "timeoutSeconds", "fieldSelector", "labelSelector", "sendInitialEvents"])
        let selector = try FakeKubeAPIServer.parseSelector(request.query["fieldSelector"], resource: route.resource)
        var timeout = 1800.0
        if let text = request.query["timeoutSeconds"] {
            guard let value = Int(text), value >= 0 else { throw HTTPFailure(400, "BadRequest", "timeoutSeconds: invalid value \"\(text)\"") }
            timeout = Double(value)
        }
        if let bookmarks = request.query["allowWatchBookmarks"], bookmarks != "true", bookmarks != "false", bookmarks != "1", bookmarks != "0" {
            throw HTTPFailure(400, "BadRequest", "allowWatchBookmarks: invalid value \"\(bookmarks)\"")
        }
        var from: Int? = nil
        if let text = request.query["resourceVersion"], !text.isEmpty, text != "0" {
            guard let value = Int(text) else { throw HTTPFailure(400, "BadRequest", "resourceVersion: invalid value \"\(text)\"") }
            from = value
        }
        let watcher = Watcher(resource: route.resource, namespace: route.namespace, selector: selector,
                              bookmarks: request.query["allowWatchBookmarks"] == "true" || request.query["allowWatchBookmarks"] == "1")
        condition.withLock {
            if let from {
                if from < compactedBelow {
                    let status = FakeKubeAPIServer.statusObject(code: 410, reason: "Expired", message: "too old resource version: \(from) (\(compactedBelow))")
                    watcher.queue.append(FakeKubeAPIServer.eventLine(type: "ERROR", object: status))
                    watcher.closed = true
                } else {
                    for entry in history where entry.resourceVersion > from && entry.resource == route.resource && matches(watcher, entry.object) {
                        watcher.queue.append(FakeKubeAPIServer.eventLine(type: entry.type, object: entry.object))
                    }
                }
            } else {
                for key in (objects[route.resource] ?? [:]).keys.sorted() {
                    let object = objects[route.resource]![key]!
                    if matches(watcher, object) { watcher.queue.append(FakeKubeAPIServer.eventLine(type: "ADDED", object: object)) }
                }
            }
            watchers[ObjectIdentifier(watcher)] = watcher
        }
        defer { condition.withLock { watchers[ObjectIdentifier(watcher)] = nil } }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache, private\r\n\r\n"
        guard Array(head.utf8).withUnsafeBytes({ fd.writeAll($0) }) else { return }
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let (lines, closed, timedOut): ([[UInt8]], Bool, Bool) = condition.withLock {
                while (watcher.queue.isEmpty || stalled) && !watcher.closed && running && Date() < deadline {
                    _ = condition.wait(until: min(deadline, Date().addingTimeInterval(0.2)))
                }
                let lines = stalled ? [] : watcher.queue
                if !stalled { watcher.queue.removeAll() }
                return (lines, watcher.closed || !running, Date() >= deadline)
            }
            for line in lines {
                var chunk = Array(String(line.count, radix: 16).utf8) + [13, 10] + line + [13, 10]
                if !chunk.withUnsafeBytes({ fd.writeAll($0) }) { return }
                chunk.removeAll()
            }
            if closed && !lines.isEmpty || timedOut {
                // A normal end: the last chunk.
                _ = Array("0\r\n\r\n".utf8).withUnsafeBytes { fd.writeAll($0) }
                return
            }
            if closed { return }
        }
    }
}

/// An error answered as a `Status` object.
struct HTTPFailure: Error {
    var code: Int
    var reason: String
    var message: String
    init(_ code: Int, _ reason: String, _ message: String) {
        self.code = code
        self.reason = reason
        self.message = message
    }
}

/// A misuse of the fake by a test.
public struct FakeKubeAPIError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A request path resolved to a resource.
struct FakeRoute {
    var resource: String
    var type: FakeKubeAPIServer.ResourceType
    var namespace: String?
    var name: String?
    var subresource: String?

    static func parse(_ path: String) throws -> FakeRoute {
        let notFound = HTTPFailure(404, "NotFound", "the server could not find the requested resource")
        for (resource, type) in FakeKubeAPIServer.resources where path.hasPrefix(type.prefix + "/") {
            let rest = path.dropFirst(type.prefix.count + 1).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            var index = 0
            var namespace: String? = nil
            if rest.count >= 3, rest[0] == "namespaces" {
                guard type.namespaced else { continue }
                namespace = rest[1]
                index = 2
            }
            guard index < rest.count, rest[index] == resource else { continue }
            let tail = Array(rest[(index + 1)...])
            if tail.contains(where: { $0.isEmpty }) { throw notFound }
            switch tail.count {
            case 0: return FakeRoute(resource: resource, type: type, namespace: namespace, name: nil, subresource: nil)
            case 1, 2:
                guard namespace != nil || !type.namespaced else { throw notFound }
                if tail.count == 2 && tail[1] != "status" { throw notFound }
                return FakeRoute(resource: resource, type: type, namespace: namespace, name: tail[0], subresource: tail.count == 2 ? tail[1] : nil)
            default: throw notFound
            }
        }
        throw notFound
    }
}
