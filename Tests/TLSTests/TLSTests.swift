import Foundation
@testable import TLS
import Testing

/// Certificates made for the tests with the `openssl` command line.
enum TestCertificates {
    struct Pair {
        var certificate: [UInt8]
        var key: [UInt8]
    }

    /// A self-signed certificate for `names` (first is the CN) with an
    /// `rsa` or `ec` key.
    static func make(_ names: [String], keyType: String = "ec") throws -> Pair {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("postern-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let keyPath = folder.appendingPathComponent("key.pem").path
        let certificatePath = folder.appendingPathComponent("cert.pem").path
        let keyArguments = keyType == "rsa" ? ["-newkey", "rsa:2048"] : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments =
            ["req", "-x509", "-nodes", "-days", "30", "-subj", "/CN=\(names[0])", "-keyout", keyPath, "-out", certificatePath]
            + keyArguments + ["-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ",")]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TLSError("openssl req failed") }
        return Pair(
            certificate: Array(try Data(contentsOf: URL(fileURLWithPath: certificatePath))),
            key: Array(try Data(contentsOf: URL(fileURLWithPath: keyPath))))
    }
}

@Suite struct TLSServerContextTests {
    @Test func loadsECDSAAndRSACertificates() throws {
        for keyType in ["ec", "rsa"] {
            let pair = try TestCertificates.make(["a.example.com"], keyType: keyType)
            let context = try TLSServerContext(
                name: "default/a", certificateChainPEM: pair.certificate, privateKeyPEM: pair.key, settings: TLSServerSettings())
            #expect(context.certificateCovers(host: "a.example.com"))
            #expect(!context.certificateCovers(host: "b.example.com"))
            #expect((context.notAfter ?? 0) > Int(Date().timeIntervalSince1970))
        }
    }

    @Test func rejectsAKeyThatDoesNotMatchTheCertificate() throws {
        let first = try TestCertificates.make(["a.example.com"])
        let second = try TestCertificates.make(["a.example.com"])
        #expect {
            try TLSServerContext(
                name: "default/a", certificateChainPEM: first.certificate, privateKeyPEM: second.key, settings: TLSServerSettings())
        } throws: { error in
            "\(error)".contains("tls.key does not match the certificate")
        }
    }

    @Test func rejectsBytesThatAreNotPEM() {
        #expect(throws: TLSError.self) {
            try TLSServerContext(
                name: "default/x", certificateChainPEM: Array("garbage".utf8), privateKeyPEM: Array("garbage".utf8),
                settings: TLSServerSettings())
        }
    }

    @Test func protocolSettingsAcceptOnlyTLS12And13() throws {
        var settings = TLSServerSettings()
        try settings.setProtocols("TLSv1.3")
        #expect(settings.minimumVersion == .tls13 && settings.maximumVersion == .tls13)
        #expect(throws: TLSError.self) { try settings.setProtocols("TLSv1 TLSv1.1") }
    }
}

@Suite struct TLSCertificateStoreTests {
    @Test func picksExactThenOneLabelWildcardThenDefault() throws {
        let exact = try TestCertificates.make(["a.example.com"])
        let wild = try TestCertificates.make(["*.example.com"])
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        #expect(builder.defaultIsSelfSigned)
        let (store, problems) = builder.build([
            TLSCertificateInput(name: "ns/exact", hosts: ["a.example.com"], certificateChainPEM: exact.certificate, privateKeyPEM: exact.key),
            TLSCertificateInput(name: "ns/wild", hosts: ["*.example.com"], certificateChainPEM: wild.certificate, privateKeyPEM: wild.key),
        ])
        #expect(problems.isEmpty)
        #expect(store.context(forServerName: "A.Example.com").name == "ns/exact")
        #expect(store.context(forServerName: "b.example.com").name == "ns/wild")
        #expect(store.context(forServerName: "c.b.example.com").name == "self-signed")
        #expect(store.context(forServerName: "example.com").name == "self-signed")
    }

