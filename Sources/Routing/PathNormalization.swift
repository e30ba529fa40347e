/// Request path normalisation before matching: dot-segments are removed
/// (RFC 3986 §5.2.4), so `/public/../admin` is matched as `/admin` and can
/// never select the rules for `/public`.
///
/// Nothing is percent-decoded (`%2F` stays three bytes and never becomes a
/// separator), except that a segment spelled with `%2E` (`%2e%2e`, `.%2E`) is
/// a dot-segment too: an upstream that decodes it would otherwise resolve it
/// after routing chose a rule. Allocation-free.
public enum PathNormalization {
    /// What a segment is, once `%2E` is read as `.`.
    private enum SegmentKind { case current, parent, other }

    @inline(__always)
    private static func kind(_ path: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> SegmentKind {
        var dots = 0
        var i = start
        while i < end {
            if path[i] == UInt8(ascii: ".") {
                i += 1
            } else if path[i] == UInt8(ascii: "%"), i + 3 <= end, path[i + 1] == UInt8(ascii: "2"),
                      path[i + 2] | 0x20 == UInt8(ascii: "e")
            {
                i += 3
            } else {
                return .other
            }
            dots += 1
            if dots > 2 { return .other }
        }
        switch dots {
        case 1: return .current
        case 2: return .parent
        default: return .other
        }
    }

    /// True when `path` starts with `/` and has a `.` or `..` segment.
    @inline(__always)
    public static func needsNormalization(_ path: UnsafeRawBufferPointer) -> Bool {
        let count = path.count
        guard count > 1, let base = path.baseAddress?.assumingMemoryBound(to: UInt8.self),
              base[0] == UInt8(ascii: "/")
        else { return false }
        var start = 1
        while start <= count {
            var end = start
            while end < count, base[end] != UInt8(ascii: "/") { end += 1 }
            if end > start, base[start] == UInt8(ascii: ".") || base[start] == UInt8(ascii: "%"),
               kind(base, start, end) != .other
            {
                return true
            }
            start = end + 1
        }
        return false
    }

    /// Writes `path` without dot-segments to `output` (room for at least
    /// `path.count` bytes) and returns the length written. The result
    /// starts with `/`; a path ending in a dot-segment keeps a trailing `/`
    /// (`/a/b/..` is `/a/`). A `path` not starting with `/` is copied as is.
    public static func normalize(_ path: UnsafeRawBufferPointer, into output: UnsafeMutablePointer<UInt8>) -> Int {
        let count = path.count
        guard count > 0, let base = path.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
        guard base[0] == UInt8(ascii: "/") else {
            output.update(from: base, count: count)
            return count
        }
        var length = 0
        var start = 1
        while start <= count {
            var end = start
            while end < count, base[end] != UInt8(ascii: "/") { end += 1 }
            let last = end >= count
            switch kind(base, start, end) {
            case .current:
                if last { output[length] = UInt8(ascii: "/"); length += 1 }
            case .parent:
                // Drop the last "/segment" written.
                while length > 0 {
                    length -= 1
                    if output[length] == UInt8(ascii: "/") { break }
                }
                if last { output[length] = UInt8(ascii: "/"); length += 1 }
            case .other:
                output[length] = UInt8(ascii: "/")
                length += 1
                (output + length).update(from: base + start, count: end - start)
                length += end - start
            }
            start = end + 1
        }
        if length == 0 { output[0] = UInt8(ascii: "/"); length = 1 }
        return length
    }

    /// `normalize` for strings, off the data path.
    public static func normalize(_ path: String) -> String {
        var path = path
        return path.withUTF8 { bytes in
            let raw = UnsafeRawBufferPointer(bytes)
            guard needsNormalization(raw) else { return String(decoding: bytes, as: UTF8.self) }
            return String(unsafeUninitializedCapacity: max(bytes.count, 1)) { output in
                normalize(raw, into: output.baseAddress!)
            }
        }
    }
}
