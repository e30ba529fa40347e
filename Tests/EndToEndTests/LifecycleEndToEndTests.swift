import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    @Suite struct Lifecycle {
        /// Keep-alive request loops on several threads; counts failures.
        final class LoadLoop: @unchecked Sendable {
            let lock = NSLock()
            var succeeded = 0
            var failures: [String] = []
            var names: [String: Int] = [:]
            var stop = false

            func run(port: UInt16, host: String, threads: Int, maximumSeconds: Double) -> [Thread] {
                (0..<threads).map { _ in
                    let thread = Thread { [self] in
                        let deadline = Date().addingTimeInterval(maximumSeconds)
                        var connection: RawConnection?
                        var count = 0
                        while Date() < deadline, !lock.withLock({ stop }), count < 50_000 {
                            count += 1
                            do {
                                if connection == nil { connection = try RawConnection(port: port) }
                                try connection!.send("GET /load HTTP/1.1\r\nHost: \(host)\r\n\r\n")
                                let response = try connection!.readResponse()
                                let name = (try? response.json()["name"] as? String) ?? "?"
                                lock.withLock {
                                    if response.status == 200 {
                                        succeeded += 1
                                        names[name, default: 0] += 1
                                    } else {
                                        failures.append("status \(response.status)")
                                    }
                                }
                            } catch {
                                lock.withLock { failures.append("\(error)") }
                                connection = nil
                            }
                        }
                    }
                    thread.start()
                    return thread
                }
            }
        }

        @Test func manifestChangesUnderLoadFailNoRequest() throws {
            let backendA = try EchoBackend(name: "a")
            let backendB = try EchoBackend(name: "b")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backendA.port]))
            try manifests.write("ing.yaml", Manifests.ingress("app", rules: [("load.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests)
            let load = LoadLoop()
            let threads = load.run(port: postern.port, host: "load.example.com", threads: 4, maximumSeconds: 30)
            // Ten changes: move the service between the two backends, and
            // add and remove an unrelated route.
            for round in 0..<10 {
                usleep(300_000)
                let port = round % 2 == 0 ? backendB.port : backendA.port
                try manifests.write("svc.yaml", Manifests.service("app", ports: [port]))
                if round % 3 == 0 {
                    try manifests.write("extra.yaml", Manifests.ingress("extra", rules: [("x\(round).example.com", "/", "Prefix", "app")]))
                }
            }
            usleep(1_000_000)
            load.lock.withLock { load.stop = true }
            while threads.contains(where: { $0.isExecuting }) { usleep(10_000) }
            #expect(load.failures.isEmpty, "failures: \(load.failures.prefix(5))")
            #expect(load.succeeded > 100)
            // Both backends served: the changes took effect without a restart.
            #expect((load.names["a"] ?? 0) > 0 && (load.names["b"] ?? 0) > 0, "\(load.names)")
            #expect(try postern.metric("postern_config_reloads_total") ?? 0 >= 5)
        }

        @Test func brokenManifestKeepsTheLastGoodRoutes() throws {
            let backend = try EchoBackend(name: "a")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("app", ports: [backend.port])
                    + Manifests.ingress("app", rules: [("keep.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests)
            try manifests.write("app.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n")
            try manifests.write("new.yaml", Manifests.ingress("new", rules: [("new.example.com", "/", "Prefix", "app")]))
            // The new Ingress arrives while the broken file's objects stay in service.
            var newRouteServed = false
            for _ in 0..<40 where !newRouteServed {
                usleep(100_000)
                newRouteServed = try HTTPClient.request(port: postern.port, path: "/", host: "new.example.com").status == 200
            }
            #expect(newRouteServed)
            #expect(try HTTPClient.request(port: postern.port, path: "/", host: "keep.example.com").status == 200)
            #expect(postern.child.stderrText.contains("app.yaml"))
            #expect(try postern.metric("postern_config_reload_errors_total") ?? 0 >= 1)
        }

        @Test func sigtermDrainsInFlightRequestsAndExitsZero() throws {
            let backend = try EchoBackend(name: "a")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("app", ports: [backend.port])
                    + Manifests.ingress("app", rules: [("drain.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests, extraArguments: ["--drain-timeout", "10"])
            let idle = try RawConnection(port: postern.port)
            try idle.send("GET /warm HTTP/1.1\r\nHost: drain.example.com\r\n\r\n")
            #expect(try idle.readResponse().status == 200)
            let inFlight = try RawConnection(port: postern.port)
            try inFlight.send("GET /sleep/1500 HTTP/1.1\r\nHost: drain.example.com\r\n\r\n")
            usleep(300_000)
            postern.child.signal(SIGTERM)
            // The in-flight request completes and says the connection closes.
            let response = try inFlight.readResponse()
            #expect(response.status == 200)
            #expect(response.header("connection")?.lowercased() == "close")
            // The idle keep-alive connection was closed.
            #expect(idle.isClosedByPeer())
            #expect(postern.child.waitForExit(timeout: 10) == 0)
            #expect(throws: (any Error).self) { try RawConnection(port: postern.port) }
        }
    }
}
