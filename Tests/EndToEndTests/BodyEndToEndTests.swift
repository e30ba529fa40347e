import Foundation
import Testing

extension EndToEndTests {
    @Suite struct Bodies {
        @Test func chunkedRequestBodyIsForwardedWhole() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            try connection.send(
                "POST /chunks HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")
            let response = try connection.readResponse()
            #expect(response.status == 200)
            let json = try response.json()
            #expect(json["body"] as? String == "hello, world")
            #expect(json["body_bytes"] as? Int == 12)
            #expect(try response.echoedHeaders()["transfer-encoding"] == "chunked")
        }

        @Test func chunkedResponseReachesTheClientWithTrailers() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            try connection.send("GET /chunked/100000 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let response = try connection.readResponse()
            #expect(response.status == 200)
            #expect(response.header("transfer-encoding") == "chunked")
            #expect(response.body.count == 100_000)
            #expect(response.body.prefix(3) == [UInt8]("abc".utf8)[...])
        }

        @Test func curlUploadsWithChunkedEncoding() throws {
            let fixture = try ProxyFixture()
            let file = NSTemporaryDirectory() + "postern-upload-\(UUID().uuidString)"
            try Data(repeating: UInt8(ascii: "x"), count: 300_000).write(to: URL(fileURLWithPath: file))
            defer { try? FileManager.default.removeItem(atPath: file) }
            let result = try runCommand(
                "/usr/bin/curl",
                [
                    "-sS", "-H", "Host: a.example.com", "-H", "Transfer-Encoding: chunked", "--data-binary", "@\(file)",
                    "http://127.0.0.1:\(fixture.postern.port)/sink",
                ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\"body_bytes\":300000") || result.stdout.contains("\"body_bytes\": 300000"), "\(result.stdout)")
        }

        @Test func streams100MiBBothWaysWithBoundedMemory() throws {
            // No body limit: 100 MiB is far over the 1m default of proxy-body-size.
            let fixture = try ProxyFixture(settings: "proxy-read-timeout: 1\nproxy-body-size: \"0\"\n")
            let size = 100 * 1024 * 1024
            let before = fixture.postern.child.memoryKiB()
            let download = try runCommand(
                "/usr/bin/curl",
                [
                    "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H", "Host: a.example.com",
                    "http://127.0.0.1:\(fixture.postern.port)/bytes/\(size)",
                ])
            #expect(download.stdout == "200 \(size)", "\(download.stderr)")
            let file = NSTemporaryDirectory() + "postern-upload-\(UUID().uuidString)"
            try #require(FileManager.default.createFile(atPath: file, contents: nil), "cannot create \(file)")
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: file))
            try handle.truncate(atOffset: UInt64(size))
            try handle.close()
            defer { try? FileManager.default.removeItem(atPath: file) }
            let upload = try runCommand(
                "/usr/bin/curl",
                [
                    "-sS", "-H", "Host: a.example.com", "--data-binary", "@\(file)",
                    "http://127.0.0.1:\(fixture.postern.port)/sink",
                ])
            #expect(upload.stdout.contains("\(size)"), "\(upload.stdout) \(upload.stderr)")
            let after = fixture.postern.child.memoryKiB()
            // 200 MiB passed through; the proxy's peak RSS grew by at most a few MiB.
            #expect(after.peak - before.peak < 16 * 1024, "peak RSS grew from \(before.peak) KiB to \(after.peak) KiB")
        }
    }
}
