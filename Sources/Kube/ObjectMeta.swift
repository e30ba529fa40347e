import FoundationEssentials
import Support

/// The subset of `metav1.ObjectMeta` that Postern reads.
///
/// `namespace` is "default" when a manifest leaves it out (as `kubectl apply`
/// would do); cluster-scoped kinds (IngressClass) carry it too and ignore it.
///
/// `uid` and `creationTimestamp` are kept packed when they have the form the
/// API server writes (a lower-case UUID: 16 bytes; `2024-05-01T12:00:00Z`:
/// seconds), and as text otherwise: each is a heap block of its own as a
/// `String` (64-80 bytes), for every object held (30,000 objects at 10,000
/// Ingresses with their Services and EndpointSlices). They read back as the
/// same text.
public struct ObjectMeta: Codable, Sendable, Equatable {
    /// `metadata.name` (required).
    public var name: String
    /// `metadata.namespace`, "default" when absent.
    public var namespace: String
    /// `metadata.uid`, set by the API server; nil in hand-written manifests.
    public var uid: String? {
        get { packedUID.text }
        set { packedUID = PackedUID(newValue) }
    }
    /// `metadata.resourceVersion`, opaque; nil in hand-written manifests.
    public var resourceVersion: String?
    /// `metadata.creationTimestamp` as written (RFC 3339); see `creationTime`.
    public var creationTimestamp: String? {
        get { packedCreation.text }
        set { packedCreation = PackedTimestamp(newValue) }
    }
    /// `metadata.labels`, empty when absent.
    public var labels: [String: String]
    /// `metadata.annotations`, empty when absent.
    public var annotations: [String: String]

    private var packedUID: PackedUID
    private var packedCreation: PackedTimestamp

    /// Creates metadata; `namespace` defaults to "default".
    public init(
        name: String, namespace: String = "default", uid: String? = nil, resourceVersion: String? = nil,
        creationTimestamp: String? = nil, labels: [String: String] = [:], annotations: [String: String] = [:]
    ) {
        self.name = name
        self.namespace = namespace
        packedUID = PackedUID(uid)
        self.resourceVersion = resourceVersion
        packedCreation = PackedTimestamp(creationTimestamp)
        self.labels = labels
        self.annotations = annotations
    }

    private enum CodingKeys: String, CodingKey {
        case name, namespace, uid, resourceVersion, creationTimestamp, labels, annotations
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        let namespace = try c.decodeIfPresent(String.self, forKey: .namespace) ?? ""
        self.namespace = namespace.isEmpty ? "default" : namespace
        packedUID = PackedUID(try c.decodeIfPresent(String.self, forKey: .uid))
        resourceVersion = try c.decodeIfPresent(String.self, forKey: .resourceVersion)
        packedCreation = PackedTimestamp(try c.decodeIfPresent(String.self, forKey: .creationTimestamp))
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(namespace, forKey: .namespace)
        try c.encodeIfPresent(uid, forKey: .uid)
        try c.encodeIfPresent(resourceVersion, forKey: .resourceVersion)
        try c.encodeIfPresent(creationTimestamp, forKey: .creationTimestamp)
        try c.encode(labels, forKey: .labels)
        try c.encode(annotations, forKey: .annotations)
    }

    /// Whether `uid` and `creationTimestamp` are held packed (for tests).
    var isPacked: (uid: Bool, creation: Bool) {
        let uid: Bool, creation: Bool
        if case .uuid = packedUID { uid = true } else { uid = false }
        if case .seconds = packedCreation { creation = true } else { creation = false }
        return (uid, creation)
    }

    /// `creationTimestamp` parsed; nil when absent or not RFC 3339.
    public var creationTime: KubeTimestamp? {
        switch packedCreation {
        case .none: return nil
        case let .seconds(seconds): return KubeTimestamp(seconds: seconds)
        case let .text(text): return KubeTimestamp(rfc3339: text)
        }
    }
}

/// A `metadata.uid`: a lower-case UUID as 16 bytes, anything else as written.
/// Each text has one form, so equal texts give equal values.
enum PackedUID: Sendable, Equatable {
    case none
    case uuid(UInt64, UInt64)
    case text(String)

    init(_ text: String?) {
        guard let text else {
            self = .none
            return
        }
        guard let (high, low) = Self.parse(text) else {
            self = .text(text)
            return
        }
        self = .uuid(high, low)
    }

    var text: String? {
        switch self {
        case .none: return nil
        case let .text(text): return text
        case let .uuid(high, low): return Self.format(high, low)
        }
    }

    /// The offsets of the dashes in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    private static func isDash(_ offset: Int) -> Bool {
        offset == 8 || offset == 13 || offset == 18 || offset == 23
    }

    /// The 128 bits of a 36-character lower-case UUID; nil for any other text.
    private static func parse(_ text: String) -> (UInt64, UInt64)? {
        var bits: (UInt64, UInt64) = (0, 0)
        var offset = 0
        var digits = 0
        for byte in text.utf8 {
            defer { offset += 1 }
            guard offset < 36 else { return nil }
            if isDash(offset) {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            if digits < 16 {
                bits.0 = bits.0 << 4 | UInt64(value)
            } else {
                bits.1 = bits.1 << 4 | UInt64(value)
            }
            digits += 1
        }
        return offset == 36 ? bits : nil
    }

    private static func format(_ high: UInt64, _ low: UInt64) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        for digit in 0..<32 {
            if isDash(bytes.count) { bytes.append(UInt8(ascii: "-")) }
            let word = digit < 16 ? high : low
            let shift = UInt64(60 - 4 * (digit % 16))
            bytes.append(hex[Int(word >> shift & 0xF)])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A `metadata.creationTimestamp`: seconds when written as the API server
/// writes it (`2024-05-01T12:00:00Z`), anything else as written. Each text
/// has one form, so equal texts give equal values.
enum PackedTimestamp: Sendable, Equatable {
    case none
    case seconds(Int64)
    case text(String)

    init(_ text: String?) {
        guard let text else {
            self = .none
            return
        }
        guard text.utf8.count == 20, let time = KubeTimestamp(rfc3339: text), time.nanoseconds == 0,
              Self.format(time.seconds).utf8.elementsEqual(text.utf8)
        else {
            self = .text(text)
            return
        }
        self = .seconds(time.seconds)
    }

    var text: String? {
        switch self {
        case .none: return nil
        case let .text(text): return text
        case let .seconds(seconds): return Self.format(seconds)
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    static func format(_ seconds: Int64) -> String {
        TextEncoding.rfc3339(Date(timeIntervalSince1970: TimeInterval(seconds)))
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
