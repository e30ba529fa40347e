import FakeKubeAPI
import Foundation
import Kube
import Testing

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return condition()
}

func serviceJSON(_ name: String, namespace: String = "default", port: Int = 80) -> String {
    """
    {"apiVersion":"v1","kind":"Service","metadata":{"name":"\(name)","namespace":"\(namespace)"},
     "spec":{"ports":[{"name":"http","port":\(port),"targetPort":8080}]}}
    """
}

/// Collects informer updates for assertions.
final class UpdateLog: @unchecked Sendable {
    private let lock = NSLock()
    private var updates: [InformerUpdate] = []
    private var names: Set<String> = []
    private var sawEmptyReplace = false

    func record(_ update: InformerUpdate) {
        lock.withLock {
            updates.append(update)
            switch update {
            case let .replaced(objects):
                if objects.isEmpty { sawEmptyReplace = true }
                names = Set(objects.map(\.key.name))
            case let .upserted(object): names.insert(object.key.name)
            case let .deleted(object): names.remove(object.key.name)
            case .problem: break
            }
        }
    }

    var currentNames: Set<String> { lock.withLock { names } }
    var problems: [String] {
        lock.withLock { updates.compactMap { if case let .problem(text) = $0 { return text } else { return nil } } }
    }
    var replacedEmpty: Bool { lock.withLock { sawEmptyReplace } }
}

@Suite(.serialized) struct KubeClientTests {
    func client(_ server: FakeKubeAPIServer, token: String? = nil, tokenFile: String? = nil) throws -> KubeAPIClient {
        try KubeAPIClient(configuration: KubeClientConfiguration(scheme: "http", host: "127.0.0.1", port: server.port, token: token, tokenFile: tokenFile))
    }

