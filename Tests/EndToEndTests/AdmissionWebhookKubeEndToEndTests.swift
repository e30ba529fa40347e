import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Writes through the fake API server's HTTP API, as kubectl does (so that
/// its validating webhooks run), and the objects those tests need.
enum AdmissionKube {
    static let webhookName = "validate.postern.dev"
    static let namespace = "ingress-system"

    /// `method path` with a JSON body; the status and the answer (an object or a `Status`).
    static func send(_ api: FakeKubeAPIServer, _ method: String, _ path: String, _ body: String) throws -> (status: Int, object: [String: Any]) {
        let connection = try RawConnection(port: api.port, timeoutSeconds: 20)
        try connection.send(
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer token-1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body)
        let response = try connection.readResponse()
        return (response.status, (try? response.json()) ?? [:])
    }

    /// `kubectl create` of an Ingress in `default`.
    static func createIngress(_ api: FakeKubeAPIServer, _ json: String) throws -> (status: Int, object: [String: Any]) {
        try send(api, "POST", "/apis/networking.k8s.io/v1/namespaces/default/ingresses", json)
    }

    /// An Ingress of class postern for `host` → svc-a, with `annotations`.
    static func ingress(_ name: String, host: String, annotations: [String: String] = [:]) -> String {
        let rendered = annotations.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",")
        return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"default","annotations":{\#(rendered)}},"spec":{"ingressClassName":"postern","rules":[{"host":"\#(host)","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"svc-a","port":{"number":80}}}}]}}]}}"#
    }

    /// An annotation value Postern refuses (fail closed): `use-regex` takes true or false.
    static let refusedAnnotation = ["nginx.ingress.kubernetes.io/use-regex": "yes"]

    /// The chart's ValidatingWebhookConfiguration, with a URL instead of a Service.
    static func webhookConfiguration(url: String, caBundle: String?, failurePolicy: String = "Fail", timeoutSeconds: Int = 3) -> String {
        let bundle = caBundle.map { #","caBundle":"\#($0)""# } ?? ""
        return #"{"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration","metadata":{"name":"postern-admission"},"webhooks":[{"name":"\#(webhookName)","admissionReviewVersions":["v1"],"sideEffects":"None","failurePolicy":"\#(failurePolicy)","timeoutSeconds":\#(timeoutSeconds),"clientConfig":{"url":"\#(url)"\#(bundle)},"rules":[{"apiGroups":["networking.k8s.io"],"apiVersions":["v1"],"operations":["CREATE","UPDATE"],"resources":["ingresses"],"scope":"Namespaced"}]}]}"#
    }

    static func message(_ object: [String: Any]) -> String { object["message"] as? String ?? "" }

    /// The caBundle the fake holds now.
    static func caBundle(_ api: FakeKubeAPIServer) -> String? {
        let configuration = api.object(resource: "validatingwebhookconfigurations", namespace: nil, name: "postern-admission")
        let webhooks = configuration?["webhooks"] as? [[String: Any]] ?? []
        return (webhooks.first?["clientConfig"] as? [String: Any])?["caBundle"] as? String
    }

    /// The managed Secret's `data` (base64 values).
    static func secretData(_ api: FakeKubeAPIServer) -> [String: String]? {
        api.object(resource: "secrets", namespace: namespace, name: "postern-admission")?["data"] as? [String: String]
    }

    static func decoded(_ value: String?) -> String {
        value.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The value of a metric sample line (`name{labels}`) from /metrics.
    static func metric(_ postern: KubePosternProcess, _ sample: String) -> Double? {
        guard let response = try? HTTPClient.request(port: postern.adminPort, path: "/metrics") else { return nil }
        for line in response.bodyText.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }

    /// A loopback port nothing listens on.
    static func closedPort() throws -> UInt16 {
        let probe = FakeKubeAPIServer()
        try probe.start()
        let port = probe.port
        probe.stop()
        return port
    }
}

/// A loopback TCP listener that never accepts: connections complete (the
/// kernel's backlog) and then hear nothing, as a hung webhook.
final class SilentListener {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw HarnessError("silent listener: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(fd) }
}

extension EndToEndTests {
    /// The admission webhook as a real cluster uses it: the (strict) fake API
    /// server calls it on `kubectl create`/`apply` through a
    /// ValidatingWebhookConfiguration, verifying it against `caBundle`.
    @Suite struct AdmissionWebhookThroughTheAPIServer {
        typealias Cluster = Kubernetes.Cluster

        @Test func badIngressIsRefusedWithPosternsDiagnosticAndAGoodOneIsAdmitted() throws {
            let cluster = try Cluster(startPostern: false)
            let folder = NSTemporaryDirectory() + "postern-webhook-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for name in ["tls", "other"] {
                let openssl = try runCommand("/usr/bin/openssl", [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=\(name)",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "\(folder)/\(name).key", "-out", "\(folder)/\(name).crt",
                ])
                try #require(openssl.status == 0, "\(openssl.stderr)")
            }
            // The cert-manager way: certificate files, caBundle set by someone else.
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: [
                "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-certificate", folder + "/tls.crt",
                "--admission-webhook-key", folder + "/tls.key",
            ])
            let port = try postern.child.waitForListeningPort(prefix: "admission webhook listening on ")
            #expect(secondsUntil(timeout: 10) { postern.readiness() == 200 } != nil)
            let bundle = try #require(FileManager.default.contents(atPath: folder + "/tls.crt")).base64EncodedString()
            let url = "https://127.0.0.1:\(port)/validate-ingress"
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: url, caBundle: bundle))

            // A refused annotation value: the API server answers with Postern's diagnostic and stores nothing.
            let bad = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("bad", host: "bad.example.com", annotations: AdmissionKube.refusedAnnotation))
            #expect(bad.status == 400)
            let message = AdmissionKube.message(bad.object)
            #expect(message.hasPrefix("admission webhook \"validate.postern.dev\" denied the request: Postern would not serve this Ingress as written"), "\(message)")
            #expect(message.contains("metadata.annotations[nginx.ingress.kubernetes.io/use-regex]"), "\(message)")
            #expect(message.contains("InvalidAnnotation"), "\(message)")
            #expect(bad.object["kind"] as? String == "Status" && bad.object["code"] as? Int == 400)
            #expect(cluster.api.object(resource: "ingresses", namespace: "default", name: "bad") == nil)

