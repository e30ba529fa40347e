/// The subset of `metav1.ObjectMeta` that Postern reads.
///
/// `namespace` is "default" when a manifest leaves it out (as `kubectl apply`
/// would do); cluster-scoped kinds (IngressClass) carry it too and ignore it.
public struct ObjectMeta: Codable, Sendable, Equatable {
    /// `metadata.name` (required).
    public var name: String
    /// `metadata.namespace`, "default" when absent.
    public var namespace: String
    /// `metadata.uid`, set by the API server; nil in hand-written manifests.
    public var uid: String?
    /// `metadata.resourceVersion`, opaque; nil in hand-written manifests.
    public var resourceVersion: String?
    /// `metadata.creationTimestamp` as written (RFC 3339); see `creationTime`.
    public var creationTimestamp: String?
    /// `metadata.labels`, empty when absent.
    public var labels: [String: String]
    /// `metadata.annotations`, empty when absent.
    public var annotations: [String: String]

    /// Creates metadata; `namespace` defaults to "default".
    public init(
        name: String, namespace: String = "default", uid: String? = nil, resourceVersion: String? = nil,
        creationTimestamp: String? = nil, labels: [String: String] = [:], annotations: [String: String] = [:]
    ) {
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
        self.creationTimestamp = creationTimestamp
        self.labels = labels
        self.annotations = annotations
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        let namespace = try c.decodeIfPresent(String.self, forKey: .namespace) ?? ""
        self.namespace = namespace.isEmpty ? "default" : namespace
        uid = try c.decodeIfPresent(String.self, forKey: .uid)
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        creationTimestamp = try c.decodeIfPresent(String.self, forKey: .creationTimestamp)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
    }

    /// `creationTimestamp` parsed; nil when absent or not RFC 3339.
    public var creationTime: KubeTimestamp? {
        creationTimestamp.flatMap(KubeTimestamp.init(rfc3339:))
    }
}

/// A point in time from an RFC 3339 timestamp, comparable without Foundation.
public struct KubeTimestamp: Sendable, Hashable, Comparable {
    /// Seconds since 1970-01-01T00:00:00Z.
    public var seconds: Int64
    /// Fraction of the second, 0..<1_000_000_000.
    public var nanoseconds: Int32

    /// Creates a timestamp from its parts.
    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (lhs: KubeTimestamp, rhs: KubeTimestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    /// Parses `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.25+02:00` and the
    /// like (RFC 3339 §5.6); nil for anything else.
    public init?(rfc3339 text: String) {
        let b = Array(text.utf8)
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= b.count else { return nil }
            var value = 0
            for i in start..<(start + count) {
                guard b[i] >= 48, b[i] <= 57 else { return nil }
                value = value * 10 + Int(b[i] - 48)
            }
            return value
        }
        guard b.count >= 20,
              let year = number(0, 4), b[4] == UInt8(ascii: "-"),
              let month = number(5, 2), b[7] == UInt8(ascii: "-"),
              let day = number(8, 2), b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = number(11, 2), b[13] == UInt8(ascii: ":"),
              let minute = number(14, 2), b[16] == UInt8(ascii: ":"),
              let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second <= 60
        else { return nil }
        var index = 19
        var nanos = 0
        if index < b.count, b[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < b.count, b[index] >= 48, b[index] <= 57 {
                if digits < 9 { nanos = nanos * 10 + Int(b[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanos *= 10 }
        }
        guard index < b.count else { return nil }
        var offsetSeconds = 0
        switch b[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard index + 1 == b.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard index + 6 == b.count, let oh = number(index + 1, 2), b[index + 3] == UInt8(ascii: ":"),
                  let om = number(index + 4, 2), oh < 24, om < 60
            else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (b[index] == UInt8(ascii: "+") ? 1 : -1)
        default:
            return nil
        }
        // Days from civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let total = days * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds
        self.init(seconds: Int64(total), nanoseconds: Int32(nanos))
    }
}
