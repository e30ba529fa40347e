import FakeKubeAPI
import Foundation
import Testing
import Yams

#if canImport(Glibc)
    import Glibc
#endif

/// The chart's RBAC is exactly what Postern uses: Postern runs with the
/// arguments and postern.yaml the chart renders, against the fake API
/// server, through every duty (lists, watches, leader Lease, Ingress status,
/// Events); then every request it made is checked against the rendered
/// Roles and ClusterRoles as the API server's RBAC authorizer would (no
/// request would be refused with 403), and every verb the chart grants was
/// used (nothing granted in excess).
@Suite(.serialized) struct ChartRBACTests {
    /// One API request as RBAC sees it.
    struct Access: Hashable, CustomStringConvertible {
        var verb: String
        var group: String
        var resource: String
        var namespace: String?
        var name: String?
        var description: String { "\(verb) \(group.isEmpty ? "core" : group)/\(resource) in \(namespace ?? "cluster")\(name.map { " name \($0)" } ?? "")" }
    }

    /// A rule of a Role or ClusterRole, with where it applies (nil: every namespace and cluster scope).
    struct Grant {
        var groups: [String]
        var resources: [String]
        var verbs: [String]
        var resourceNames: [String]
        var namespace: String?

        func allows(_ access: Access) -> Bool {
            guard groups.contains(access.group) || groups.contains("*") else { return false }
            guard resources.contains(access.resource) || resources.contains("*") else { return false }
            guard verbs.contains(access.verb) || verbs.contains("*") else { return false }
            if let namespace, access.namespace != namespace { return false }
            // A rule with resourceNames never allows create, list or watch of unnamed requests.
            if !resourceNames.isEmpty { return access.name.map(resourceNames.contains) ?? false }
            return true
        }
    }

    /// The verb, API group, resource (with subresource), namespace and name of a request.
    static func access(method: String, path: String, query: [String: String]) -> Access? {
        var parts = path.split(separator: "/").map(String.init)
        let group: String
        if parts.first == "api", parts.count >= 2 {
            group = ""
            parts.removeFirst(2)
        } else if parts.first == "apis", parts.count >= 3 {
            group = parts[1]
            parts.removeFirst(3)
        } else {
            return nil
        }
        var namespace: String?
        if parts.first == "namespaces", parts.count >= 3 {
            namespace = parts[1]
            parts.removeFirst(2)
        }
        guard let resource = parts.first else { return nil }
        var name = parts.count >= 2 ? parts[1] : nil
        let subresource = parts.count >= 3 ? "/" + parts[2] : ""
        let verb: String
        switch method {
        case "GET": verb = name != nil ? "get" : (["1", "true"].contains(query["watch"] ?? "") ? "watch" : "list")
        case "POST": verb = "create"
        case "PUT": verb = "update"
        case "PATCH": verb = "patch"
        case "DELETE": verb = name != nil ? "delete" : "deletecollection"
        default: verb = method.lowercased()
        }
        // The API server takes a list or watch with fieldSelector
        // metadata.name=NAME as a request for that name (RequestInfo), so
        // a rule's resourceNames can allow it.
        if verb == "list" || verb == "watch", let selector = query["fieldSelector"] {
            for term in selector.split(separator: ",") where term.hasPrefix("metadata.name=") {
                name = String(term.dropFirst("metadata.name=".count))
            }
        }
        return Access(verb: verb, group: group, resource: resource + subresource, namespace: namespace, name: name)
    }

    /// The rules bound to the chart's ServiceAccount.
    static func grants(_ rendered: Rendered) -> [Grant] {
        let account = rendered.podSpec["serviceAccountName"] as? String
        func rules(of role: [String: Any], namespace: String?) -> [Grant] {
            (role["rules"] as? [[String: Any]] ?? []).map { rule in
                Grant(
                    groups: rule["apiGroups"] as? [String] ?? [], resources: rule["resources"] as? [String] ?? [],
                    verbs: rule["verbs"] as? [String] ?? [], resourceNames: rule["resourceNames"] as? [String] ?? [], namespace: namespace)
            }
        }
        var result: [Grant] = []
        for binding in rendered.all("ClusterRoleBinding") + rendered.all("RoleBinding") {
            let subjects = binding["subjects"] as? [[String: Any]] ?? []
            guard subjects.contains(where: { $0["kind"] as? String == "ServiceAccount" && $0["name"] as? String == account }) else { continue }
            let namespace = binding[path: "metadata", "namespace"] as? String
            let roleKind = binding[path: "roleRef", "kind"] as? String ?? ""
            let roleName = binding[path: "roleRef", "name"] as? String
            let role = rendered.all(roleKind).first {
                $0[path: "metadata", "name"] as? String == roleName && (roleKind == "ClusterRole" || $0[path: "metadata", "namespace"] as? String == namespace)
            }
            guard let role else { continue }
            // A ClusterRole bound by a RoleBinding applies in that namespace only.
            result += rules(of: role, namespace: binding["kind"] as? String == "RoleBinding" ? namespace : nil)
        }
        return result
    }

