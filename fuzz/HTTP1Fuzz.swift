// libFuzzer entry point for the HTTP1 codec. Built by scripts/fuzz-http1 together with
// Sources/HTTP1/*.swift as one module, so it uses the codec without `import HTTP1`.
//
// Every input goes through the request head parser, the response head parser and the
// chunked decoder, whole and in pieces; the invariants below crash (and so report) on failure.

/// Limits small enough that byte-at-a-time parsing stays cheap and the limit paths are hit often.
private let smallLimits = HTTP1Limits(maxRequestTargetLength: 48, maxHeaderSectionBytes: 384, maxHeaderCount: 6)
private let defaultLimits = HTTP1Limits()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let flags = size > 0 ? input[0] : 0
    checkRequestHead(input, limits: defaultLimits, everyPrefix: false)
    checkRequestHead(input, limits: smallLimits, everyPrefix: true)
    checkResponseHead(input, requestWasHEAD: flags & 1 == 1, limits: defaultLimits, everyPrefix: false)
    checkResponseHead(input, requestWasHEAD: flags & 2 == 2, limits: smallLimits, everyPrefix: true)
    checkChunked(input)
    checkSerializer(input)
    return 0
}

/// Prefix lengths to try: all of them, or a bounded sample (so large inputs stay fast).
private func prefixLengths(_ count: Int, every: Bool) -> [Int] {
    if every || count <= 64 { return Array(0...count) }
    var lengths = Array(0...32)
    var length = 33
    while length < count { lengths.append(length); length += max(1, count / 24) }
    lengths.append(count)
    return lengths
}

private func checkRange(_ range: Range<Int>, within bound: Int, _ what: @autoclosure () -> String) {
    precondition(range.lowerBound >= 0 && range.upperBound <= bound, what())
}

private func checkRequestHead(_ input: UnsafeRawBufferPointer, limits: HTTP1Limits, everyPrefix: Bool) {
    var whole = HTTP1RequestHead()
    let wholeResult = HTTP1Parser.parseRequestHead(input, limits: limits, into: &whole)
    if wholeResult == .complete {
        let length = whole.headLength
        precondition(length > 0 && length <= input.count && length <= limits.maxHeaderSectionBytes, "request headLength out of bounds")
        checkRange(whole.method, within: length, "method outside head")
        checkRange(whole.target, within: length, "target outside head")
        precondition(!whole.method.isEmpty && !whole.target.isEmpty, "empty method or target")
        precondition(whole.target.count <= limits.maxRequestTargetLength, "target longer than limit")
        precondition(whole.fields.count <= limits.maxHeaderCount, "more fields than limit")
        for field in whole.fields {
            checkRange(field.name, within: length, "field name outside head")
            checkRange(field.value, within: length, "field value outside head")
            precondition(!field.name.isEmpty, "empty field name")
        }
        if let host = whole.host { checkRange(host, within: length, "host outside head") }
        if let upgrade = whole.upgrade { checkRange(upgrade, within: length, "upgrade outside head") }
        precondition(whole.framing != .untilClose, "request framed until close")
        // Parsing exactly the head gives the same head: the parser never looks past it.
        var exact = HTTP1RequestHead()
        let exactResult = HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: input[0..<length]), limits: limits, into: &exact)
        precondition(exactResult == .complete && exact.fields == whole.fields && exact.headLength == length, "head depends on bytes after it")
    }
    var head = HTTP1RequestHead()
    var settled = false
    for length in prefixLengths(input.count, every: everyPrefix) {
        let result = HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: input[0..<length]), limits: limits, into: &head)
        if settled || result != .incomplete {
            precondition(result == wholeResult, "request: prefix result differs from whole result")
            if result == .complete {
                precondition(head.fields == whole.fields && head.headLength == whole.headLength && head.framing == whole.framing
                    && head.keepAlive == whole.keepAlive && head.host == whole.host, "request: prefix head differs from whole head")
            }
            settled = true
        }
    }
    precondition(settled || wholeResult == .incomplete, "request: whole result without settled prefix")
    if everyPrefix { checkGatedRequestHead(input, limits: limits, expected: wholeResult) }
}

/// Parsing only when `shouldReparse` says so, byte by byte, ends with the whole-buffer result.
private func checkGatedRequestHead(_ input: UnsafeRawBufferPointer, limits: HTTP1Limits, expected: HTTP1HeadResult) {
    var head = HTTP1RequestHead()
    var parsedAt = 0
    var result = HTTP1HeadResult.incomplete
    var length = 1
    while length <= input.count && result == .incomplete {
        let prefix = UnsafeRawBufferPointer(rebasing: input[0..<length])
        if HTTP1Parser.shouldReparse(prefix, previousCount: parsedAt, limits: limits) {
            result = HTTP1Parser.parseRequestHead(prefix, limits: limits, into: &head)
            parsedAt = length
        }
        length += 1
    }
    if result == .incomplete && parsedAt < input.count {
        // The connection ended: the caller parses what it has once more.
        result = HTTP1Parser.parseRequestHead(input, limits: limits, into: &head)
    }
    precondition(result == expected, "request: gated parsing differs from whole result")
}

