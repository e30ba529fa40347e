import Foundation
import Testing

extension EndToEndTests {
    /// Requests that a lenient parser would let through to request
    /// smuggling, or that exceed a limit: each gets its status code, and the
    /// connection closes where the framing of what follows is unknown.
    @Suite struct ProtocolViolations {
        static let cases: [(name: String, request: String, status: Int)] = [
            (
                "content-length and transfer-encoding",
                "POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400
            ),
            ("two different content-lengths", "POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
            ("malformed content-length", "POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: +5\r\n\r\nhello", 400),
            ("transfer-encoding not ending in chunked", "POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            ("unknown transfer coding before chunked", "POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: one\r\n two\r\n\r\n", 400),
            ("whitespace before colon", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A : one\r\n\r\n", 400),
            ("bare CR in a value", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: o\rne\r\n\r\n", 400),
            ("NUL in a value", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: o\u{0}ne\r\n\r\n", 400),
            ("control byte in a value", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-A: o\u{1}ne\r\n\r\n", 400),
            ("invalid chunk size", "POST / HTTP/1.1\r\nHost: a.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
            ("HTTP/0.9 request line", "GET /\r\n\r\n", 400),
            ("unknown HTTP version", "GET / HTTP/2.0\r\nHost: a.example.com\r\n\r\n", 505),
            ("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
            ("two Host fields", "GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n", 400),
            ("request target over the limit", "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a.example.com\r\n\r\n", 414),
            ("header section over 32 KiB", "GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Big: " + String(repeating: "b", count: 33000) + "\r\n\r\n", 431),
            (
                "more than 100 header fields",
                "GET / HTTP/1.1\r\nHost: a.example.com\r\n" + (0..<101).map { "X-F\($0): v\r\n" }.joined() + "\r\n", 431
            ),
        ]

        @Test func eachViolationGetsItsStatusAndTheConnectionCloses() throws {
            let fixture = try ProxyFixture()
            let before = try fixture.backendA.stats()
            for testCase in Self.cases {
                let connection = try RawConnection(port: fixture.postern.port, timeoutSeconds: 5)
                try connection.send(testCase.request)
                let response = try connection.readResponse()
                #expect(response.status == testCase.status, "\(testCase.name)")
                #expect(response.header("connection")?.lowercased() == "close", "\(testCase.name)")
                #expect(connection.isClosedByPeer(), "\(testCase.name): connection left open")
            }
            // Nothing reached the backend (the only new request is this stats query).
            #expect(try fixture.backendA.stats().requests == before.requests + 1)
            #expect(try fixture.postern.metric("postern_downstream_errors_total{reason=\"bad_request\"}") ?? 0 >= 12)
        }

        @Test func slowlorisHeaderGets408AfterClientHeaderTimeout() throws {
            let fixture = try ProxyFixture(settings: "client-header-timeout: 1\n")
            let connection = try RawConnection(port: fixture.postern.port, timeoutSeconds: 5)
            try connection.send("GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: ")
            let response = try connection.readResponse()
            #expect(response.status == 408)
            #expect(connection.isClosedByPeer())
        }

        @Test func http10ClientsGetResponsesAndKeepAliveOnlyOnRequest() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            try connection.send("GET /one HTTP/1.0\r\nHost: a.example.com\r\nConnection: keep-alive\r\n\r\n")
            let first = try connection.readResponse()
            #expect(first.status == 200)
            #expect(first.header("connection")?.lowercased() == "keep-alive")
            try connection.send("GET /chunked/1000 HTTP/1.0\r\nHost: a.example.com\r\n\r\n")
            let second = try connection.readResponse()
            // No chunked coding for HTTP/1.0: the body is delimited by close.
            #expect(second.status == 200)
            #expect(second.header("transfer-encoding") == nil)
            #expect(second.body.count == 1000)
        }

        @Test func headRequestsAnd204Or304HaveNoBody() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            try connection.send("HEAD /bytes/500 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            let head = try connection.readResponse(headRequest: true)
            #expect(head.status == 200)
            #expect(head.header("content-length") == "500")
            try connection.send("GET /status/204 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(try connection.readResponse().status == 204)
            try connection.send("GET /status/304 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(try connection.readResponse().status == 304)
            // The connection is still in sync: a following request works.
            try connection.send("GET /after HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            #expect(try connection.readResponse().json()["path"] as? String == "/after")
        }

        @Test func expect100ContinueIsAnsweredBeforeTheBody() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            try connection.send("POST /upload HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
            var interim = [UInt8](repeating: 0, count: 25)
            let count = interim.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, 25, 0) }
            #expect(String(decoding: interim[0..<max(count, 0)], as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
            try connection.send("hello")
            let response = try connection.readResponse()
            #expect(try response.json()["body"] as? String == "hello")
            #expect(try response.echoedHeaders()["expect"] == nil)
        }
    }
}
