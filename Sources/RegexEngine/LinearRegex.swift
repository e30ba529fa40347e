import CRE2

/// A compiled RE2 pattern: matching time is linear in the input, whatever
/// the pattern or the path (no backtracking).
///
/// Immutable; safe to match from every worker at once. Owns its C object.
public final class LinearRegex: @unchecked Sendable {
    // @unchecked: the RE2 object is immutable after compilation and RE2
    // documents concurrent matching as safe.
    private let regex: OpaquePointer
    /// The pattern as given.
    public let pattern: String
    /// Capturing groups in the pattern (`$1`... of a rewrite).
    public let groupCount: Int

    /// Most capture groups a match reports (`$0`-`$9`).
    public static let maximumGroups = 10

    /// Why a pattern did not compile.
    public struct CompileError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Compiles `pattern` (RE2 syntax).
    public init(_ pattern: String) throws(CompileError) {
        var pattern = pattern
        var message = [CChar](repeating: 0, count: 256)
        let compiled: OpaquePointer? = pattern.withUTF8 { bytes in
            message.withUnsafeMutableBufferPointer { error in
                bytes.withMemoryRebound(to: CChar.self) { text in
                    cre2_compile(text.baseAddress, text.count, error.baseAddress, error.count)
                }
            }
        }
        guard let compiled else {
            let text = message.withUnsafeBufferPointer { buffer in
                String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
            throw CompileError(description: text)
        }
        self.regex = compiled
        self.pattern = pattern
        self.groupCount = Int(cre2_group_count(compiled))
    }

    deinit { cre2_free(regex) }

    /// Whether the pattern matches at the start of `text`; on a match
    /// `offsets[2i]`, `offsets[2i+1]` hold group i's range in `text` (-1 when
    /// unset) for i in 0..<groups. `offsets` holds at least `2 * groups`.
    /// Allocation-free.
    @inline(__always)
    public func matchesPrefix(
        _ text: UnsafeRawBufferPointer, offsets: UnsafeMutablePointer<Int32>, groups: Int
    ) -> Bool {
        cre2_match_prefix(
            regex, text.baseAddress?.assumingMemoryBound(to: UInt8.self), text.count, offsets, Int32(groups)) == 1
    }

    /// `matchesPrefix` for strings, off the data path.
    public func matchesPrefix(_ text: String) -> (matched: Bool, groups: [String?]) {
        var text = text
        let groups = min(groupCount + 1, LinearRegex.maximumGroups)
        var offsets = [Int32](repeating: -1, count: 2 * LinearRegex.maximumGroups)
        let matched = text.withUTF8 { bytes in
            offsets.withUnsafeMutableBufferPointer { buffer in
                matchesPrefix(UnsafeRawBufferPointer(bytes), offsets: buffer.baseAddress!, groups: groups)
            }
        }
        guard matched else { return (false, []) }
        let utf8 = Array(text.utf8)
        return (true, (0..<groups).map { i in
            let start = Int(offsets[2 * i]), end = Int(offsets[2 * i + 1])
            return start < 0 ? nil : String(decoding: utf8[start..<end], as: UTF8.self)
        })
    }
}
