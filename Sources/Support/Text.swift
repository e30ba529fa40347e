import FoundationEssentials
import Glibc

// Small text operations that came from Foundation proper (CharacterSet,
// NSString path methods, DateFormatter) and are not in FoundationEssentials.

extension StringProtocol {
    /// The text without leading and trailing whitespace and line breaks.
    public func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }) else { return "" }
        let last = lastIndex(where: { !$0.isWhitespace })!
        return String(self[first...last])
    }
}

/// RFC 3986 percent-encoding and path helpers.
public enum TextEncoding {
    /// `value` with every byte outside RFC 3986's unreserved set
    /// (`A-Z a-z 0-9 - . _ ~`) written as `%XX`, for query values.
    public static func percentEncoded(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".unicodeScalars)
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(digits[Int(byte >> 4)])
                result.unicodeScalars.append(digits[Int(byte & 0xF)])
            }
        }
        return result
    }

    /// The folder part of a file path, as NSString's `deletingLastPathComponent`:
    /// `/a/b` → `/a`, `/a` → `/`, `b` → ``.
    public static func folder(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        if slash == trimmed.startIndex { return "/" }
        return String(trimmed[..<slash])
    }

    /// `name` inside `folder`, as NSString's `appendingPathComponent`.
    public static func path(_ folder: String, _ name: String) -> String {
        if folder.isEmpty { return name }
        return folder.hasSuffix("/") ? folder + name : folder + "/" + name
    }

    /// `date` in UTC as RFC 3339 with `fractionDigits` digits of the second
    /// (`2026-12-05T00:03:12.250000Z` for 6), as Kubernetes writes MicroTime.
    public static func rfc3339(_ date: Date, fractionDigits: Int = 0) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = Int64(interval.rounded(.down))
        var scale: Int64 = 1
        for _ in 0..<fractionDigits { scale *= 10 }
        var fraction = Int64(((interval - Double(seconds)) * Double(scale)).rounded(.down))
        if fraction >= scale {
            fraction -= scale
            seconds += 1
        }
        // Days since 1970 to a civil date (proleptic Gregorian calendar).
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func padded(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var text = padded(year, 4) + "-" + padded(month, 2) + "-" + padded(day, 2) + "T"
            + padded(secondOfDay / 3600, 2) + ":" + padded(secondOfDay / 60 % 60, 2) + ":" + padded(secondOfDay % 60, 2)
        if fractionDigits > 0 { text += "." + padded(fraction, fractionDigits) }
        return text + "Z"
    }
}

/// The process's standard error, written without Foundation's FileHandle.
public enum StandardError {
    /// Writes `text` with write(2), retrying short writes and EINTR, so one
    /// message is one write where the kernel allows it.
    public static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
