@testable import TLS
import Testing

@Suite struct TLSCipherPolicyTests {
    @Test func theDefaultsCoverRSAAndECDSAKeysWithNothingUnused() throws {
        let policy = try TLSCipherPolicy(TLSServerSettings())
        #expect(policy.tls12KeyTypes == [.rsa, .ecdsa])
        #expect(policy.unusableSuites.isEmpty)
    }

    @Test func aDHEOnlyListIsRefusedNamingTheSetting() {
        var settings = TLSServerSettings()
        settings.ciphers = "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
        #expect(throws: TLSError.self) { try TLSCipherPolicy(settings) }
        do {
            _ = try TLSCipherPolicy(settings)
        } catch {
            #expect("\(error)".hasPrefix("ssl-ciphers:"))
        }
    }

    @Test func aDHEOnlyListIsIrrelevantWhenOnlyTLS13IsOffered() throws {
        var settings = TLSServerSettings()
        settings.ciphers = "DHE-RSA-AES128-GCM-SHA256"
        try settings.setProtocols("TLSv1.3")
        let policy = try TLSCipherPolicy(settings)
        #expect(policy.coversTLS12(.rsa) && policy.coversTLS12(nil))
    }

    @Test func dheSuitesBesideECDHEOnesAreReportedAsUnusable() throws {
        var settings = TLSServerSettings()
        settings.ciphers = "DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
        let policy = try TLSCipherPolicy(settings)
        #expect(policy.tls12KeyTypes == [.rsa])
        #expect(!policy.coversTLS12(.ecdsa))
        #expect(policy.unusableSuites.count == 1 && policy.unusableSuites[0].hasPrefix("DHE-RSA-AES128-GCM-SHA256"))
    }

    @Test func noTLS13SuiteIsRefusedWhenTLS13IsOffered() {
        var settings = TLSServerSettings()
        settings.cipherSuites = ""
        #expect(throws: TLSError.self) { try TLSCipherPolicy(settings) }
    }

    @Test func theStoreWarnsAboutACertificateWhoseKeyNoTLS12SuiteAuthenticates() throws {
        var settings = TLSServerSettings()
        settings.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"
        let builder = try TLSStoreBuilder(settings: settings, defaultCertificate: nil)
        let rsa = try TestCertificates.make(["rsa.example.com"], keyType: "rsa")
        let ecdsa = try TestCertificates.make(["ec.example.com"])
        let (_, problems) = builder.build([
            TLSCertificateInput(name: "default/rsa", hosts: ["rsa.example.com"], certificateChainPEM: rsa.certificate, privateKeyPEM: rsa.key),
            TLSCertificateInput(name: "default/ec", hosts: ["ec.example.com"], certificateChainPEM: ecdsa.certificate, privateKeyPEM: ecdsa.key),
        ])
        #expect(problems.filter { $0.reason == TLSCertificateProblem.noCipherSuiteForKey }.map(\.certificate) == ["default/rsa"])
    }
}
