#if canImport(Glibc)
import Glibc
#endif

/// One header field of an `HTTP2Fields` list: byte ranges into its storage.
public struct HTTP2Field: Sendable, Equatable {
    /// The field name's bytes in `HTTP2Fields.bytes` (lowercase on the wire, RFC 9113 §8.2.1).
    public var name: Range<Int>
    /// The field value's bytes in `HTTP2Fields.bytes`.
    public var value: Range<Int>
}

/// An ordered list of header fields as bytes: one byte array plus an index of
/// ranges. Names are lowercase (HTTP/2 requires it), values as received.
///
/// A value type over two arrays. A session fills one scratch instance per
/// header block and hands it to its delegate; when the delegate does not keep
/// it, the next block reuses the same storage (no allocation per request). A
/// delegate that keeps it gets a copy-on-write snapshot, safe but allocating.
public struct HTTP2Fields: Sendable {
    /// All names and values, back to back.
    public private(set) var bytes: [UInt8] = []
    /// The fields, in order.
    public private(set) var entries: [HTTP2Field] = []
    /// Where the field `openField` began (its name, then its value so far).
    private var openNameStart = 0
    private var openValueStart = 0

    /// An empty list.
    public init() {}

    /// An empty list with room for `byteCapacity` bytes and `fieldCapacity` fields.
    public init(byteCapacity: Int, fieldCapacity: Int) {
        bytes.reserveCapacity(byteCapacity)
        entries.reserveCapacity(fieldCapacity)
    }

    /// Number of fields.
    @inlinable public var count: Int { entries.count }
    /// True when there is no field.
    @inlinable public var isEmpty: Bool { entries.isEmpty }

    /// The name of field `index` (a slice of `bytes`: no copy).
    @inlinable public func name(at index: Int) -> ArraySlice<UInt8> { bytes[entries[index].name] }
    /// The value of field `index` (a slice of `bytes`: no copy).
    @inlinable public func value(at index: Int) -> ArraySlice<UInt8> { bytes[entries[index].value] }

