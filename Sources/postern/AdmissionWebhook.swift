import FoundationEssentials
import Kube
import Logging
import Reactor
import Support
import TLS
import Translate

/// The validating admission webhook's decision: the incoming Ingress is
/// translated with the current objects, exactly as the controller would,
/// and refused when the controller would refuse it (an error diagnostic:
/// invalid path, bad or refused annotation value) or when it would lose a
/// host/path conflict, with the diagnostics' text so that `kubectl apply`
/// shows the problem at once. Nothing is rendered or executed.
struct AdmissionReviewer {
    /// The objects the controller serves now.
    var snapshot: () -> ObjectSnapshot
    var options: TranslateOptions

    /// Reasons that are warnings in the controller (the rule is served by
    /// another Ingress) but mean this Ingress would not do what it says.
    static let refusedWarnings: Set<String> = ["PathConflict", "DefaultBackendConflict"]

    /// An `admission.k8s.io/v1` AdmissionReview request in, the review with
    /// its response and whether it allowed the request out; nil when `body`
    /// is not an AdmissionReview.
    func review(_ body: [UInt8]) -> (answer: [UInt8], allowed: Bool)? {
        guard let review = try? JSONObjects.object(from: body) as? [String: Any],
              let request = review["request"] as? [String: Any], let uid = request["uid"] as? String
        else { return nil }
        let (allowed, message) = decide(request)
        var response: [String: Any] = ["uid": uid, "allowed": allowed]
        if let message { response["status"] = ["code": 400, "reason": "Invalid", "message": message] }
        let out: [String: Any] = ["apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response]
        guard let answer = try? JSONObjects.data(from: out, options: [.sortedKeys, .withoutEscapingSlashes]) else { return nil }
        return (Array(answer), allowed)
    }

    private func decide(_ request: [String: Any]) -> (allowed: Bool, message: String?) {
        let kind = (request["kind"] as? [String: Any])?["kind"] as? String
        guard kind == "Ingress", let object = request["object"],
              let data = try? Data(JSONObjects.data(from: object)),
              var ingress = try? JSONDecoder().decode(Ingress.self, from: data)
        else {
            // Deletions and other kinds carry nothing to check.
            return (true, nil)
        }
        if ingress.metadata.namespace.isEmpty, let namespace = request["namespace"] as? String {
            ingress.metadata.namespace = namespace
        }
        var snapshot = snapshot()
        let key = (ingress.metadata.namespace, ingress.metadata.name)
        snapshot.ingresses.removeAll { ($0.metadata.namespace, $0.metadata.name) == key }
        snapshot.ingresses.append(ingress)
        guard IngressClassFilter(options: options, classes: snapshot.ingressClasses).serves(ingress) else { return (true, nil) }
        let problems = translate(snapshot, options: options).diagnostics.filter {
            $0.kind == "Ingress" && ($0.namespace, $0.name) == key
                && ($0.severity == .error || Self.refusedWarnings.contains($0.reason))
        }
        guard !problems.isEmpty else { return (true, nil) }
        let lines = problems.map { problem in
            "\(problem.fieldPath.map { $0 + ": " } ?? "")\(problem.message) (\(problem.reason))"
        }
        return (false, "Postern would not serve this Ingress as written: " + lines.joined(separator: "; "))
    }
}

/// The webhook's HTTPS endpoint (`POST /validate-ingress`) on its own port
/// and threads, away from the proxy's workers: one thread accepts, one
/// thread per connection, one request per connection (the API server
/// opens a connection per call or reuses one; both work).
///
/// The certificate can be replaced at any time (`useCertificate`): the next
/// handshake serves the new one. Until one is set (a managed certificate
/// not read yet) connections are closed at once, so the API server applies
/// the webhook's failure policy.
final class AdmissionServer: @unchecked Sendable {
    /// Reviews answered and requests refused, for `/metrics`.
    struct Counts {
        var allowed = 0
        var denied = 0
        var badRequests = 0
        var handshakesWithoutCertificate = 0
        var certificateReloads = 0
        var connectionsRefusedBusy = 0
    }

    /// Connections served at once; more are closed at once (each holds a
    /// thread for up to the 10 s I/O timeout, so slow clients cannot pile
    /// up threads). The API server needs a handful.
    static let maximumConnections = 64

    let listener: CInt
    let boundAddress: SocketAddress
    private var store: TLSCertificateStore?
    private let reviewer: AdmissionReviewer
    private let logger: Logger
    private let lock = Lock()
    private var stopping = false
    private var counts = Counts()
    private var activeConnections = 0

    /// Binds `address`; serves nothing until `useCertificate` succeeds.
    init(address: SocketAddress, reviewer: AdmissionReviewer, logger: Logger) throws {
        listener = try Socket.listen(at: address, reusePort: false, backlog: 64)
        boundAddress = Socket.localAddress(listener) ?? address
        self.reviewer = reviewer
        self.logger = logger
    }

