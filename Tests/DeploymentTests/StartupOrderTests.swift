import Foundation
import Testing

/// The release link's start-up order (issue 16): the functions that run from
/// start until idle (Sources/postern/startup-order.txt, made by
/// bench/startup-order) sit together at the front of the static binary's
/// `.text`, which saves about 3 MB of idle RSS. Checked on the binary `make
/// test` builds with `--static-swift-stdlib` (or `POSTERN_STATIC_BINARY`);
/// skipped with a note when it was not built.
@Suite struct StartupOrderTests {
    static let orderFile = ChartTests.root.appendingPathComponent("Sources/postern/startup-order.txt")

    /// The function names of the order file, without its comment lines.
    static func orderedNames() throws -> [String] {
        try String(contentsOf: orderFile, encoding: .utf8).split(separator: "\n")
            .filter { !$0.hasPrefix("#") }.map(String.init)
    }

    /// The first address of every function `nm` lists for `binary`, by name.
    static func functionAddresses(of binary: String) throws -> [String: UInt64] {
        let nm = try StaticBinary.output(of: "/usr/bin/nm", ["--defined-only", binary])
        #expect(nm.status == 0, "nm \(binary)")
        var addresses: [String: UInt64] = [:]
        for line in nm.text.split(separator: "\n") {
            // "0000000000312f50 t $s10Controller..."
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, "tTwW".contains(fields[1]), let address = UInt64(fields[0], radix: 16) else { continue }
            if addresses[String(fields[2])] == nil { addresses[String(fields[2])] = address }
        }
        return addresses
    }

    @Test func theOrderFileNamesFunctionsTheBinaryStillHas() throws {
        guard let binary = StaticBinary.path(for: "StartupOrderTests") else { return }
        let names = try Self.orderedNames()
        #expect(names.count > 1000, "\(Self.orderFile.path) lists \(names.count) functions")
        let addresses = try Self.functionAddresses(of: binary)
        let missing = names.filter { addresses[$0] == nil }
        #expect(
            Double(missing.count) <= 0.05 * Double(names.count),
            "\(missing.count) of \(names.count) start-up functions no longer exist (regenerate with bench/startup-order): \(missing.prefix(5))")
    }

    @Test func theStartUpFunctionsComeFirstInTheStaticBinary() throws {
        guard let binary = StaticBinary.path(for: "StartupOrderTests") else { return }
        let addresses = try Self.functionAddresses(of: binary)
        guard let first = addresses.values.min(), let last = addresses.values.max() else {
            Issue.record("nm listed no functions in \(binary)")
            return
        }
        // Whole objects built without function sections (the standard library's internal
        // functions) come along with the ones they hold, so "first" is the first 40%:
        // unordered, a quarter of them lies beyond it.
        let boundary = first + (last - first) * 2 / 5
        let ordered = try Self.orderedNames().compactMap { addresses[$0] }
        let beyond = ordered.filter { $0 >= boundary }
        #expect(
            Double(beyond.count) <= 0.01 * Double(ordered.count),
            "\(beyond.count) of \(ordered.count) start-up functions lie beyond the first 40% of .text: was the release link made without --symbol-ordering-file (Package.swift)?")
    }
}
