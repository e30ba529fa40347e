import FakeKubeAPI
import Foundation
import Testing
import Yams

#if canImport(Glibc)
    import Glibc
#endif

/// The chart's settings ConfigMap (`controller.config`, followed by Postern
/// with `--configmap`) and the public ports: what reaches Postern, what a
/// `helm upgrade` restarts and what it does not.
@Suite(.serialized) struct ChartSettingsTests {
    /// The keys Postern applies without a restart, as its source declares them.
    static var posternLiveKeys: Set<String> {
        let text = (try? String(contentsOf: ChartTests.root.appendingPathComponent("Sources/postern/Settings+Global.swift"), encoding: .utf8)) ?? ""
        guard let start = text.range(of: "static let liveKeys: Set<String> = ["), let end = text[start.upperBound...].range(of: "]") else { return [] }
        let list = text[start.upperBound..<end.lowerBound]
        return Set(list.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \n\"")) }.filter { !$0.isEmpty })
    }

    /// The chart's list of the same keys (`postern.liveSettingKeys`).
    static var chartLiveKeys: Set<String> {
        let text = (try? ChartTests.text("templates/_helpers.tpl")) ?? ""
        guard let start = text.range(of: #"{{- define "postern.liveSettingKeys" -}}"#),
            let end = text[start.upperBound...].range(of: "{{- end -}}")
        else { return [] }
        return Set(text[start.upperBound..<end.lowerBound].split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    @Test func theChartKnowsWhichKeysPosternAppliesWithoutARestart() {
        #expect(Self.posternLiveKeys.contains("proxy-body-size"), "could not read Settings.liveKeys")
        #expect(Self.chartLiveKeys == Self.posternLiveKeys)
    }

    /// The Pod template's annotations (a change rolls the Pods).
    static func podAnnotations(_ rendered: Rendered) -> [String: String] {
        rendered.workload?[path: "spec", "template", "metadata", "annotations"] as? [String: String] ?? [:]
    }

    @Test func anUpgradeChangingLiveKeysReachesTheConfigMapWithoutRollingThePods() throws {
        let before = try Helm.render("{}")
        let after = try Helm.render(
            "controller: {config: {proxy-body-size: 8m, whitelist-source-range: \"10.0.0.0/8\", hsts-max-age: 63072000}}")
        #expect(after.settingsData["proxy-body-size"] == "8m")
        #expect(after.settingsData["whitelist-source-range"] == "10.0.0.0/8")
        #expect(after.settingsData["hsts-max-age"] == "63072000")
        #expect(Self.podAnnotations(before) == Self.podAnnotations(after), "a live key rolled the Pods")
        #expect(before.workload?[path: "spec", "template"] as? NSDictionary == after.workload?[path: "spec", "template"] as? NSDictionary)
    }

    @Test func anUpgradeChangingARestartKeyOrTheChartSettingsRollsThePods() throws {
        let before = Self.podAnnotations(try Helm.render("{}"))
        let timeout = Self.podAnnotations(try Helm.render("controller: {config: {proxy-read-timeout: 120s}}"))
        #expect(before["checksum/restart-settings"] != nil)
        #expect(timeout["checksum/restart-settings"] != before["checksum/restart-settings"])
        #expect(timeout["checksum/config"] == before["checksum/config"])
        let drain = Self.podAnnotations(try Helm.render("controller: {drainTimeout: 45}"))
        #expect(drain["checksum/config"] != before["checksum/config"])
    }

    /// `postern check` on what the chart renders for `values`: its "public ports" lines.
    static func publicPortLines(_ values: String) throws -> [String] {
        let output = try ChartTests.expectPosternCheckAccepts(try Helm.render(values))
        return output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("public ports") }
    }

    @Test func thePublishedServiceSuppliesThePublicPortsUnlessTheyAreSet() throws {
        // Default: learned from the chart's Service (80 -> http, 443 -> https).
        #expect(try Self.publicPortLines("{}") == [
            "public ports: http 80, https 443 (redirects, X-Forwarded-Port)",
            "public ports source: http Service ingress/postern port 80 -> targetPort http, https Service ingress/postern port 443 -> targetPort https",
        ])
        // The Service's ports are what clients use.
        #expect(try Self.publicPortLines("controller: {service: {ports: {http: 8080, https: 8443}}}").first
            == "public ports: http 8080, https 8443 (redirects, X-Forwarded-Port)")
        // controller.config wins over the Service.
        let explicit = try Self.publicPortLines("controller: {config: {public-https-port: 9443}}")
        #expect(explicit.first == "public ports: http 80, https 9443 (redirects, X-Forwarded-Port)")
        #expect(explicit.last?.contains("https ConfigMap ingress/postern-settings") == true, "\(explicit)")
        // Without the published Service the chart writes the Service's ports into postern.yaml.
        let unpublished = try Helm.render("controller: {publishService: {enabled: false}, service: {ports: {http: 8000, https: 8443}}}")
        #expect(unpublished.settingsText.contains("public-http-port: 8000\npublic-https-port: 8443\n"), "\(unpublished.settingsText)")
        #expect(!unpublished.arguments.contains("--publish-service"))
        let output = try ChartTests.expectPosternCheckAccepts(unpublished)
        #expect(output.contains("public ports: http 8000, https 8443"), "\(output)")
        // Nor is the Service read then: no grant to read it.
        let rules = unpublished.all("Role").flatMap { $0["rules"] as? [[String: Any]] ?? [] }
        #expect(!rules.contains { ($0["resources"] as? [String]) == ["services"] && ($0["verbs"] as? [String]) == ["get"] })
    }

    @Test func defaultAndSysctlVariantsListenAndPublishPortsThatAgreeWithTheService() throws {
        // Default: listeners 8080/8443 behind Service ports 80/443; with the sysctl, listeners on 80/443 themselves.
        for (values, listen) in [("{}", (8080, 8443)), ("controller: {bindPrivilegedPorts: true}", (80, 443))] {
            let rendered = try Helm.render(values)
            #expect(rendered.settingsText.contains("http-listen: 0.0.0.0:\(listen.0)\nhttps-listen: 0.0.0.0:\(listen.1)\n"), "\(rendered.settingsText)")
            let containerPorts = (rendered.container["ports"] as? [[String: Any]] ?? []).compactMap { $0["containerPort"] as? Int }
            #expect(containerPorts.prefix(2) == [listen.0, listen.1])
            let output = try ChartTests.expectPosternCheckAccepts(rendered)
            #expect(output.contains("public ports: http 80, https 443 (redirects, X-Forwarded-Port)\npublic ports source: http Service ingress/postern"), "\(output)")
        }
    }

    /// Postern started with the chart's arguments against a fake cluster
    /// holding what `helm install` creates; a `helm upgrade` of a live key
    /// replaces the settings ConfigMap and the running Postern applies it.
    @Test func aHelmUpgradeOfALiveKeyReachesTheRunningPostern() throws {
        let installed = try Helm.render("{}")
        let api = FakeKubeAPIServer(bookmarkInterval: 0.5)
        try api.start()
        defer { api.stop() }
        func apply(_ object: [String: Any]?) throws {
            guard let object else { throw Helm.TemplateFailure(message: "object missing from the rendering") }
            try ChartCluster.apply(object, to: api)
        }
        try ChartCluster.install(installed, into: api, appsNamespace: "apps")
        try api.apply(ChartCluster.ingress("shop", namespace: "apps", rendered: installed))

        let folder = try ChartTests.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let outputPath = folder + "/stdout"
        for file in [outputPath, folder + "/stderr"] { _ = FileManager.default.createFile(atPath: file, contents: nil) }
        let process = try ChartCluster.launch(
            try ChartCluster.arguments(installed, apiPort: api.port, folder: folder) + ChartCluster.loopbackArguments,
            standardOutput: FileHandle(forWritingAtPath: outputPath) ?? .nullDevice,
            standardError: FileHandle(forWritingAtPath: folder + "/stderr") ?? .nullDevice)
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        func port(after prefix: String) -> Int? {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            let line = text.split(separator: "\n").first { $0.hasPrefix(prefix) }
            return line?.split(separator: ":").last.flatMap { Int($0) }
        }
        var proxyPort: Int?
        var adminPort: Int?
        let started = Date().addingTimeInterval(20)
        while Date() < started, proxyPort == nil || adminPort == nil {
            proxyPort = port(after: "listening on ")
            adminPort = port(after: "admin listening on ")
            usleep(50_000)
        }
        let proxy = try #require(proxyPort, "Postern did not start: \((try? String(contentsOfFile: folder + "/stderr", encoding: .utf8)) ?? "")")
        let admin = try #require(adminPort)
        let body = folder + "/body"
        try Data(repeating: 0x61, count: 4096).write(to: URL(fileURLWithPath: body))
        func status(upload: Bool) -> String {
            let result = try? Self.curl(
                ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: shop.example.com"] + (upload ? ["--data-binary", "@" + body] : [])
                    + ["http://127.0.0.1:\(proxy)/"])
            return result ?? "curl failed"
        }
        func waitFor(_ expected: String, upload: Bool) -> String {
            var last = ""
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                last = status(upload: upload)
                if last == expected { break }
                usleep(100_000)
            }
            return last
        }
        // Installed: the route serves (no backend listens: 502) and 4 KiB is under the 1m default.
        #expect(waitFor("502", upload: true) == "502")

        // helm upgrade --set controller.config.proxy-body-size=2k: the same Pods, a new ConfigMap.
        let upgraded = try Helm.render("controller: {config: {proxy-body-size: 2k}}")
        #expect(Self.podAnnotations(upgraded) == Self.podAnnotations(installed))
        try apply(upgraded.settingsConfigMap)
        #expect(waitFor("413", upload: true) == "413", "proxy-body-size did not reach the running Postern")
        #expect(status(upload: false) == "502")

        // And a source allowlist that excludes the client.
        let allowlisted = try Helm.render("controller: {config: {proxy-body-size: 2k, whitelist-source-range: \"10.0.0.0/8\"}}")
        try apply(allowlisted.settingsConfigMap)
        #expect(waitFor("403", upload: false) == "403", "whitelist-source-range did not reach the running Postern")
        #expect(process.isRunning, "Postern restarted or exited")
        let metrics = (try? Self.curl(["-s", "http://127.0.0.1:\(admin)/metrics"])) ?? ""
        #expect(metrics.contains("postern_configmap_valid 1"), "\(metrics.suffix(400))")
        #expect(metrics.contains("postern_configmap_reloads_total{result=\"rejected\"} 0"))
    }

    static func curl(_ arguments: [String]) throws -> String {
        try StaticBinary.output(of: "/usr/bin/curl", arguments).text
    }
}
