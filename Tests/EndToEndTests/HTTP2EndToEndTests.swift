import Foundation
import Testing

extension EndToEndTests {
    /// HTTP/2 to clients (h2 over TLS via ALPN, h2c with prior knowledge),
    /// HTTP/1.1 to the echo backends.
    @Suite struct HTTP2 {
        final class Fixture: @unchecked Sendable {
            let pki: TestPKI
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init() throws {
                pki = try TestPKI()
                backend = try EchoBackend(name: "h2")
                manifests = try ManifestFolder()
                let certificate = try pki.leaf(["h2.example.com"])
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write(
                    "app.yaml",
                    Manifests.service("app", ports: [backend.port])
                        + TestPKI.secret("h2", certificate: certificate.certificate, key: certificate.key)
                        + tlsIngress("h2", tls: [(["h2.example.com"], "h2")], hosts: ["h2.example.com"], service: "app",
                            // proxy-body-size 0: the streaming tests upload 64 MiB, over the 1m default.
                            annotations: ["nginx.ingress.kubernetes.io/ssl-redirect": "false", "nginx.ingress.kubernetes.io/proxy-body-size": "0"])
                        // Rules without a host: load tools address the proxy by IP.
                        + Manifests.ingress("any", rules: [(nil, "/", "Prefix", "app")]))
                postern = try PosternProcess(manifests: manifests)
            }

            func curl(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
                try runCommand("/usr/bin/curl", ["-sS"] + arguments)
            }

            var tlsArguments: [String] {
                ["--http2", "--cacert", pki.caPath, "--resolve", "h2.example.com:\(postern.httpsPort):127.0.0.1"]
            }
            var tlsBase: String { "https://h2.example.com:\(postern.httpsPort)" }
            var cleartextBase: String { "http://h2.example.com:\(postern.port)" }
        }

        @Test func curlReachesHTTP11BackendsOverH2AndH2c() throws {
            let fixture = try Fixture()
            for (arguments, base, proto) in [
                (fixture.tlsArguments, fixture.tlsBase, "https"),
                (["--http2-prior-knowledge", "--resolve", "h2.example.com:\(fixture.postern.port):127.0.0.1"], fixture.cleartextBase, "http"),
            ] {
                let result = try fixture.curl(
                    arguments + [
                        "-w", "\n%{http_version}", "-X", "PUT", "--data-binary", "hello over h2", "-H", "X-Custom: 1",
                        "-H", "Cookie: a=1", "-H", "Cookie: b=2", "\(base)/echo/path?q=1",
                    ])
                #expect(result.status == 0, "\(result.stderr)")
                #expect(result.stdout.hasSuffix("\n2"), "not HTTP/2: \(result.stdout.suffix(20))")
                let json = try #require(
                    JSONSerialization.jsonObject(with: Data(result.stdout.dropLast(2).utf8)) as? [String: Any])
                #expect(json["method"] as? String == "PUT")
                #expect(json["path"] as? String == "/echo/path?q=1")
                #expect(json["body"] as? String == "hello over h2")
                let headers = json["headers"] as? [String: String] ?? [:]
                #expect(headers["x-custom"] == "1")
                #expect(headers["cookie"] == "a=1; b=2")
                #expect(headers["x-forwarded-proto"] == proto)
                #expect(headers["host"]?.hasPrefix("h2.example.com") == true)
            }
        }

        @Test func responseTrailersReachTheHTTP2Client() throws {
            let fixture = try Fixture()
            let result = try runCommand(
                "/usr/bin/nghttp", ["-v", "-H", ":authority: h2.example.com", "http://127.0.0.1:\(fixture.postern.port)/chunked/20000"])
            #expect(result.status == 0, "\(result.stderr)")
            // nghttp prints the trailer HEADERS frame's fields.
            #expect(result.stdout.contains("x-echo-trailer: done"), "\(result.stdout.suffix(600))")
        }

        @Test func manyConcurrentStreamsOnOneConnection() throws {
            let fixture = try Fixture()
            let result = try runCommand(
                "/usr/bin/h2load", ["-n", "2000", "-c", "1", "-m", "100", "http://127.0.0.1:\(fixture.postern.port)/bytes/512"])
            #expect(result.stdout.contains("2000 succeeded, 0 failed, 0 errored"), "\(result.stdout.suffix(800))")
            #expect(result.stdout.contains("status codes: 2000 2xx"), "\(result.stdout.suffix(800))")
        }

        @Test func largeUploadAndDownloadStreamWithBoundedMemory() throws {
            let fixture = try Fixture()
            let size = 64 * 1024 * 1024
            let before = fixture.postern.child.memoryKiB()
            let download = try fixture.curl(
                fixture.tlsArguments + ["-o", "/dev/null", "-w", "%{http_code} %{size_download} %{http_version}", "\(fixture.tlsBase)/bytes/\(size)"])
            #expect(download.stdout == "200 \(size) 2", "\(download.stderr)")
            let file = fixture.pki.folder + "/upload.bin"
            try #require(FileManager.default.createFile(atPath: file, contents: nil), "cannot create \(file)")
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            try handle.truncate(atOffset: UInt64(size))
            try handle.close()
            let upload = try fixture.curl(fixture.tlsArguments + ["--data-binary", "@\(file)", "\(fixture.tlsBase)/sink"])
            #expect(upload.stdout.contains("\(size)"), "\(upload.stdout) \(upload.stderr)")
            let after = fixture.postern.child.memoryKiB()
            #expect(after.peak - before.peak < 16 * 1024, "peak RSS grew from \(before.peak) KiB to \(after.peak) KiB")
        }

        @Test func drainSendsGoAwayAndLetsOpenStreamsFinish() throws {
            let fixture = try Fixture()
            let client = Process()
            client.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            client.arguments = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"] + fixture.tlsArguments + ["\(fixture.tlsBase)/sleep/1500"]
            let output = Pipe()
            client.standardOutput = output
            try client.run()
            usleep(500_000)
            fixture.postern.child.signal(SIGTERM)
            client.waitUntilExit()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(text == "200 2", "in-flight stream: \(text)")
            #expect(fixture.postern.child.waitForExit(timeout: 10) == 0)
        }

        @Test func conformanceProbeAndRapidResetClientIsCutOffWhileOthersAreServed() throws {
            let fixture = try Fixture()
            let script = Paths.packageRoot.appendingPathComponent("Tests/HTTP2Conformance/h2_conformance.py").path
            let probe = try runCommand(
                "/usr/bin/env", ["python3", script, "127.0.0.1", "\(fixture.postern.port)", "--authority", "h2.example.com", "--postern"],
                timeout: 180)
            #expect(probe.status == 0, "\(probe.stdout.split(separator: "\n").filter { !$0.hasPrefix("PASS") }.joined(separator: "\n"))")
            #expect(probe.stdout.contains("Rapid Reset (CVE-2023-44487)") && probe.stdout.contains("ENHANCE_YOUR_CALM"))
            // Other clients were served throughout, and still are.
            let after = try fixture.curl(fixture.tlsArguments + ["-o", "/dev/null", "-w", "%{http_code}", "\(fixture.tlsBase)/"])
            #expect(after.stdout == "200")
        }
    }
}
