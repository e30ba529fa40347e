import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// All end-to-end suites run one after another: they start real processes
/// and some measure memory, so they should not compete for the two cores.
@Suite(.serialized) struct EndToEndTests {}

/// Two echo backends (`a`, `b`) behind a Postern with a routing table that
/// covers every case the suites need.
final class ProxyFixture: @unchecked Sendable {
    let backendA: EchoBackend
    let backendB: EchoBackend
    let manifests: ManifestFolder
    let postern: PosternProcess
    let refusedPort: UInt16

    init(settings: String = "proxy-read-timeout: 1\n", workers: Int = 2) throws {
        backendA = try EchoBackend(name: "a")
        backendB = try EchoBackend(name: "b")
        refusedPort = try ProxyFixture.closedPort()
        manifests = try ManifestFolder()
        try manifests.write("class.yaml", Manifests.ingressClass)
        try manifests.write(
            "services.yaml",
            Manifests.service("svc-a", ports: [backendA.port]) + Manifests.service("svc-b", ports: [backendB.port])
                + Manifests.service("svc-empty", ports: []) + Manifests.service("svc-refused", ports: [refusedPort]))
        try manifests.write(
            "ingress.yaml",
            Manifests.ingress(
                "main",
                rules: [
                    ("a.example.com", "/", "Prefix", "svc-a"),
                    ("a.example.com", "/b", "Prefix", "svc-b"),
                    ("a.example.com", "/exact", "Exact", "svc-b"),
                    ("*.wild.example.com", "/", "Prefix", "svc-b"),
                    (nil, "/fallback", "Prefix", "svc-a"),
                    ("empty.example.com", "/", "Prefix", "svc-empty"),
                    ("refused.example.com", "/", "Prefix", "svc-refused"),
                ]))
        postern = try PosternProcess(manifests: manifests, settings: settings, workers: workers)
    }

    /// A loopback port with nothing listening (bound, then closed).
    static func closedPort() throws -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// GET through Postern; returns the response.
    func get(_ path: String, host: String, headers: [(String, String)] = []) throws -> HTTPResponse {
        try HTTPClient.request(port: postern.port, path: path, host: host, headers: headers)
    }

    /// Which echo backend answered (its `name`), or nil for a non-echo answer.
    func backendName(_ path: String, host: String) throws -> String? {
        let response = try get(path, host: host)
        guard response.status == 200 else { return nil }
        return try response.json()["name"] as? String
    }
}
