/// Socket-free parser for HTTP/1.1 message heads (RFC 9112, RFC 9110).
///
/// The parser works on the caller's buffer and returns offsets into it; it
/// never copies bytes. It keeps no state between calls: after `.incomplete`
/// the caller appends bytes and calls again with the grown buffer, and the
/// head is parsed again from its first byte (heads are bounded by
/// `HTTP1Limits.maxHeaderSectionBytes`, so the rescan is bounded too).
///
/// Every decision depends only on bytes already seen, so feeding a head one
/// byte at a time gives the same result as feeding it whole, including the
/// limit errors (414 and 431 fire as soon as the limit is crossed).
///
/// Cost: each call is linear in the buffered head, so a peer trickling a
/// 32 KiB head one byte per read makes the calls quadratic (about 0.25 s of CPU).
/// Callers that may see tiny reads gate re-parsing with `shouldReparse(_:previousCount:limits:)`
/// and enforce a head deadline (408).
///
/// On `.incomplete` and `.failed` the head's contents are unspecified.
public enum HTTP1Parser {
    /// Parses a request head at the start of `bytes`. Call again with the grown buffer when `.incomplete`.
    /// Detects limit violations early: 414 as soon as the request-target is longer than
    /// `maxRequestTargetLength`; 431 as soon as the buffered head exceeds `maxHeaderSectionBytes`
    /// without terminating, or has more than `maxHeaderCount` fields.
    ///
    /// On `.complete`, the bytes after `head.headLength` are the body (per `head.framing`) and then
    /// the next pipelined request. `head.fields` is cleared with its capacity kept.
    public static func parseRequestHead(_ bytes: UnsafeRawBufferPointer, limits: HTTP1Limits, into head: inout HTTP1RequestHead) -> HTTP1HeadResult {
        head.fields.removeAll(keepingCapacity: true)
        let truncated = bytes.count > limits.maxHeaderSectionBytes
        let end = truncated ? max(0, limits.maxHeaderSectionBytes) : bytes.count
        let outOfBytes: HTTP1HeadResult = truncated ? .failed(.headerSectionTooLarge) : .incomplete
        var i = 0

        // RFC 9112 §2.2: ignore empty lines before the request line (bounded by the head limit).
        while true {
            guard i < end else { return outOfBytes }
            let b = bytes[i]
            if b == ByteClass.cr {
                guard i &+ 1 < end else { return outOfBytes }
                guard bytes[i &+ 1] == ByteClass.lf else { return .failed(.badRequest(.bareCarriageReturn)) }
                i &+= 2
                continue
            }
            if b == ByteClass.lf { return .failed(.badRequest(.bareLineFeed)) }
            break
        }

        // RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF
        let methodStart = i
        while true {
            guard i < end else { return outOfBytes }
            let b = bytes[i]
            if ByteClass.isToken(b) { i &+= 1; continue }
            if b == ByteClass.sp && i > methodStart { break }
            return .failed(.badRequest(.malformedRequestLine))
        }
        let method = methodStart..<i
        i &+= 1

        let targetStart = i
        while true {
            guard i < end else { return outOfBytes }
            let b = bytes[i]
            if ByteClass.isTargetByte(b) {
                if i &- targetStart >= limits.maxRequestTargetLength { return .failed(.uriTooLong) }
                i &+= 1
                continue
            }
            // A CR here is an HTTP/0.9 request (no version): 400, not 505.
            if b == ByteClass.sp && i > targetStart { break }
            return .failed(.badRequest(.malformedRequestLine))
        }
        let target = targetStart..<i
        i &+= 1

        var versionSupported = true
        var version = HTTP1Version.http11
        switch scanVersion(bytes, at: i, end: end) {
        case .needMore: return outOfBytes
        case .malformed: return .failed(.badRequest(.malformedRequestLine))
        case .unsupported: versionSupported = false
        case .version(let v): version = v
        }
        i &+= 8
        guard i < end else { return outOfBytes }
        if bytes[i] == ByteClass.lf { return .failed(.badRequest(.bareLineFeed)) }
        guard bytes[i] == ByteClass.cr else { return .failed(.badRequest(.malformedRequestLine)) }
        guard i &+ 1 < end else { return outOfBytes }
        guard bytes[i &+ 1] == ByteClass.lf else { return .failed(.badRequest(.bareCarriageReturn)) }
        i &+= 2
        guard versionSupported else { return .failed(.versionNotSupported) }

        switch scanFields(bytes, from: i, end: end, maxCount: limits.maxHeaderCount, into: &head.fields) {
        case .needMore: return outOfBytes
        case .failed(let error): return .failed(error)
        case .done(let next): i = next
        }

        var summary = FieldSummary()
        if let violation = summary.collect(bytes, &head.fields) { return .failed(.badRequest(violation)) }

        // RFC 9112 §6.1, §6.3: framing. Both headers is a smuggling vector: reject.
        let framing: HTTP1BodyFraming
        if summary.hasTransferEncoding {
            if version == .http10 { return .failed(.badRequest(.transferEncodingInHTTP10)) }
            if summary.contentLength != nil { return .failed(.badRequest(.contentLengthAndTransferEncoding)) }
            // Our rule: a list not ending in chunked cannot be delimited (400); a list ending in
            // chunked with another coding before it is valid HTTP we do not implement (501).
            if !summary.transferEncodingEndsInChunked { return .failed(.badRequest(.transferEncodingNotEndingInChunked)) }
            if summary.transferEncodingHasOtherCoding { return .failed(.unsupportedTransferCoding) }
            framing = .chunked
        } else if let length = summary.contentLength {
            framing = .contentLength(length)
        } else {
            framing = .none
        }

        // RFC 9112 §3.2: exactly one Host in HTTP/1.1; at most one in HTTP/1.0.
        if summary.hostCount > 1 { return .failed(.badRequest(.multipleHost)) }
        if summary.hostCount == 0 && version == .http11 { return .failed(.badRequest(.missingHost)) }
        if let host = summary.host, !ByteClass.isHostValue(bytes, host) { return .failed(.badRequest(.invalidHost)) }

        head.method = method
        head.isHEAD = ByteClass.equals(bytes, method, "HEAD")
        head.isCONNECT = ByteClass.equals(bytes, method, "CONNECT")
        head.target = target
        head.version = version
        head.headLength = i
        head.framing = framing
        head.host = summary.host
        head.keepAlive = summary.keepAlive(version)
        // RFC 9110 §10.1.1: a server ignores 100-continue from an HTTP/1.0 client.
        head.expectsContinue = version == .http11 && summary.expectsContinue
        head.upgrade = summary.connectionUpgrade ? summary.upgrade : nil
        return .complete
    }

