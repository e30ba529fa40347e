import Foundation
import Reactor
import TLS

/// Validating admission webhooks, called as kube-apiserver calls them: on a
/// CREATE or UPDATE through the API (not `apply(_:)`, the test's direct
/// write) of an object that a stored ValidatingWebhookConfiguration's rules
/// match, an `admission.k8s.io/v1` AdmissionReview is POSTed over HTTPS to
/// `clientConfig.url` (or a `clientConfig.service` the test registered in
/// `serviceEndpoints`, called by its name NAME.NAMESPACE.svc) with
/// `?timeout=Ns` appended, the server certificate checked against
/// `clientConfig.caBundle` and the URL's host. A denial
/// becomes the API error kube-apiserver returns ("admission webhook \"NAME\"
/// denied the request: MESSAGE", the webhook's code when at least 400, else
/// 400); a call that fails (refused, timed out, untrusted certificate, not an
/// AdmissionReview) follows `failurePolicy`: `Fail` (the default) refuses the
/// write with a 500 InternalError "failed calling webhook", `Ignore` admits it.
///
/// Supported: `rules` (apiGroups, apiVersions, operations, resources with
/// `*`; `scope` is not checked), `objectSelector`, `namespaceSelector`
/// (against the `kubernetes.io/metadata.name` label only: the fake stores no
/// Namespaces), `failurePolicy`, `timeoutSeconds` (default 10, as the API
/// server's). Not supported, and said here so a test does not rely on them:
/// resolving a Service through its Endpoints (a Service not in
/// `serviceEndpoints` fails as one without endpoints), `matchPolicy:
/// Equivalent` for other versions,
/// `matchConditions`, mutating webhooks.
extension FakeKubeAPIServer {
    /// One webhook call the fake made.
    public struct WebhookCall: Sendable {
        /// `webhooks[].name`.
        public var webhook: String
        public var url: String
        public var operation: String
        public var resource: String
        public var namespace: String?
        public var name: String
        /// How it ended: allowed, denied, or failed (then `message` says why).
        public var outcome: Outcome
        /// The denial's or the failure's text (empty when allowed).
        public var message: String

        public enum Outcome: String, Sendable {
            case allowed, denied, failed
        }
    }

    /// Runs every matching validating webhook for a write of `object`
    /// (lock not held). Throws the API error that refuses the write.
    func admit(operation: String, resource: String, object: [String: Any], oldObject: [String: Any]?) throws {
        guard let type = FakeKubeAPIServer.resources[resource] else { return }
        let configurations = objects(resource: "validatingwebhookconfigurations").sorted {
            (($0["metadata"] as? [String: Any])?["name"] as? String ?? "") < (($1["metadata"] as? [String: Any])?["name"] as? String ?? "")
        }
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        let namespace = metadata["namespace"] as? String
        let name = metadata["name"] as? String ?? ""
        let (group, version) = FakeKubeAPIServer.splitGroupVersion(type.groupVersion)
        for configuration in configurations {
            for webhook in configuration["webhooks"] as? [[String: Any]] ?? [] {
                // The fake stores no Namespaces: a namespace's labels are the one every namespace
                // carries, kubernetes.io/metadata.name (what the chart selects on).
                let namespaceLabels = namespace.map { ["kubernetes.io/metadata.name": $0] }
                guard FakeKubeAPIServer.rulesMatch(webhook["rules"], group: group, version: version, resource: resource, operation: operation),
                      FakeKubeAPIServer.selectorMatches(webhook["objectSelector"], labels: metadata["labels"] as? [String: String] ?? [:]),
                      namespaceLabels.map({ FakeKubeAPIServer.selectorMatches(webhook["namespaceSelector"], labels: $0) }) ?? true
                else { continue }
                let webhookName = webhook["name"] as? String ?? ""
                let failurePolicy = webhook["failurePolicy"] as? String ?? "Fail"
                let timeout = webhook["timeoutSeconds"] as? Int ?? 10
                let clientConfig = webhook["clientConfig"] as? [String: Any] ?? [:]
                // A Service is called as https://NAME.NAMESPACE.svc:PORT/PATH (the name the
                // certificate must hold), dialled at the loopback port the test registered.
                let service = clientConfig["service"] as? [String: Any]
                var url = clientConfig["url"] as? String ?? ""
                var dialPort: UInt16? = nil
                var unresolved: String? = nil
                if url.isEmpty, let service {
                    let serviceName = service["name"] as? String ?? ""
                    let serviceNamespace = service["namespace"] as? String ?? ""
                    let path = service["path"] as? String ?? "/"
                    url = "https://\(serviceName).\(serviceNamespace).svc:\(service["port"] as? Int ?? 443)\(path)"
                    dialPort = serviceEndpoints["\(serviceNamespace)/\(serviceName)"]
                    if dialPort == nil { unresolved = "no endpoints available for service \"\(serviceName)\"" }
                }
                var call = WebhookCall(
                    webhook: webhookName, url: url, operation: operation, resource: resource, namespace: namespace, name: name,
                    outcome: .allowed, message: "")
                defer { recordWebhookCall(call) }
                let review = FakeKubeAPIServer.admissionReview(
                    uid: UUID().uuidString.lowercased(), group: group, version: version, kind: type.kind, resource: resource,
                    namespace: namespace, name: name, operation: operation, object: object, oldObject: oldObject)
                let result: Result<[String: Any], WebhookCallError>
                if let unresolved {
                    result = .failure(WebhookCallError(unresolved))
                } else if url.isEmpty {
                    result = .failure(WebhookCallError("clientConfig: neither url nor service"))
                } else {
                    result = FakeKubeAPIServer.callWebhook(
                        url: url, dialPort: dialPort, caBundle: clientConfig["caBundle"] as? String, timeoutSeconds: timeout, review: review)
                }
                switch result {
                case let .failure(error):
                    call.outcome = .failed
                    call.message = error.description
                    // kube-apiserver: Ignore logs and admits; Fail refuses with an internal error.
                    if failurePolicy == "Ignore" { continue }
                    throw HTTPFailure(
                        500, "InternalError",
                        "Internal error occurred: failed calling webhook \"\(webhookName)\": failed to call webhook: Post \"\(url)?timeout=\(timeout)s\": \(error.description)")
                case let .success(response):
                    if response["allowed"] as? Bool == true { continue }
                    let denial = FakeKubeAPIServer.denial(webhook: webhookName, status: response["status"] as? [String: Any])
                    call.outcome = .denied
                    call.message = denial.message
                    throw denial
                }
            }
        }
    }

