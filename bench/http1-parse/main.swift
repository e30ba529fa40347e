// HTTP/1.1 request-head parse micro-benchmark (release mode).
//
// Built by bench/http1-parse/build.sh against Sources/HTTP1 compiled as its own
// module (as the proxy sees it: a cross-module call, same optimisation flags).
// Prints one line per case: "case bytes iterations ns/parse parses/s".
//   http1-parse-bench [ITERATIONS] [CASE]
// With a CASE it runs only that case once for ITERATIONS (for callgrind, where
// N and 2N iterations give the instructions per parse as the difference).
import Glibc
import HTTP1

struct Case {
    let name: String
    let bytes: [UInt8]
}

let cases: [Case] = [
    // What wrk sends: the scenario-1 request.
    Case(name: "wrk-minimal", bytes: Array("GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n".utf8)),
    // A typical browser navigation, 14 fields, ~600 bytes.
    Case(name: "browser-14-fields", bytes: Array((
        "GET /catalog/items/12345?color=blue&size=m HTTP/1.1\r\n" +
        "Host: shop.example.com\r\n" +
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
        "Accept-Language: en-US,en;q=0.5\r\n" +
        "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
        "Referer: https://shop.example.com/catalog\r\n" +
        "Connection: keep-alive\r\n" +
        "Cookie: session=4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e; theme=dark; consent=1\r\n" +
        "Upgrade-Insecure-Requests: 1\r\n" +
        "Sec-Fetch-Dest: document\r\n" +
        "Sec-Fetch-Mode: navigate\r\n" +
        "Sec-Fetch-Site: same-origin\r\n" +
        "Priority: u=0, i\r\n\r\n").utf8)),
    // An API call with a body: Content-Length framing and X-Forwarded-For.
    Case(name: "api-post-cl", bytes: Array((
        "POST /api/v1/orders HTTP/1.1\r\n" +
        "Host: api.example.com\r\n" +
        "Content-Type: application/json\r\n" +
        "Content-Length: 512\r\n" +
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc\r\n" +
        "X-Forwarded-For: 203.0.113.7, 198.51.100.2\r\n" +
        "X-Request-ID: 7f1d0c8e-1c7b-4c59-9a1f-2f0c4f4b9e21\r\n\r\n").utf8)),
]

@inline(never)
func parseLoop(_ bytes: [UInt8], iterations: Int, head: inout HTTP1RequestHead) -> Int {
    let limits = HTTP1Limits()
    var sink = 0
    bytes.withUnsafeBytes { buffer in
        for _ in 0..<iterations {
            switch HTTP1Parser.parseRequestHead(buffer, limits: limits, into: &head) {
            case .complete: sink &+= head.headLength &+ head.fields.count
            default: sink &-= 1
            }
        }
    }
    return sink
}

func nowNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

let arguments = CommandLine.arguments
let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 2_000_000 : 2_000_000
let only = arguments.count > 2 ? arguments[2] : nil

var head = HTTP1RequestHead()
var total = 0
for benchCase in cases where only == nil || benchCase.name == only {
    if only != nil {
        total &+= parseLoop(benchCase.bytes, iterations: iterations, head: &head)
        continue
    }
    // Sanity: the case parses completely.
    let check = parseLoop(benchCase.bytes, iterations: 1, head: &head)
    precondition(check > 0, "benchmark case \(benchCase.name) does not parse")
    total &+= parseLoop(benchCase.bytes, iterations: iterations / 10, head: &head)  // warm-up
    // Median of 5 timed repetitions.
    var samples: [Double] = []
    for _ in 0..<5 {
        let start = nowNanoseconds()
        total &+= parseLoop(benchCase.bytes, iterations: iterations, head: &head)
        samples.append(Double(nowNanoseconds() - start) / Double(iterations))
    }
    samples.sort()
    let median = samples[2]
    print("\(benchCase.name) \(benchCase.bytes.count) \(iterations) \(Int((median * 100).rounded()) ) \(Int(1e9 / median)) \(Int((samples[0] * 100).rounded())) \(Int((samples[4] * 100).rounded()))")
}
if total == 42 { print("") }  // keeps the work observable