    /// Parses a response head at the start of `bytes`. `requestWasHEAD` and the status decide
    /// framing: 1xx, 204, 304 and responses to HEAD have no body (`.none`) regardless of headers;
    /// otherwise chunked, content-length, or until close.
    /// 1xx responses (e.g. 100 Continue) are returned as complete heads; the caller loops.
    ///
    /// A response with both Content-Length and Transfer-Encoding fails with
    /// `.badRequest(.contentLengthAndTransferEncoding)`: a proxy must not forward it.
    /// A response whose Transfer-Encoding is anything but exactly `chunked` fails with
    /// `.unsupportedTransferCoding` (we cannot re-frame a coding we do not decode).
    public static func parseResponseHead(_ bytes: UnsafeRawBufferPointer, requestWasHEAD: Bool, limits: HTTP1Limits, into head: inout HTTP1ResponseHead) -> HTTP1HeadResult {
        head.fields.removeAll(keepingCapacity: true)
        let truncated = bytes.count > limits.maxHeaderSectionBytes
        let end = truncated ? max(0, limits.maxHeaderSectionBytes) : bytes.count
        let outOfBytes: HTTP1HeadResult = truncated ? .failed(.headerSectionTooLarge) : .incomplete
        let malformed = HTTP1HeadResult.failed(.badRequest(.malformedStatusLine))
        var i = 0

        // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
        var versionSupported = true
        var version = HTTP1Version.http11
        switch scanVersion(bytes, at: 0, end: end) {
        case .needMore: return outOfBytes
        case .malformed: return malformed
        case .unsupported: versionSupported = false
        case .version(let v): version = v
        }
        i = 8
        guard i < end else { return outOfBytes }
        guard bytes[i] == ByteClass.sp else { return malformed }
        i &+= 1
        var status = 0
        for _ in 0..<3 {
            guard i < end else { return outOfBytes }
            let b = bytes[i]
            guard ByteClass.isDigit(b) else { return malformed }
            status = status &* 10 &+ Int(b &- 0x30)
            i &+= 1
        }
        guard status >= 100 && status <= 599 else { return malformed }
        guard i < end else { return outOfBytes }
        var reasonStart = i
        if bytes[i] == ByteClass.sp {
            i &+= 1
            reasonStart = i
            while true {
                guard i < end else { return outOfBytes }
                let b = bytes[i]
                if b == ByteClass.cr { break }
                if b == ByteClass.lf { return .failed(.badRequest(.bareLineFeed)) }
                guard ByteClass.isFieldValueByte(b) else { return malformed }
                i &+= 1
            }
        }
        // Tolerated: no SP and no reason ("HTTP/1.1 200\r\n"), which some servers send.
        let reason = reasonStart..<i
        guard i < end else { return outOfBytes }
        if bytes[i] == ByteClass.lf { return .failed(.badRequest(.bareLineFeed)) }
        guard bytes[i] == ByteClass.cr else { return malformed }
        guard i &+ 1 < end else { return outOfBytes }
        guard bytes[i &+ 1] == ByteClass.lf else { return .failed(.badRequest(.bareCarriageReturn)) }
        i &+= 2
        guard versionSupported else { return .failed(.versionNotSupported) }

        switch scanFields(bytes, from: i, end: end, maxCount: limits.maxHeaderCount, into: &head.fields) {
        case .needMore: return outOfBytes
        case .failed(let error): return .failed(error)
        case .done(let next): i = next
        }

        var summary = FieldSummary()
        if let violation = summary.collect(bytes, &head.fields) { return .failed(.badRequest(violation)) }
        if summary.hasTransferEncoding {
            if version == .http10 { return .failed(.badRequest(.transferEncodingInHTTP10)) }
            if summary.contentLength != nil { return .failed(.badRequest(.contentLengthAndTransferEncoding)) }
            if !summary.transferEncodingEndsInChunked || summary.transferEncodingHasOtherCoding {
                return .failed(.unsupportedTransferCoding)
            }
        }

        // RFC 9112 §6.3: length of a response body.
        let framing: HTTP1BodyFraming
        if requestWasHEAD || status < 200 || status == 204 || status == 304 {
            framing = .none
        } else if summary.hasTransferEncoding {
            framing = .chunked
        } else if let length = summary.contentLength {
            framing = .contentLength(length)
        } else {
            framing = .untilClose
        }

        head.status = status
        head.version = version
        head.reason = reason
        head.headLength = i
        head.framing = framing
        head.keepAlive = framing != .untilClose && summary.keepAlive(version)
        return .complete
    }

