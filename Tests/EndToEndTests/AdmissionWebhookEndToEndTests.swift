import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// The validating admission webhook as the API server calls it: an
    /// AdmissionReview POSTed over HTTPS (verified against the serving
    /// certificate, as with the webhook's caBundle), answered with Postern's
    /// own diagnostics for what the controller would refuse.
    @Suite struct AdmissionWebhook {
        final class Webhook: @unchecked Sendable {
            let folder: String
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess
            let port: UInt16

            init() throws {
                folder = NSTemporaryDirectory() + "postern-webhook-\(UUID().uuidString)"
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                let openssl = try runCommand("/usr/bin/openssl", [
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=postern-admission",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", folder + "/tls.key", "-out", folder + "/tls.crt",
                ])
                guard openssl.status == 0 else { throw HarnessError("openssl: \(openssl.stderr)") }
                backend = try EchoBackend(name: "a")
                manifests = try ManifestFolder()
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
                try manifests.write(
                    "ing.yaml",
                    Manifests.ingress("app", rules: [("app.example.com", "/", "Prefix", "app")])
                        .replacingOccurrences(of: "namespace: default}", with: "namespace: default, creationTimestamp: \"2020-01-01T00:00:00Z\"}"))
                postern = try PosternProcess(
                    manifests: manifests,
                    extraArguments: [
                        "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-certificate", folder + "/tls.crt",
                        "--admission-webhook-key", folder + "/tls.key",
                    ])
                port = try postern.child.waitForListeningPort(prefix: "admission webhook listening on ")
            }

            deinit { try? FileManager.default.removeItem(atPath: folder) }

            /// POSTs `body` as the API server would; returns the HTTP status and the parsed response.
            func post(_ body: String, path: String = "/validate-ingress") throws -> (status: Int, review: [String: Any]?) {
                let file = folder + "/review-\(UUID().uuidString).json"
                try body.write(toFile: file, atomically: true, encoding: .utf8)
                let result = try runCommand("/usr/bin/curl", [
                    "-s", "-o", folder + "/out", "-w", "%{http_code}", "--cacert", folder + "/tls.crt",
                    "-H", "Content-Type: application/json", "--data-binary", "@" + file, "https://127.0.0.1:\(port)\(path)",
                ])
                let data = FileManager.default.contents(atPath: folder + "/out") ?? Data()
                let review = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
                return (Int(result.stdout) ?? 0, review)
            }

            /// An AdmissionReview for creating `ingress` (JSON).
            static func review(uid: String, ingress: String) -> String {
                #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"\#(uid)","kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"resource":{"group":"networking.k8s.io","version":"v1","resource":"ingresses"},"namespace":"default","operation":"CREATE","object":\#(ingress)}}"#
            }

            static func ingress(name: String, host: String, path: String, className: String = "postern", created: String = "2026-12-01T00:00:00Z") -> String {
                #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"default","creationTimestamp":"\#(created)"},"spec":{"ingressClassName":"\#(className)","rules":[{"host":"\#(host)","http":{"paths":[{"path":"\#(path)","pathType":"Prefix","backend":{"service":{"name":"app","port":{"number":80}}}}]}}]}}"#
            }
        }

        static func response(_ review: [String: Any]?) -> [String: Any] { review?["response"] as? [String: Any] ?? [:] }

        @Test func goodIngressIsAdmittedAndBadOnesAreRefusedWithPosternsDiagnostic() throws {
            let webhook = try Webhook()
            // A new host: admitted, with the request's uid.
            let good = try webhook.post(Webhook.review(uid: "uid-good", ingress: Webhook.ingress(name: "shop", host: "shop.example.com", path: "/")))
            #expect(good.status == 200)
            #expect(Self.response(good.review)["uid"] as? String == "uid-good")
            #expect(Self.response(good.review)["allowed"] as? Bool == true)
            #expect(good.review?["kind"] as? String == "AdmissionReview")

            // An invalid path: refused with the controller's message.
            let bad = try webhook.post(Webhook.review(uid: "uid-bad", ingress: Webhook.ingress(name: "broken", host: "b.example.com", path: "nope")))
            #expect(Self.response(bad.review)["allowed"] as? Bool == false)
            let message = (Self.response(bad.review)["status"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("must start with"), "\(message)")
            #expect(message.contains("InvalidPath"), "\(message)")
            #expect(message.contains("spec.rules[0].http.paths[0].path"), "\(message)")

            // A host/path another (older) Ingress serves: this one would lose, so it is refused.
            let conflict = try webhook.post(Webhook.review(uid: "uid-c", ingress: Webhook.ingress(name: "late", host: "app.example.com", path: "/")))
            #expect(Self.response(conflict.review)["allowed"] as? Bool == false)
            let conflictMessage = (Self.response(conflict.review)["status"] as? [String: Any])?["message"] as? String ?? ""
            #expect(conflictMessage.contains("PathConflict"), "\(conflictMessage)")
            #expect(conflictMessage.contains("default/app"), "\(conflictMessage)")

            // Updating the Ingress that holds the path is fine (it replaces itself).
            let update = try webhook.post(Webhook.review(uid: "uid-u", ingress: Webhook.ingress(name: "app", host: "app.example.com", path: "/", created: "2020-01-01T00:00:00Z")))
            #expect(Self.response(update.review)["allowed"] as? Bool == true)

            // Another controller's Ingress is not Postern's to judge.
            let foreign = try webhook.post(Webhook.review(uid: "uid-f", ingress: Webhook.ingress(name: "x", host: "x.example.com", path: "nope", className: "nginx")))
            #expect(Self.response(foreign.review)["allowed"] as? Bool == true)

            // Nothing was applied: the proxy serves what it served before.
            #expect((try? HTTPClient.request(port: webhook.postern.port, path: "/", host: "shop.example.com").status) == 404)
            #expect((try? HTTPClient.request(port: webhook.postern.port, path: "/", host: "app.example.com").status) == 200)
        }

        @Test func somethingOtherThanAnAdmissionReviewIsABadRequest() throws {
            let webhook = try Webhook()
            #expect(try webhook.post(#"{"hello":"world"}"#).status == 400)
            #expect(try webhook.post(#"{}"#, path: "/other").status == 404)
        }

        @Test func webhookFlagsAreCheckedAtStartUp() throws {
            let manifests = try ManifestFolder()
            let missing = try runCommand(Paths.product("postern"), ["run", "--manifests", manifests.path, "--admission-webhook-listen", "127.0.0.1:0"])
            #expect(missing.status == 2)
            #expect(missing.stderr.contains("--admission-webhook-listen needs --admission-webhook-certificate"))
            let unreadable = try runCommand(Paths.product("postern"), [
                "run", "--manifests", manifests.path, "--http-listen", "127.0.0.1:0", "--https-listen", "off", "--admin-listen", "127.0.0.1:0",
                "--admission-webhook-listen", "127.0.0.1:0", "--admission-webhook-certificate", "/nonexistent.crt", "--admission-webhook-key", "/nonexistent.key",
            ])
            #expect(unreadable.status == 2)
            #expect(unreadable.stderr.contains("--admission-webhook-certificate /nonexistent.crt: cannot read the file"), "\(unreadable.stderr)")
        }
    }
}
