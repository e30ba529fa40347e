/// What the parsers need to know about a head's fields, gathered in one pass
/// after the head is terminated. Also marks fields nominated by Connection as hop-by-hop.
struct FieldSummary {
    var hostCount = 0
    var host: Range<Int>? = nil
    var contentLength: UInt64? = nil
    var hasTransferEncoding = false
    var transferEncodingEndsInChunked = false
    var transferEncodingHasOtherCoding = false
    var connectionClose = false
    var connectionKeepAlive = false
    var connectionUpgrade = false
    var expectsContinue = false
    var upgrade: Range<Int>? = nil

    /// Whether the connection persists after this message (RFC 9112 §9.3).
    func keepAlive(_ version: HTTP1Version) -> Bool {
        if connectionClose { return false }
        return version == .http11 || connectionKeepAlive
    }

    /// Reads every field; returns the first violation found.
    mutating func collect(_ bytes: UnsafeRawBufferPointer, _ fields: inout [HTTP1HeaderField]) -> HTTP1Violation? {
        var transferCodingCount = 0
        var chunkedCount = 0
        var hasConnection = false
        for index in fields.indices {
            let field = fields[index]
            switch field.kind {
            case .host:
                hostCount &+= 1
                if host == nil { host = field.value }
            case .contentLength:
                if let violation = collectContentLength(bytes, field.value) { return violation }
            case .transferEncoding:
                hasTransferEncoding = true
                var violation: HTTP1Violation? = nil
                ByteClass.forEachListMember(bytes, field.value) { member in
                    // RFC 9110 §5.6.1: empty list elements are ignored.
                    if member.isEmpty { return true }
                    var tokenEnd = member.lowerBound
                    while tokenEnd < member.upperBound && ByteClass.isToken(bytes[tokenEnd]) { tokenEnd &+= 1 }
                    var rest = tokenEnd
                    while rest < member.upperBound && ByteClass.isWhitespace(bytes[rest]) { rest &+= 1 }
                    // transfer-coding = token *( OWS ";" OWS transfer-parameter ); parameters are not used.
                    if tokenEnd == member.lowerBound || (rest < member.upperBound && bytes[rest] != ByteClass.semicolon) {
                        violation = .invalidTransferEncoding
                        return false
                    }
                    transferCodingCount &+= 1
                    if ByteClass.equalsIgnoringCase(bytes, member.lowerBound..<tokenEnd, "chunked") {
                        chunkedCount &+= 1
                        if chunkedCount > 1 {
                            violation = .chunkedAppliedTwice
                            return false
                        }
                        transferEncodingEndsInChunked = true
                    } else {
                        transferEncodingHasOtherCoding = true
                        transferEncodingEndsInChunked = false
                    }
                    return true
                }
                if let violation { return violation }
            case .connection:
                hasConnection = true
            case .expect:
                if ByteClass.equalsIgnoringCase(bytes, field.value, "100-continue") { expectsContinue = true }
            case .upgrade:
                if upgrade == nil { upgrade = field.value }
            default:
                break
            }
        }
        if hasTransferEncoding && transferCodingCount == 0 { return .invalidTransferEncoding }
        if hasConnection { markConnectionOptions(bytes, &fields) }
        return nil
    }

    /// RFC 9110 §8.6: 1*DIGIT; repeated fields or list members with one identical value are one value.
    private mutating func collectContentLength(_ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) -> HTTP1Violation? {
        var violation: HTTP1Violation? = nil
        var current = contentLength
        ByteClass.forEachListMember(bytes, value) { member in
            // At most 19 digits: always fits in UInt64, so no overflow check is needed.
            guard !member.isEmpty && member.count <= 19 else {
                violation = .invalidContentLength
                return false
            }
            var length: UInt64 = 0
            for index in member {
                let b = bytes[index]
                guard ByteClass.isDigit(b) else {
                    violation = .invalidContentLength
                    return false
                }
                length = length &* 10 &+ UInt64(b &- 0x30)
            }
            if let existing = current, existing != length {
                violation = .conflictingContentLength
                return false
            }
            current = length
            return true
        }
        contentLength = current
        return violation
    }

    /// RFC 9110 §7.6.1: fields named in Connection are hop-by-hop. Content-Length and Host are
    /// never dropped this way: the framing and route were decided from them, and an upstream
    /// seeing the body without its length would read it as the next request.
    private mutating func markConnectionOptions(_ bytes: UnsafeRawBufferPointer, _ fields: inout [HTTP1HeaderField]) {
        for index in fields.indices where fields[index].kind == .connection {
            ByteClass.forEachListMember(bytes, fields[index].value) { option in
                if option.isEmpty { return true }
                if ByteClass.equalsIgnoringCase(bytes, option, "close") {
                    connectionClose = true
                } else if ByteClass.equalsIgnoringCase(bytes, option, "keep-alive") {
                    connectionKeepAlive = true
                } else if ByteClass.equalsIgnoringCase(bytes, option, "upgrade") {
                    connectionUpgrade = true
                }
                for other in fields.indices {
                    let kind = fields[other].kind
                    if kind == .contentLength || kind == .host || fields[other].isHopByHop { continue }
                    if ByteClass.equalsIgnoringCase(bytes, fields[other].name, option) {
                        fields[other].isHopByHop = true
                    }
                }
                return true
            }
        }
    }
}
