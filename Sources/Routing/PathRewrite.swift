/// A compiled `rewrite-target`: literal bytes and capture-group references,
/// expanded into a caller's buffer without allocating.
struct RewriteTemplate: Sendable {
    enum Piece: Sendable {
        /// Bytes `literals[start..<start+count]`.
        case literal(start: Int32, count: Int32)
        /// Capture group `n` of the route's regex (empty when unset).
        case group(Int32)
    }

    let pieces: [Piece]
    let literals: [UInt8]

    /// Parses `$0`-`$9` and `${0}`-`${9}` references; every other byte is literal
    /// (Translate has validated the template).
    init(_ template: String) {
        var pieces: [Piece] = []
        var literals: [UInt8] = []
        let bytes = Array(template.utf8)
        var literalStart = 0
        func flush(_ end: Int) {
            if end > literalStart {
                pieces.append(.literal(start: Int32(literals.count), count: Int32(end - literalStart)))
                literals.append(contentsOf: bytes[literalStart..<end])
            }
        }
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "$"), let (group, length) = RewriteTemplate.reference(bytes, at: i) {
                flush(i)
                pieces.append(.group(Int32(group)))
                i += length
                literalStart = i
            } else {
                i += 1
            }
        }
        flush(bytes.count)
        self.pieces = pieces
        self.literals = literals
    }

    /// The group number and length of a `$n` or `${n}` at `bytes[i]`.
    static func reference(_ bytes: [UInt8], at i: Int) -> (Int, Int)? {
        func digit(_ j: Int) -> Int? {
            guard j < bytes.count, bytes[j] >= UInt8(ascii: "0"), bytes[j] <= UInt8(ascii: "9") else { return nil }
            return Int(bytes[j] - UInt8(ascii: "0"))
        }
        if let n = digit(i + 1) { return (n, 2) }
        if i + 3 < bytes.count, bytes[i + 1] == UInt8(ascii: "{"), let n = digit(i + 2),
           bytes[i + 3] == UInt8(ascii: "}")
        {
            return (n, 4)
        }
        return nil
    }

    /// Writes the expansion to `output`; nil when it does not fit.
    /// `offsets` are the match's group ranges in `path` (-1 when unset),
    /// `groups` of them.
    @inline(__always)
    func expand(
        path: UnsafePointer<UInt8>, offsets: UnsafePointer<Int32>, groups: Int,
        into output: UnsafeMutableRawBufferPointer
    ) -> Int? {
        guard let out = output.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return pieces.isEmpty ? 0 : nil
        }
        let capacity = output.count
        var length = 0
        return literals.withUnsafeBufferPointer { literals -> Int? in
            for piece in pieces {
                switch piece {
                case let .literal(start, count):
                    let count = Int(count)
                    guard length + count <= capacity else { return nil }
                    (out + length).update(from: literals.baseAddress! + Int(start), count: count)
                    length += count
                case let .group(n):
                    let n = Int(n)
                    guard n < groups else { continue }
                    let start = Int(offsets[2 * n]), end = Int(offsets[2 * n + 1])
                    guard start >= 0, end > start else { continue }
                    guard length + end - start <= capacity else { return nil }
                    (out + length).update(from: path + start, count: end - start)
                    length += end - start
                }
            }
            return length
        }
    }
}

/// What the proxy does with the path it sends upstream.
public enum PathRewrite: Sendable, Equatable {
    /// Send the client's request target unchanged.
    case none
    /// Send the first `count` bytes of the caller's rewrite buffer as the
    /// path, followed by the client's `?query` when it had one.
    case rewritten(count: Int)
    /// The rewritten path did not fit the caller's buffer: answer 414.
    case tooLong
}

/// The outcome of `RoutingTable.route(host:path:rewriteInto:)`.
public struct RouteResult: Sendable {
    /// The cluster, or 404.
    public var decision: RouteDecision
    /// Whether (and how) the upstream path changes.
    public var rewrite: PathRewrite
    /// What the chosen rule asks of the request (nil: nothing; also when a
    /// default backend answered).
    public var policy: CompiledRoutePolicy?
    /// What the chosen rule (or the host, when no rule matched) says about
    /// plain HTTP: `RoutingTable.httpsRedirect(_:canonicalHost:)` decides.
    public var httpsRedirect: HTTPSRedirectRule

    /// Creates a result.
    public init(
        decision: RouteDecision, rewrite: PathRewrite, policy: CompiledRoutePolicy? = nil,
        httpsRedirect: HTTPSRedirectRule = .none
    ) {
        self.decision = decision
        self.rewrite = rewrite
        self.policy = policy
        self.httpsRedirect = httpsRedirect
    }
}
