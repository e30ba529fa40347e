import COpenSSL

/// A TLS set-up failure (a certificate that does not load, a key that does
/// not match), with OpenSSL's own reason.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ what: String) {
        self.description = what
    }

    /// `what` followed by the reasons in OpenSSL's error queue (which it drains).
    static func fromQueue(_ what: String) -> TLSError {
        TLSError(what + OpenSSLErrors.drain())
    }
}

/// OpenSSL's per-thread error queue.
enum OpenSSLErrors {
    /// Empties the queue and returns its entries as `: reason; reason`.
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return reasons.isEmpty ? "" : ": " + reasons.joined(separator: "; ")
    }

    /// Drops whatever a previous call left, so `SSL_get_error` reads this
    /// call's result. The queue is nearly always empty (every failure path
    /// drains it): peeking costs a fraction of `ERR_clear_error`, which
    /// resets all sixteen slots.
    @inline(__always)
    static func clear() {
        if ERR_peek_error() != 0 { ERR_clear_error() }
    }
}
