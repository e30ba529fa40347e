import Glibc
import Logging

/// How log lines are written to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// A swift-log handler that writes one line per message to standard error,
/// as `key=value` text or as one JSON object per line.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String
    private let format: LogFormat

    public init(label: String, format: LogFormat) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
        source: String, file: String, function: String, line: UInt
    ) {
        var all = metadata
        if let explicit { all.merge(explicit) { $1 } }
        let time = LineLogHandler.timestamp()
        var text: String
        switch format {
        case .text:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = "\(time) \(level.rawValue.uppercased()) \(label): \(message)\(fields.isEmpty ? "" : " " + fields)\n"
        case .json:
            var object: [String: Logger.MetadataValue] = all
            object["time"] = .string(time)
            object["level"] = .string(level.rawValue)
            object["logger"] = .string(label)
            object["msg"] = .string(message.description)
            text = ""
            LineLogHandler.appendJSON(.dictionary(object), to: &text)
            text += "\n"
        }
        // One write(2) per line, so lines from several threads never interleave.
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}

extension LineLogHandler {
    /// Now in UTC as RFC 3339 with whole seconds (`2026-12-05T00:03:12Z`), the
    /// form ISO8601DateFormatter wrote before, without Foundation.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return rfc3339(secondsSince1970: Int64(now.tv_sec))
    }

    /// `seconds` since 1970 in UTC as `YYYY-MM-DDTHH:MM:SSZ`.
    static func rfc3339(secondsSince1970 seconds: Int64) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return padded(parts.tm_year + 1900, 4) + "-" + padded(parts.tm_mon + 1, 2) + "-" + padded(parts.tm_mday, 2)
            + "T" + padded(parts.tm_hour, 2) + ":" + padded(parts.tm_min, 2) + ":" + padded(parts.tm_sec, 2) + "Z"
    }

    /// Appends a metadata value as JSON: numbers and booleans given as
    /// `.stringConvertible` stay numbers and booleans (so log processors can
    /// compare them), lists and maps nest (keys sorted), everything else is
    /// a string. Slashes are not escaped: paths and addresses read as written.
    static func appendJSON(_ value: Logger.MetadataValue, to text: inout String) {
        switch value {
        case let .string(string):
            appendJSONString(string, to: &text)
        case let .stringConvertible(convertible):
            switch convertible {
            case is Int, is Int64, is UInt64, is UInt, is Int32, is UInt32: text += convertible.description
            case let number as Double where number.isFinite: text += number.description
            case let flag as Bool: text += flag ? "true" : "false"
            default: appendJSONString(convertible.description, to: &text)
            }
        case let .array(values):
            text += "["
            for (index, element) in values.enumerated() {
                if index > 0 { text += "," }
                appendJSON(element, to: &text)
            }
            text += "]"
        case let .dictionary(values):
            text += "{"
            for (index, key) in values.keys.sorted().enumerated() {
                if index > 0 { text += "," }
                appendJSONString(key, to: &text)
                text += ":"
                appendJSON(values[key]!, to: &text)
            }
            text += "}"
        }
    }

    /// A JSON string literal (RFC 8259 §7): quote, backslash and control
    /// characters escaped, everything else as is.
    static func appendJSONString(_ string: String, to text: inout String) {
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }
}

/// Installs the process-wide log handler once, at start-up.
public enum LoggingSetup {
    /// Bootstraps swift-log with `format` at `level`.
    public static func bootstrap(format: LogFormat, level: Logger.Level = .info) {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label, format: format)
            handler.logLevel = level
            return handler
        }
    }
}
