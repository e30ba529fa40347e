import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// SIGTERM ends the process by the drain timeout whatever state its
    /// connections are in.
    @Suite struct Drain {
        /// A backend that misbehaves: it answers `101` to WebSocket upgrades
        /// and then keeps the tunnel open without a word, and never answers
        /// any other request.
        static let silentBackend = """
            import socket, sys, threading
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", 0))
            server.listen(128)
            print("listening on 127.0.0.1:%d" % server.getsockname()[1], flush=True)
            def serve(connection):
                data = b""
                while b"\\r\\n\\r\\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                if b"upgrade: websocket" in data.lower():
                    connection.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n")
                while connection.recv(65536):
                    pass
            while True:
                connection, _ = server.accept()
                threading.Thread(target=serve, args=(connection,), daemon=True).start()
            """

        @Test func sigtermExitsByTheDrainTimeoutWhateverTheConnectionsAreDoing() throws {
            let echo = try EchoBackend(name: "drain")
            let silent = try ChildProcess(executable: "/usr/bin/env", arguments: ["python3", "-c", Self.silentBackend], label: "silent")
            defer { silent.stop() }
            let silentPort = try silent.waitForListeningPort()
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("echo", ports: [echo.port]) + Manifests.service("silent", ports: [silentPort])
                    + Manifests.ingress(
                        "app", rules: [("echo.example.com", "/", "Prefix", "echo"), ("silent.example.com", "/", "Prefix", "silent")]))
            let drainSeconds = 2.0
            let postern = try PosternProcess(
                manifests: manifests, settings: "proxy-read-timeout: 120\nproxy-send-timeout: 120\n",
                extraArguments: ["--drain-timeout", "\(drainSeconds)"])
            var held: [AnyObject] = []

            // TLS connections whose first handshake step fails (bytes that are
            // not a ClientHello): before the fix they stayed in the worker's
            // table after closing, and the drain waited for them for ever.
            for _ in 0..<10 {
                let garbage = try RawConnection(port: postern.httpsPort)
                try garbage.send("GET / HTTP/1.1\r\nHost: echo.example.com\r\n\r\n")
                usleep(20_000)
                held.append(garbage)
            }
            // Idle keep-alive connections that never sent a byte.
            for _ in 0..<50 { held.append(try RawConnection(port: postern.port)) }
            // An HTTP/2 client stalled in the middle of a header block (no END_HEADERS).
            let stalled = try RawHTTP2Client(port: postern.port)
            stalled.send(H2Wire.start + H2Wire.frame(H2Wire.headers, stream: 1, H2Wire.get("/", authority: "echo.example.com")))
            held.append(stalled)
            // An HTTP/2 client whose receive window is full: it asked for a
            // large body and reads nothing.
            let full = try RawHTTP2Client(port: postern.port)
            full.send(
                H2Wire.start
                    + H2Wire.frame(H2Wire.headers, flags: H2Wire.endHeaders | H2Wire.endStream, stream: 1,
                        H2Wire.get("/bytes/100000000", authority: "echo.example.com")))
            held.append(full)
            // A request whose upstream accepted it and never answers.
            let waiting = try RawConnection(port: postern.port)
            try waiting.send("GET /never HTTP/1.1\r\nHost: silent.example.com\r\n\r\n")
            held.append(waiting)
            // A WebSocket tunnel with nothing moving.
            let tunnel = try RawConnection(port: postern.port)
            try tunnel.send(
                "GET /ws HTTP/1.1\r\nHost: silent.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            var head = [UInt8](repeating: 0, count: 512)
            let count = head.withUnsafeMutableBytes { recv(tunnel.fd, $0.baseAddress, $0.count, 0) }
            #expect(String(decoding: head.prefix(max(count, 0)), as: UTF8.self).hasPrefix("HTTP/1.1 101"), "no tunnel")
            held.append(tunnel)
            usleep(500_000)

            let signalled = Date()
            postern.child.signal(SIGTERM)
            let status = postern.child.waitForExit(timeout: drainSeconds + 8)
            let took = Date().timeIntervalSince(signalled)
            #expect(status == 0, "still running \(took) s after SIGTERM with drain-timeout \(drainSeconds) s")
            #expect(took < drainSeconds + 3, "exited only after \(took) s")
            let log = postern.child.stderrText
            #expect(log.contains("drain deadline reached"), "\(log.suffix(1500))")
            #expect(log.contains("stopped"))
            // Every client connection was closed by the proxy.
            #expect(waiting.isClosedByPeer())
            #expect(stalled.waitForClose(seconds: 2))
            _ = held
        }
    }
}
