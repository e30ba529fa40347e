import Logging

/// Log lines for rare operational events of the data plane: a drain that
/// reached its deadline, descriptor exhaustion. Never used per request or
/// per frame: every caller bounds its own rate (at most once per second per
/// worker, or once per process lifetime).
///
/// Thread-safety: a value; each worker keeps its own.
public struct OperationsLog: Sendable {
    private let logger: Logger

    /// A log writing through the process's swift-log handler under `label`.
    public init(label: String = "postern") {
        logger = Logger(label: label)
    }

    /// An informational line with `key=value` fields.
    public func info(_ message: String, _ fields: [String: String] = [:]) {
        logger.info("\(message)", metadata: Self.metadata(fields))
    }

    /// A warning line with `key=value` fields.
    public func warning(_ message: String, _ fields: [String: String] = [:]) {
        logger.warning("\(message)", metadata: Self.metadata(fields))
    }

    private static func metadata(_ fields: [String: String]) -> Logger.Metadata? {
        fields.isEmpty ? nil : fields.mapValues { .string($0) }
    }
}