    /// Runs Postern as the chart configures it against a fake cluster and
    /// returns the requests it made, once it wrote status, an Event and renewed its Lease.
    /// With `webhookDuties`, the chart's ValidatingWebhookConfiguration is
    /// stored too and the run lasts until the managed webhook certificate
    /// was created, renewed and its caBundle set.
    static func requestsOfAChartConfiguredPostern(
        _ rendered: Rendered, appsNamespace: String, webhookDuties: Bool = false
    ) throws -> [FakeKubeAPIServer.RecordedRequest] {
        let api = FakeKubeAPIServer(bookmarkInterval: 0.5)
        try api.start()
        defer { api.stop() }
        let webhookConfiguration = rendered.one("ValidatingWebhookConfiguration")
        if webhookDuties, let webhookConfiguration {
            try api.apply(String(decoding: try JSONSerialization.data(withJSONObject: webhookConfiguration), as: UTF8.self))
        }
        let className = ChartCluster.className(rendered)
        try ChartCluster.install(rendered, into: api, appsNamespace: appsNamespace)
        for (name, path) in [("shop", "/"), ("broken", "nope")] {
            try api.apply(ChartCluster.ingress(name, namespace: appsNamespace, rendered: rendered, path: path))
        }
        // custom-headers names a ConfigMap, watched by name in the Ingress's namespace
        // (the annotation itself is refused until it is implemented).
        try api.apply(ChartCluster.ingress("headers", namespace: appsNamespace, rendered: rendered, annotations: ["nginx.ingress.kubernetes.io/custom-headers": "security-headers"]))
        try api.apply(#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"security-headers","namespace":"\#(appsNamespace)"},"data":{"X-Frame-Options":"DENY"}}"#)

        let folder = try ChartTests.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The chart's arguments, with local files for the credentials and postern.yaml, on loopback ports.
        var arguments = try ChartCluster.arguments(rendered, apiPort: api.port, folder: folder)
        // The webhook Service's endpoint: a free loopback port the fake dials for it.
        let webhookService = (webhookConfiguration?["webhooks"] as? [[String: Any]])?.first?[path: "clientConfig", "service"] as? [String: Any]
        if let index = arguments.firstIndex(of: "--admission-webhook-listen") {
            let probe = FakeKubeAPIServer()
            try probe.start()
            let port = probe.port
            probe.stop()
            arguments[index + 1] = "127.0.0.1:\(port)"
            if let webhookService {
                api.serviceEndpoints["\(webhookService["namespace"] as? String ?? "")/\(webhookService["name"] as? String ?? "")"] = port
            }
        }
        // A short-lived certificate, so that the run renews it too.
        if webhookDuties { arguments += ["--admission-webhook-certificate-timing", "6,0.3"] }
        arguments += ChartCluster.loopbackArguments
        let process = try ChartCluster.launch(arguments, standardOutput: FileHandle.nullDevice, standardError: FileHandle.nullDevice)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        func statusWritten() -> Bool {
            let status = api.object(resource: "ingresses", namespace: appsNamespace, name: "shop")?[path: "status", "loadBalancer", "ingress"]
            return (status as? [[String: Any]])?.first?["ip"] as? String == "203.0.113.5"
        }
        func leaseRenewed() -> Bool { api.requests.contains { $0.method == "PUT" && $0.path.contains("/leases/") } }
        func headersWatched() -> Bool {
            api.requests.contains { $0.query["watch"] != nil && $0.path.hasSuffix("/namespaces/\(appsNamespace)/configmaps") }
        }
        func webhookDutiesDone() -> Bool {
            guard webhookDuties else { return true }
            let requests = api.requests
            return requests.contains { $0.method == "PUT" && $0.path.contains("/secrets/") }
                && requests.contains { $0.method == "PUT" && $0.path.contains("/validatingwebhookconfigurations/") }
        }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, !(statusWritten() && !api.objects(resource: "events").isEmpty && leaseRenewed() && webhookDutiesDone() && headersWatched()) {
            usleep(50_000)
        }
        #expect(webhookDutiesDone(), "Postern did not create, renew and publish the webhook certificate")
        if webhookDuties {
            // The chart's webhook as the API server calls it (the Service's name, the caBundle Postern set):
            // a bad Ingress is refused with Postern's diagnostic, a good one admitted.
            let bad = #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"regex","namespace":"\#(appsNamespace)","annotations":{"nginx.ingress.kubernetes.io/use-regex":"yes"}},"spec":{"ingressClassName":"\#(className)","rules":[{"host":"regex.example.com","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}"#
            var refused: (status: Int, body: String) = (0, "")
            let until = Date().addingTimeInterval(10)
            while Date() < until {
                refused = try createThroughTheAPIServer(api, namespace: appsNamespace, bad)
                if refused.status == 400 { break }
                usleep(200_000)
            }
            #expect(refused.status == 400, "\(refused.body)")
            #expect(refused.body.contains("denied the request: Postern would not serve this Ingress as written"), "\(refused.body)")
            #expect(refused.body.contains("InvalidAnnotation"), "\(refused.body)")
            let good = bad.replacingOccurrences(of: #""annotations":{"nginx.ingress.kubernetes.io/use-regex":"yes"}"#, with: #""annotations":{}"#)
                .replacingOccurrences(of: "regex", with: "fine")
            #expect(try createThroughTheAPIServer(api, namespace: appsNamespace, good).status == 201)
            #expect(api.webhookCalls.last?.url == "https://\(webhookService?["name"] as? String ?? "").ingress.svc:443/validate-ingress")
        }
        #expect(statusWritten(), "Postern wrote no Ingress status")
        #expect(!api.objects(resource: "events").isEmpty, "Postern recorded no Event")
        #expect(leaseRenewed(), "Postern did not renew its Lease")
        #expect(headersWatched(), "Postern did not watch the ConfigMap custom-headers names")
        // A bad version of the settings ConfigMap: refused with a Warning Event on it, in the release namespace.
        if var settings = rendered.settingsConfigMap {
            settings["data"] = ["proxy-body-size": "a lot"]
            try ChartCluster.apply(settings, to: api)
            func configMapEvent() -> Bool {
                api.objects(resource: "events").contains { $0[path: "regarding", "kind"] as? String == "ConfigMap" }
            }
            let until = Date().addingTimeInterval(10)
            while Date() < until, !configMapEvent() { usleep(50_000) }
            #expect(configMapEvent(), "Postern recorded no Event on the refused settings ConfigMap")
        }
        // The second SIGTERM ends the chart's shutdown grace period early.
        kill(process.processIdentifier, SIGTERM)
        usleep(200_000)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        // The test's own writes are not Postern's.
        return api.requests.filter { $0.headers["user-agent"] != "chart-test" }
    }

    /// `kubectl create` of an Ingress through the fake's HTTP API (so that its webhooks run).
    static func createThroughTheAPIServer(_ api: FakeKubeAPIServer, namespace: String, _ json: String) throws -> (status: Int, body: String) {
        let folder = try ChartTests.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try json.write(toFile: folder + "/ingress.json", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = [
            "-s", "-o", folder + "/out", "-w", "%{http_code}", "-A", "chart-test", "-H", "Content-Type: application/json",
            "--data-binary", "@" + folder + "/ingress.json", "http://127.0.0.1:\(api.port)/apis/networking.k8s.io/v1/namespaces/\(namespace)/ingresses",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let body = (try? String(contentsOfFile: folder + "/out", encoding: .utf8)) ?? ""
        return (Int(status) ?? 0, body)
    }

    static func expectExactlyWhatIsUsed(_ rendered: Rendered, appsNamespace: String, webhookDuties: Bool = false) throws {
        let grants = grants(rendered)
        try #require(!grants.isEmpty, "no rules bound to the ServiceAccount")
        let requests = try requestsOfAChartConfiguredPostern(rendered, appsNamespace: appsNamespace, webhookDuties: webhookDuties)
        let accesses = requests.compactMap { access(method: $0.method, path: $0.path, query: $0.query) }
        #expect(accesses.count == requests.count, "requests RBAC would not recognise: \(requests.map(\.path))")
        let refused = Set(accesses.filter { access in !grants.contains { $0.allows(access) } })
        #expect(refused.isEmpty, "the API server would answer 403 to: \(refused.map(\.description).sorted())")
        // Every (group, resource, verb) granted was used at least once.
        var unused: [String] = []
        for grant in grants {
            for group in grant.groups {
                for resource in grant.resources {
                    for verb in grant.verbs where !accesses.contains(where: {
                        $0.group == group && $0.resource == resource && $0.verb == verb && (grant.namespace == nil || $0.namespace == grant.namespace)
                    }) {
                        unused.append("\(verb) \(group)/\(resource) in \(grant.namespace ?? "cluster")")
                    }
                }
            }
        }
        #expect(unused.isEmpty, "granted but never used: \(unused)")
    }

    @Test func clusterWideRBACIsExactlyWhatPosternUses() throws {
        try Self.expectExactlyWhatIsUsed(try Helm.render("{}"), appsNamespace: "apps")
    }

    @Test func namespacedRBACIsExactlyWhatPosternUses() throws {
        let rendered = try Helm.render("controller: {scope: {enabled: true, namespace: apps}}\nrbac: {scope: true}")
        #expect(rendered.all("ClusterRole").count == 1)
        try Self.expectExactlyWhatIsUsed(rendered, appsNamespace: "apps")
    }

    @Test func managedAdmissionWebhookRBACIsExactlyWhatPosternUses() throws {
        let rendered = try Helm.render("controller: {admissionWebhooks: {enabled: true}}")
        try Self.expectExactlyWhatIsUsed(rendered, appsNamespace: "apps", webhookDuties: true)
    }

    @Test func namespacedManagedAdmissionWebhookRBACIsExactlyWhatPosternUses() throws {
        let rendered = try Helm.render("controller: {scope: {enabled: true, namespace: apps}, admissionWebhooks: {enabled: true}}\nrbac: {scope: true}")
        try Self.expectExactlyWhatIsUsed(rendered, appsNamespace: "apps", webhookDuties: true)
    }

    @Test func authorizerModelRefusesWhatTheRulesDoNotGrant() {
        // The check above must be able to fail: a request outside the rules is refused.
        let lease = Grant(groups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "update"], resourceNames: ["postern-leader"], namespace: "ingress")
        let read = Self.access(method: "GET", path: "/apis/coordination.k8s.io/v1/namespaces/ingress/leases/postern-leader", query: [:])
        let other = Self.access(method: "GET", path: "/apis/coordination.k8s.io/v1/namespaces/ingress/leases/someone-else", query: [:])
        let create = Self.access(method: "POST", path: "/apis/coordination.k8s.io/v1/namespaces/ingress/leases", query: [:])
        let elsewhere = Self.access(method: "GET", path: "/apis/coordination.k8s.io/v1/namespaces/default/leases/postern-leader", query: [:])
        #expect(read.map(lease.allows) == true)
        #expect(other.map(lease.allows) == false)
        #expect(create.map(lease.allows) == false)
        #expect(elsewhere.map(lease.allows) == false)
        let status = Self.access(method: "PATCH", path: "/apis/networking.k8s.io/v1/namespaces/apps/ingresses/shop/status", query: [:])
        #expect(status?.resource == "ingresses/status")
        #expect(status?.verb == "patch")
        #expect(Self.access(method: "GET", path: "/api/v1/secrets", query: ["watch": "1"])?.verb == "watch")
        // resourceNames allow a list or watch selecting that name, nothing wider.
        let settings = Grant(groups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"], resourceNames: ["postern-settings"], namespace: "ingress")
        let byName = Self.access(method: "GET", path: "/api/v1/namespaces/ingress/configmaps", query: ["watch": "1", "fieldSelector": "metadata.name=postern-settings"])
        let everything = Self.access(method: "GET", path: "/api/v1/namespaces/ingress/configmaps", query: ["watch": "1"])
        let another = Self.access(method: "GET", path: "/api/v1/namespaces/ingress/configmaps", query: ["fieldSelector": "metadata.name=other"])
        #expect(byName.map(settings.allows) == true)
        #expect(everything.map(settings.allows) == false)
        #expect(another.map(settings.allows) == false)
    }
}
