import FoundationEssentials
import Proxy
import Reactor
import TLS
import Telemetry
import Translate
import YAML

/// Proxy settings from `postern.yaml`. Keys follow ingress-nginx's ConfigMap
/// names where one exists, so that operators recognise them. Every key is
/// optional; command-line flags override the file. Unknown keys are an
/// error (a typo must not silently fall back to a default).
struct Settings {
    var httpListen = "0.0.0.0:8080"
    /// `off` disables HTTPS.
    var httpsListen = "0.0.0.0:8443"
    var defaultSSLCertificate: String?
    var tls = TLSServerSettings()
    var hsts = true
    var hstsMaxAge = 31_536_000
    var hstsIncludeSubdomains = true
    var hstsPreload = false
    var httpRedirectCode = 308
    var enableUnderscoresInHeaders = false
    /// Who the client is: forwarded headers, PROXY protocol (`Settings+ClientAddress.swift`).
    var clientAddress = ClientAddressSettings()
    /// The ports clients use (Service / load balancer), for redirects and X-Forwarded-Port.
    var publicHTTPPort = 80
    var publicHTTPSPort = 443
    /// Where each public port was set (a flag, or `FILE: key` / `ConfigMap NS/NAME: key`);
    /// nil: not set, so `--publish-service` may supply it (see `PublicPorts`).
    var publicHTTPPortSource: String?
    var publicHTTPSPortSource: String?
    /// Offer HTTP/2 on HTTPS (ALPN h2), as ingress-nginx's `use-http2`.
    var useHTTP2 = true
    /// Accept cleartext HTTP/2 with prior knowledge on the HTTP listener.
    var h2c = true
    var http2MaxConcurrentStreams = 128
    var http2InitialWindowSize = 65_535
    var http2MaxResetsPerSecond = 100
    var adminListen = "127.0.0.1:10254"
    var manifests: String?
    /// Worker event loops; 0: one per CPU the cgroup's quota allows (see `CPUQuota`).
    var workers = 0
    var drainTimeoutSeconds = 30.0
    /// Seconds between SIGTERM and closing the listeners, with `/readyz` 503 meanwhile.
    var shutdownGracePeriodSeconds = 0.0
    /// The cgroup v2 `cpu.max` file read for the default worker count (a flag for tests).
    var cgroupCPUMaxPath = CPUQuota.defaultPath
    var logFormat = LogFormat.text
    var proxyConnectTimeout = 5.0
    var proxyReadTimeout = 60.0
    var proxySendTimeout = 60.0
    var clientHeaderTimeout = 60.0
    var clientBodyTimeout = 60.0
    var keepAliveTimeout = 75.0
    var upstreamKeepAliveTimeout = 60.0
    var upstreamKeepAliveConnections = 320
    var maxHeaderBytes = 32 * 1024
    var maxHeaderCount = 100
    var maxRequestTargetLength = 8192
    var controllerClass = "postern.dev/ingress-controller"
    var ingressClass = "postern"
    var watchIngressWithoutClass = false
    var defaultBackendService: String?
    /// `proxy-body-size`, source ranges, `block-cidrs`, `ssl-redirect`,
    /// `force-ssl-redirect` (`Settings+Global.swift`): ingress-nginx's defaults.
    var global = GlobalPolicy.ingressNginxDefaults

    /// More worker loops than this is a typo, not a machine.
    static let maximumWorkers = 1024
    /// An hour: longer would outlast any Pod's termination grace period.
    static let maximumShutdownGracePeriod = 3600.0

    /// The keys `postern.yaml` accepts, with what each sets.
    static let keys: [String: (inout Settings, YAMLNode, String) throws -> Void] = coreKeys
        .merging(tlsKeys) { _, _ in preconditionFailure("a settings key is defined twice") }
        .merging(clientAddressKeys) { _, _ in preconditionFailure("a settings key is defined twice") }
        .merging(globalPolicyKeys) { _, _ in preconditionFailure("a settings key is defined twice") }

