/// One step of `HTTP1ChunkedDecoder.next(_:)`.
public enum HTTP1ChunkedEvent: Sendable, Equatable {
    /// `bytes[data]` is body data; `consumed` bytes (>= data.upperBound) were used.
    case data(Range<Int>, consumed: Int)
    /// Need more input; `consumed` bytes (possibly 0) were used (e.g. a complete chunk-size line).
    case needMore(consumed: Int)
    /// Last chunk and trailer section done. `trailers` is the range of the trailer field lines
    /// (each with its CRLF, without the final CRLF; empty if none); `consumed` includes the final CRLF.
    case end(trailers: Range<Int>, consumed: Int)
    /// The body is malformed; the connection must be closed.
    case failed(HTTP1ParseError)
}

/// Incremental chunked-body decoder (RFC 9112 §7.1). One per message; `init()` resets.
///
/// The caller keeps the bytes it has not seen consumed and calls `next` again,
/// advancing by `consumed`, with the remaining bytes plus any new ones. Partial
/// chunk-size lines and trailer sections are not consumed, so the caller must keep
/// them buffered; both are bounded (4096 bytes and 32 KiB).
public struct HTTP1ChunkedDecoder: Sendable {
    /// Longest chunk-size line, extensions and CRLF included.
    public static let maxChunkSizeLineLength = 4096
    /// Largest trailer section, final CRLF included.
    public static let maxTrailerSectionLength = 32 * 1024

    enum State: Sendable {
        case size
        case data(remaining: UInt64)
        case dataTerminator
        case trailers
        case done
        case failed(HTTP1ParseError)
    }

    var state: State = .size

    /// A decoder at the start of a chunked body.
    public init() {}

    /// True once the last chunk and the trailer section have been decoded.
    public var isFinished: Bool {
        if case .done = state { return true }
        return false
    }

    /// Decodes from the start of `bytes`; returns one event. The caller loops, advancing by `consumed`.
    /// Data events carry as many body bytes as `bytes` holds for the current chunk.
    /// After `.end`, further calls return `.end(trailers: 0..<0, consumed: 0)`; after `.failed`, the same failure.
    public mutating func next(_ bytes: UnsafeRawBufferPointer) -> HTTP1ChunkedEvent {
        let count = bytes.count
        var i = 0
        while true {
            switch state {
            case .size:
                switch Self.scanSizeLine(bytes, from: i) {
                case .needMore:
                    return .needMore(consumed: i)
                case .failed(let violation):
                    return fail(.badRequest(violation))
                case .size(let size, let next):
                    i = next
                    state = size == 0 ? .trailers : .data(remaining: size)
                }
            case .data(let remaining):
                guard i < count else { return .needMore(consumed: i) }
                let available = UInt64(count &- i)
                let take = remaining < available ? remaining : available
                state = take == remaining ? .dataTerminator : .data(remaining: remaining &- take)
                let upper = i &+ Int(take)
                return .data(i..<upper, consumed: upper)
            case .dataTerminator:
                guard i < count else { return .needMore(consumed: i) }
                guard bytes[i] == ByteClass.cr else { return fail(.badRequest(.invalidChunkTerminator)) }
                guard i &+ 1 < count else { return .needMore(consumed: i) }
                guard bytes[i &+ 1] == ByteClass.lf else { return fail(.badRequest(.invalidChunkTerminator)) }
                i &+= 2
                state = .size
            case .trailers:
                // RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then CRLF.
                let start = i
                let limit = start &+ Self.maxTrailerSectionLength
                let end = count < limit ? count : limit
                var j = start
                while true {
                    switch HTTP1Parser.scanFieldLine(bytes, from: j, end: end) {
                    case .needMore:
                        if count >= limit { return fail(.badRequest(.trailerSectionTooLarge)) }
                        return .needMore(consumed: start)
                    case .violation:
                        return fail(.badRequest(.invalidTrailer))
                    case .field(_, _, _, let next, _):
                        j = next
                    case .sectionEnd(let next):
                        state = .done
                        return .end(trailers: start..<(next &- 2), consumed: next)
                    }
                }
            case .done:
                return .end(trailers: 0..<0, consumed: 0)
            case .failed(let error):
                return .failed(error)
            }
        }
    }