    /// Cheap test for callers that read small segments: whether to parse again after bytes were
    /// appended to a buffer whose first `previousCount` bytes last parsed as `.incomplete`.
    ///
    /// Returns false when the new bytes hold no LF and the buffer is still within
    /// `maxHeaderSectionBytes`. Skipping the parse then only postpones reporting an error in the
    /// new bytes (including 414) until the next LF arrives or the head limit is crossed; the
    /// eventual result is the same. This makes a peer that trickles one byte per read cost linear
    /// instead of quadratic time (each parse rescans the buffered head). It reads only the new bytes.
    public static func shouldReparse(_ bytes: UnsafeRawBufferPointer, previousCount: Int, limits: HTTP1Limits) -> Bool {
        guard previousCount > 0 && previousCount <= bytes.count else { return true }
        if bytes.count > limits.maxHeaderSectionBytes { return true }
        var i = previousCount
        while i < bytes.count {
            if bytes[i] == ByteClass.lf { return true }
            i &+= 1
        }
        return false
    }

    // MARK: - Shared pieces

    enum VersionScan {
        case needMore
        case malformed
        case unsupported
        case version(HTTP1Version)
    }

    /// Scans the 8 bytes of `HTTP-version = "HTTP/" DIGIT "." DIGIT` (case-sensitive, RFC 9112 §2.3).
    @inline(__always)
    static func scanVersion(_ bytes: UnsafeRawBufferPointer, at start: Int, end: Int) -> VersionScan {
        let prefix: StaticString = "HTTP/"
        let p = prefix.utf8Start
        var k = 0
        while k < 8 {
            guard start &+ k < end else { return .needMore }
            let b = bytes[start &+ k]
            switch k {
            case 0..<5: if b != p[k] { return .malformed }
            case 6: if b != 0x2E { return .malformed }
            default: if !ByteClass.isDigit(b) { return .malformed }
            }
            k &+= 1
        }
        let major = bytes[start &+ 5]
        let minor = bytes[start &+ 7]
        if major == 0x31 && minor == 0x31 { return .version(.http11) }
        if major == 0x31 && minor == 0x30 { return .version(.http10) }
        return .unsupported
    }

