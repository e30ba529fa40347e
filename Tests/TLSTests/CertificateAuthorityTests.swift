import Foundation
import Testing

@testable import TLS

/// The CA behind Postern-managed admission webhook certificates.
@Suite struct CertificateAuthorityTests {
    @Test func issuedCertificateIsSignedByItsCAAndNamesExactlyItsHosts() throws {
        let authority = try CertificateAuthority.makeAuthority(commonName: "test CA", validitySeconds: 3600)
        let hosts = ["postern-admission.ingress.svc", "127.0.0.1"]
        let issued = try CertificateAuthority.issueServerCertificate(hosts: hosts, authority: authority, validitySeconds: 600)
        #expect(String(decoding: issued.certificatePEM, as: UTF8.self).hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(String(decoding: issued.privateKeyPEM, as: UTF8.self).hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(CertificateAuthority.verifies(certificatePEM: issued.certificatePEM, authoritiesPEM: authority.certificatePEM, hosts: hosts))
        // Another host, or another CA, does not verify.
        #expect(!CertificateAuthority.verifies(certificatePEM: issued.certificatePEM, authoritiesPEM: authority.certificatePEM, hosts: ["evil.example.com"]))
        #expect(!CertificateAuthority.verifies(certificatePEM: issued.certificatePEM, authoritiesPEM: authority.certificatePEM, hosts: ["127.0.0.2"]))
        let other = try CertificateAuthority.makeAuthority(commonName: "other CA", validitySeconds: 3600)
        #expect(!CertificateAuthority.verifies(certificatePEM: issued.certificatePEM, authoritiesPEM: other.certificatePEM, hosts: hosts))
        // A bundle holding both CAs verifies it (the CA rotation window).
        #expect(CertificateAuthority.verifies(certificatePEM: issued.certificatePEM, authoritiesPEM: other.certificatePEM + authority.certificatePEM, hosts: hosts))
        // The pair is usable by the TLS server code.
        let input = TLSCertificateInput(name: "webhook", hosts: [], certificateChainPEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM)
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: input)
        #expect(!builder.defaultIsSelfSigned)
    }

    @Test func validityIsWhatWasAskedAndNeverOutlivesTheCA() throws {
        let authority = try CertificateAuthority.makeAuthority(commonName: "short CA", validitySeconds: 120)
        let ca = try #require(CertificateAuthority.validity(ofCertificatePEM: authority.certificatePEM))
        let now = Int(Date().timeIntervalSince1970)
        #expect(abs(ca.notAfter - now - 120) < 5)
        // Back-dated a minute for peers whose clocks lag.
        #expect(abs(ca.notBefore - now + 60) < 5)
        let issued = try CertificateAuthority.issueServerCertificate(hosts: ["a.example"], authority: authority, validitySeconds: 3600)
        let leaf = try #require(CertificateAuthority.validity(ofCertificatePEM: issued.certificatePEM))
        // (Each reading is relative to its own "now": a second of slack.)
        #expect(leaf.notAfter - ca.notAfter <= 1)
        #expect(abs(leaf.notAfter - now - 120) < 5)
    }

    @Test func unreadableInputIsAnErrorNotACrash() throws {
        #expect(CertificateAuthority.validity(ofCertificatePEM: Array("garbage".utf8)) == nil)
        #expect(!CertificateAuthority.verifies(certificatePEM: [], authoritiesPEM: [], hosts: ["a"]))
        let broken = PEMKeyPair(certificatePEM: Array("nope".utf8), privateKeyPEM: Array("nope".utf8))
        #expect(throws: (any Error).self) { try CertificateAuthority.issueServerCertificate(hosts: ["a"], authority: broken, validitySeconds: 60) }
        let authority = try CertificateAuthority.makeAuthority(commonName: "CA", validitySeconds: 60)
        #expect(throws: (any Error).self) { try CertificateAuthority.issueServerCertificate(hosts: [], authority: authority, validitySeconds: 60) }
    }
}
