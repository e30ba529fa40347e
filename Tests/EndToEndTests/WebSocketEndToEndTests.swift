import Foundation
import Testing

extension EndToEndTests {
    /// WebSocket through Postern with Python's `websockets` (PyPI) on both
    /// ends: an echo server behind the proxy, a client in front of it.
    @Suite struct WebSocket {
        static let echoServer = """
            import asyncio, sys
            from websockets.asyncio.server import serve
            async def echo(connection):
                async for message in connection:
                    await connection.send("echo:" + message)
            async def main():
                async with serve(echo, "127.0.0.1", 0) as server:
                    port = server.sockets[0].getsockname()[1]
                    print("listening on 127.0.0.1:%d" % port, flush=True)
                    await asyncio.Future()
            asyncio.run(main())
            """

        /// Sends `count` messages, one every `interval` seconds, through
        /// 127.0.0.1:PORT with Host HOST; exits 0 when every echo came back
        /// on the one connection.
        static let client = """
            import socket, sys, time
            from websockets.sync.client import connect
            port, host, count, interval = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
            sock = socket.create_connection(("127.0.0.1", port))
            with connect("ws://%s/chat" % host, sock=sock, open_timeout=10) as ws:
                for i in range(count):
                    ws.send("m%d" % i)
                    reply = ws.recv(timeout=10)
                    if reply != "echo:m%d" % i:
                        print("wrong reply %r" % reply, flush=True)
                        sys.exit(1)
                    time.sleep(interval)
                big = "x" * 200000
                ws.send(big)
                if ws.recv(timeout=10) != "echo:" + big:
                    sys.exit(2)
            print("ok %d" % count, flush=True)
            """

        @Test func echoSessionSurvivesTenConfigurationChanges() throws {
            let server = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", "-c", Self.echoServer], label: "ws-server")
            let serverPort = try server.waitForListeningPort()
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "ws.yaml",
                Manifests.service("ws", ports: [serverPort]) + Manifests.ingress("ws", rules: [("ws.example.com", "/", "Prefix", "ws")]))
            let postern = try PosternProcess(manifests: manifests)
            let reloadsBefore = try postern.metric("postern_config_reloads_total") ?? 0
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            client.arguments = ["python3", "-c", Self.client, "\(postern.port)", "ws.example.com", "25", "0.2"]
            let output = Pipe()
            client.standardOutput = output
            client.standardError = output
            try client.run()
            defer { if client.isRunning { kill(client.processIdentifier, SIGKILL) } }
            // Ten configuration changes while the session is open.
            for round in 0..<10 {
                usleep(400_000)
                try manifests.write(
                    "extra.yaml", Manifests.ingress("extra", rules: [("extra\(round).example.com", "/", "Prefix", "ws")]))
            }
            let deadline = Date().addingTimeInterval(30)
            while client.isRunning, Date() < deadline { usleep(50_000) }
            let text = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
            #expect(!client.isRunning && client.terminationStatus == 0, "client: \(text)")
            #expect(text.contains("ok 25"))
            #expect((try postern.metric("postern_config_reloads_total") ?? 0) - reloadsBefore >= 5)
            #expect(try postern.metric("postern_http_responses_total{class=\"1xx\"}") == 1)
        }

        @Test func plainRequestsToTheSameBackendStillDropUpgradeHeaders() throws {
            let backend = try EchoBackend(name: "plain")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("app", ports: [backend.port]) + Manifests.ingress("app", rules: [("app.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests)
            // An upgrade to something other than WebSocket is not forwarded.
            let response = try HTTPClient.request(
                port: postern.port, path: "/", host: "app.example.com", headers: [("Connection", "upgrade"), ("Upgrade", "h2c")])
            #expect(response.status == 200)
            #expect(try response.echoedHeaders()["upgrade"] == nil)
        }
    }
}