    /// Keys of the listeners, timeouts, limits and Ingress selection.
    static let coreKeys: [String: (inout Settings, YAMLNode, String) throws -> Void] = [
        "http-listen": { $0.httpListen = try string($1, $2) },
        "admin-listen": { $0.adminListen = try string($1, $2) },
        "https-listen": { $0.httpsListen = try string($1, $2) },
        "default-ssl-certificate": {
            let value = try string($1, $2)
            try SettingsValidation.namespacedName(value, $2)
            $0.defaultSSLCertificate = value
        },
        "hsts": { $0.hsts = try boolean($1, $2) },
        "use-http2": { $0.useHTTP2 = try boolean($1, $2) },
        "h2c": { $0.h2c = try boolean($1, $2) },
        "enable-underscores-in-headers": { $0.enableUnderscoresInHeaders = try boolean($1, $2) },
        "public-http-port": {
            $0.publicHTTPPort = try port($1, $2)
            $0.publicHTTPPortSource = $2
        },
        "public-https-port": {
            $0.publicHTTPSPort = try port($1, $2)
            $0.publicHTTPSPortSource = $2
        },
        "http2-max-concurrent-streams": { $0.http2MaxConcurrentStreams = try integer($1, $2, minimum: 1) },
        "http2-initial-window-size": { $0.http2InitialWindowSize = try integer($1, $2, minimum: 65_535) },
        "http2-max-resets-per-second": { $0.http2MaxResetsPerSecond = try integer($1, $2, minimum: 1) },
        "hsts-max-age": { $0.hstsMaxAge = try integer($1, $2, minimum: 0) },
        "hsts-include-subdomains": { $0.hstsIncludeSubdomains = try boolean($1, $2) },
        "hsts-preload": { $0.hstsPreload = try boolean($1, $2) },
        "http-redirect-code": {
            let code = try integer($1, $2, minimum: 301)
            guard [301, 302, 307, 308].contains(code) else { throw SettingsError("\($2): expected 301, 302, 307 or 308") }
            $0.httpRedirectCode = code
        },
        "manifests": { $0.manifests = try string($1, $2) },
        "workers": {
            let workers = try integer($1, $2, minimum: 0)
            guard workers <= maximumWorkers else { throw SettingsError("\($2): expected 0 (automatic) to \(maximumWorkers)") }
            $0.workers = workers
        },
        "drain-timeout": { $0.drainTimeoutSeconds = try seconds($1, $2) },
        "shutdown-grace-period": {
            guard var text = $1.string else { throw SettingsError("\($2): expected seconds") }
            if text.hasSuffix("s") { text.removeLast() }
            guard let value = Double(text), value >= 0, value <= maximumShutdownGracePeriod else {
                throw SettingsError("\($2): expected seconds between 0 and \(Int(maximumShutdownGracePeriod)), e.g. 5 or 5s")
            }
            $0.shutdownGracePeriodSeconds = value
        },
        "log-format": {
            guard let format = LogFormat(rawValue: try string($1, $2)) else {
                throw SettingsError("\($2): expected text or json")
            }
            $0.logFormat = format
        },
        "proxy-connect-timeout": { $0.proxyConnectTimeout = try seconds($1, $2) },
        "proxy-read-timeout": { $0.proxyReadTimeout = try seconds($1, $2) },
        "proxy-send-timeout": { $0.proxySendTimeout = try seconds($1, $2) },
        "client-header-timeout": { $0.clientHeaderTimeout = try seconds($1, $2) },
        "client-body-timeout": { $0.clientBodyTimeout = try seconds($1, $2) },
        "keep-alive": { $0.keepAliveTimeout = try seconds($1, $2) },
        "upstream-keepalive-timeout": { $0.upstreamKeepAliveTimeout = try seconds($1, $2) },
        "upstream-keepalive-connections": { $0.upstreamKeepAliveConnections = try integer($1, $2, minimum: 0) },
        "max-header-bytes": { $0.maxHeaderBytes = try integer($1, $2, minimum: 1024) },
        "max-header-count": { $0.maxHeaderCount = try integer($1, $2, minimum: 1) },
        "max-request-target-length": { $0.maxRequestTargetLength = try integer($1, $2, minimum: 16) },
        "controller-class": {
            let value = try string($1, $2)
            try SettingsValidation.controllerName(value, $2)
            $0.controllerClass = value
        },
        "ingress-class": {
            let value = try string($1, $2)
            try SettingsValidation.objectName(value, $2)
            $0.ingressClass = value
        },
        "watch-ingress-without-class": { $0.watchIngressWithoutClass = try boolean($1, $2) },
        "default-backend-service": {
            let value = try string($1, $2)
            try SettingsValidation.namespacedName(value, $2)
            $0.defaultBackendService = value
        },
    ]

    /// Reads `path`, applying its keys over the defaults. Relative
    /// `manifests` paths are resolved against the file's folder.
    static func load(path: String) throws -> Settings {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SettingsError("--config \(path): cannot read the file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let root: YAMLNode?
        do {
            root = try YAMLParser().document(text)
        } catch {
            throw SettingsError("--config \(path): not valid YAML: \(error)")
        }
        var settings = Settings()
        guard let root else { return settings }
        guard let mapping = root.mapping else {
            throw SettingsError("--config \(path): expected a mapping of settings at the top level")
        }
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.string, let apply = keys[key] else {
                let known = keys.keys.sorted().joined(separator: ", ")
                throw SettingsError("--config \(path): unknown setting '\(keyNode.string ?? "?")' (known: \(known))")
            }
            try apply(&settings, valueNode, "\(path): \(key)")
        }
        // ssl-protocols, ssl-ciphers and ssl-ciphersuites together: a protocol
        // offered without a usable suite stops start-up (and `postern check`).
        do { _ = try TLSCipherPolicy(settings.tls) } catch { throw SettingsError("\(path): \(error)") }
        if let manifests = settings.manifests, !manifests.hasPrefix("/") {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            settings.manifests = folder + "/" + manifests
        }
        return settings
    }

