import Controller
import Foundation
import Kube
import RouteModel
import Routing
import Testing
import Translate

/// A temporary manifest directory, removed when the test ends.
final class ManifestFixture {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "postern-manifests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func write(_ name: String, _ text: String) throws {
        // Write-then-rename, like editors and ConfigMap updates: a poll never sees half a file.
        let temporary = path + "/." + name + ".tmp"
        try text.write(toFile: temporary, atomically: false, encoding: .utf8)
        guard rename(temporary, path + "/" + name) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path + "/" + name])
        }
    }

    func remove(_ name: String) throws {
        try FileManager.default.removeItem(atPath: path + "/" + name)
    }
}

private func routeModel(_ directory: ManifestDirectory) -> (RoutingTable, ManifestLoad) {
    let load = directory.load()
    let model = translate(load.snapshot, options: TranslateOptions()).model
    return (RoutingTable(model: model, generation: 1), load)
}

private func clusterName(_ table: RoutingTable, _ host: String, _ path: String) -> String? {
    if case let .cluster(cluster) = table.route(host: host, path: path) { return cluster.name }
    return nil
}

private let webFiles = (
    service: documents(ingressClass, service("web"), slice("web-1", service: "web", addresses: ["10.0.0.1"])),
    ingress: ingress("web", rules: [(host: "web.example", path: "/", type: "Prefix", service: "web")]))

@Suite struct ManifestDirectoryLoading {
    @Test func directoryOfIngressServiceAndSliceRoutesRequests() throws {
        let fixture = try ManifestFixture()
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yml", webFiles.ingress)
        try fixture.write(".hidden.yaml", "not: [valid")
        try fixture.write("notes.txt", "ignored")
        let (table, load) = routeModel(ManifestDirectory(path: fixture.path))
        #expect(load.diagnostics.isEmpty)
        #expect(clusterName(table, "WEB.example:80", "/x") == "default/web:http")
        guard case let .cluster(cluster) = table.route(host: "web.example", path: "/") else { return }
        #expect(cluster.endpoints.map(\.description) == ["10.0.0.1:8080"])
    }

    @Test func brokenFileKeepsItsLastGoodObjects() throws {
        let fixture = try ManifestFixture()
        let directory = ManifestDirectory(path: fixture.path)
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        _ = directory.load()
        try fixture.write("ingress.yaml", webFiles.ingress + "\n  rules: [unclosed")
        let (table, load) = routeModel(directory)
        #expect(clusterName(table, "web.example", "/") == "default/web:http")
        #expect(load.failedFiles == [fixture.path + "/ingress.yaml"])
        let diagnostic = load.diagnostics.first
        #expect(diagnostic?.reason == "InvalidManifest")
        #expect(diagnostic?.file == fixture.path + "/ingress.yaml")
        #expect(diagnostic?.message.contains("line") == true)
        #expect(diagnostic?.message.contains("keeping the 1 objects") == true)
    }

    @Test func invalidObjectIsSkippedAndTheRestOfTheFileServed() throws {
        let fixture = try ManifestFixture()
        let badService = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: eighty}]}"
        try fixture.write("all.yaml", documents(webFiles.service, badService, webFiles.ingress))
        let (table, load) = routeModel(ManifestDirectory(path: fixture.path))
        #expect(clusterName(table, "web.example", "/") == "default/web:http")
        #expect(load.failedFiles.isEmpty)
        #expect(load.diagnostics.map(\.name) == ["bad"])
        #expect(load.diagnostics.first?.message.contains("spec.ports[0].port") == true)
    }

    @Test func deletingAFileRemovesItsObjects() throws {
        let fixture = try ManifestFixture()
        let directory = ManifestDirectory(path: fixture.path)
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        _ = directory.load()
        try fixture.remove("ingress.yaml")
        let (table, load) = routeModel(directory)
        #expect(clusterName(table, "web.example", "/") == nil)
        #expect(load.objects.map(\.kind).contains("Ingress") == false)
    }

    @Test func duplicateObjectInALaterFileIsReportedAndIgnored() throws {
        let fixture = try ManifestFixture()
        try fixture.write("a.yaml", documents(webFiles.service, webFiles.ingress))
        try fixture.write("b.yaml", ingress("web", rules: [(host: "other.example", path: "/", type: "Prefix", service: "web")]))
        let (table, load) = routeModel(ManifestDirectory(path: fixture.path))
        #expect(clusterName(table, "web.example", "/") == "default/web:http")
        #expect(clusterName(table, "other.example", "/") == nil)
        #expect(load.diagnostics.map(\.reason) == ["DuplicateObject"])
        #expect(load.diagnostics.first?.file == fixture.path + "/b.yaml")
    }
}

/// Collects what a `ControllerLoop` publishes, from its thread.
final class Published: @unchecked Sendable {
    private let lock = NSLock()
    private var tables: [(RoutingTable, RouteModel)] = []
    private var reports: [[Diagnostic]] = []

    func add(_ table: RoutingTable, _ model: RouteModel) { lock.withLock { tables.append((table, model)) } }
    func add(_ diagnostics: [Diagnostic]) { lock.withLock { reports.append(diagnostics) } }
    var latest: RoutingTable? { lock.withLock { tables.last?.0 } }
    var count: Int { lock.withLock { tables.count } }
    var reported: [[Diagnostic]] { lock.withLock { reports } }
}

/// Polls `condition` until it holds or `timeout` passes; true when it held.
private func eventually(within timeout: Duration, _ condition: () -> Bool) -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.01)
    }
    return condition()
}