    /// Appends a field. The name must already be lowercase for HTTP/2 output.
    public mutating func append(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let nameStart = bytes.count
        bytes.append(contentsOf: name)
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        entries.append(HTTP2Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// Appends a field from any byte sequences (arrays, slices, `"x".utf8`).
    public mutating func append<Name: Sequence, Value: Sequence>(name: Name, value: Value)
    where Name.Element == UInt8, Value.Element == UInt8 {
        let nameStart = bytes.count
        bytes.append(contentsOf: name)
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        entries.append(HTTP2Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// Appends a field with a constant name (`"content-type"`), no allocation for the name.
    public mutating func append<Value: Sequence>(_ name: StaticString, value: Value) where Value.Element == UInt8 {
        let nameStart = bytes.count
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        entries.append(HTTP2Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// Appends a field with a constant name and a byte-array value (no generic
    /// dispatch: the proxy's per-response fields go through here).
    public mutating func append(_ name: StaticString, bytes value: [UInt8]) {
        let nameStart = bytes.count
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        entries.append(HTTP2Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// Appends a field whose name comes from HTTP/1.1 (any case), lowercasing it
    /// as RFC 9113 §8.2.1 requires.
    public mutating func append(lowercasingName name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let nameStart = bytes.count
        bytes.append(contentsOf: name)
        let valueStart = bytes.count
        bytes.withUnsafeMutableBufferPointer { storage in
            for index in nameStart..<valueStart {
                let byte = storage[index]
                if byte &- 0x41 < 26 { storage[index] = byte | 0x20 }
            }
        }
        bytes.append(contentsOf: value)
        entries.append(HTTP2Field(name: nameStart..<valueStart, value: valueStart..<bytes.count))
    }

    /// Starts a field named `name` (lowercase) whose value follows in pieces
    /// (`appendToOpenField`) until `closeField`: a value assembled from
    /// parts needs no buffer of its own.
    public mutating func openField(_ name: StaticString) {
        openNameStart = bytes.count
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        openValueStart = bytes.count
    }

    /// Appends to the value of the field `openField` started.
    public mutating func appendToOpenField(_ piece: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: piece)
    }

    /// Ends the field `openField` started: it becomes the last entry.
    public mutating func closeField() {
        entries.append(HTTP2Field(name: openNameStart..<openValueStart, value: openValueStart..<bytes.count))
    }

    /// Appends bytes that belong to no entry (pseudo-header values a head keeps by range).
    mutating func appendRawBytes(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    /// Removes every field, keeping the storage for reuse.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    /// Index of the first field named `name` (lowercase), or nil.
    public func firstIndex(named name: StaticString) -> Int? {
        let target = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        for index in entries.indices where equals(entries[index].name, target) { return index }
        return nil
    }

    /// The value of the first field named `name` (lowercase), or nil.
    public func firstValue(named name: StaticString) -> ArraySlice<UInt8>? {
        firstIndex(named: name).map { value(at: $0) }
    }

    /// Appends the values of every `cookie` field joined with "; " to `output`
    /// and returns how many cookie fields there were. HTTP/2 lets a client split
    /// cookies into crumbs (RFC 9113 §8.2.3); HTTP/1.1 needs one Cookie line.
    @discardableResult
    public func appendJoinedCookies(to output: inout [UInt8]) -> Int {
        var found = 0
        for entry in entries where equals(entry.name, "cookie") {
            if found > 0 { output.append(0x3b); output.append(0x20) }
            output.append(contentsOf: bytes[entry.value])
            found += 1
        }
        return found
    }

    /// True for names HTTP/2 forbids (RFC 9113 §8.2.2): connection, keep-alive,
    /// proxy-connection, transfer-encoding and upgrade. The proxy drops these
    /// when it turns an HTTP/1.1 response into HTTP/2 fields. `te` is allowed
    /// only as "trailers" and is checked separately.
    public static func isConnectionSpecific(name: UnsafeRawBufferPointer) -> Bool {
        switch name.count {
        case 7: return equalsIgnoringCase(name, "upgrade")
        case 10: return equalsIgnoringCase(name, "connection") || equalsIgnoringCase(name, "keep-alive")
        case 16: return equalsIgnoringCase(name, "proxy-connection")
        case 17: return equalsIgnoringCase(name, "transfer-encoding")
        default: return false
        }
    }

    private func equals(_ range: Range<Int>, _ target: StaticString) -> Bool {
        equals(range, UnsafeRawBufferPointer(start: target.utf8Start, count: target.utf8CodeUnitCount))
    }

    private func equals(_ range: Range<Int>, _ target: UnsafeRawBufferPointer) -> Bool {
        guard range.count == target.count else { return false }
        var offset = 0
        for index in range {
            if bytes[index] != target[offset] { return false }
            offset += 1
        }
        return true
    }

    /// Byte equality with a constant, for names nghttp2 has already checked
    /// to be lowercase (RFC 9113 §8.2.1).
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ constant: StaticString) -> Bool {
        bytes.count == constant.utf8CodeUnitCount
            && (bytes.count == 0 || memcmp(bytes.baseAddress!, constant.utf8Start, bytes.count) == 0)
    }

    static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let target = lowercase.utf8Start
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if (byte &- 0x41 < 26 ? byte | 0x20 : byte) != target[index] { return false }
        }
        return true
    }
}

/// The head of a request received on an HTTP/2 server session.
///
/// Pseudo-header values are byte ranges into `fields.bytes`; `fields.entries`
/// holds only the regular fields. Already validated by nghttp2 and the session
/// (RFC 9113 §8.1-8.3): see `HTTP2ServerSession`.
public struct HTTP2RequestHead: Sendable {
    /// Regular fields (no pseudo-headers), plus the storage of the pseudo values.
    public var fields: HTTP2Fields
    var methodRange: Range<Int>
    var schemeRange: Range<Int>?
    var authorityRange: Range<Int>?
    var pathRange: Range<Int>?
    var protocolRange: Range<Int>?
    /// True when `authority` came from the Host field (no `:authority`).
    public var authorityFromHost: Bool
    /// The `content-length` value when present (nghttp2 checks DATA against it).
    public var contentLength: Int64?

    /// `:method`.
    public var method: ArraySlice<UInt8> { fields.bytes[methodRange] }
    /// `:scheme` (absent only for CONNECT).
    public var scheme: ArraySlice<UInt8>? { schemeRange.map { fields.bytes[$0] } }
    /// `:authority`, or the `host` field when the client sent no `:authority`
    /// (RFC 9113 §8.3.1). Absent only when both are.
    public var authority: ArraySlice<UInt8>? { authorityRange.map { fields.bytes[$0] } }
    /// `:path` (absent only for CONNECT).
    public var path: ArraySlice<UInt8>? { pathRange.map { fields.bytes[$0] } }
    /// `:protocol` of an extended CONNECT (RFC 8441); nil otherwise.
    public var extendedConnectProtocol: ArraySlice<UInt8>? { protocolRange.map { fields.bytes[$0] } }
    /// True for a HEAD request (the response never has a body).
    public var isHead: Bool {
        methodRange.count == 4 && fields.bytes[methodRange].elementsEqual("HEAD".utf8)
    }
}

/// The head of a response received on an HTTP/2 client session.
public struct HTTP2ResponseHead: Sendable {
    /// `:status`, 100...999.
    public var status: Int
    /// Regular fields (no pseudo-headers).
    public var fields: HTTP2Fields
    /// The `content-length` value when present.
    public var contentLength: Int64?
}