    /// Reads the certificate and key files (PEM) given on the command line.
    static func readFiles(certificatePath: String, keyPath: String) throws -> PEMKeyPair {
        guard let chain = FileManager.default.contents(atPath: certificatePath) else {
            throw SettingsError("--admission-webhook-certificate \(certificatePath): cannot read the file")
        }
        guard let key = FileManager.default.contents(atPath: keyPath) else {
            throw SettingsError("--admission-webhook-key \(keyPath): cannot read the file")
        }
        return PEMKeyPair(certificatePEM: Array(chain), privateKeyPEM: Array(key))
    }

    /// Serves `pair` from the next handshake on; an unusable pair is refused
    /// (the previous certificate stays in service).
    func useCertificate(_ pair: PEMKeyPair) throws {
        let input = TLSCertificateInput(name: "admission-webhook", hosts: [], certificateChainPEM: pair.certificatePEM, privateKeyPEM: pair.privateKeyPEM)
        var settings = TLSServerSettings()
        settings.alpnProtocols = ["http/1.1"]
        let builder = try TLSStoreBuilder(settings: settings, defaultCertificate: input)
        guard !builder.defaultIsSelfSigned else { throw TLSError("the certificate or key is not usable") }
        let built = builder.build([]).0
        lock.withLock {
            if store != nil { counts.certificateReloads += 1 }
            store = built
        }
    }

    var metrics: Counts { lock.withLock { counts } }

    func start() {
        let thread = Thread { [self] in
            while !lock.withLock({ stopping }) {
                guard let connection = BlockingSocket.accept(listener, timeoutMilliseconds: 200) else { continue }
                let admitted = lock.withLock { () -> Bool in
                    guard activeConnections < Self.maximumConnections else {
                        counts.connectionsRefusedBusy += 1
                        return false
                    }
                    activeConnections += 1
                    return true
                }
                guard admitted else {
                    Socket.close(connection)
                    continue
                }
                let worker = Thread { [self] in
                    serve(connection)
                    lock.withLock { activeConnections -= 1 }
                }
                worker.name = "postern-admission"
                worker.start()
            }
            Socket.close(listener)
        }
        thread.name = "postern-admission-accept"
        thread.start()
    }

    func stop() {
        lock.withLock { stopping = true }
    }

    private func serve(_ fd: CInt) {
        defer { Socket.close(fd) }
        BlockingSocket.setBlocking(fd)
        BlockingSocket.setTimeouts(fd, receiveMilliseconds: 10_000, sendMilliseconds: 10_000)
        guard let store = lock.withLock({ store }) else {
            lock.withLock { counts.handshakesWithoutCertificate += 1 }
            return
        }
        guard let tls = try? TLSConnection(fd: fd, store: store), tls.handshake() == .bytes(0) else { return }
        defer { tls.shutdown() }
        // The head, then Content-Length bytes of body (the API server sends no chunked bodies).
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        let limit = 3 * 1024 * 1024
        var headEnd: Int?
        var length = 0
        while data.count <= limit {
            if headEnd == nil, let end = Self.find([13, 10, 13, 10], in: data) {
                headEnd = end + 4
                let head = String(decoding: data[..<end], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    length = Int(line.dropFirst("content-length:".count).trimmingWhitespace()) ?? -1
                }
            }
            if let headEnd, length >= 0, data.count >= headEnd + length { break }
            let count = buffer.withUnsafeMutableBytes { tls.read(into: $0) }
            guard case let .bytes(read) = count, read > 0 else { return }
            data += buffer[0..<read]
        }
        guard let headEnd, length >= 0, data.count >= headEnd + length else {
            respond(tls, status: 413, body: Array("request too large\n".utf8))
            return
        }
        let requestLine = String(decoding: data.prefix(while: { $0 != 13 }), as: UTF8.self)
        guard requestLine.hasPrefix("POST /validate-ingress") else {
            respond(tls, status: 404, body: Array("not found: POST /validate-ingress\n".utf8))
            return
        }
        guard let result = reviewer.review(Array(data[headEnd..<(headEnd + length)])) else {
            lock.withLock { counts.badRequests += 1 }
            respond(tls, status: 400, body: Array("expected an admission.k8s.io/v1 AdmissionReview\n".utf8))
            return
        }
        lock.withLock {
            if result.allowed { counts.allowed += 1 } else { counts.denied += 1 }
        }
        respond(tls, status: 200, body: result.answer, contentType: "application/json")
    }

    private func respond(_ tls: TLSConnection, status: Int, body: [UInt8], contentType: String = "text/plain") {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Content Too Large"][status] ?? "Error"
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + body
        var offset = 0
        while offset < bytes.count {
            let result = bytes[offset...].withUnsafeBytes { tls.write($0) }
            guard case let .bytes(count) = result, count > 0 else { return }
            offset += count
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
        }
        return nil
    }
}
