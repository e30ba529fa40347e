import Proxy
import Yams

extension Settings {
    /// The keys that say who the client is (forwarded headers, PROXY
    /// protocol). They set `clientAddress` (`ClientAddressSettings`).
    static let clientAddressKeys: [String: (inout Settings, Node, String) throws -> Void] = [:]
}
