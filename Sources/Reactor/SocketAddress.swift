import Glibc

/// An IPv4 or IPv6 socket address, parsed once from configuration or
/// filled in by `accept`.
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// IPv4 or IPv6 address bytes in network order (4 or 16 bytes, inline).
    public enum Family: Sendable, Hashable { case v4, v6 }

    public let family: Family
    /// Address bytes in network order; only the first 4 are used for IPv4.
    public let addressBytes: (UInt64, UInt64)
    /// Port in host byte order.
    public let port: UInt16

    /// Creates an address from raw network-order bytes (4 or 16).
    public init(bytes: [UInt8], port: UInt16) {
        precondition(bytes.count == 4 || bytes.count == 16, "IP address must have 4 or 16 bytes")
        var words: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &words) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        self.family = bytes.count == 4 ? .v4 : .v6
        self.addressBytes = words
        self.port = port
    }

    /// The address bytes (4 or 16) in network order.
    public var bytes: [UInt8] {
        withUnsafeBytes(of: addressBytes) { raw in Array(raw.prefix(family == .v4 ? 4 : 16)) }
    }

    /// Parses `HOST:PORT` where HOST is a numeric IPv4 address, `[IPv6]`, or
    /// empty (all IPv4 interfaces). Returns nil when it does not parse.
    public init?(parsing text: String) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else { return nil }
        if host.isEmpty || host == "*" { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }
        guard let bytes = SocketAddress.parseIP(String(host)) else { return nil }
        self.init(bytes: bytes, port: port)
    }

    /// Parses a numeric IPv4 or IPv6 address into network-order bytes.
    public static func parseIP(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: v6) { Array($0) }
        }
        return nil
    }

    /// The numeric address without port (`127.0.0.1`, `::1`).
    public var hostText: String {
        var buffer = [CChar](repeating: 0, count: 64)
        var words = addressBytes
        let ok = withUnsafeBytes(of: &words) { raw in
            buffer.withUnsafeMutableBufferPointer { out in
                inet_ntop(family == .v4 ? AF_INET : AF_INET6, raw.baseAddress, out.baseAddress, 64) != nil
            }
        }
        guard ok else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        family == .v4 ? "\(hostText):\(port)" : "[\(hostText)]:\(port)"
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.family == rhs.family && lhs.port == rhs.port && lhs.addressBytes.0 == rhs.addressBytes.0
            && lhs.addressBytes.1 == rhs.addressBytes.1
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(addressBytes.0)
        hasher.combine(addressBytes.1)
        hasher.combine(port)
    }

    /// Calls `body` with a `sockaddr` pointer and length for system calls.
    func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        switch family {
        case .v4:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { out in
                withUnsafeBytes(of: addressBytes) { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0.prefix(4))) }
            }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .v6:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { out in
                withUnsafeBytes(of: addressBytes) { out.copyMemory(from: $0) }
            }
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }

    /// Reads an address filled in by the kernel.
    init?(storage: UnsafeRawPointer) {
        let family = storage.load(as: sockaddr.self).sa_family
        if family == sa_family_t(AF_INET) {
            let address = storage.load(as: sockaddr_in.self)
            let bytes = withUnsafeBytes(of: address.sin_addr) { Array($0) }
            self.init(bytes: bytes, port: UInt16(bigEndian: address.sin_port))
        } else if family == sa_family_t(AF_INET6) {
            let address = storage.load(as: sockaddr_in6.self)
            let bytes = withUnsafeBytes(of: address.sin6_addr) { Array($0) }
            self.init(bytes: bytes, port: UInt16(bigEndian: address.sin6_port))
        } else {
            return nil
        }
    }
}