@Suite struct ControllerLoopReloading {
    private func makeLoop(_ fixture: ManifestFixture, _ published: Published) -> ControllerLoop {
        ControllerLoop(
            directory: fixture.path, options: TranslateOptions(),
            publish: { published.add($0, $1) }, report: { published.add($0) })
    }

    @Test func initialLoadIsSynchronousAndComplete() throws {
        let fixture = try ManifestFixture()
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        let published = Published()
        let loop = makeLoop(fixture, published)
        let initial = loop.loadInitial()
        #expect(clusterName(initial.table, "web.example", "/") == "default/web:http")
        #expect(initial.table.generation == 1)
        #expect(loop.reloads == 1)
        #expect(loop.reloadFailures == 0)
        #expect(loop.lastSuccessfulReload != nil)
        #expect(published.count == 0)
    }

    @Test func changedFileIsPublishedWithinOneSecond() throws {
        let fixture = try ManifestFixture()
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        let published = Published()
        let loop = makeLoop(fixture, published)
        let initial = loop.loadInitial()
        loop.start()
        defer { loop.stop() }

        try fixture.write("ingress.yaml", ingress("web", rules: [(host: "new.example", path: "/", type: "Prefix", service: "web")]))
        // The loop reacts in about poll + holdoff (0.3 s); the bound leaves room for a busy machine.
        let pickedUp = eventually(within: .seconds(1)) {
            published.latest.map { clusterName($0, "new.example", "/") == "default/web:http" } ?? false
        }
        #expect(pickedUp, "the new host was not published within 1 s")
        #expect((published.latest?.generation ?? 0) > initial.table.generation)
        #expect(published.latest.map { clusterName($0, "web.example", "/") } == .some(nil))
    }

    @Test func changeWrittenBetweenInitialLoadAndStartIsStillPublished() throws {
        let fixture = try ManifestFixture()
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        let published = Published()
        let loop = makeLoop(fixture, published)
        _ = loop.loadInitial()
        try fixture.write("ingress.yaml", ingress("web", rules: [(host: "new.example", path: "/", type: "Prefix", service: "web")]))
        loop.start()
        defer { loop.stop() }
        let pickedUp = eventually(within: .seconds(1)) {
            published.latest.map { clusterName($0, "new.example", "/") == "default/web:http" } ?? false
        }
        #expect(pickedUp, "a write made before start() was missed")
    }

    @Test func unchangedModelIsNotRepublishedAndProblemsAreReportedOnce() throws {
        let fixture = try ManifestFixture()
        try fixture.write("service.yaml", webFiles.service)
        try fixture.write("ingress.yaml", webFiles.ingress)
        let published = Published()
        let loop = makeLoop(fixture, published)
        loop.start()
        defer { loop.stop() }
        #expect(eventually(within: .seconds(2)) { published.count == 1 }, "the first load must publish")

        // A comment changes the file but not the model; a broken file keeps the old objects.
        try fixture.write("ingress.yaml", "# edited\n" + webFiles.ingress)
        try fixture.write("broken.yaml", "kind: [")
        #expect(eventually(within: .seconds(2)) { loop.reloadFailures >= 1 })
        #expect(eventually(within: .seconds(2)) { !published.reported.isEmpty })
        let reloadsSoFar = loop.reloads
        _ = eventually(within: .milliseconds(600)) { loop.reloads > reloadsSoFar }
        #expect(published.count == 1, "an unchanged model must not be republished")
        #expect(published.reported.flatMap { $0 }.filter { $0.reason == "InvalidManifest" }.count == 1)
        #expect(published.latest.map { clusterName($0, "web.example", "/") } == "default/web:http")
    }

    @Test func stopEndsTheThreadAndCanBeCalledTwice() throws {
        let fixture = try ManifestFixture()
        let loop = makeLoop(fixture, Published())
        loop.start()
        loop.stop()
        loop.stop()
        let reloads = loop.reloads
        try fixture.write("ingress.yaml", webFiles.ingress)
        Thread.sleep(forTimeInterval: 0.4)
        #expect(loop.reloads == reloads, "a stopped loop must not reload")
    }
}

/// The runnable example in `config/` must load cleanly and route as the
/// README says.
@Suite struct ConfigExampleTests {
    static let manifests = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("config/manifests").path

    @Test func exampleManifestsLoadWithoutDiagnosticsAndRouteAsDocumented() throws {
        let load = ManifestDirectory(path: Self.manifests).load()
        #expect(load.diagnostics.isEmpty, "\(load.diagnostics)")
        let result = translate(load.snapshot, options: TranslateOptions())
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let table = RoutingTable(model: result.model, generation: 1)
        func cluster(_ host: String, _ path: String) -> String? {
            if case let .cluster(found) = table.route(host: host, path: path) { return found.name }
            return nil
        }
        #expect(cluster("shop.example.com", "/") == "default/web:80")
        #expect(cluster("shop.example.com", "/api/items") == "default/api:http")
        #expect(cluster("x.apps.example.com", "/") == "default/api:80")
        #expect(cluster("nope.example.com", "/") == nil)
        guard case let .cluster(web) = table.route(host: "shop.example.com", path: "/") else { return }
        #expect(web.endpoints.map(\.description) == ["127.0.0.1:9001"])
        guard case let .cluster(api) = table.route(host: "shop.example.com", path: "/api") else { return }
        #expect(api.endpoints.map(\.description) == ["127.0.0.1:9002"])
    }
}
