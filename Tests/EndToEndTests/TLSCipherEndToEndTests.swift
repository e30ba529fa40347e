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

        /// Runs `postern run` with `settings` and the manifests of `folder`; returns (exit status, stderr).
        static func start(settings: String, manifests: ManifestFolder) throws -> (status: Int32, stderr: String) {
            let config = manifests.path + "-ciphers.yaml"
            try settings.write(toFile: config, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: config) }
            let result = try runCommand(
                Paths.product("postern"),
                [
                    "run", "--manifests", manifests.path, "--config", config, "--http-listen", "127.0.0.1:0",
                    "--admin-listen", "127.0.0.1:0", "--https-listen", "127.0.0.1:0", "--workers", "1",
                ], timeout: 20)
            return (result.status, result.stderr)
        }

        @Test func aDHEOnlyCipherListStopsStartUpNamingTheKey() throws {
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            let result = try Self.start(
                settings: "ssl-ciphers: \"DHE-RSA-AES128-GCM-SHA256:DHE-ECDSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305\"\n",
                manifests: manifests)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("ssl-ciphers:") && result.stderr.contains("leaves TLS 1.2 without a usable suite"), "\(result.stderr)")
            #expect(result.stderr.contains("Diffie-Hellman parameters"))
            // `postern check` refuses the same file.
            let config = manifests.path + "-check.yaml"
            try "ssl-ciphers: \"DHE-RSA-AES128-GCM-SHA256\"\n".write(toFile: config, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: config) }
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path, "--config", config], timeout: 20)
            #expect(check.status == 2, "\(check.stdout) \(check.stderr)")
            #expect(check.stderr.contains("ssl-ciphers:"), "\(check.stderr)")
        }

        @Test func aCipherListWithoutSuitesForTheCertificatesKeyStopsStartUp() throws {
            // a.example.com's certificate has an RSA key; the list authenticates ECDSA keys only.
            let pki = try TestPKI()
            let manifests = try ManifestFolder()
            let leaf = try pki.leaf(["a.example.com"], keyType: "rsa")
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [1]))
            try manifests.write("secrets.yaml", TestPKI.secret("a", certificate: leaf.certificate, key: leaf.key))
            try manifests.write("ingress.yaml", tlsIngress("a", tls: [(["a.example.com"], "a")], hosts: ["a.example.com"], service: "app"))
            let result = try Self.start(settings: "ssl-ciphers: \"ECDHE-ECDSA-AES128-GCM-SHA256\"\n", manifests: manifests)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("default/a: ssl-ciphers offers TLS 1.2 no suite for this certificate's RSA key"), "\(result.stderr)")
            // An RSA-only list starts with this certificate (and the generated
            // default certificate then has an RSA key too).
            let started = try PosternProcess(manifests: manifests, settings: "ssl-ciphers: \"ECDHE-RSA-AES128-GCM-SHA256\"\n")
            let fallback = try runCommand(
                "/bin/bash",
                ["-c", "timeout 20 openssl s_client -connect 127.0.0.1:\(started.httpsPort) -tls1_2 </dev/null 2>/dev/null"])
            #expect(fallback.stdout.contains("Cipher is ECDHE-RSA-AES128-GCM-SHA256"), "\(fallback.stdout.suffix(300))")
        }

        @Test func dheSuitesBesideUsableOnesAreWarnedAboutAndNeverNegotiated() throws {
            let fixture = try TLSSessionCache.Fixture(
                settings: "ssl-ciphers: \"DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256\"\n")
            #expect(fixture.postern.child.stderrText.contains("ssl-ciphers: DHE-RSA-AES128-GCM-SHA256 (DHE needs Diffie-Hellman parameters"))
            // A client offering only the DHE suite gets no handshake.
            #expect(try Self.negotiatedCipher(fixture, "-tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256") == "(NONE)")
            #expect(try Self.negotiatedCipher(fixture, "-tls1_2") == "ECDHE-RSA-AES128-GCM-SHA256")
        }
    }
}
