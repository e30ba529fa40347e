import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Issue 16: buffers only while bytes are in flight. An idle keep-alive
    /// connection holds no 16 KiB buffer, and memory comes back after the
    /// connections close. (bench/memory.py measures the same side by side
    /// with nginx and HAProxy; these bounds are loose on purpose: the
    /// buffers held for a connection's life cost about 12 KiB each.)
    @Suite struct IdleMemory {
        static let connections = 2_000

        @Test func idleKeepAliveConnectionsCostLittleAndTheirMemoryComesBackAfterTheyClose() throws {
            let backend = try EchoBackend(name: "idle")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write("ing.yaml", Manifests.ingress("app", rules: [("idle.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests, workers: 1)
            #expect(try HTTPClient.request(port: postern.port, path: "/", host: "idle.example.com").status == 200)
            usleep(300_000)
            let before = postern.child.memoryKiB().current

            var open: [RawConnection] = []
            for _ in 0..<Self.connections {
                let connection = try RawConnection(port: postern.port)
                try connection.send("GET /bytes/100 HTTP/1.1\r\nHost: idle.example.com\r\n\r\n")
                #expect(try connection.readResponse().status == 200)
                open.append(connection)
            }
            usleep(500_000)
            let held = postern.child.memoryKiB().current
            let perConnection = Double(held - before) / Double(Self.connections)
            #expect(perConnection < 4, "\(perConnection) KiB per idle keep-alive connection (RSS \(before) → \(held) KiB)")

            // Every connection is still usable (idle, not closed).
            try open[0].send("GET /bytes/10 HTTP/1.1\r\nHost: idle.example.com\r\n\r\n")
            #expect(try open[0].readResponse().status == 200)

            open.removeAll()
            // The pools and the heap give memory back within a few seconds (bounded wait).
            var after = postern.child.memoryKiB().current
            for _ in 0..<50 where Double(after) > Double(before) * 1.10 {
                usleep(100_000)
                after = postern.child.memoryKiB().current
            }
            #expect(Double(after) <= Double(before) * 1.10, "RSS \(before) KiB before, \(held) with the connections, \(after) after they closed")
        }
    }
}