            // A good one is admitted and stored, and Postern serves it.
            let good = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("good", host: "good.example.com"))
            #expect(good.status == 201, "\(good.object)")
            #expect(cluster.api.object(resource: "ingresses", namespace: "default", name: "good") != nil)
            #expect(secondsUntil(timeout: 5) { postern.probe(host: "good.example.com").backend == "a" } != nil)

            // An update that breaks it is refused too; the stored object is unchanged.
            var stored = try #require(cluster.api.object(resource: "ingresses", namespace: "default", name: "good"))
            var metadata = stored["metadata"] as? [String: Any] ?? [:]
            metadata["annotations"] = AdmissionKube.refusedAnnotation
            stored["metadata"] = metadata
            let updateBody = String(decoding: try JSONSerialization.data(withJSONObject: stored), as: UTF8.self)
            let update = try AdmissionKube.send(cluster.api, "PUT", "/apis/networking.k8s.io/v1/namespaces/default/ingresses/good", updateBody)
            #expect(update.status == 400)
            #expect(AdmissionKube.message(update.object).contains("InvalidAnnotation"))
            let after = cluster.api.object(resource: "ingresses", namespace: "default", name: "good")
            let annotations = (after?["metadata"] as? [String: Any])?["annotations"] as? [String: String] ?? [:]
            #expect(annotations["nginx.ingress.kubernetes.io/use-regex"] == nil)

            // Each call was made once, as recorded by the API server.
            let calls = cluster.api.webhookCalls
            #expect(calls.map(\.outcome) == [.denied, .allowed, .denied])
            #expect(calls.map(\.operation) == ["CREATE", "CREATE", "UPDATE"])
            #expect(calls.allSatisfy { $0.webhook == AdmissionKube.webhookName && $0.url == url })

            // A caBundle that does not sign the webhook's certificate: the API server cannot trust it (Fail: refused).
            let otherBundle = try #require(FileManager.default.contents(atPath: folder + "/other.crt")).base64EncodedString()
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: url, caBundle: otherBundle))
            let untrusted = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("fine", host: "fine.example.com"))
            #expect(untrusted.status == 500)
            #expect(AdmissionKube.message(untrusted.object).contains("failed calling webhook \"validate.postern.dev\""), "\(untrusted.object)")
            #expect(AdmissionKube.message(untrusted.object).contains("x509"), "\(untrusted.object)")
            #expect(AdmissionKube.metric(postern, "postern_admission_reviews_total{result=\"denied\"}") == 2)
        }

        @Test func webhookDownOrHungFollowsTheFailurePolicy() throws {
            let cluster = try Cluster(startPostern: false)
            // Down: nothing listens.
            let down = "https://127.0.0.1:\(try AdmissionKube.closedPort())/validate-ingress"
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: down, caBundle: nil, failurePolicy: "Fail"))
            let refused = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("one", host: "one.example.com"))
            #expect(refused.status == 500)
            let message = AdmissionKube.message(refused.object)
            #expect(message.hasPrefix("Internal error occurred: failed calling webhook \"validate.postern.dev\": failed to call webhook: Post \"\(down)?timeout=3s\""), "\(message)")
            #expect(refused.object["reason"] as? String == "InternalError")
            #expect(cluster.api.object(resource: "ingresses", namespace: "default", name: "one") == nil)

            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: down, caBundle: nil, failurePolicy: "Ignore"))
            let ignored = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("one", host: "one.example.com"))
            #expect(ignored.status == 201)
            #expect(cluster.api.object(resource: "ingresses", namespace: "default", name: "one") != nil)

            // Hung: connections are taken but never answered; the timeout ends the call.
            let silent = try SilentListener()
            let hung = "https://127.0.0.1:\(silent.port)/validate-ingress"
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: hung, caBundle: nil, failurePolicy: "Fail", timeoutSeconds: 1))
            let started = Date()
            let timedOut = try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("two", host: "two.example.com"))
            let elapsed = Date().timeIntervalSince(started)
            #expect(timedOut.status == 500)
            #expect(AdmissionKube.message(timedOut.object).contains("deadline exceeded"), "\(timedOut.object)")
            #expect(elapsed >= 0.9 && elapsed < 5, "\(elapsed)")
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: hung, caBundle: nil, failurePolicy: "Ignore", timeoutSeconds: 1))
            #expect(try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("two", host: "two.example.com")).status == 201)

            // Objects the rules do not name are not sent to the webhook.
            #expect(try AdmissionKube.send(cluster.api, "POST", "/api/v1/namespaces/default/services", KubeObjects.service("svc-x")).status == 201)
            #expect(cluster.api.webhookCalls.map(\.outcome) == [.failed, .failed, .failed, .failed])
        }
    }
}