    @Test func kubeconfigCurrentContextGivesServerCredentialsAndNamespace() throws {
        let folder = NSTemporaryDirectory() + "postern-kubeconfig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "token-from-file\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        let ca = Data("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8).base64EncodedString()
        try """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: c1
              cluster: {server: "https://api.example.com:6443", certificate-authority-data: \(ca)}
            - name: c2
              cluster: {server: "http://127.0.0.1:8001", insecure-skip-tls-verify: true}
            contexts:
            - name: dev
              context: {cluster: c1, user: u1, namespace: team-a}
            - name: local
              context: {cluster: c2, user: u2}
            users:
            - name: u1
              user: {tokenFile: token}
            - name: u2
              user: {token: abc}
            """.write(toFile: folder + "/config", atomically: true, encoding: .utf8)
        let dev = try KubeClientConfiguration.kubeconfig(path: folder + "/config")
        #expect(dev.serverDescription == "https://api.example.com:6443")
        #expect(dev.namespace == "team-a")
        #expect(dev.tokenFile == folder + "/token")
        #expect(dev.certificateAuthorityPEM.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        let local = try KubeClientConfiguration.kubeconfig(path: folder + "/config", context: "local")
        #expect(local.serverDescription == "http://127.0.0.1:8001")
        #expect(local.insecureSkipTLSVerify)
        #expect(local.token == "abc")
        #expect(throws: KubeConfigurationError.self) { try KubeClientConfiguration.kubeconfig(path: folder + "/config", context: "missing") }
    }

    @Test func inClusterConfigurationReadsTheServiceAccountFiles() throws {
        let folder = NSTemporaryDirectory() + "postern-sa-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "t1".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        try "ca".write(toFile: folder + "/ca.crt", atomically: true, encoding: .utf8)
        try "ingress-system\n".write(toFile: folder + "/namespace", atomically: true, encoding: .utf8)
        let configuration = try KubeClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"], serviceAccountDirectory: folder)
        #expect(configuration.serverDescription == "https://10.96.0.1:443")
        #expect(configuration.namespace == "ingress-system")
        #expect(configuration.tokenFile == folder + "/token")
        #expect(throws: KubeConfigurationError.self) { try KubeClientConfiguration.inCluster(environment: [:], serviceAccountDirectory: folder) }
    }

    @Test func listIsPaginatedWithLimitAndContinue() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        for index in 0..<5 { try server.apply(serviceJSON("s\(index)")) }
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service), client: try client(server), pageSize: 2) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { log.currentNames == ["s0", "s1", "s2", "s3", "s4"] })
        let lists = server.requests.filter { $0.path == "/api/v1/services" && $0.query["watch"] == nil }
        #expect(lists.count == 3)
        #expect(lists.allSatisfy { $0.query["limit"] == "2" })
        #expect(lists.dropFirst().allSatisfy { $0.query["continue"] != nil })
    }

    @Test func watchEventsAddModifyAndDeleteObjectsAndResumeFromTheListVersion() throws {
        let server = FakeKubeAPIServer(bookmarkInterval: 0.2)
        try server.start()
        defer { server.stop() }
        try server.apply(serviceJSON("first"))
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service), client: try client(server)) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { log.currentNames == ["first"] && server.openWatchCount == 1 })
        try server.apply(serviceJSON("second"))
        #expect(eventually { log.currentNames == ["first", "second"] })
        server.delete(resource: "services", namespace: "default", name: "first")
        #expect(eventually { log.currentNames == ["second"] })
        let watch = try #require(server.requests.first { $0.query["watch"] == "1" })
        #expect(watch.query["allowWatchBookmarks"] == "true")
        #expect(watch.query["resourceVersion"].flatMap(Int.init) != nil)
        #expect(watch.query["timeoutSeconds"].flatMap(Int.init).map { $0 >= 300 } == true)
        // Bookmarks move the resourceVersion without changing objects.
        let before = server.resourceVersion
        #expect(eventually { informer.resourceVersion == "\(before)" })
        #expect(log.problems.isEmpty)
    }

    @Test func expiredWatchRelistsWithoutEverEmptyingTheStore() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        try server.apply(serviceJSON("kept"))
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service), client: try client(server)) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { informer.listCount == 1 && server.openWatchCount == 1 })
        try server.apply(serviceJSON("added-before-expiry"))
        server.compact()
        #expect(eventually { informer.listCount == 2 })
        #expect(log.currentNames == ["kept", "added-before-expiry"])
        #expect(!log.replacedEmpty)
        #expect(log.problems.contains { $0.contains("410") })
    }

    @Test func droppedConnectionsReconnectAndCatchUpFromTheLastVersion() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service), client: try client(server)) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { server.openWatchCount == 1 })
        server.stop()
        try server.apply(serviceJSON("while-away"))
        Thread.sleep(forTimeInterval: 0.5)
        try server.start()
        #expect(eventually(10) { log.currentNames == ["while-away"] })
        // Caught up by resuming the watch, not by listing again.
        #expect(informer.listCount == 1)
    }

    @Test func watchNamespaceUsesTheNamespacedPathAndSeesOnlyThatNamespace() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        try server.apply(serviceJSON("mine", namespace: "team-a"))
        try server.apply(serviceJSON("theirs", namespace: "team-b"))
        let resources = WatchedResource.all(namespaces: ["team-a"])
        #expect(resources.map(\.path).sorted() == [
            "/api/v1/namespaces/team-a/secrets", "/api/v1/namespaces/team-a/services",
            "/apis/discovery.k8s.io/v1/namespaces/team-a/endpointslices",
            "/apis/networking.k8s.io/v1/ingressclasses", "/apis/networking.k8s.io/v1/namespaces/team-a/ingresses",
        ])
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service, namespace: "team-a"), client: try client(server)) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { log.currentNames == ["mine"] && server.openWatchCount == 1 })
        try server.apply(serviceJSON("later", namespace: "team-b"))
        try server.apply(serviceJSON("later", namespace: "team-a"))
        #expect(eventually { log.currentNames == ["mine", "later"] })
        #expect(server.requests.allSatisfy { $0.path == "/api/v1/namespaces/team-a/services" })
    }

    @Test func aStalledWatchDeliversNothingUntilItResumesAndThenEverything() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        let log = UpdateLog()
        let informer = Informer(resource: WatchedResource(kind: .service), client: try client(server)) { log.record($0) }
        informer.start()
        defer { informer.stop() }
        #expect(eventually { server.openWatchCount == 1 })
        server.setWatchesStalled(true)
        try server.apply(serviceJSON("held-back"))
        Thread.sleep(forTimeInterval: 0.5)
        #expect(log.currentNames.isEmpty)
        server.setWatchesStalled(false)
        #expect(eventually { log.currentNames == ["held-back"] })
    }

    @Test func rotatedTokenFileIsUsedFromTheNextRequest() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        let file = NSTemporaryDirectory() + "postern-token-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "old-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        server.acceptedTokens = ["old-token"]
        let client = try client(server, tokenFile: file)
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 200)
        server.acceptedTokens = ["new-token"]
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 401)
        try "new-token\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 200)
        #expect(server.requests.last?.headers["authorization"] == "Bearer new-token")
    }

    @Test func fakeAPIServerRejectsWhatARealOneRejects() throws {
        let server = FakeKubeAPIServer()
        try server.start()
        defer { server.stop() }
        let client = try client(server)
        #expect(try client.send(method: "GET", path: "/api/v1/services", query: [("bogus", "1")]).status == 400)
        #expect(try client.send(method: "GET", path: "/api/v1/ingresses").status == 404)
        #expect(try client.send(method: "GET", path: "/api/v1/services", query: [("fieldSelector", "spec.type=ClusterIP")]).status == 400)
        #expect(try client.send(method: "GET", path: "/api/v1/secrets", query: [("fieldSelector", "type=kubernetes.io/tls")]).status == 200)
        server.forbiddenPathPrefixes = ["/api/v1/secrets"]
        #expect(try client.send(method: "GET", path: "/api/v1/secrets").status == 403)
        let lease = #"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l","namespace":"default"},"spec":{}}"#
        #expect(try client.send(method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases", body: Array(lease.utf8), contentType: "text/plain").status == 415)
        #expect(try client.send(method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases", body: Array(lease.utf8)).status == 201)
        #expect(try client.send(method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases", body: Array(lease.utf8)).status == 409)
        // An update with a stale resourceVersion is a conflict.
        let stale = #"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l","namespace":"default","resourceVersion":"1"},"spec":{}}"#
        #expect(try client.send(method: "PUT", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases/l", body: Array(stale.utf8)).status == 409)
        server.compact()
        #expect(try client.send(method: "GET", path: "/api/v1/services", query: [("resourceVersion", "5")]).status == 410)
    }
}
