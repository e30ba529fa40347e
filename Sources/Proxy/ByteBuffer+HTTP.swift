import Reactor

/// Byte-level writers for the pieces of HTTP/1.1 the proxy generates per
/// request. No Strings: each writes digits straight into the buffer.
extension ByteBuffer {
    @usableFromInline static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends `value` in decimal.
    @inline(__always)
    func appendDecimal(_ value: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { raw in
            repeat {
                raw[23 - count] = UInt8(truncatingIfNeeded: remaining % 10) &+ 48
                remaining /= 10
                count += 1
            } while remaining > 0
            append(UnsafeRawBufferPointer(rebasing: raw[(24 - count)...]))
        }
    }

    /// Appends a chunk-size line: `<hex>\r\n` (RFC 9112 §7.1).
    @inline(__always)
    func appendChunkHeader(size: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var count = 0
        var remaining = UInt64(size)
        withUnsafeMutableBytes(of: &digits) { raw in
            raw[23] = 10  // LF
            raw[22] = 13  // CR
            count = 2
            repeat {
                raw[21 - (count - 2)] = ByteBuffer.hexDigits[Int(remaining & 15)]
                remaining >>= 4
                count += 1
            } while remaining > 0
            append(UnsafeRawBufferPointer(rebasing: raw[(24 - count)...]))
        }
    }

    /// Appends the last chunk of a chunked body (RFC 9112 §7.1): `0\r\n`,
    /// the trailer section (`trailers` of `bytes`, as the decoder gave it;
    /// empty for none) and the closing CRLF.
    func appendLastChunk(trailers: Range<Int>, of bytes: UnsafeRawBufferPointer) {
        append("0\r\n")
        if !trailers.isEmpty {
            append(bytes, trailers)
            append("\r\n")
        }
        append("\r\n")
    }

    /// Appends `value` as 16 lowercase hex digits.
    @inline(__always)
    func appendHex(of value: UInt64) {
        var digits: (UInt64, UInt64) = (0, 0)
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { raw in
            for index in (0..<16).reversed() {
                raw[index] = ByteBuffer.hexDigits[Int(remaining & 15)]
                remaining >>= 4
            }
            append(UnsafeRawBufferPointer(raw))
        }
    }

    /// Appends `bytes[range]`.
    @inline(__always)
    func append(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) {
        append(UnsafeRawBufferPointer(rebasing: bytes[range]))
    }
}

/// Header lines copied from one HTTP/1.1 head into another as they came:
/// a field written `Name: value` that follows the previous copied one
/// (CRLF between) extends the run, so a head whose fields all pass is
/// one copy instead of four appends per field. Other spellings (no space
/// after the colon, extra spaces) are written normalised, one by one.
struct HeaderLineRun {
    /// The lines not yet written: from the first name to the last value.
    private var range = 0..<0

    /// Adds field `name: value` of `bytes`, writing to `out` what the run cannot hold.
    @inline(__always)
    mutating func add(name: Range<Int>, value: Range<Int>, of bytes: UnsafeRawBufferPointer, to out: ByteBuffer) {
        let separator = name.upperBound
        let end = range.upperBound
        if value.lowerBound == separator + 2, bytes[separator] == HeaderLineRun.colon, bytes[separator + 1] == HeaderLineRun.space,
            name.lowerBound == end + 2, bytes[end] == HeaderLineRun.cr, bytes[end + 1] == HeaderLineRun.lf, !range.isEmpty
        {
            range = range.lowerBound..<value.upperBound
            return
        }
        startRun(name: name, value: value, of: bytes, to: out)
    }

    /// `add` for a field that does not extend the run: the run is written,
    /// and the field starts the next one or, spelled otherwise, is written.
    private mutating func startRun(name: Range<Int>, value: Range<Int>, of bytes: UnsafeRawBufferPointer, to out: ByteBuffer) {
        flush(bytes, to: out)
        let separator = name.upperBound
        if value.lowerBound == separator + 2, bytes[separator] == HeaderLineRun.colon, bytes[separator + 1] == HeaderLineRun.space {
            range = name.lowerBound..<value.upperBound
            return
        }
        out.append(bytes, name)
        out.append(": ")
        out.append(bytes, value)
        out.append(byte: HeaderLineRun.cr)
        out.append(byte: HeaderLineRun.lf)
    }

    /// Writes the lines of the run and the CRLF that ends them.
    @inline(__always)
    mutating func flush(_ bytes: UnsafeRawBufferPointer, to out: ByteBuffer) {
        guard !range.isEmpty else { return }
        out.append(bytes, range)
        out.append(byte: HeaderLineRun.cr)
        out.append(byte: HeaderLineRun.lf)
        range = 0..<0
    }

    private static let colon = UInt8(ascii: ":")
    private static let space = UInt8(ascii: " ")
    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")
}

/// A per-worker pseudo-random generator (wyrand) for request IDs: fast, no
/// locks, seeded from the kernel's random source at start-up.
struct RequestIDGenerator {
    private var state: UInt64

    init() {
        var seed: UInt64 = 0
        for _ in 0..<4 { seed = seed &* 6364136223846793005 &+ UInt64.random(in: .min ... .max) }
        state = seed
    }

    /// The next 64 random bits.
    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0xa076_1d64_78bd_642f
        let product = state.multipliedFullWidth(by: state ^ 0xe703_7ed1_a0b4_28db)
        return product.high ^ product.low
    }
}