private func checkResponseHead(_ input: UnsafeRawBufferPointer, requestWasHEAD: Bool, limits: HTTP1Limits, everyPrefix: Bool) {
    var whole = HTTP1ResponseHead()
    let wholeResult = HTTP1Parser.parseResponseHead(input, requestWasHEAD: requestWasHEAD, limits: limits, into: &whole)
    if wholeResult == .complete {
        let length = whole.headLength
        precondition(length > 0 && length <= input.count && length <= limits.maxHeaderSectionBytes, "response headLength out of bounds")
        precondition(whole.status >= 100 && whole.status <= 599, "status out of range")
        checkRange(whole.reason, within: length, "reason outside head")
        for field in whole.fields {
            checkRange(field.name, within: length, "field name outside head")
            checkRange(field.value, within: length, "field value outside head")
        }
        if requestWasHEAD || whole.status < 200 || whole.status == 204 || whole.status == 304 {
            precondition(whole.framing == .none, "bodiless response with body framing")
        }
        if whole.framing == .untilClose { precondition(!whole.keepAlive, "until-close response kept alive") }
    }
    var head = HTTP1ResponseHead()
    var settled = false
    for length in prefixLengths(input.count, every: everyPrefix) {
        let result = HTTP1Parser.parseResponseHead(UnsafeRawBufferPointer(rebasing: input[0..<length]), requestWasHEAD: requestWasHEAD, limits: limits, into: &head)
        if settled || result != .incomplete {
            precondition(result == wholeResult, "response: prefix result differs from whole result")
            if result == .complete {
                precondition(head.fields == whole.fields && head.headLength == whole.headLength && head.status == whole.status
                    && head.framing == whole.framing, "response: prefix head differs from whole head")
            }
            settled = true
        }
    }
    precondition(settled || wholeResult == .incomplete, "response: whole result without settled prefix")
}

private enum ChunkedOutcome: Equatable {
    case end(consumed: Int, trailers: Range<Int>)
    case failed(HTTP1ParseError)
    case needMore(consumed: Int)
}

/// Decodes `input` as if it arrived `step` bytes at a time, the caller keeping unconsumed bytes.
/// Trailer ranges are reported as absolute offsets into `input`.
private func decodeChunked(_ input: UnsafeRawBufferPointer, step: Int, body: inout [UInt8]) -> ChunkedOutcome {
    var decoder = HTTP1ChunkedDecoder()
    var start = 0
    var available = 0
    while true {
        available = min(input.count, available + step)
        while true {
            let window = UnsafeRawBufferPointer(rebasing: input[start..<available])
            let event = decoder.next(window)
            switch event {
            case .data(let range, let consumed):
                precondition(!range.isEmpty && range.lowerBound >= 0 && range.upperBound <= consumed && consumed <= window.count, "chunked: bad data event")
                body.append(contentsOf: window[range])
                start += consumed
            case .needMore(let consumed):
                precondition(consumed >= 0 && consumed <= window.count, "chunked: needMore consumed too much")
                start += consumed
                if available == input.count { return .needMore(consumed: start) }
            case .end(let trailers, let consumed):
                precondition(consumed <= window.count && trailers.lowerBound >= 0 && trailers.upperBound &+ 2 == consumed, "chunked: bad end event")
                precondition(decoder.isFinished, "chunked: end without finished state")
                return .end(consumed: start + consumed, trailers: (start + trailers.lowerBound)..<(start + trailers.upperBound))
            case .failed(let error):
                precondition(decoder.next(window) == .failed(error), "chunked: failure not sticky")
                return .failed(error)
            }
            if case .needMore = event { break }
        }
    }
}

private func checkChunked(_ input: UnsafeRawBufferPointer) {
    var wholeBody: [UInt8] = []
    var pieceBody: [UInt8] = []
    let whole = decodeChunked(input, step: max(1, input.count), body: &wholeBody)
    let pieces = decodeChunked(input, step: 1, body: &pieceBody)
    precondition(whole == pieces, "chunked: byte-at-a-time outcome differs from whole")
    precondition(wholeBody == pieceBody, "chunked: byte-at-a-time body differs from whole")
    if case .end(let consumed, _) = whole {
        // Re-encoding the decoded body and decoding it again gives the same body.
        var encoded: [UInt8] = []
        if !wholeBody.isEmpty {
            HTTP1Serializer.appendChunkHeader(size: wholeBody.count, to: &encoded)
            encoded.append(contentsOf: wholeBody)
            HTTP1Serializer.appendChunkTerminator(to: &encoded)
        }
        HTTP1Serializer.appendLastChunk(trailers: nil, to: &encoded)
        var again: [UInt8] = []
        let outcome = encoded.withUnsafeBytes { decodeChunked($0, step: 7, body: &again) }
        precondition(outcome == .end(consumed: encoded.count, trailers: (encoded.count - 2)..<(encoded.count - 2)) && again == wholeBody,
                     "chunked: re-encoded body does not round-trip")
        precondition(consumed <= input.count, "chunked: consumed beyond input")
    }
}

private func checkSerializer(_ input: UnsafeRawBufferPointer) {
    guard input.count >= 8 else { return }
    var value: UInt64 = 0
    for index in 0..<8 { value = value << 8 | UInt64(input[index]) }
    var out: [UInt8] = []
    HTTP1Serializer.appendDecimal(value, to: &out)
    precondition(String(decoding: out, as: UTF8.self) == String(value), "appendDecimal disagrees with String")
    out.removeAll(keepingCapacity: true)
    HTTP1Serializer.appendHex(value, to: &out)
    precondition(String(decoding: out, as: UTF8.self) == String(value, radix: 16), "appendHex disagrees with String")
}
