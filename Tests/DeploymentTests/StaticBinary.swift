import Foundation

/// The static release binary (`--static-swift-stdlib`, the image's) that
/// `make test` builds before the suite, and the tools that read it.
enum StaticBinary {
    /// `POSTERN_STATIC_BINARY`, else `.build-static/release/postern`; nil, with
    /// a note naming `suite`, when it was not built (the checks are skipped).
    static func path(for suite: String) -> String? {
        let path = ProcessInfo.processInfo.environment["POSTERN_STATIC_BINARY"]
            ?? ChartTests.root.appendingPathComponent(".build-static/release/postern").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            print("\(suite): no static release binary at \(path) (make test builds it); not checked")
            return nil
        }
        return path
    }

    /// Runs `tool` with `arguments`: its exit status and standard output
    /// (standard error is dropped).
    static func output(of tool: String, _ arguments: [String]) throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
