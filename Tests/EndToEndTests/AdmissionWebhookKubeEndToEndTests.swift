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

        @Test func slowConnectionsCannotPileUpButTheAPIServerStillGetsThroughOnceTheyGo() throws {
            let cluster = try Cluster(startPostern: false)
            let folder = NSTemporaryDirectory() + "postern-webhook-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let openssl = try runCommand("/usr/bin/openssl", [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=webhook",
                "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "\(folder)/tls.key", "-out", "\(folder)/tls.crt",
            ])
            try #require(openssl.status == 0, "\(openssl.stderr)")
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: [
                "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-certificate", folder + "/tls.crt",
                "--admission-webhook-key", folder + "/tls.key",
            ])
            let port = try postern.child.waitForListeningPort(prefix: "admission webhook listening on ")
            #expect(secondsUntil(timeout: 10) { postern.readiness() == 200 } != nil)
            // 70 connections that never start TLS: 64 are held, the rest closed at once.
            var idle: [RawConnection] = []
            for _ in 0..<70 { idle.append(try RawConnection(port: port)) }
            #expect(secondsUntil(timeout: 5) { AdmissionKube.metric(postern, "postern_admission_connections_refused_total") == 6 } != nil)
            let bundle = try #require(FileManager.default.contents(atPath: folder + "/tls.crt")).base64EncodedString()
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: "https://127.0.0.1:\(port)/validate-ingress", caBundle: bundle))
            idle.removeAll()
            // Once they are gone, the API server's call is served again.
            #expect(secondsUntil(timeout: 15) {
                (try? AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("bad", host: "bad.example.com", annotations: AdmissionKube.refusedAnnotation)).status) == 400
            } != nil)
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

        static func managedArguments(timing: String) -> [String] {
            [
                "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-secret", "postern-admission",
                "--admission-webhook-configuration", "postern-admission", "--admission-webhook-service", "postern-admission",
                "--admission-webhook-certificate-host", "127.0.0.1", "--admission-webhook-certificate-timing", timing,
                "--leader-election-timing", "3,2,0.5",
            ]
        }

        /// Starts a replica that manages the certificate; returns it and its webhook port.
        static func startManaged(_ cluster: Cluster, timing: String = "3600,0.3") throws -> (KubePosternProcess, UInt16) {
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: managedArguments(timing: timing))
            return (postern, try postern.child.waitForListeningPort(prefix: "admission webhook listening on "))
        }

        /// Points the webhook at `port`, keeping the caBundle the fake holds now.
        static func pointWebhook(_ cluster: Cluster, at port: UInt16) throws {
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: "https://127.0.0.1:\(port)/validate-ingress", caBundle: AdmissionKube.caBundle(cluster.api)))
        }

        /// Whether creating a refused Ingress through the API server is denied with Postern's diagnostic
        /// (so the API server reached and trusted the webhook).
        static func refusesThroughTheAPIServer(_ cluster: Cluster) -> Bool {
            guard let answer = try? AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("bad", host: "bad.example.com", annotations: AdmissionKube.refusedAnnotation))
            else { return false }
            return answer.status == 400 && AdmissionKube.message(answer.object).contains("denied the request: Postern would not serve this Ingress")
        }

        /// Writes of the managed Secret seen by the API server.
        static func secretWrites(_ cluster: Cluster) -> [FakeKubeAPIServer.RecordedRequest] {
            cluster.api.requests.filter { ($0.method == "POST" || $0.method == "PUT") && $0.path.hasPrefix("/api/v1/namespaces/ingress-system/secrets") }
        }

        @Test func managedCertificateIsCreatedTrustedThroughTheCABundleServedByEveryReplicaReusedAndRotated() throws {
            let cluster = try Cluster(startPostern: false)
            let (first, firstPort) = try Self.startManaged(cluster)
            let (second, secondPort) = try Self.startManaged(cluster)
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: "https://127.0.0.1:\(firstPort)/validate-ingress", caBundle: nil))

            // The leader creates the Secret and sets the caBundle to its CA.
            #expect(secondsUntil(timeout: 15) {
                let bundle = AdmissionKube.caBundle(cluster.api)
                return bundle != nil && bundle == AdmissionKube.secretData(cluster.api)?["ca.crt"]
            } != nil)
            let secret = try #require(cluster.api.object(resource: "secrets", namespace: AdmissionKube.namespace, name: "postern-admission"))
            #expect(secret["type"] as? String == "kubernetes.io/tls")
            let data = try #require(AdmissionKube.secretData(cluster.api))
            #expect(Set(data.keys) == ["tls.crt", "tls.key", "ca.crt", "ca.key"])

            // What it holds is a CA and a certificate it signed for the Service's names.
            let folder = NSTemporaryDirectory() + "postern-managed-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try AdmissionKube.decoded(data["ca.crt"]).write(toFile: folder + "/ca.crt", atomically: true, encoding: .utf8)
            try AdmissionKube.decoded(data["tls.crt"]).write(toFile: folder + "/tls.crt", atomically: true, encoding: .utf8)
            let verify = try runCommand("/usr/bin/openssl", ["verify", "-CAfile", folder + "/ca.crt", folder + "/tls.crt"])
            #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
            let names = try runCommand("/usr/bin/openssl", ["x509", "-noout", "-ext", "subjectAltName", "-in", folder + "/tls.crt"])
            #expect(names.stdout.contains("DNS:postern-admission.ingress-system.svc"), "\(names.stdout)")
            #expect(names.stdout.contains("IP Address:127.0.0.1"), "\(names.stdout)")

            // The API server trusts the webhook through that caBundle: a bad Ingress is refused with Postern's diagnostic, on either replica.
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            try Self.pointWebhook(cluster, at: secondPort)
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            #expect(try AdmissionKube.createIngress(cluster.api, AdmissionKube.ingress("good", host: "good.example.com")).status == 201)
            // Only the leader wrote, once.
            #expect(Self.secretWrites(cluster).count == 1)
            #expect(Set(Self.secretWrites(cluster).map { $0.headers["user-agent"] ?? "" }).count == 1)

            // A second start reuses the Secret: nothing is written, the same certificate is served.
            let version = (secret["metadata"] as? [String: Any])?["resourceVersion"] as? String
            for replica in [first, second] {
                replica.child.signal(SIGTERM)
                #expect(replica.child.waitForExit(timeout: 10) != nil)
            }
            let (third, thirdPort) = try Self.startManaged(cluster)
            try Self.pointWebhook(cluster, at: thirdPort)
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            #expect(secondsUntil(timeout: 10) { AdmissionKube.metric(third, "postern_admission_certificate_sync_errors_total") == 0 } != nil)
            Thread.sleep(forTimeInterval: 1)
            let reread = cluster.api.object(resource: "secrets", namespace: AdmissionKube.namespace, name: "postern-admission")
            #expect((reread?["metadata"] as? [String: Any])?["resourceVersion"] as? String == version)
            #expect(Self.secretWrites(cluster).count == 1)

            // Rotation: the Secret is replaced (here: deleted); the leader makes a new CA, sets the
            // caBundle, and the running replica serves the new certificate without a restart.
            let oldBundle = AdmissionKube.caBundle(cluster.api)
            cluster.api.delete(resource: "secrets", namespace: AdmissionKube.namespace, name: "postern-admission")
            #expect(secondsUntil(timeout: 10) {
                let bundle = AdmissionKube.caBundle(cluster.api)
                return bundle != oldBundle && bundle == AdmissionKube.secretData(cluster.api)?["ca.crt"]
            } != nil)
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            #expect(third.child.process.isRunning)
            #expect(AdmissionKube.metric(third, "postern_admission_certificate_reloads_total") ?? 0 >= 1)
        }

        @Test func managedCertificateIsRenewedBeforeItExpiresWithTheSameCA() throws {
            let cluster = try Cluster(startPostern: false)
            // Valid 6 s: renewed once less than 2 s remain.
            let (postern, port) = try Self.startManaged(cluster, timing: "6,0.3")
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: "https://127.0.0.1:\(port)/validate-ingress", caBundle: nil))
            #expect(secondsUntil(timeout: 15) { AdmissionKube.caBundle(cluster.api) != nil } != nil)
            let first = try #require(AdmissionKube.secretData(cluster.api))
            #expect(secondsUntil(timeout: 10) { AdmissionKube.secretData(cluster.api)?["tls.crt"] != first["tls.crt"] } != nil)
            let renewed = try #require(AdmissionKube.secretData(cluster.api))
            // The CA (and so the caBundle) stays; the API server keeps trusting the renewed certificate.
            #expect(renewed["ca.crt"] == first["ca.crt"])
            #expect(AdmissionKube.caBundle(cluster.api) == first["ca.crt"])
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            #expect(secondsUntil(timeout: 5) { AdmissionKube.metric(postern, "postern_admission_certificate_writes_total{write=\"secret_renewed\"}") ?? 0 >= 1 } != nil)
        }

        @Test func managedCAIsRotatedWithTheOldCATrustedUntilItExpires() throws {
            let cluster = try Cluster(startPostern: false)
            // Certificate 4 s, CA 9 s: a new CA once less than 3 s of the first remain.
            let (postern, port) = try Self.startManaged(cluster, timing: "4,0.3,9")
            try cluster.api.apply(AdmissionKube.webhookConfiguration(url: "https://127.0.0.1:\(port)/validate-ingress", caBundle: nil))
            #expect(secondsUntil(timeout: 15) { AdmissionKube.caBundle(cluster.api) != nil } != nil)
            let first = try #require(AdmissionKube.secretData(cluster.api))
            let firstCA = AdmissionKube.decoded(first["ca.crt"])
            #expect(firstCA.components(separatedBy: "BEGIN CERTIFICATE").count - 1 == 1)
            // The new CA comes first, the old one stays while it is valid, and the caBundle follows.
            #expect(secondsUntil(timeout: 12) { AdmissionKube.decoded(AdmissionKube.secretData(cluster.api)?["ca.crt"]).hasSuffix(firstCA) && AdmissionKube.decoded(AdmissionKube.secretData(cluster.api)?["ca.crt"]) != firstCA } != nil)
            let rotated = try #require(AdmissionKube.secretData(cluster.api))
            #expect(AdmissionKube.decoded(rotated["ca.crt"]).components(separatedBy: "BEGIN CERTIFICATE").count - 1 == 2)
            #expect(secondsUntil(timeout: 5) { AdmissionKube.caBundle(cluster.api) == AdmissionKube.secretData(cluster.api)?["ca.crt"] } != nil)
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            // Once the old CA expired it leaves the bundle.
            #expect(secondsUntil(timeout: 12) {
                let bundle = AdmissionKube.decoded(AdmissionKube.secretData(cluster.api)?["ca.crt"])
                return !bundle.contains(firstCA) && AdmissionKube.caBundle(cluster.api) == AdmissionKube.secretData(cluster.api)?["ca.crt"]
            } != nil)
            #expect(secondsUntil(timeout: 10) { Self.refusesThroughTheAPIServer(cluster) } != nil)
            #expect(AdmissionKube.metric(postern, "postern_admission_certificate_sync_errors_total") == 0)
        }

        @Test func forbiddenSecretIsAnErrorInReadinessAndMetricsAndRecoversWhenAllowed() throws {
            let cluster = try Cluster(startPostern: false)
            cluster.api.forbiddenPathPrefixes = ["/api/v1/namespaces/ingress-system/secrets"]
            let (postern, _) = try Self.startManaged(cluster)
            #expect(secondsUntil(timeout: 10) { (AdmissionKube.metric(postern, "postern_admission_certificate_sync_errors_total") ?? 0) >= 1 } != nil)
            let readiness = try HTTPClient.request(port: postern.adminPort, path: "/readyz")
            #expect(readiness.bodyText.contains("403"), "\(readiness.bodyText)")
            #expect(AdmissionKube.secretData(cluster.api) == nil)
            // Allowed again: the next round creates it.
            cluster.api.forbiddenPathPrefixes = []
            #expect(secondsUntil(timeout: 10) { AdmissionKube.secretData(cluster.api) != nil } != nil)
            #expect(secondsUntil(timeout: 5) { AdmissionKube.metric(postern, "postern_admission_certificate_writes_total{write=\"secret_created\"}") == 1 } != nil)
        }

        @Test func managedCertificateFlagsAreCheckedAtStartUp() throws {
            let manifests = try ManifestFolder()
            let withoutCluster = try runCommand(Paths.product("postern"), [
                "run", "--manifests", manifests.path, "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-secret", "postern-admission",
            ])
            #expect(withoutCluster.status == 2)
            #expect(withoutCluster.stderr.contains("--admission-webhook-secret needs the Kubernetes API source"), "\(withoutCluster.stderr)")
            let cluster = try Cluster(startPostern: false)
            let noNames = try runCommand(Paths.product("postern"), [
                "run", "--kubeconfig", cluster.kubeconfig.path, "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-secret", "postern-admission",
            ])
            #expect(noNames.status == 2)
            #expect(noNames.stderr.contains("needs --admission-webhook-service or --admission-webhook-certificate-host"), "\(noNames.stderr)")
            let both = try runCommand(Paths.product("postern"), [
                "run", "--kubeconfig", cluster.kubeconfig.path, "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-secret", "x",
                "--admission-webhook-certificate", "/a.crt", "--admission-webhook-key", "/a.key",
            ])
            #expect(both.status == 2)
            #expect(both.stderr.contains("give one, not both"), "\(both.stderr)")
        }
    }
}
