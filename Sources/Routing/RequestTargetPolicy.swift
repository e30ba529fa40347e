/// Which request targets are refused before routing, in every protocol.
///
/// The router matches the path as sent (dot-segments removed, nothing else
/// decoded) and forwards the client's target unchanged. An upstream that
/// decodes `%2F` into `/` (or `%5C` into `\`, which some servers read as a
/// separator) and only then removes dot-segments resolves
/// `/public/..%2Fadmin` to `/admin`, a path the router never saw, so the
/// rule for `/public` would hand out `/admin`. Such targets, an encoded NUL
/// (which truncates the path in C backends), a raw `\`, and a fragment
/// (`#`, never part of a request target: RFC 9112 §3.2, RFC 9113 §8.3.1)
/// are refused with 400. Allocation-free.
public enum RequestTargetPolicy {
    /// Why a target was refused.
    public enum Violation: Equatable, Sendable {
        /// `#` anywhere in the target.
        case fragment
        /// `%2F`, `%5C` or a raw `\` in the path.
        case encodedSeparator
        /// `%00` in the path.
        case encodedNUL
    }

    /// Nil when `target` (path and query, origin-form) may be routed.
    /// Only the path (up to `?`) is checked for separators and NUL: a query
    /// carries encoded data by design and never selects a rule.
    public static func violation(_ target: UnsafeRawBufferPointer) -> Violation? {
        let count = target.count
        guard count > 0, let base = target.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        var inPath = true
        var index = 0
        while index < count {
            let byte = base[index]
            if byte == UInt8(ascii: "#") { return .fragment }
            if inPath {
                if byte == UInt8(ascii: "?") {
                    inPath = false
                } else if byte == UInt8(ascii: "\\") {
                    return .encodedSeparator
                } else if byte == UInt8(ascii: "%"), index + 2 < count {
                    let high = base[index + 1]
                    let low = base[index + 2] | 0x20
                    if high == UInt8(ascii: "2"), low == UInt8(ascii: "f") { return .encodedSeparator }
                    if high == UInt8(ascii: "5"), low == UInt8(ascii: "c") { return .encodedSeparator }
                    if high == UInt8(ascii: "0"), base[index + 2] == UInt8(ascii: "0") { return .encodedNUL }
                }
            }
            index += 1
        }
        return nil
    }
}