    private mutating func fail(_ error: HTTP1ParseError) -> HTTP1ChunkedEvent {
        state = .failed(error)
        return .failed(error)
    }

    enum SizeLine {
        case needMore
        case failed(HTTP1Violation)
        case size(UInt64, next: Int)
    }

    /// Scans `chunk-size [ chunk-ext ] CRLF` with chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
    static func scanSizeLine(_ bytes: UnsafeRawBufferPointer, from start: Int) -> SizeLine {
        let count = bytes.count
        let limit = start &+ maxChunkSizeLineLength
        var i = start
        var size: UInt64 = 0
        // Reads the byte at `i`, or says why it cannot (line too long, or not there yet).
        func peek() -> UInt8? { i < count && i < limit ? bytes[i] : nil }
        func stop() -> SizeLine { i >= limit ? .failed(.chunkSizeLineTooLong) : .needMore }

        while true {
            guard let b = peek() else { return stop() }
            guard let digit = ByteClass.hexValue(b) else { break }
            // 16 hex digits fill a UInt64; a 17th would overflow.
            if i &- start >= 16 { return .failed(.invalidChunkSize) }
            size = size << 4 | digit
            i &+= 1
        }
        if i == start { return .failed(.invalidChunkSize) }

        // Optional BWS, then extensions; whitespace must lead to ";".
        let digitsEnd = i
        while true {
            guard let b = peek() else { return stop() }
            if !ByteClass.isWhitespace(b) { break }
            i &+= 1
        }
        if i > digitsEnd && bytes[i] != ByteClass.semicolon { return .failed(.invalidChunkSize) }
        var sawExtension = false
        while true {
            guard let b = peek() else { return stop() }
            if b == ByteClass.cr {
                i &+= 1
                guard let lf = peek() else { return stop() }
                guard lf == ByteClass.lf else { return .failed(.bareCarriageReturn) }
                return .size(size, next: i &+ 1)
            }
            if b == ByteClass.lf { return .failed(.bareLineFeed) }
            // Trailing whitespace or junk after the size is an invalid size; after an extension, an invalid extension.
            guard b == ByteClass.semicolon else { return .failed(sawExtension ? .invalidChunkExtension : .invalidChunkSize) }
            sawExtension = true
            i &+= 1
            switch scanExtension(bytes, &i, end: count < limit ? count : limit) {
            case .complete: continue
            case .needMore: return stop()
            case .invalid: return .failed(.invalidChunkExtension)
            }
        }
    }

    enum ExtensionScan { case complete, needMore, invalid }

    /// Scans `BWS name [ BWS "=" BWS ( token / quoted-string ) ] BWS` after a ";" (RFC 9112 §7.1.1).
    static func scanExtension(_ bytes: UnsafeRawBufferPointer, _ i: inout Int, end: Int) -> ExtensionScan {
        func skipWhitespace(_ i: inout Int) -> Bool {
            while true {
                guard i < end else { return false }
                if !ByteClass.isWhitespace(bytes[i]) { return true }
                i &+= 1
            }
        }
        func scanToken(_ i: inout Int) -> ExtensionScan {
            let tokenStart = i
            while true {
                guard i < end else { return .needMore }
                if !ByteClass.isToken(bytes[i]) { break }
                i &+= 1
            }
            return i == tokenStart ? .invalid : .complete
        }
        guard skipWhitespace(&i) else { return .needMore }
        let name = scanToken(&i)
        guard name == .complete else { return name }
        guard skipWhitespace(&i) else { return .needMore }
        guard bytes[i] == 0x3D else { return .complete }
        i &+= 1
        guard skipWhitespace(&i) else { return .needMore }
        if bytes[i] == 0x22 {
            // RFC 9110 §5.6.4 quoted-string.
            i &+= 1
            while true {
                guard i < end else { return .needMore }
                let b = bytes[i]
                if b == 0x22 { i &+= 1; break }
                if b == 0x5C {
                    i &+= 1
                    guard i < end else { return .needMore }
                    guard ByteClass.isFieldValueByte(bytes[i]) else { return .invalid }
                    i &+= 1
                    continue
                }
                guard ByteClass.isFieldValueByte(b) else { return .invalid }
                i &+= 1
            }
        } else {
            let value = scanToken(&i)
            guard value == .complete else { return value }
        }
        guard skipWhitespace(&i) else { return .needMore }
        return .complete
    }
}
