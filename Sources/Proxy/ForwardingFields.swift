/// Which client fields the proxy forwards, for HTTP/1.1 and HTTP/2 alike.
enum ForwardingFields {
    /// Fields whose meaning the proxy owns (it sets them, or they frame the
    /// message), lower case in their `-` spelling.
    private static let proxyOwned: [[UInt8]] = [
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto", "x-real-ip", "x-request-id",
        "ssl-client-cert", "ssl-client-verify", "content-length", "transfer-encoding", "host", "connection",
    ].map { Array($0.utf8) }

    /// Whether a client field whose name holds `_` goes upstream.
    ///
    /// CGI, WSGI and Rack backends map `-` and `_` to one variable, so
    /// `X_Forwarded_For` would reach them as the field the proxy sets. By
    /// default (`enable-underscores-in-headers: false`, as in ingress-nginx)
    /// every such field is dropped; when allowed, those that read as a field
    /// the proxy owns are dropped still. Only called for names with `_`.
    static func forwardsUnderscoreField(_ name: UnsafeRawBufferPointer, allowed: Bool) -> Bool {
        guard allowed else { return false }
        for candidate in proxyOwned where candidate.count == name.count {
            var same = true
            for (index, byte) in name.enumerated() {
                var folded = byte >= 65 && byte <= 90 ? byte | 0x20 : byte
                if folded == UInt8(ascii: "_") { folded = UInt8(ascii: "-") }
                if folded != candidate[index] {
                    same = false
                    break
                }
            }
            if same { return false }
        }
        return true
    }
}
