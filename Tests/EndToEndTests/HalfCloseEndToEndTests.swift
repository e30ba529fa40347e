import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// A client that half-closes after its request (`printf ... | nc`) gets
    /// its response without the worker spinning while the upstream thinks.
    @Suite struct HalfClose {
        @Test func halfClosedClientWaitingForASlowUpstreamCostsNoCPU() throws {
            let fixture = try ProxyFixture(settings: "proxy-read-timeout: 10\n", workers: 1)
            let client = try RawConnection(port: fixture.postern.port)
            try client.send("GET /sleep/2500 HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
            Glibc.shutdown(client.fd, Int32(SHUT_WR))
            usleep(300_000)
            let before = fixture.postern.child.cpuSeconds()
            usleep(1_500_000)
            let used = fixture.postern.child.cpuSeconds() - before
            // Before the fix epoll reported the client's FIN on every wait:
            // about a full core for as long as the upstream took.
            #expect(used < 0.5, "\(used) CPU seconds in 1.5 s while waiting for the upstream")
            let response = try client.readResponse()
            #expect(response.status == 200)
            #expect(response.header("connection")?.lowercased() == "close")
        }
    }
}
