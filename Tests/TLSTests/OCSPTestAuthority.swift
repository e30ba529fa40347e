import Foundation
@testable import TLS

/// A CA, a delegated OCSP responder certificate, an unrelated "rogue"
/// signer, and leaves naming a responder; OCSP responses are made by the
/// `openssl ocsp` command line from an index file, as a real responder would.
final class OCSPTestAuthority: @unchecked Sendable {
    let folder: URL
    var caCertificate: String { path("ca.crt") }

    /// A leaf: its file name (NAME.crt, NAME.key), chain (leaf then CA) and key.
    typealias Leaf = (name: String, chainPEM: [UInt8], keyPEM: [UInt8])

    /// How a response is signed.
    enum Signer { case delegatedResponder, issuer, rogue }

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("postern-ocsp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                 "-subj", "/CN=OCSP Test CA", "-keyout", path("ca.key"), "-out", path("ca.crt")])
        try signed("responder", subject: "/CN=OCSP Test Responder", extensions: "extendedKeyUsage=OCSPSigning\nbasicConstraints=CA:FALSE\n")
        try run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                 "-subj", "/CN=OCSP Test CA", "-keyout", path("rogue.key"), "-out", path("rogue.crt")])
        try Data().write(to: folder.appendingPathComponent("index.txt"))
    }

    deinit { try? FileManager.default.removeItem(at: folder) }

    func path(_ name: String) -> String { folder.appendingPathComponent(name).path }

    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TLSError("openssl \(arguments.prefix(2).joined(separator: " ")) failed") }
        return String(decoding: data, as: UTF8.self)
    }

    /// A key and a certificate signed by the CA, as NAME.key and NAME.crt.
    private func signed(_ name: String, subject: String, extensions: String) throws {
        try run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subject,
                 "-keyout", path(name + ".key"), "-out", path(name + ".csr")])
        try extensions.write(toFile: path(name + ".ext"), atomically: true, encoding: .utf8)
        try run(["x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.crt"), "-CAkey", path("ca.key"), "-CAcreateserial",
                 "-days", "30", "-extfile", path(name + ".ext"), "-out", path(name + ".crt")])
    }

    /// A leaf for `host` naming `responder` (nil: no AIA), must-staple when
    /// asked. Returns its name (files NAME.crt, NAME.key) and its chain
    /// (leaf then CA) as tls.crt would hold it.
    func leaf(_ host: String, responder: String? = "http://127.0.0.1:9/", mustStaple: Bool = false) throws -> Leaf {
        let name = "leaf-\(UUID().uuidString)"
        var extensions = "subjectAltName=DNS:\(host)\n"
        if let responder { extensions += "authorityInfoAccess=OCSP;URI:\(responder)\n" }
        if mustStaple { extensions += "tlsfeature=status_request\n" }
        try signed(name, subject: "/CN=\(host)", extensions: extensions)
        let chain = try Data(contentsOf: URL(fileURLWithPath: path(name + ".crt"))) + Data(contentsOf: URL(fileURLWithPath: path("ca.crt")))
        return (name, Array(chain), Array(try Data(contentsOf: URL(fileURLWithPath: path(name + ".key")))))
    }

    /// Records `leaf` in the index as valid or revoked.
    func record(_ leaf: String, revoked: Bool) throws {
        var serial = try run(["x509", "-in", path(leaf + ".crt"), "-noout", "-serial"])
            .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "serial=", with: "")
        while serial.hasPrefix("00"), serial.count > 2 { serial.removeFirst(2) }
        let line = revoked
            ? "R\t301231235959Z\t240101000000Z\t\(serial)\tunknown\t/CN=\(leaf)\n"
            : "V\t301231235959Z\t\t\(serial)\tunknown\t/CN=\(leaf)\n"
        let handle = try FileHandle(forWritingTo: folder.appendingPathComponent("index.txt"))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(line.utf8))
    }

    /// `openssl ocsp`'s answer to `request` from the index, signed by `signer`,
    /// valid for `days` (nil: no nextUpdate).
    func response(to request: [UInt8], signer: Signer = .delegatedResponder, days: Int? = 1) throws -> [UInt8] {
        let id = UUID().uuidString
        try Data(request).write(to: folder.appendingPathComponent("\(id).req"))
        let (certificate, key) =
            switch signer {
            case .delegatedResponder: ("responder.crt", "responder.key")
            case .issuer: ("ca.crt", "ca.key")
            case .rogue: ("rogue.crt", "rogue.key")
            }
        try run(["ocsp", "-index", path("index.txt"), "-CA", path("ca.crt"), "-rsigner", path(certificate), "-rkey", path(key),
                 "-reqin", path("\(id).req"), "-respout", path("\(id).resp")] + (days.map { ["-ndays", "\($0)"] } ?? []))
        return Array(try Data(contentsOf: URL(fileURLWithPath: path("\(id).resp"))))
    }
}