    /// The API error for a webhook's refusal, as kube-apiserver builds it:
    /// the webhook's message (else its reason) after "admission webhook
    /// \"NAME\" denied the request", its code when at least 400, else 400.
    static func denial(webhook: String, status: [String: Any]?) -> HTTPFailure {
        let status = status ?? [:]
        let deniedBy = "admission webhook \"\(webhook)\" denied the request"
        let message: String
        if let text = status["message"] as? String, !text.isEmpty {
            message = "\(deniedBy): \(text)"
        } else if let reason = status["reason"] as? String, !reason.isEmpty {
            message = "\(deniedBy): \(reason)"
        } else {
            message = "\(deniedBy) without explanation"
        }
        // Never a success code with a refusal.
        return HTTPFailure(max(status["code"] as? Int ?? 400, 400), status["reason"] as? String ?? "", message)
    }

    static func splitGroupVersion(_ groupVersion: String) -> (group: String, version: String) {
        let parts = groupVersion.split(separator: "/").map(String.init)
        return parts.count == 2 ? (parts[0], parts[1]) : ("", groupVersion)
    }

    static func rulesMatch(_ rules: Any?, group: String, version: String, resource: String, operation: String) -> Bool {
        func has(_ list: Any?, _ value: String) -> Bool {
            let values = list as? [String] ?? []
            return values.contains("*") || values.contains(value)
        }
        return (rules as? [[String: Any]] ?? []).contains { rule in
            has(rule["apiGroups"], group) && has(rule["apiVersions"], version) && has(rule["resources"], resource)
                && has(rule["operations"], operation)
        }
    }

    /// A label selector (`matchLabels` and `matchExpressions` with In,
    /// NotIn, Exists, DoesNotExist); an absent or empty one matches
    /// everything, an unknown operator nothing.
    static func selectorMatches(_ selector: Any?, labels: [String: String]) -> Bool {
        let selector = selector as? [String: Any] ?? [:]
        let required = selector["matchLabels"] as? [String: String] ?? [:]
        guard required.allSatisfy({ labels[$0.key] == $0.value }) else { return false }
        return (selector["matchExpressions"] as? [[String: Any]] ?? []).allSatisfy { expression in
            let key = expression["key"] as? String ?? ""
            let values = expression["values"] as? [String] ?? []
            switch expression["operator"] as? String {
            case "In": return labels[key].map(values.contains) ?? false
            case "NotIn": return labels[key].map { !values.contains($0) } ?? true
            case "Exists": return labels[key] != nil
            case "DoesNotExist": return labels[key] == nil
            default: return false
            }
        }
    }

