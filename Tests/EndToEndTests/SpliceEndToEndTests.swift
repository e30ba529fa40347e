import Foundation
import Testing

extension EndToEndTests {
    /// Large cleartext bodies go from the upstream socket to the client's
    /// through a pipe (`splice`). What a client must see is the same as on the
    /// buffered path: every byte, keep-alive kept, a cut-short body ending
    /// the connection, and a client that stalls or leaves hurting no one else.
    @Suite struct LargeBodies {
        static let settings = "proxy-read-timeout: 2\nproxy-body-size: \"0\"\n"

        /// Pipe descriptors the process holds (`/proc/PID/fd` links to `pipe:[…]`).
        static func pipeDescriptors(_ pid: pid_t) -> Int {
            let directory = "/proc/\(pid)/fd"
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            return entries.filter {
                ((try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\($0)")) ?? "").hasPrefix("pipe:")
            }.count
        }

        @Test func largeBodiesArriveByteForByteOnOneKeptAliveConnection() throws {
            let fixture = try ProxyFixture(settings: Self.settings, workers: 1)
            let directory = NSTemporaryDirectory() + "postern-splice-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            // Around the pipe path's threshold (16 KiB), one pipe-full, and
            // bodies of many pipe-fulls.
            let sizes = [16_383, 16_384, 65_536, 1_000_003, 10_485_760]
            let pipesBefore = Self.pipeDescriptors(fixture.postern.child.pid)
            let upstreamBefore = try fixture.backendA.stats().connections

            var arguments = ["-sS", "-H", "Host: a.example.com", "-w", "%{http_code} %{size_download} %{num_connects}\\n"]
            for size in sizes {
                arguments += ["-o", "\(directory)/proxied-\(size)", "http://127.0.0.1:\(fixture.postern.port)/bytes/\(size)"]
            }
            let proxied = try runCommand("/usr/bin/curl", arguments)
            #expect(proxied.status == 0, "\(proxied.stderr)")
            let lines = proxied.stdout.split(separator: "\n").map(String.init)
            // One client connection for all five: each response ended where
            // its Content-Length said, so the next could follow.
            #expect(lines == sizes.enumerated().map { "200 \($1) \($0 == 0 ? 1 : 0)" }, "\(lines)")
            // The upstream connection went back to the pool after each body:
            // one connection served all five (the other new one is this `/stats` request's own).
            #expect(try fixture.backendA.stats().connections - upstreamBefore == 2)

            for size in sizes {
                let direct = try runCommand(
                    "/usr/bin/curl",
                    ["-sS", "-o", "\(directory)/direct-\(size)", "http://127.0.0.1:\(fixture.backendA.port)/bytes/\(size)"])
                #expect(direct.status == 0, "\(direct.stderr)")
                #expect(
                    FileManager.default.contentsEqual(atPath: "\(directory)/proxied-\(size)", andPath: "\(directory)/direct-\(size)"),
                    "the \(size)-byte body differs from what the upstream sent")
            }
            // The bodies went through a pipe, which the worker keeps for the next one.
            #expect(Self.pipeDescriptors(fixture.postern.child.pid) == pipesBefore + 2)
        }

        @Test func anUpstreamDyingMidBodyEndsTheClientConnectionAndLeaksNoPipe() throws {
            let fixture = try ProxyFixture(settings: Self.settings, workers: 1)
            // Warm the worker's pipe pool with one complete body.
            let whole = try runCommand(
                "/usr/bin/curl",
                ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Host: a.example.com",
                 "http://127.0.0.1:\(fixture.postern.port)/bytes/1048576"])
            #expect(whole.stdout == "200 1048576", "\(whole.stderr)")
            let pipesBefore = Self.pipeDescriptors(fixture.postern.child.pid)

            for _ in 0..<5 {
                // Content-Length: 4 MiB, then 2 MiB and a close from the upstream.
                let cut = try runCommand(
                    "/usr/bin/curl",
                    ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Host: a.example.com",
                     "http://127.0.0.1:\(fixture.postern.port)/truncated/4194304"])
                // curl 18: the connection ended before Content-Length bytes.
                #expect(cut.status == 18, "curl: \(cut.status) \(cut.stdout) \(cut.stderr)")
                let fields = cut.stdout.split(separator: " ")
                #expect(fields.first == "200")
                #expect((fields.last.flatMap { Int($0) } ?? .max) <= 2_097_152, "\(cut.stdout)")
            }
            // An abandoned pipe holds bytes of the cut body: it is closed,
            // never pooled, and never kept.
            #expect(Self.pipeDescriptors(fixture.postern.child.pid) <= pipesBefore)
            let after = try fixture.get("/bytes/100", host: "a.example.com")
            #expect(after.status == 200 && after.body.count == 100)
        }

        @Test func aClientThatPausesGetsEveryByteAndOneThatLeavesHurtsNoOne() throws {
            let fixture = try ProxyFixture(settings: Self.settings, workers: 1)
            // One client stops reading for a while (the pipe and socket buffers
            // fill, the upstream is paused), then reads the rest; another leaves
            // after the first bytes of a 64 MiB body. A third, meanwhile, is served.
            let script = """
                import hashlib, socket, sys, time
                port = int(sys.argv[1])
                def get(path):
                    s = socket.create_connection(("127.0.0.1", port), timeout=20)
                    s.sendall(f"GET {path} HTTP/1.1\\r\\nHost: a.example.com\\r\\n\\r\\n".encode())
                    return s
                def read_response(s):
                    data = b""
                    while b"\\r\\n\\r\\n" not in data:
                        data += s.recv(65536)
                    head, body = data.split(b"\\r\\n\\r\\n", 1)
                    length = int([l.split(b":")[1] for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")][0])
                    return head, body, length
                paused = get("/bytes/8388608")
                head, body, length = read_response(paused)
                leaver = get("/bytes/67108864")
                leaver.recv(1000)
                leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
                leaver.close()
                other = get("/bytes/1048576")
                _, other_body, other_length = read_response(other)
                while len(other_body) < other_length:
                    other_body += other.recv(65536)
                time.sleep(0.5)
                digest = hashlib.sha256(body)
                received = len(body)
                while received < length:
                    chunk = paused.recv(65536)
                    if not chunk:
                        break
                    digest.update(chunk)
                    received += len(chunk)
                print(received, length, len(other_body), digest.hexdigest())
                """
            let result = try runCommand("/usr/bin/python3", ["-c", script, "\(fixture.postern.port)"], timeout: 60)
            #expect(result.status == 0, "\(result.stderr)")
            let fields = result.stdout.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
            try #require(fields.count == 4, "\(result.stdout) \(result.stderr)")
            #expect(fields[0] == "8388608" && fields[1] == "8388608", "paused client: \(fields)")
            #expect(fields[2] == "1048576", "other client: \(fields)")
            let direct = try runCommand(
                "/bin/sh", ["-c", "curl -sS http://127.0.0.1:\(fixture.backendA.port)/bytes/8388608 | sha256sum"])
            #expect(direct.stdout.hasPrefix(fields[3]), "the paused client's body differs from the upstream's")
            #expect(try fixture.get("/bytes/100", host: "a.example.com").status == 200)
        }
    }
}
