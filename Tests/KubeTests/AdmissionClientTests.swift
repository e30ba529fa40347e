import Foundation
import Testing

@testable import FakeKubeAPI
@testable import Kube

/// The client calls of webhook certificate management, and the fake API
/// server's webhook rules, against the fake.
@Suite struct AdmissionClientTests {
    static func client(_ server: FakeKubeAPIServer) throws -> KubeAPIClient {
        try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port, token: nil, tokenFile: nil))
    }

    @Test func secretIsCreatedReadAndReplacedOnlyAtTheVersionRead() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        let client = try Self.client(server)
        let path = KubeAPIClient.secretPath(namespace: "ingress", name: "webhook")
        #expect(try client.getJSONObject(path: path) == nil)
        let object: [String: Any] = [
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": ["name": "webhook", "namespace": "ingress"], "data": ["tls.crt": "Zmlyc3Q="],
        ]
        try client.createJSONObject(collectionPath: "/api/v1/namespaces/ingress/secrets", object: object)
        // A second create loses (409), as when two replicas race.
        #expect(throws: KubeAPIError.self) { try client.createJSONObject(collectionPath: "/api/v1/namespaces/ingress/secrets", object: object) }
        var read = try #require(try client.getJSONObject(path: path))
        let stale = read
        read["data"] = ["tls.crt": "c2Vjb25k"]
        try client.replaceJSONObject(path: path, object: read)
        #expect((server.object(resource: "secrets", namespace: "ingress", name: "webhook")?["data"] as? [String: String])?["tls.crt"] == "c2Vjb25k")
        // A replace from an older read is a conflict, never a lost update.
        do {
            try client.replaceJSONObject(path: path, object: stale)
            Issue.record("a stale replace was accepted")
        } catch let KubeAPIError.status(code, _, _) {
            #expect(code == 409)
        }
    }

    @Test func denialReadsAsKubeAPIServersError() {
        let withMessage = FakeKubeAPIServer.denial(webhook: "w.example", status: ["code": 400, "reason": "Invalid", "message": "bad path"])
        #expect(withMessage.code == 400)
        #expect(withMessage.message == "admission webhook \"w.example\" denied the request: bad path")
        let successCode = FakeKubeAPIServer.denial(webhook: "w", status: ["code": 200])
        #expect(successCode.code == 400)
        #expect(successCode.message == "admission webhook \"w\" denied the request without explanation")
        #expect(FakeKubeAPIServer.denial(webhook: "w", status: ["reason": "Because"]).message == "admission webhook \"w\" denied the request: Because")
        #expect(FakeKubeAPIServer.denial(webhook: "w", status: ["code": 403, "message": "no"]).code == 403)
    }

    @Test func webhookRulesMatchAsTheAPIServerMatchesThem() {
        let rules: [[String: Any]] = [
            ["apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["ingresses"]],
        ]
        #expect(FakeKubeAPIServer.rulesMatch(rules, group: "networking.k8s.io", version: "v1", resource: "ingresses", operation: "CREATE"))
        #expect(!FakeKubeAPIServer.rulesMatch(rules, group: "networking.k8s.io", version: "v1", resource: "ingresses", operation: "DELETE"))
        #expect(!FakeKubeAPIServer.rulesMatch(rules, group: "", version: "v1", resource: "services", operation: "CREATE"))
        let everything: [[String: Any]] = [["apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"]]]
        #expect(FakeKubeAPIServer.rulesMatch(everything, group: "", version: "v1", resource: "secrets", operation: "UPDATE"))
        #expect(FakeKubeAPIServer.selectorMatches(["matchLabels": ["team": "a"]], labels: ["team": "a", "x": "y"]))
        #expect(!FakeKubeAPIServer.selectorMatches(["matchLabels": ["team": "a"]], labels: [:]))
        #expect(FakeKubeAPIServer.selectorMatches(nil, labels: [:]))
        let chart: [String: Any] = ["matchLabels": ["kubernetes.io/metadata.name": "apps"]]
        #expect(FakeKubeAPIServer.selectorMatches(chart, labels: ["kubernetes.io/metadata.name": "apps"]))
        #expect(!FakeKubeAPIServer.selectorMatches(chart, labels: ["kubernetes.io/metadata.name": "other"]))
        let expressions: [String: Any] = ["matchExpressions": [
            ["key": "tier", "operator": "In", "values": ["web", "api"]], ["key": "legacy", "operator": "DoesNotExist"],
        ]]
        #expect(FakeKubeAPIServer.selectorMatches(expressions, labels: ["tier": "api"]))
        #expect(!FakeKubeAPIServer.selectorMatches(expressions, labels: ["tier": "db"]))
        #expect(!FakeKubeAPIServer.selectorMatches(expressions, labels: ["tier": "web", "legacy": "1"]))
        #expect(!FakeKubeAPIServer.selectorMatches(["matchExpressions": [["key": "a", "operator": "Near"]]], labels: ["a": "b"]))
    }
}
