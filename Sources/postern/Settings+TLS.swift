import TLS
import YAML

extension Settings {
    /// The `ssl-*` keys: protocols, ciphers, groups, session resumption;
    /// and `enable-ocsp` with the `ocsp-*` knobs of OCSP stapling.
    /// They set `tls` (`TLSServerSettings`).
    static let tlsKeys: [String: (inout Settings, YAMLNode, String) throws -> Void] = [
        "ssl-protocols": {
            do { try $0.tls.setProtocols(try string($1, $2)) } catch { throw SettingsError("\($2): \(error)") }
        },
        "ssl-ciphers": { $0.tls.ciphers = try string($1, $2) },
        "ssl-ciphersuites": { $0.tls.cipherSuites = try string($1, $2) },
        "ssl-ecdh-curve": { $0.tls.groups = try string($1, $2) },
        "ssl-session-tickets": { $0.tls.sessionTickets = try boolean($1, $2) },
        "ssl-session-cache": { $0.tls.sessionCache = try boolean($1, $2) },
        "ssl-session-cache-size": { $0.tls.sessionCacheBytes = try nginxSize($1, $2, minimum: 4096) },
        "ssl-session-timeout": { $0.tls.sessionTimeoutSeconds = try nginxSeconds($1, $2) },
        "ssl-prefer-server-ciphers": { $0.tls.preferServerCiphers = try boolean($1, $2) },
        // OCSP stapling (docs/configuration.md, "OCSP stapling").
        "enable-ocsp": { $0.tls.enableOCSP = try boolean($1, $2) },
        "ocsp-refresh-interval": { $0.tls.ocsp.refreshIntervalSeconds = try nginxSeconds($1, $2) },
        "ocsp-retry-interval": { $0.tls.ocsp.retryIntervalSeconds = try nginxSeconds($1, $2) },
        "ocsp-timeout": {
            let seconds = try nginxSeconds($1, $2)
            guard seconds <= 60 else { throw SettingsError("\($2): expected a time between 1s and 60s, e.g. 5s") }
            $0.tls.ocsp.timeoutSeconds = seconds
        },
    ]
}
