import Foundation
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
        let time = ISO8601DateFormatter().string(from: Date())
        let text: String
        switch format {
        case .text:
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            text = "\(time) \(level.rawValue.uppercased()) \(label): \(message)\(fields.isEmpty ? "" : " " + fields)\n"
        case .json:
            var object: [String: Any] = ["time": time, "level": level.rawValue, "logger": label, "msg": message.description]
            for (key, value) in all { object[key] = LineLogHandler.jsonValue(value) }
            // Paths and addresses read as written: no "\/".
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            text = String(decoding: data, as: UTF8.self) + "\n"
        }
        FileHandle.standardError.write(Data(text.utf8))
    }
}

extension LineLogHandler {
    /// A metadata value as JSON: numbers and booleans given as
    /// `.stringConvertible` stay numbers and booleans (so log processors can
    /// compare them), lists and maps nest, everything else is a string.
    static func jsonValue(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case let .string(text): return text
        case let .stringConvertible(convertible):
            switch convertible {
            case let number as Int: return number
            case let number as Int64: return number
            case let number as UInt64: return number
            case let number as UInt: return number
            case let number as Int32: return number
            case let number as UInt32: return number
            case let number as Double where number.isFinite: return number
            case let flag as Bool: return flag
            default: return convertible.description
            }
        case let .array(values): return values.map(jsonValue)
        case let .dictionary(values): return values.mapValues(jsonValue)
        }
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
