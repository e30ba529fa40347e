import HTTP1

/// Test helpers: parse from text, read ranges back as text, drive the chunked decoder.

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

func text(_ buffer: [UInt8], _ range: Range<Int>) -> String {
    String(decoding: buffer[range], as: UTF8.self)
}

struct ParsedRequest {
    var result: HTTP1HeadResult
    var head: HTTP1RequestHead
    var buffer: [UInt8]

    func string(_ range: Range<Int>?) -> String? { range.map { text(buffer, $0) } }

    /// Value of the first field named `name` (case-insensitive).
    func field(_ name: String) -> String? {
        head.fields.first { text(buffer, $0.name).lowercased() == name.lowercased() }.map { text(buffer, $0.value) }
    }
}

func parseRequest(_ input: [UInt8], limits: HTTP1Limits = HTTP1Limits()) -> ParsedRequest {
    var head = HTTP1RequestHead()
    let result = input.withUnsafeBytes { HTTP1Parser.parseRequestHead($0, limits: limits, into: &head) }
    return ParsedRequest(result: result, head: head, buffer: input)
}

func parseRequest(_ input: String, limits: HTTP1Limits = HTTP1Limits()) -> ParsedRequest {
    parseRequest(bytes(input), limits: limits)
}

func requestResult(_ input: String, limits: HTTP1Limits = HTTP1Limits()) -> HTTP1HeadResult {
    parseRequest(input, limits: limits).result
}

struct ParsedResponse {
    var result: HTTP1HeadResult
    var head: HTTP1ResponseHead
    var buffer: [UInt8]
}

func parseResponse(_ input: String, requestWasHEAD: Bool = false, limits: HTTP1Limits = HTTP1Limits()) -> ParsedResponse {
    let buffer = bytes(input)
    var head = HTTP1ResponseHead()
    let result = buffer.withUnsafeBytes {
        HTTP1Parser.parseResponseHead($0, requestWasHEAD: requestWasHEAD, limits: limits, into: &head)
    }
    return ParsedResponse(result: result, head: head, buffer: buffer)
}

/// Feeds `input` to the request parser one more byte at a time and returns the
/// first result that is not `.incomplete` (or `.incomplete` at the end), with the head.
func parseRequestIncrementally(_ input: [UInt8], limits: HTTP1Limits = HTTP1Limits()) -> ParsedRequest {
    var head = HTTP1RequestHead()
    var result = HTTP1HeadResult.incomplete
    for length in 0...input.count {
        result = input.withUnsafeBytes { HTTP1Parser.parseRequestHead(UnsafeRawBufferPointer(rebasing: $0[..<length]), limits: limits, into: &head) }
        if result != .incomplete { break }
    }
    return ParsedRequest(result: result, head: head, buffer: input)
}

enum ChunkedOutcome: Equatable {
    case end(consumed: Int)
    case failed(HTTP1ParseError)
    case needMore
}

struct DecodedBody: Equatable {
    var body: [UInt8] = []
    var trailers: [UInt8] = []
    var outcome: ChunkedOutcome = .needMore
    var dataEvents = 0
}

/// Decodes `input` arriving in pieces of `step` bytes, keeping unconsumed bytes as a caller would.
func decodeChunked(_ input: [UInt8], step: Int = Int.max) -> DecodedBody {
    var decoder = HTTP1ChunkedDecoder()
    var decoded = DecodedBody()
    var pending: [UInt8] = []
    var offset = 0
    var consumedTotal = 0
    while true {
        let take = min(step, input.count - offset)
        pending.append(contentsOf: input[offset..<(offset + take)])
        offset += take
        feeding: while true {
            let event = pending.withUnsafeBytes { decoder.next($0) }
            switch event {
            case .data(let range, let consumed):
                decoded.body.append(contentsOf: pending[range])
                decoded.dataEvents += 1
                pending.removeFirst(consumed)
                consumedTotal += consumed
            case .needMore(let consumed):
                pending.removeFirst(consumed)
                consumedTotal += consumed
                break feeding
            case .end(let trailers, let consumed):
                decoded.trailers = Array(pending[trailers])
                consumedTotal += consumed
                decoded.outcome = .end(consumed: consumedTotal)
                return decoded
            case .failed(let error):
                decoded.outcome = .failed(error)
                return decoded
            }
        }
        if offset == input.count { return decoded }
    }
}
