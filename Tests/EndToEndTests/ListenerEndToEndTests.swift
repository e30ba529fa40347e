import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Issue 16 item 5: the workers of one process share a listening address
    /// through SO_REUSEPORT; a second process may not join them.
    @Suite struct Listener {
        static func serve(_ name: String, _ backend: EchoBackend) throws -> ManifestFolder {
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service(name, ports: [backend.port]))
            try manifests.write("ing.yaml", Manifests.ingress(name, rules: [("listen.example.com", "/", "Prefix", name)]))
            return manifests
        }

        /// A second Postern on the first one's address exits at start with
        /// "address already in use" naming the address; the first keeps
        /// serving every request; once the first is gone, a new process
        /// starts on the same address (connections in TIME_WAIT included).
        @Test func secondProcessOnTheSameAddressIsRefusedWhileTheFirstKeepsServing() throws {
            let backend = try EchoBackend(name: "first")
            let manifests = try Self.serve("app", backend)
            let first = try PosternProcess(manifests: manifests, workers: 2)
            let address = "127.0.0.1:\(first.port)"
            // Connections the server closes first leave it TIME_WAIT sockets on the port.
            for _ in 0..<5 {
                #expect(try HTTPClient.request(port: first.port, path: "/", host: "listen.example.com").status == 200)
            }

            let second = try runCommand(
                Paths.product("postern"),
                [
                    "run", "--manifests", manifests.path, "--http-listen", address, "--https-listen", "off",
                    "--admin-listen", "127.0.0.1:0", "--workers", "2",
                ], timeout: 60)
            #expect(second.status == 1, "second process: \(second.stderr)")
            #expect(second.stderr.contains("address already in use"), "stderr: \(second.stderr)")
            #expect(second.stderr.contains(address), "stderr: \(second.stderr)")

            // Every new connection still reaches the first process (none is
            // refused or lands on a half-started second one).
            for _ in 0..<20 {
                let response = try HTTPClient.request(port: first.port, path: "/", host: "listen.example.com")
                #expect(response.status == 200)
            }

            // Restart in place: the first process goes, a new one takes the address.
            first.child.signal(SIGKILL)
            #expect(first.child.waitForExit(timeout: 10) != nil)
            let restarted = try ChildProcess(
                executable: Paths.product("postern"),
                arguments: [
                    "run", "--manifests", manifests.path, "--http-listen", address, "--https-listen", "off",
                    "--admin-listen", "127.0.0.1:0", "--workers", "2",
                ], label: "postern-restarted")
            #expect(try restarted.waitForListeningPort() == first.port)
            #expect(try HTTPClient.request(port: first.port, path: "/", host: "listen.example.com").status == 200)
            restarted.stop()
        }
    }
}