    @Test func brokenCertificateFallsBackAndIsReportedWhileOthersServe() throws {
        let good = try TestCertificates.make(["good.example.com"])
        let other = try TestCertificates.make(["bad.example.com"])
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        let (store, problems) = builder.build([
            TLSCertificateInput(name: "ns/good", hosts: ["good.example.com"], certificateChainPEM: good.certificate, privateKeyPEM: good.key),
            TLSCertificateInput(name: "ns/bad", hosts: ["bad.example.com"], certificateChainPEM: other.certificate, privateKeyPEM: good.key),
        ])
        #expect(problems.count == 1)
        #expect(problems.first?.certificate == "ns/bad" && problems.first?.severity == .error)
        #expect(store.context(forServerName: "bad.example.com").name == "self-signed")
        #expect(store.context(forServerName: "good.example.com").name == "ns/good")
    }

    @Test func certificateThatDoesNotCoverItsHostIsServedWithAWarning() throws {
        let pair = try TestCertificates.make(["other.example.com"])
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        let (store, problems) = builder.build([
            TLSCertificateInput(name: "ns/x", hosts: ["x.example.com"], certificateChainPEM: pair.certificate, privateKeyPEM: pair.key)
        ])
        #expect(problems.map(\.severity) == [.warning])
        #expect(problems.first?.message.contains("does not cover host x.example.com") == true)
        #expect(store.context(forServerName: "x.example.com").name == "ns/x")
    }

    @Test func unchangedCertificatesKeepTheirContextAcrossBuilds() throws {
        let pair = try TestCertificates.make(["a.example.com"])
        let input = TLSCertificateInput(name: "ns/a", hosts: ["a.example.com"], certificateChainPEM: pair.certificate, privateKeyPEM: pair.key)
        let builder = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        let first = builder.build([input]).0.context(forServerName: "a.example.com")
        let second = builder.build([input]).0.context(forServerName: "a.example.com")
        #expect(first === second)
        let rotated = try TestCertificates.make(["a.example.com"])
        var changed = input
        changed.certificateChainPEM = rotated.certificate
        changed.privateKeyPEM = rotated.key
        #expect(builder.build([changed]).0.context(forServerName: "a.example.com") !== first)
    }
}

@Suite struct SessionTicketKeyTests {
    @Test func previousKeyStillOpensTicketsForOneRotation() {
        let keys = SessionTicketKeys(rotationSeconds: 3600)
        let first = keys.sealingKey()
        keys.rotate()
        let second = keys.sealingKey()
        #expect(first.name != second.name)
        #expect(keys.openingKey(named: first.name)?.isCurrent == false)
        #expect(keys.openingKey(named: second.name)?.isCurrent == true)
        keys.rotate()
        #expect(keys.openingKey(named: first.name) == nil)
    }

    @Test func keysRotateThemselvesWhenTheirTimeIsUp() {
        let keys = SessionTicketKeys(rotationSeconds: 0)
        let first = keys.sealingKey()
        let second = keys.sealingKey()
        #expect(first.name != second.name)
    }
}

@Suite struct TLSClientContextTests {
    @Test func anUnusableCABundleIsAnErrorNotACrash() {
        // A proxy-ssl-secret whose ca.crt is garbage once freed the context
        // twice (abort in free()); it must only throw.
        #expect(throws: TLSError.self) {
            try TLSClientContext(verify: true, certificateAuthoritiesPEM: Array("not a certificate".utf8))
        }
        #expect(throws: TLSError.self) {
            try TLSClientContext(verify: true, certificateAuthoritiesPEM: [])
        }
    }

    @Test func verifyingAndNonVerifyingContextsAreMade() throws {
        let pair = try TestCertificates.make(["ca.example.com"])
        #expect(try TLSClientContext(verify: true, certificateAuthoritiesPEM: pair.certificate).verifies)
        #expect(try !TLSClientContext(verify: false, certificateAuthoritiesPEM: nil).verifies)
    }
}
