import Foundation
import Testing

extension EndToEndTests {
    @Suite struct TLSCiphers {
        /// The cipher s_client reports for a handshake with `options`.
        static func negotiatedCipher(_ fixture: TLSSessionCache.Fixture, _ options: String) throws -> String {
            let output = try runCommand(
                "/bin/bash",
                ["-c", "timeout 20 openssl s_client -connect 127.0.0.1:\(fixture.postern.httpsPort) -servername a.example.com \(options) </dev/null 2>/dev/null"])
            guard let line = output.stdout.split(separator: "\n").first(where: { $0.contains("Cipher is") }) else { return "none" }
            return String(line.split(separator: " ").last ?? "")
        }

        /// A phone without AES instructions lists ChaCha20 first and gets it;
        /// a client listing AES-GCM first gets AES-GCM (the server's order).
        @Test func aChaChaFirstClientGetsChaChaAndAnAESFirstClientGetsAESGCM() throws {
            let fixture = try TLSSessionCache.Fixture(settings: "")
            let chachaFirst12 = try Self.negotiatedCipher(
                fixture, "-tls1_2 -cipher ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
            #expect(chachaFirst12 == "ECDHE-RSA-CHACHA20-POLY1305")
            let chachaFirst13 = try Self.negotiatedCipher(
                fixture, "-tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384")
            #expect(chachaFirst13 == "TLS_CHACHA20_POLY1305_SHA256")
            let aesFirst12 = try Self.negotiatedCipher(
                fixture, "-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256")
            #expect(aesFirst12 == "ECDHE-RSA-AES128-GCM-SHA256", "the server's order picks AES-128-GCM")
            let aesFirst13 = try Self.negotiatedCipher(
                fixture, "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
            #expect(aesFirst13 == "TLS_AES_128_GCM_SHA256", "the server's order picks AES-128-GCM")
        }

        @Test func withoutServerPreferenceTheClientsOrderDecides() throws {
            let fixture = try TLSSessionCache.Fixture(settings: "ssl-prefer-server-ciphers: false\n")
            let aesFirst12 = try Self.negotiatedCipher(
                fixture, "-tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256")
            #expect(aesFirst12 == "ECDHE-RSA-AES256-GCM-SHA384")
            let aesFirst13 = try Self.negotiatedCipher(
                fixture, "-tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
            #expect(aesFirst13 == "TLS_AES_256_GCM_SHA384")
        }
    }
}
