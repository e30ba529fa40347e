import FakeKubeAPI
import Foundation
import Kube
import Testing

/// The settings ConfigMap as the API server serves it.
@Suite struct ConfigMapTests {
    static let json = #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"postern","namespace":"ingress"},"data":{"proxy-body-size":"8m","ssl-redirect":"false"}}"#

    @Test func aConfigMapDecodesWithItsData() throws {
        let object = try JSONDecoder().decode(KubeObject.self, from: Data(Self.json.utf8))
        guard case let .configMap(configMap) = object else {
            Issue.record("decoded as \(object.kind)")
            return
        }
        #expect(object.key == ObjectKey(kind: "ConfigMap", namespace: "ingress", name: "postern"))
        #expect(configMap.data == ["proxy-body-size": "8m", "ssl-redirect": "false"])
        let empty = try JSONDecoder().decode(ConfigMap.self, from: Data(#"{"metadata":{"name":"e","namespace":"n"}}"#.utf8))
        #expect(empty.data.isEmpty, "a ConfigMap without data has no keys")
        #expect(WatchedKind.configMap.collectionPath(namespace: "ingress") == "/api/v1/namespaces/ingress/configmaps")
    }

    @Test func theClientReadsOneConfigMapAndAMissingOneIsNil() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        try server.apply(Self.json)
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port))
        #expect(try client.configMap(namespace: "ingress", name: "postern")?.data["proxy-body-size"] == "8m")
        #expect(try client.configMap(namespace: "ingress", name: "absent") == nil)
        #expect(server.requests.contains { $0.path == "/api/v1/namespaces/ingress/configmaps/postern" && $0.method == "GET" })
    }
}
