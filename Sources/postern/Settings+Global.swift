import FoundationEssentials
import RouteModel
import Support
import TLS
import Translate
import YAML

extension Settings {
    /// The global policy keys, with ingress-nginx's names, syntax and
    /// defaults. They set `global` (`GlobalPolicy`), which Translate merges
    /// into every route (the Ingress's own annotation wins).
    static let globalPolicyKeys: [String: (inout Settings, YAMLNode, String) throws -> Void] = [
        "proxy-body-size": {
            guard let text = $1.string, case let .some(size) = GlobalPolicy.bodySize(text.trimmingWhitespace()) else {
                throw SettingsError("\($2): expected a size (bytes, or a number with k, m or g, e.g. 1m; 0 for no limit)")
            }
            $0.global.maximumBodySize = size
        },
        "whitelist-source-range": { $0.global.allowedSourceRanges = try sourceRanges($1, $2) },
        "denylist-source-range": { $0.global.deniedSourceRanges = try sourceRanges($1, $2) },
        "block-cidrs": { $0.global.blockedSourceRanges = try sourceRanges($1, $2) },
        "ssl-redirect": { $0.global.sslRedirect = try boolean($1, $2) },
        "force-ssl-redirect": { $0.global.forceSSLRedirect = try boolean($1, $2) },
    ]

    /// Keys a ConfigMap change applies at once (through translation and
    /// one published snapshot); every other key takes effect at restart.
    static let liveKeys: Set<String> = [
        "proxy-body-size", "whitelist-source-range", "denylist-source-range", "block-cidrs", "ssl-redirect",
        "force-ssl-redirect", "hsts", "hsts-max-age", "hsts-include-subdomains", "hsts-preload",
    ]

    /// A comma-separated list of IPv4/IPv6 addresses and CIDRs; empty is none.
    static func sourceRanges(_ node: YAMLNode, _ name: String) throws -> [IPRange] {
        guard let text = node.string else { throw SettingsError("\(name): expected a comma-separated list of CIDRs") }
        switch GlobalPolicy.sourceRanges(text) {
        case let .success(ranges): return ranges
        case let .failure(problem): throw SettingsError("\(name): \(problem) (expected a comma-separated list of CIDRs)")
        }
    }

    /// Applies a settings ConfigMap's `data` over these settings, every key
    /// as in `postern.yaml` (values are strings there). `source` names the
    /// ConfigMap in errors. An unknown key is an error, as in the file.
    mutating func apply(configMapData data: [String: String], source: String) throws {
        for key in data.keys.sorted() {
            guard let apply = Settings.keys[key] else {
                throw SettingsError("\(source): unknown setting '\(key)'\(Settings.suggestion(for: key))")
            }
            // A YAMLNode built from the string: a scalar, read like a YAML value.
            try apply(&self, YAMLNode(data[key] ?? ""), "\(source): \(key)")
        }
        do { _ = try TLSCipherPolicy(tls) } catch { throw SettingsError("\(source): \(error)") }
    }

    /// " (did you mean KEY?)" for a key one or two edits away from a known one.
    static func suggestion(for key: String) -> String {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var row = Array(0...b.count)
            for (i, x) in a.enumerated() {
                var previous = row[0]
                row[0] = i + 1
                for (j, y) in b.enumerated() {
                    let current = row[j + 1]
                    row[j + 1] = min(row[j + 1] + 1, row[j] + 1, previous + (x == y ? 0 : 1))
                    previous = current
                }
            }
            return row[b.count]
        }
        let best = keys.keys.map { ($0, distance(Array(key), Array($0))) }.min { ($0.1, $0.0) < ($1.1, $1.0) }
        guard let best, best.1 <= 2 else { return "" }
        return " (did you mean \(best.0)?)"
    }
}

