import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Objects for the fake API server, as the API server stores them (JSON).
enum KubeObjects {
    static func ingressClass(controller: String = "postern.dev/ingress-controller") -> String {
        #"{"apiVersion":"networking.k8s.io/v1","kind":"IngressClass","metadata":{"name":"postern"},"spec":{"controller":"\#(controller)"}}"#
    }

    static func service(_ name: String, namespace: String = "default") -> String {
        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"type":"ClusterIP","ports":[{"name":"http","port":80,"targetPort":8080}]}}"#
    }

    static func loadBalancerService(_ name: String, namespace: String, ip: String) -> String {
        #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"type":"LoadBalancer","ports":[{"name":"http","port":80}]},"status":{"loadBalancer":{"ingress":[{"ip":"\#(ip)"}]}}}"#
    }

    static func endpointSlice(_ service: String, port: UInt16, namespace: String = "default", suffix: String = "0") -> String {
        #"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"\#(service)-\#(suffix)","namespace":"\#(namespace)","labels":{"kubernetes.io/service-name":"\#(service)"}},"addressType":"IPv4","endpoints":[{"addresses":["127.0.0.1"],"conditions":{"ready":true}}],"ports":[{"name":"http","port":\#(port),"protocol":"TCP"}]}"#
    }

    /// An Ingress with (host, path, service) rules, Prefix paths.
    static func ingress(_ name: String, namespace: String = "default", rules: [(host: String, path: String, service: String)]) -> String {
        let rendered = rules.map { rule in
            #"{"host":"\#(rule.host)","http":{"paths":[{"path":"\#(rule.path)","pathType":"Prefix","backend":{"service":{"name":"\#(rule.service)","port":{"number":80}}}}]}}"#
        }
        return #"{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"ingressClassName":"postern","rules":[\#(rendered.joined(separator: ","))]}}"#
    }
}

/// A kubeconfig file pointing at a fake API server.
final class KubeconfigFile: @unchecked Sendable {
    let path: String
    let tokenPath: String

    init(port: UInt16, token: String = "token-1") throws {
        let base = NSTemporaryDirectory() + "postern-kubeconfig-\(UUID().uuidString)"
        path = base + ".yaml"
        tokenPath = base + ".token"
        try token.write(toFile: tokenPath, atomically: true, encoding: .utf8)
        try """
            apiVersion: v1
            kind: Config
            current-context: test
            clusters:
            - name: fake
              cluster: {server: "http://127.0.0.1:\(port)"}
            contexts:
            - name: test
              context: {cluster: fake, user: postern, namespace: ingress-system}
            users:
            - name: postern
              user: {tokenFile: "\(tokenPath)"}
            """.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func rotateToken(_ token: String) throws {
        try token.write(toFile: tokenPath, atomically: true, encoding: .utf8)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: tokenPath)
    }
}

/// `postern run --kubeconfig` against a fake API server.
final class KubePosternProcess: @unchecked Sendable {
    let child: ChildProcess
    let port: UInt16
    let adminPort: UInt16

    /// The HTTPS port (0 unless started with `https: true`).
    let httpsPort: UInt16

    convenience init(kubeconfig: KubeconfigFile, extraArguments: [String] = [], https: Bool = false) throws {
        try self.init(kubeconfigPath: kubeconfig.path, extraArguments: extraArguments, https: https)
    }

    init(kubeconfigPath: String, extraArguments: [String] = [], https: Bool = false) throws {
        child = try ChildProcess(
            executable: Paths.product("postern"),
            arguments: [
                "run", "--kubeconfig", kubeconfigPath, "--http-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                "--https-listen", https ? "127.0.0.1:0" : "off", "--workers", "1",
            ] + extraArguments, label: "postern-kube")
        port = try child.waitForListeningPort()
        httpsPort = https ? try child.waitForListeningPort(prefix: "https listening on ") : 0
        adminPort = try child.waitForListeningPort(prefix: "admin listening on ")
    }

    /// `/readyz` status code.
    func readiness() -> Int {
        (try? HTTPClient.request(port: adminPort, path: "/readyz").status) ?? 0
    }

    /// The status of GET `path` for `host`, and the echo backend's name when it answered.
    func probe(host: String, path: String = "/") -> (status: Int, backend: String?) {
        guard let response = try? HTTPClient.request(port: port, path: path, host: host) else { return (0, nil) }
        let name = response.status == 200 ? (try? response.json())?["name"] as? String : nil
        return (response.status, name)
    }

    deinit { child.stop() }
}

/// Polls until `condition` holds; returns the seconds it took, or nil after `timeout`.
func secondsUntil(timeout: Double = 5, _ condition: () -> Bool) -> Double? {
    let start = Date()
    while Date().timeIntervalSince(start) < timeout {
        if condition() { return Date().timeIntervalSince(start) }
        usleep(10_000)
    }
    return nil
}

/// Sends requests in a loop on a background thread and counts the answers.
final class TrafficProbe: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var successes = 0
    private var failures: [String] = []
    private let done = DispatchSemaphore(value: 0)

    init(postern: KubePosternProcess, host: String, expectBackend: String) {
        let thread = Thread { [self] in loop(postern: postern, host: host, expectBackend: expectBackend) }
        thread.start()
    }

    private func loop(postern: KubePosternProcess, host: String, expectBackend: String) {
        while lock.withLock({ running }) {
            let result = postern.probe(host: host)
            lock.withLock {
                if result.status == 200 && result.backend == expectBackend {
                    successes += 1
                } else {
                    failures.append("status \(result.status) backend \(result.backend ?? "-")")
                }
            }
            usleep(20_000)
        }
        done.signal()
    }

    /// Stops and returns (successes, failures).
    func finish() -> (successes: Int, failures: [String]) {
        lock.withLock { running = false }
        done.wait()
        return lock.withLock { (successes, failures) }
    }
}
