import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// Issue 21, must-show 6: SIGTERM after TLS handshakes, good and failed,
    /// ends the process within 1 s when nothing is in flight, whatever the
    /// TLS layer was doing. A TLS scan used to leave Postern running past its
    /// drain timeout (a connection whose first handshake step failed closed
    /// itself before the worker tracked it, so the worker waited for ever for
    /// its table to empty; fixed in cd77a8f). 30 trials over four kinds of
    /// handshake, each with a fresh process and the default 30 s drain
    /// timeout, so a trial that waits for the deadline fails.
    @Suite struct ShutdownAfterHandshake {
        enum Handshake: String, CaseIterable, CustomTestStringConvertible {
            /// TLS 1.2 offering only DHE suites: no shared cipher, the handshake fails.
            case dheOnly
            /// Only the X448 group: no shared group, the handshake fails.
            case x448Only
            /// A complete TLS 1.3 handshake, then the client leaves.
            case tls13
            /// A complete HTTPS request and response.
            case httpsRequest
            var testDescription: String { rawValue }

            /// 30 trials in all.
            var trials: Int { self == .dheOnly || self == .x448Only ? 8 : 7 }

            func run(port: UInt16) throws {
                let connect = "openssl s_client -connect 127.0.0.1:\(port) -servername shutdown.example.com"
                switch self {
                case .dheOnly:
                    try runCommand("/bin/sh", ["-c", "\(connect) -tls1_2 -cipher DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384 </dev/null >/dev/null 2>&1"], timeout: 10)
                case .x448Only:
                    try runCommand("/bin/sh", ["-c", "\(connect) -groups X448 </dev/null >/dev/null 2>&1"], timeout: 10)
                case .tls13:
                    let result = try runCommand("/bin/sh", ["-c", "\(connect) -tls1_3 </dev/null 2>/dev/null"], timeout: 10)
                    #expect(result.stdout.contains("TLSv1.3"), "the TLS 1.3 handshake completed")
                case .httpsRequest:
                    let result = try runCommand(
                        "/usr/bin/curl", ["-sk", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(port)/ok"], timeout: 10)
                    #expect(result.stdout == "200", "the HTTPS request was answered")
                }
            }
        }

        @Test(arguments: Handshake.allCases)
        func sigtermAfterHandshakesExitsWithinOneSecond(_ handshake: Handshake) throws {
            let backend = try EchoBackend(name: "shutdown-\(handshake.rawValue)")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml", Manifests.service("app", ports: [backend.port]) + Manifests.ingress("any", rules: [(nil, "/", "Prefix", "app")]))
            for trial in 1...handshake.trials {
                let postern = try PosternProcess(manifests: manifests, workers: 2)
                try handshake.run(port: postern.httpsPort)
                let signalled = Date()
                postern.child.signal(SIGTERM)
                let status = postern.child.waitForExit(timeout: 1)
                let took = Date().timeIntervalSince(signalled)
                #expect(status == 0, "trial \(trial): \(status == nil ? "still running" : "exit \(status!)") \(String(format: "%.2f", took)) s after SIGTERM")
            }
        }
    }
}