    static func string(_ node: YAMLNode, _ name: String) throws -> String {
        guard let value = node.string else { throw SettingsError("\(name): expected a string") }
        return value
    }

    static func integer(_ node: YAMLNode, _ name: String, minimum: Int) throws -> Int {
        guard let text = node.string, let value = Int(text), value >= minimum else {
            throw SettingsError("\(name): expected an integer >= \(minimum)")
        }
        return value
    }

    /// A TCP port, 1 to 65535.
    static func port(_ node: YAMLNode, _ name: String) throws -> Int {
        guard let text = node.string, let value = Int(text), (1...65535).contains(value) else {
            throw SettingsError("\(name): expected a port from 1 to 65535")
        }
        return value
    }

    static func seconds(_ node: YAMLNode, _ name: String) throws -> Double {
        guard var text = node.string else { throw SettingsError("\(name): expected seconds") }
        if text.hasSuffix("s") { text.removeLast() }
        guard let value = Double(text), value > 0, value <= 86_400 else {
            throw SettingsError("\(name): expected seconds between 0 and 86400, e.g. 60 or 1.5s")
        }
        return value
    }

    /// An nginx size: bytes, or a number with `k` or `m` (`10m`, `512k`), as
    /// ingress-nginx writes `ssl-session-cache-size`.
    static func nginxSize(_ node: YAMLNode, _ name: String, minimum: Int) throws -> Int {
        let problem = SettingsError("\(name): expected a size of at least \(minimum) bytes, e.g. 10m, 512k or 1048576")
        guard var text = node.string?.lowercased(), !text.isEmpty else { throw problem }
        var unit = 1
        if text.hasSuffix("k") { unit = 1024 } else if text.hasSuffix("m") { unit = 1024 * 1024 }
        if unit > 1 { text.removeLast() }
        guard let value = Int(text), value > 0, value <= Int(Int32.max) / unit, value * unit >= minimum else { throw problem }
        return value * unit
    }

    /// An nginx time in whole seconds: a number with `s`, `m`, `h` or `d`, or
    /// bare seconds (`10m`, `300s`, `300`), as ingress-nginx writes `ssl-session-timeout`.
    static func nginxSeconds(_ node: YAMLNode, _ name: String) throws -> Int {
        let problem = SettingsError("\(name): expected a time between 1s and 7d, e.g. 10m, 300s or 1h")
        guard var text = node.string?.lowercased(), !text.isEmpty else { throw problem }
        var unit = 1
        switch text.last {
        case "s": unit = 1
        case "m": unit = 60
        case "h": unit = 3600
        case "d": unit = 86_400
        default: unit = 0
        }
        if unit == 0 { unit = 1 } else { text.removeLast() }
        guard let value = Int(text), value > 0, value <= 7 * 86_400 / unit else { throw problem }
        return value * unit
    }

