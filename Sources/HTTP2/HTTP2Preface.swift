/// The HTTP/2 client connection preface (RFC 9113 §3.4), for detecting
/// cleartext HTTP/2 with prior knowledge on a listener that also speaks HTTP/1.1.
public enum HTTP2Preface {
    /// "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": 24 bytes.
    public static let bytes: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Whether the first bytes of a connection are (the start of) the preface.
    public enum Match: Sendable, Equatable {
        /// All 24 preface bytes are present: hand the connection, these bytes
        /// included, to an `HTTP2ServerSession`.
        case yes
        /// Not HTTP/2 prior knowledge: parse as HTTP/1.1.
        case no
        /// A proper prefix of the preface so far: read more before deciding.
        case needMore
    }

    /// Compares the first bytes received on a connection with the preface.
    /// An HTTP/1.1 request line never starts with "PRI * HTTP/2.0", so a
    /// mismatch on any byte is a definite `.no`.
    public static func matches(prefixOf received: UnsafeRawBufferPointer) -> Match {
        let compared = min(received.count, 24)
        return bytes.withUnsafeBytes { preface in
            for index in 0..<compared where received[index] != preface[index] { return .no }
            return compared == 24 ? .yes : .needMore
        }
    }

    /// `matches(prefixOf:)` for a byte array or slice.
    public static func matches<Bytes: Collection>(prefixOf received: Bytes) -> Match where Bytes.Element == UInt8 {
        var index = received.startIndex
        var offset = 0
        while offset < 24, index != received.endIndex {
            if received[index] != bytes[offset] { return .no }
            offset += 1
            index = received.index(after: index)
        }
        return offset == 24 ? .yes : .needMore
    }
}