    enum FieldsScan {
        case needMore
        case failed(HTTP1ParseError)
        case done(next: Int)
    }

    /// Scans field lines up to and including the empty line that ends the section.
    static func scanFields(_ bytes: UnsafeRawBufferPointer, from start: Int, end: Int, maxCount: Int, into fields: inout [HTTP1HeaderField]) -> FieldsScan {
        var i = start
        while true {
            switch scanFieldLine(bytes, from: i, end: end) {
            case .needMore:
                return .needMore
            case .violation(let violation):
                return .failed(.badRequest(violation))
            case .sectionEnd(let next):
                return .done(next: next)
            case .field(let nameEnd, let valueStart, let valueEnd, let next, let underscore):
                if fields.count >= maxCount { return .failed(.headerSectionTooLarge) }
                let name = i..<nameEnd
                let kind = HTTP1HeaderName.classify(bytes, name)
                fields.append(
                    HTTP1HeaderField(
                        name: name, value: valueStart..<valueEnd, kind: kind, isHopByHop: kind.isAlwaysHopByHop,
                        nameHasUnderscore: underscore))
                i = next
            }
        }
    }

    enum FieldLine {
        case needMore
        case violation(HTTP1Violation)
        /// The empty line ending the section; `next` is just past its CRLF.
        case sectionEnd(next: Int)
        /// A field line starting at the scan start; `next` is just past its
        /// CRLF; `underscore`: the name holds `_`.
        case field(nameEnd: Int, valueStart: Int, valueEnd: Int, next: Int, underscore: Bool)
    }

    /// Scans one `field-line CRLF` or the final `CRLF` (RFC 9112 §5).
    @inline(__always)
    static func scanFieldLine(_ bytes: UnsafeRawBufferPointer, from start: Int, end: Int) -> FieldLine {
        guard start < end else { return .needMore }
        let first = bytes[start]
        if first == ByteClass.cr {
            guard start &+ 1 < end else { return .needMore }
            return bytes[start &+ 1] == ByteClass.lf ? .sectionEnd(next: start &+ 2) : .violation(.bareCarriageReturn)
        }
        if first == ByteClass.lf { return .violation(.bareLineFeed) }
        // RFC 9112 §5.2: obs-fold is rejected (also covers whitespace after the start line, §2.2).
        if ByteClass.isWhitespace(first) { return .violation(.obsoleteLineFolding) }

        var i = start
        var underscore = false
        while true {
            guard i < end else { return .needMore }
            let b = bytes[i]
            if ByteClass.isTokenOtherThanUnderscore(b) { i &+= 1; continue }
            if b == ByteClass.underscore {
                underscore = true
                i &+= 1
                continue
            }
            if b == ByteClass.colon && i > start { break }
            // RFC 9112 §5.1: no whitespace between name and colon.
            if ByteClass.isWhitespace(b) { return .violation(.whitespaceBeforeColon) }
            return .violation(.invalidHeaderName)
        }
        let nameEnd = i
        i &+= 1
        while true {
            guard i < end else { return .needMore }
            if !ByteClass.isWhitespace(bytes[i]) { break }
            i &+= 1
        }
        let valueStart = i
        var valueEnd = i
        while true {
            guard i < end else { return .needMore }
            let b = bytes[i]
            if b > 0x20 && b != 0x7F {
                i &+= 1
                valueEnd = i
                continue
            }
            if ByteClass.isWhitespace(b) { i &+= 1; continue }
            if b == ByteClass.cr {
                guard i &+ 1 < end else { return .needMore }
                guard bytes[i &+ 1] == ByteClass.lf else { return .violation(.invalidHeaderValue) }
                return .field(nameEnd: nameEnd, valueStart: valueStart, valueEnd: valueEnd, next: i &+ 2, underscore: underscore)
            }
            if b == ByteClass.lf { return .violation(.bareLineFeed) }
            return .violation(.invalidHeaderValue)
        }
    }
}