    static func boolean(_ node: YAMLNode, _ name: String) throws -> Bool {
        switch node.string?.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw SettingsError("\(name): expected true or false")
        }
    }

    /// The proxy configuration these settings describe.
    func proxyConfiguration() throws -> ProxyConfiguration {
        guard let address = SocketAddress(parsing: httpListen) else {
            throw SettingsError("--http-listen \(httpListen): expected HOST:PORT with a numeric address, e.g. 0.0.0.0:8080 or [::1]:8080")
        }
        var configuration = ProxyConfiguration(
            httpListen: address,
            workers: workers > 0 ? workers : CPUQuota.workers(availableCPUs: WorkerThread.availableCPUs, cpuMaxPath: cgroupCPUMaxPath))
        if httpsListen != "off" {
            guard let secure = SocketAddress(parsing: httpsListen) else {
                throw SettingsError("--https-listen \(httpsListen): expected HOST:PORT with a numeric address, or off")
            }
            configuration.httpsListen = secure
        }
        configuration.httpRedirectCode = httpRedirectCode
        configuration.allowUnderscoresInHeaders = enableUnderscoresInHeaders
        configuration.clientAddress = clientAddress
        configuration.publicHTTPPort = UInt16(publicHTTPPort)
        configuration.publicHTTPSPort = UInt16(publicHTTPSPort)
        configuration.h2c = h2c
        configuration.http2MaxConcurrentStreams = UInt32(min(http2MaxConcurrentStreams, Int(UInt32.max)))
        configuration.http2InitialWindowSize = UInt32(min(http2InitialWindowSize, Int(Int32.max)))
        configuration.http2MaxResetsPerSecond = http2MaxResetsPerSecond
        func ms(_ seconds: Double) -> UInt64 { UInt64((seconds * 1000).rounded()) }
        configuration.connectTimeoutMilliseconds = ms(proxyConnectTimeout)
        configuration.upstreamReadTimeoutMilliseconds = ms(proxyReadTimeout)
        configuration.upstreamSendTimeoutMilliseconds = ms(proxySendTimeout)
        configuration.clientHeaderTimeoutMilliseconds = ms(clientHeaderTimeout)
        configuration.clientBodyTimeoutMilliseconds = ms(clientBodyTimeout)
        configuration.keepAliveTimeoutMilliseconds = ms(keepAliveTimeout)
        configuration.upstreamKeepAliveTimeoutMilliseconds = ms(upstreamKeepAliveTimeout)
        configuration.upstreamKeepAliveConnections = upstreamKeepAliveConnections
        configuration.limits.maxHeaderSectionBytes = maxHeaderBytes
        configuration.limits.maxHeaderCount = maxHeaderCount
        configuration.limits.maxRequestTargetLength = maxRequestTargetLength
        return configuration
    }

    /// The `Strict-Transport-Security` value, or nil when HSTS is off.
    var strictTransportSecurity: String? {
        guard hsts else { return nil }
        return "max-age=\(hstsMaxAge)" + (hstsIncludeSubdomains ? "; includeSubDomains" : "") + (hstsPreload ? "; preload" : "")
    }

    /// The translation options these settings describe.
    var translateOptions: TranslateOptions {
        var options = TranslateOptions()
        options.controllerClass = controllerClass
        options.ingressClass = ingressClass
        options.watchIngressWithoutClass = watchIngressWithoutClass
        options.defaultBackendService = defaultBackendService
        options.global = global
        options.strictTransportSecurity = strictTransportSecurity
        return options
    }
}

/// A start-up configuration error: one line that names the setting.
struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Checks of names given as settings, so that a malformed one stops
/// start-up naming the flag or key instead of surfacing later as a
/// diagnostic about an internal object.
enum SettingsValidation {
    /// A DNS-1123 label (namespaces, Service names).
    static func isLabel(_ text: Substring) -> Bool {
        guard (1...63).contains(text.count), let first = text.first, let last = text.last else { return false }
        let allowed = text.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        return allowed && first != "-" && last != "-"
    }

    /// A DNS-1123 subdomain (IngressClass and Secret names).
    static func isSubdomain(_ text: Substring) -> Bool {
        text.count <= 253 && !text.isEmpty && text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(isLabel)
    }

    /// `NAMESPACE/NAME`.
    static func namespacedName(_ value: String, _ name: String) throws {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, isLabel(parts[0]), isSubdomain(parts[1]) else {
            throw SettingsError("\(name) \(value): expected NAMESPACE/NAME, e.g. ingress/fallback")
        }
    }

    /// An object name such as an IngressClass's.
    static func objectName(_ value: String, _ name: String) throws {
        guard isSubdomain(Substring(value)) else {
            throw SettingsError("\(name) \(value): expected a lower-case DNS name, e.g. postern")
        }
    }

    /// An IngressClass `spec.controller`: a domain-prefixed path.
    static func controllerName(_ value: String, _ name: String) throws {
        let parts = value.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, isSubdomain(parts[0]), parts[0].contains("."), !parts[1].isEmpty,
              !value.contains(where: { $0 == " " || $0 == "\t" })
        else {
            throw SettingsError("\(name) \(value): expected a domain-prefixed path, e.g. postern.dev/ingress-controller")
        }
    }
}

extension Settings {
    /// Applies the Ingress-selection flags `run`, `check` and `route` share,
    /// each validated and named in the error as the flag it came from.
    mutating func applySelectionFlags(
        controllerClass: String?, ingressClass: String?, watchIngressWithoutClass: Bool, defaultBackendService: String?
    ) throws {
        if let defaultBackendService {
            try SettingsValidation.namespacedName(defaultBackendService, "--default-backend-service")
            self.defaultBackendService = defaultBackendService
        }
        if let controllerClass {
            try SettingsValidation.controllerName(controllerClass, "--controller-class")
            self.controllerClass = controllerClass
        }
        if let ingressClass {
            try SettingsValidation.objectName(ingressClass, "--ingress-class")
            self.ingressClass = ingressClass
        }
        if watchIngressWithoutClass { self.watchIngressWithoutClass = true }
    }
}