    static func admissionReview(
        uid: String, group: String, version: String, kind: String, resource: String, namespace: String?, name: String, operation: String,
        object: [String: Any], oldObject: [String: Any]?
    ) -> [String: Any] {
        var request: [String: Any] = [
            "uid": uid,
            "kind": ["group": group, "version": version, "kind": kind],
            "resource": ["group": group, "version": version, "resource": resource],
            "requestKind": ["group": group, "version": version, "kind": kind],
            "requestResource": ["group": group, "version": version, "resource": resource],
            "name": name, "operation": operation,
            "userInfo": ["username": "fake-kube-api-client"],
            "object": object, "dryRun": false,
        ]
        if let namespace { request["namespace"] = namespace }
        if let oldObject { request["oldObject"] = oldObject }
        return ["apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request]
    }

    struct WebhookCallError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// One HTTPS POST of `review`; the AdmissionReview's `response` (whose
    /// uid must match) or why the call failed, in the words Go's client uses
    /// where they matter to a reader (connection refused, certificate).
    /// `dialPort`: connect to 127.0.0.1 at this port instead of the URL's
    /// host and port (a Service's endpoint); the URL's host is still the
    /// name sent as SNI and checked in the certificate.
    static func callWebhook(
        url: String, dialPort: UInt16? = nil, caBundle: String?, timeoutSeconds: Int, review: [String: Any]
    ) -> Result<[String: Any], WebhookCallError> {
        guard let components = URLComponents(string: url), components.scheme == "https", let host = components.host else {
            return .failure(WebhookCallError("clientConfig.url \(url): expected an https URL"))
        }
        let port = UInt16(components.port ?? 443)
        let path = (components.path.isEmpty ? "/" : components.path) + "?timeout=\(timeoutSeconds)s"
        // Without a caBundle the API server trusts the system roots; none of those signs a test's webhook.
        var authorities: [UInt8]? = nil
        if let caBundle, !caBundle.isEmpty {
            guard let decoded = Data(base64Encoded: caBundle.filter { !$0.isWhitespace }) else {
                return .failure(WebhookCallError("clientConfig.caBundle is not base64"))
            }
            authorities = Array(decoded)
        }
        let context: TLSClientContext
        do {
            context = try TLSClientContext(verify: true, certificateAuthoritiesPEM: authorities)
        } catch {
            return .failure(WebhookCallError("tls: caBundle: \(error)"))
        }
        let milliseconds = Int32(max(timeoutSeconds, 1) * 1000)
        let started = Date()
        let fd: CInt
        do {
            fd = try BlockingSocket.connect(host: dialPort == nil ? host : "127.0.0.1", port: dialPort ?? port, timeoutMilliseconds: milliseconds)
        } catch {
            return .failure(WebhookCallError("dial tcp \(dialPort == nil ? host : "127.0.0.1"):\(dialPort ?? port): connect: \(error)"))
        }
        defer { Socket.close(fd) }
        BlockingSocket.setTimeouts(fd, receiveMilliseconds: Int(milliseconds), sendMilliseconds: Int(milliseconds))
        let tls: TLSConnection
        do {
            tls = try TLSConnection(fd: fd, client: context, serverName: host)
        } catch {
            return .failure(WebhookCallError("tls: \(error)"))
        }
        guard tls.handshake() == .bytes(0) else {
            let reason = tls.verificationFailure
            if !reason.isEmpty { return .failure(WebhookCallError("tls: failed to verify certificate: x509: \(reason)")) }
            if Date().timeIntervalSince(started) >= Double(timeoutSeconds) {
                return .failure(WebhookCallError("context deadline exceeded"))
            }
            return .failure(WebhookCallError("remote error: tls: handshake failure"))
        }
        defer { tls.shutdown() }
        guard let body = try? JSONSerialization.data(withJSONObject: review, options: [.sortedKeys]) else {
            return .failure(WebhookCallError("cannot encode the AdmissionReview"))
        }
        let head = "POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let bytes = Array(head.utf8) + Array(body)
        var offset = 0
        while offset < bytes.count {
            guard case let .bytes(count) = bytes[offset...].withUnsafeBytes({ tls.write($0) }), count > 0 else {
                return .failure(WebhookCallError("write: connection reset by peer"))
            }
            offset += count
        }
        // Connection: close, so the response ends where the stream ends (Content-Length checked when given).
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while received.count < 4 << 20 {
            guard case let .bytes(count) = buffer.withUnsafeMutableBytes({ tls.read(into: $0) }), count > 0 else { break }
            received += buffer[0..<count]
            if Date().timeIntervalSince(started) > Double(timeoutSeconds) { break }
        }
        if Date().timeIntervalSince(started) > Double(timeoutSeconds) {
            return .failure(WebhookCallError("context deadline exceeded (Client.Timeout exceeded while awaiting headers)"))
        }
        guard let end = headEnd(received, [13, 10, 13, 10]) else {
            return received.isEmpty ? .failure(WebhookCallError("EOF")) : .failure(WebhookCallError("malformed HTTP response"))
        }
        let statusLine = String(decoding: received.prefix(while: { $0 != 13 }), as: UTF8.self).split(separator: " ")
        let status = statusLine.count >= 2 ? Int(statusLine[1]) ?? 0 : 0
        let responseBody = Array(received[(end + 4)...])
        guard status == 200 else {
            return .failure(WebhookCallError("an error on the server (\"\(String(decoding: responseBody.prefix(200), as: UTF8.self))\") has prevented the request from succeeding (status \(status))"))
        }
        guard let answer = try? JSONSerialization.jsonObject(with: Data(responseBody)) as? [String: Any],
              answer["apiVersion"] as? String == "admission.k8s.io/v1", answer["kind"] as? String == "AdmissionReview",
              let response = answer["response"] as? [String: Any]
        else {
            return .failure(WebhookCallError("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"))
        }
        let uid = (review["request"] as? [String: Any])?["uid"] as? String
        guard response["uid"] as? String == uid else {
            return .failure(WebhookCallError("expected response.uid=\"\(uid ?? "")\", got \"\(response["uid"] as? String ?? "")\""))
        }
        return .success(response)
    }

    private static func headEnd(_ haystack: [UInt8], _ needle: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
