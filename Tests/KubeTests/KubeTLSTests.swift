import FakeKubeAPI
import Foundation
import Kube
import Testing

/// A CA, an API-server certificate for 127.0.0.1 and a client certificate,
/// made with the `openssl` command line in a temporary folder.
final class KubePKI: @unchecked Sendable {
    let folder: String
    init() throws {
        folder = NSTemporaryDirectory() + "postern-kube-pki-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", "/CN=kube test CA", "-keyout", path("ca.key"), "-out", path("ca.crt")])
        try leaf("server", subject: "/CN=kube-apiserver", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try leaf("client", subject: "/O=system:masters/CN=postern", extensions: "extendedKeyUsage=clientAuth\n")
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                     "-subj", "/CN=other CA", "-keyout", path("other.key"), "-out", path("other.crt")])
    }

    deinit { try? FileManager.default.removeItem(atPath: folder) }

    func path(_ name: String) -> String { folder + "/" + name }
    func bytes(_ name: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path(name)) ?? Data()) }

    private func leaf(_ name: String, subject: String, extensions: String) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
                     "-keyout", path(name + ".key"), "-out", path(name + ".csr")])
        try extensions.write(toFile: path(name + ".ext"), atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                     "-days", "2", "-extfile", path(name + ".ext"), "-out", path(name + ".crt")])
    }

    private func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw KubeConfigurationError("openssl \(arguments[0]) failed") }
    }
}

@Suite(.serialized) struct KubeTLSTests {
    func tlsServer(_ pki: KubePKI) throws -> FakeKubeAPIServer {
        let server = FakeKubeAPIServer()
        try server.enableTLS(certificateChainPEM: pki.bytes("server.crt"), privateKeyPEM: pki.bytes("server.key"), clientCertificateAuthorityPEM: pki.bytes("ca.crt"))
        try server.start()
        return server
    }

    @Test func verifiesTheAPIServerCertificateAndPresentsTheClientCertificate() throws {
        let pki = try KubePKI()
        let server = try tlsServer(pki)
        defer { server.stop() }
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(
            scheme: "https", host: "127.0.0.1", port: server.port, certificateAuthorityPEM: pki.bytes("ca.crt"),
            clientCertificatePEM: pki.bytes("client.crt"), clientKeyPEM: pki.bytes("client.key")))
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 200)
    }

    @Test func refusesAnAPIServerCertificateFromAnotherAuthority() throws {
        let pki = try KubePKI()
        let server = try tlsServer(pki)
        defer { server.stop() }
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(
            scheme: "https", host: "127.0.0.1", port: server.port, certificateAuthorityPEM: pki.bytes("other.crt"),
            clientCertificatePEM: pki.bytes("client.crt"), clientKeyPEM: pki.bytes("client.key")))
        #expect {
            try client.send(method: "GET", path: "/api/v1/services")
        } throws: { error in
            "\(error)".contains("certificate")
        }
        #expect(server.requests.isEmpty)
    }

    @Test func withoutAClientCertificateTheAPIServerAnswersUnauthorized() throws {
        let pki = try KubePKI()
        let server = try tlsServer(pki)
        defer { server.stop() }
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(
            scheme: "https", host: "127.0.0.1", port: server.port, certificateAuthorityPEM: pki.bytes("ca.crt")))
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 401)
    }

    @Test func insecureSkipTLSVerifyAcceptsAnyServerCertificate() throws {
        let pki = try KubePKI()
        let server = try tlsServer(pki)
        defer { server.stop() }
        let client = try KubeAPIClient(configuration: KubeClientConfiguration(
            scheme: "https", host: "127.0.0.1", port: server.port, clientCertificatePEM: pki.bytes("client.crt"),
            clientKeyPEM: pki.bytes("client.key"), insecureSkipTLSVerify: true))
        #expect(try client.send(method: "GET", path: "/api/v1/services").status == 200)
    }

    @Test func certificateAuthorityWithoutACertificateIsAStartUpError() throws {
        #expect(throws: KubeConfigurationError.self) {
            try KubeAPIClient(configuration: KubeClientConfiguration(
                scheme: "https", host: "127.0.0.1", port: 1, certificateAuthorityPEM: Array("not a certificate".utf8)))
        }
    }

    @Test func mismatchedClientKeyIsAStartUpError() throws {
        let pki = try KubePKI()
        #expect(throws: KubeConfigurationError.self) {
            try KubeAPIClient(configuration: KubeClientConfiguration(
                scheme: "https", host: "127.0.0.1", port: 1, clientCertificatePEM: pki.bytes("client.crt"), clientKeyPEM: pki.bytes("server.key")))
        }
    }
}
