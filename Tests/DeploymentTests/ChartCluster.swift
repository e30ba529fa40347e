import FakeKubeAPI
import Foundation

/// A fake cluster holding what `helm install` creates plus one app, and
/// Postern started there with the arguments the chart renders: shared by
/// the RBAC replay and the settings-upgrade test.
enum ChartCluster {
    /// Stores `object` (a rendered manifest) in `api`.
    static func apply(_ object: [String: Any], to api: FakeKubeAPIServer) throws {
        try api.apply(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }

    /// The rendered IngressClass, published Service (with a load-balancer
    /// address) and settings ConfigMap, and the app `web` in
    /// `appsNamespace`: a Service whose one endpoint is a closed loopback
    /// port (requests routed to it get 502).
    static func install(_ rendered: Rendered, into api: FakeKubeAPIServer, appsNamespace: String) throws {
        let controller = rendered.one("IngressClass")?[path: "spec", "controller"] as? String ?? "?"
        try api.apply(#"{"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"\#(className(rendered))"},"spec":{"controller":"\#(controller)"}}"#)
        var published = rendered.one("Service", named: rendered.argument("--publish-service")?.split(separator: "/").last.map(String.init))
            ?? ["apiVersion": "v1", "kind": "Service", "metadata": ["name": "postern", "namespace": "ingress"], "spec": ["type": "LoadBalancer", "ports": [["name": "http", "port": 80]]]]
        published["status"] = ["loadBalancer": ["ingress": [["ip": "203.0.113.5"]]]]
        try apply(published, to: api)
        if let settings = rendered.settingsConfigMap { try apply(settings, to: api) }
        try api.apply(#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"\#(appsNamespace)"},"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"targetPort":8080}]}}"#)
        try api.apply(#"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-0","namespace":"\#(appsNamespace)","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[{"addresses":["127.0.0.1"],"conditions":{"ready":true}}],"ports":[{"name":"http","port":9,"protocol":"TCP"}]}"#)
    }

    static func className(_ rendered: Rendered) -> String {
        rendered.one("IngressClass")?[path: "metadata", "name"] as? String ?? "?"
    }

    /// An Ingress of the rendered class: `NAME.example.com` `path` → web:80.
    static func ingress(_ name: String, namespace: String, rendered: Rendered, path: String = "/", annotations: [String: String] = [:]) -> String {
        let notes = annotations.map { #""\#($0.key)":"\#($0.value)""# }.joined(separator: ",")
        return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"\#(namespace)","annotations":{\#(notes)}},"spec":{"ingressClassName":"\#(className(rendered))","rules":[{"host":"\#(name).example.com","http":{"paths":[{"path":"\#(path)","pathType":"Prefix","backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}"#
    }

    /// The chart's arguments with the in-cluster credentials and the mounted
    /// postern.yaml replaced by files written into `folder` (a kubeconfig
    /// for `apiPort` with the user agent's token `chart-test`).
    static func arguments(_ rendered: Rendered, apiPort: UInt16, folder: String) throws -> [String] {
        try rendered.settingsText.write(toFile: folder + "/postern.yaml", atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Config
            current-context: test
            clusters: [{name: fake, cluster: {server: "http://127.0.0.1:\(apiPort)"}}]
            contexts: [{name: test, context: {cluster: fake, user: postern, namespace: elsewhere}}]
            users: [{name: postern, user: {token: chart-test}}]
            """.write(toFile: folder + "/kubeconfig", atomically: true, encoding: .utf8)
        var arguments = rendered.arguments.filter { $0 != "--in-cluster" }
        if let index = arguments.firstIndex(of: "--config") { arguments[index + 1] = folder + "/postern.yaml" }
        return arguments + ["--kubeconfig", folder + "/kubeconfig"]
    }

    /// Loopback listeners on free ports, no HTTPS, one worker, fast leader election.
    static let loopbackArguments = [
        "--http-listen", "127.0.0.1:0", "--https-listen", "off", "--admin-listen", "127.0.0.1:0", "--workers", "1",
        "--leader-election-timing", "3,2,0.5",
    ]

    /// Starts `postern` with `arguments` as Pod postern-0 in namespace ingress.
    static func launch(_ arguments: [String], standardOutput: FileHandle, standardError: FileHandle) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ChartTests.postern)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["POD_NAME"] = "postern-0"
        environment["POD_NAMESPACE"] = "ingress"
        process.environment = environment
        process.standardOutput = standardOutput
        process.standardError = standardError
        try process.run()
        return process
    }
}
