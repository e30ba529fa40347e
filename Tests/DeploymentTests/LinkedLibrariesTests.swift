import Foundation
import Testing

/// What the `postern` binary loads at run time, read with `ldd` (issue 16):
/// no Foundation and no ICU (about 15 MB of idle RSS), and for the static
/// release build (`--static-swift-stdlib`, the image's binary) nothing of the
/// Swift runtime, only the C libraries docs/deployment.md lists.
@Suite struct LinkedLibrariesTests {
    /// Shared libraries `ldd` resolves for `binary`, by file name (`libc.so.6`).
    static func sharedLibraries(of binary: String) throws -> [String] {
        let ldd = try StaticBinary.output(of: "/usr/bin/ldd", [binary])
        #expect(ldd.status == 0, "ldd \(binary)")
        return ldd.text.split(separator: "\n").compactMap { line in
            // "\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
            guard let first = line.split(separator: " ").first?.trimmingCharacters(in: .whitespaces), !first.isEmpty else { return nil }
            return String(first.split(separator: "/").last ?? Substring(first))
        }
    }

    /// Library names without their version suffix: `libssl.so.3` → `libssl`.
    static func stems(_ libraries: [String]) -> Set<String> {
        Set(libraries.map { String($0.split(separator: ".").first ?? Substring($0)) })
    }

    /// What the static release binary may load: the C library and loader, the
    /// C++ runtime RE2 needs, and the four libraries Postern is built on.
    static let staticReleaseLibraries: Set<String> = [
        "linux-vdso", "libc", "libm", "libpthread", "libdl", "librt", "ld-linux-x86-64", "ld-linux-aarch64",
        "libstdc++", "libgcc_s", "libssl", "libcrypto", "libnghttp2", "libre2", "libyaml-0",
    ]

    @Test func theBinaryTheSuiteBuiltLinksNoFoundationAndNoICU() throws {
        let libraries = try Self.sharedLibraries(of: ChartTests.postern)
        #expect(libraries.contains { $0.hasPrefix("libssl") }, "ldd read the binary: \(libraries)")
        let offending = libraries.filter { name in
            name.hasPrefix("libFoundation.so") || name.hasPrefix("libFoundationInternationalization") || name.hasPrefix("lib_FoundationICU")
                || name.hasPrefix("libicu")
        }
        #expect(offending == [], "postern links Foundation or ICU again (about 15 MB of idle RSS): \(libraries)")
    }

    /// The binary `make test` builds with `--static-swift-stdlib` (or
    /// `POSTERN_STATIC_BINARY`); skipped with a note when it was not built.
    @Test func theStaticReleaseBinaryNeedsOnlyTheDocumentedLibraries() throws {
        guard let path = StaticBinary.path(for: "LinkedLibrariesTests") else { return }
        let libraries = try Self.sharedLibraries(of: path)
        let unexpected = Self.stems(libraries).subtracting(Self.staticReleaseLibraries).sorted()
        #expect(unexpected == [], "the static release binary loads more than docs/deployment.md lists: \(libraries)")
        #expect(!libraries.contains { $0.contains("swift") || $0.contains("Foundation") || $0.contains("dispatch") || $0.contains("Blocks") })
        // The documented list, line for line: docs/deployment.md shows what ldd prints.
        let documented = try String(contentsOf: ChartTests.root.appendingPathComponent("docs/deployment.md"), encoding: .utf8)
        for library in libraries where !library.hasPrefix("linux-vdso") {
            #expect(documented.contains(library), "\(library) is loaded but not listed in docs/deployment.md")
        }
    }
}
