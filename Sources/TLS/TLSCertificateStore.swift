import COpenSSL
import Glibc

/// A certificate to serve, as configuration hands it over (from an
/// Ingress's `spec.tls` entry and its Secret).
public struct TLSCertificateInput: Sendable, Hashable {
    /// `namespace/name` of the Secret, for logs and diagnostics.
    public var name: String
    /// Host names it is served for (lower-case; `*.example.com` allowed).
    public var hosts: [String]
    public var certificateChainPEM: [UInt8]
    public var privateKeyPEM: [UInt8]
    /// Client certificates asked for on these hosts (nil: none).
    public var clientVerification: TLSClientVerification?

    public init(
        name: String, hosts: [String], certificateChainPEM: [UInt8], privateKeyPEM: [UInt8],
        clientVerification: TLSClientVerification? = nil
    ) {
        self.name = name
        self.hosts = hosts
        self.certificateChainPEM = certificateChainPEM
        self.privateKeyPEM = privateKeyPEM
        self.clientVerification = clientVerification
    }
}

/// Mutual TLS settings of a server context.
public struct TLSClientVerification: Sendable, Hashable {
    /// A certificate is required (else only requested; a bad one still fails).
    public var required: Bool
    /// Trusted CA certificates (PEM). Empty fails closed: no certificate verifies,
    /// and one is required.
    public var certificateAuthoritiesPEM: [UInt8]
    public var verifyDepth: Int
    /// Hand the verified certificate to the upstream (`ssl-client-cert`).
    public var passCertificateToUpstream: Bool

    public init(required: Bool, certificateAuthoritiesPEM: [UInt8], verifyDepth: Int, passCertificateToUpstream: Bool) {
        self.required = required
        self.certificateAuthoritiesPEM = certificateAuthoritiesPEM
        self.verifyDepth = verifyDepth
        self.passCertificateToUpstream = passCertificateToUpstream
    }
}

/// A problem found while loading certificates: the affected hosts fall
/// back to the default certificate (errors) or are served anyway (warnings).
public struct TLSCertificateProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: Sendable { case warning, error }
    public var severity: Severity
    /// A short code for logs and events: `InvalidCertificate`,
    /// `CertificateExpired`, `CertificateHostMismatch`, or with OCSP
    /// `CertificateRevoked`, `MustStapleWithoutStaple`,
    /// `MustStapleWithoutOCSP`, `OCSPUnavailable`.
    public var reason: String
    /// The Secret (`namespace/name`).
    public var certificate: String
    public var message: String

    public var description: String { "\(certificate): \(message)" }

    /// `reason` of a certificate whose key type no TLS 1.2 suite of `ssl-ciphers` authenticates.
    public static let noCipherSuiteForKey = "NoCipherSuiteForKey"
}

/// The certificates in service: which context answers which server name.
/// Immutable; a new store is published to every worker when certificates
/// change, and handshakes already under way keep the store they began with.
public final class TLSCertificateStore: @unchecked Sendable {
    /// Context for clients without SNI or with a name no certificate covers.
    public let defaultContext: TLSServerContext
    private let exact: [String: TLSServerContext]
    /// Keyed by the suffix after the wildcard label, e.g. `.example.com`.
    private let wildcard: [String: TLSServerContext]
    /// The context every handshake starts on.
    let front: TLSServerContext
    /// Session-ticket keys (one ring per builder, so per process).
    let ticketKeys: SessionTicketKeys
    /// The same contexts keyed by a hash of the host bytes, for lookups
    /// per request without building a String: exact names under tag 0,
    /// wildcard suffixes (`.example.com`) under tag 1.
    private let byHash: [UInt64: [(name: [UInt8], context: TLSServerContext)]]
    /// True when some host asks for client certificates.
    public let hasClientVerification: Bool
    /// The shared session cache (nil: `ssl-session-cache` off).
    var sessionCache: TLSSessionCache? { front.sessionCache }

    init(
        front: TLSServerContext, ticketKeys: SessionTicketKeys, defaultContext: TLSServerContext,
        exact: [String: TLSServerContext], wildcard: [String: TLSServerContext]
    ) {
        self.front = front
        self.ticketKeys = ticketKeys
        self.defaultContext = defaultContext
        self.exact = exact
        self.wildcard = wildcard
        var byHash: [UInt64: [(name: [UInt8], context: TLSServerContext)]] = [:]
        for (name, context) in exact {
            let bytes = Array(name.utf8)
            byHash[TLSCertificateStore.hash(bytes, tag: 0), default: []].append((bytes, context))
        }
        for (suffix, context) in wildcard {
            let bytes = Array(suffix.utf8)
            byHash[TLSCertificateStore.hash(bytes, tag: 1), default: []].append((bytes, context))
        }
        self.byHash = byHash
        hasClientVerification = exact.values.contains { $0.clientVerification != nil }
            || wildcard.values.contains { $0.clientVerification != nil }
    }

    @inline(__always)
    private static func hash<C: Collection>(_ bytes: C, tag: UInt64) -> UInt64 where C.Element == UInt8 {
        var value: UInt64 = 0xcbf2_9ce4_8422_2325 ^ tag
        for byte in bytes { value = (value ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return value
    }

    /// The context for a canonical host (lower case, no port, no trailing
    /// dot: `HostName`'s output), by the same rules as
    /// `context(forServerName:)`. Allocation-free, for the request path.
    public func context(forCanonicalHost host: UnsafeRawBufferPointer) -> TLSServerContext {
        if let candidates = byHash[TLSCertificateStore.hash(host, tag: 0)] {
            for candidate in candidates where candidate.name.elementsEqual(host) { return candidate.context }
        }
        if let dot = host.firstIndex(of: UInt8(ascii: ".")), dot > 0 {
            let suffix = host[dot...]
            if let candidates = byHash[TLSCertificateStore.hash(suffix, tag: 1)] {
                for candidate in candidates where candidate.name.elementsEqual(suffix) { return candidate.context }
            }
        }
        return defaultContext
    }

    /// The context for a server name: exact host first, then a wildcard of
    /// exactly one label, else the default.
    public func context(forServerName name: String) -> TLSServerContext {
        var host = name.lowercased()
        // One trailing dot names the same host.
        if host.count > 1, host.hasSuffix(".") { host.removeLast() }
        if let found = exact[host] { return found }
        if let dot = host.firstIndex(of: "."), dot != host.startIndex, let found = wildcard[String(host[dot...])] {
            return found
        }
        return defaultContext
    }

    /// Number of distinct host names with a certificate of their own.
    public var hostCount: Int { exact.count + wildcard.count }
}

/// Builds certificate stores, reusing the contexts of certificates that did
/// not change (so a reload does not re-parse every key) and the one front
/// context (so session-ticket keys stay valid across reloads and are shared
/// by every worker).
public final class TLSStoreBuilder: @unchecked Sendable {
    private let settings: TLSServerSettings
    private let front: TLSServerContext
    private let fallbackDefault: TLSServerContext
    /// What the protocol and cipher settings leave usable.
    public let cipherPolicy: TLSCipherPolicy
    /// Session-ticket keys, installed on every context this builder makes.
    public let ticketKeys: SessionTicketKeys
    /// The session cache of every store this builder makes (nil: off).
    public let sessionCache: TLSSessionCache?
    private var cache: [TLSCertificateInput: TLSServerContext] = [:]
    /// OCSP stapling (nil: `enable-ocsp` off, and no handshake pays for it).
    public let ocspStapler: OCSPStapler?
    /// The default certificate's chain, for its OCSP responder.
    private let defaultChainPEM: [UInt8]?

    /// `defaultCertificate` answers unknown names; nil generates a
    /// self-signed certificate (as ingress-nginx does; log a warning).
    /// `sessionCache` lets a new builder keep the sessions of the one it
    /// replaces; nil makes a new cache (when `settings.sessionCache` is on).
    /// `ocspStapler` likewise keeps the OCSP responses already fetched; nil
    /// makes a new stapler when `settings.enableOCSP` is on.
    public init(
        settings: TLSServerSettings, defaultCertificate: TLSCertificateInput?, ticketKeys: SessionTicketKeys = SessionTicketKeys(),
        sessionCache: TLSSessionCache? = nil, ocspStapler: OCSPStapler? = nil
    ) throws {
        self.settings = settings
        self.ocspStapler = settings.enableOCSP ? ocspStapler ?? OCSPStapler(settings: settings.ocsp) : nil
        self.defaultChainPEM = defaultCertificate?.certificateChainPEM
        self.cipherPolicy = try TLSCipherPolicy(settings)
        self.ticketKeys = ticketKeys
        self.sessionCache = settings.sessionCache
            ? sessionCache ?? TLSSessionCache(capacityBytes: settings.sessionCacheBytes, timeoutSeconds: settings.sessionTimeoutSeconds)
            : nil
        self.front = try TLSServerContext(frontWithSettings: settings, sessionCache: self.sessionCache)
        ticketKeys.install(on: front.context)
        if let defaultCertificate {
            fallbackDefault = try TLSServerContext(
                name: defaultCertificate.name, certificateChainPEM: defaultCertificate.certificateChainPEM,
                privateKeyPEM: defaultCertificate.privateKeyPEM, settings: settings)
        } else {
            // ECDSA unless ssl-ciphers leaves TLS 1.2 suites for RSA keys only.
            let keyType: TLSKeyType = cipherPolicy.coversTLS12(.ecdsa) ? .ecdsa : .rsa
            fallbackDefault = try SelfSignedCertificate.makeContext(settings: settings, keyType: keyType)
        }
        ticketKeys.install(on: fallbackDefault.context)
    }

    /// True when the default certificate was generated at start-up.
    public var defaultIsSelfSigned: Bool { fallbackDefault.name == SelfSignedCertificate.name }

    /// A store serving `certificates`; certificates that fail to load are
    /// reported and their hosts get the default certificate.
    public func build(_ certificates: [TLSCertificateInput]) -> (TLSCertificateStore, [TLSCertificateProblem]) {
        var problems: [TLSCertificateProblem] = []
        if let problem = cipherProblem(fallbackDefault, hosts: ["clients without a matching SNI"]) { problems.append(problem) }
        var exact: [String: TLSServerContext] = [:]
        var wildcard: [String: TLSServerContext] = [:]
        var used: [TLSCertificateInput: TLSServerContext] = [:]
        var stapling = OCSPAttachments()
        if let defaultChainPEM { stapling.attach(fallbackDefault, chainPEM: defaultChainPEM, stapler: ocspStapler, problems: &problems) }
        for input in certificates {
            let context: TLSServerContext
            if let cached = cache[input] {
                context = cached
            } else {
                do {
                    context = try TLSServerContext(
                        name: input.name, certificateChainPEM: input.certificateChainPEM,
                        privateKeyPEM: input.privateKeyPEM, settings: settings, clientVerification: input.clientVerification)
                } catch {
                    problems.append(
                        TLSCertificateProblem(
                            severity: .error, reason: "InvalidCertificate", certificate: input.name,
                            message: "\(error); hosts \(input.hosts.joined(separator: ", ")) get the default certificate"))
                    continue
                }
            }
            ticketKeys.install(on: context.context)
            used[input] = context
            stapling.attach(context, chainPEM: input.certificateChainPEM, stapler: ocspStapler, problems: &problems)
            if let problem = cipherProblem(context, hosts: input.hosts) { problems.append(problem) }
            if let notAfter = context.notAfter, notAfter <= Int(time(nil)) {
                problems.append(
                    TLSCertificateProblem(
                        severity: .warning, reason: "CertificateExpired", certificate: input.name,
                        message: "the certificate has expired; it is served anyway (clients will reject it)"))
            }
            for host in input.hosts {
                let lower = host.lowercased()
                if !context.certificateCovers(host: lower) {
                    problems.append(
                        TLSCertificateProblem(
                            severity: .warning, reason: "CertificateHostMismatch", certificate: input.name,
                            message: "the certificate does not cover host \(lower); it is served anyway"))
                }
                if lower.hasPrefix("*.") {
                    if wildcard[String(lower.dropFirst())] == nil { wildcard[String(lower.dropFirst())] = context }
                } else if exact[lower] == nil {
                    exact[lower] = context
                }
            }
        }
        cache = used
        stapling.finish(stapler: ocspStapler, problems: &problems)
        return (
            TLSCertificateStore(front: front, ticketKeys: ticketKeys, defaultContext: fallbackDefault, exact: exact, wildcard: wildcard),
            problems
        )
    }
}

extension TLSStoreBuilder {
    /// A warning when TLS 1.2 clients cannot complete a handshake with
    /// `context`'s key under `ssl-ciphers` (TLS 1.3 clients still can).
    func cipherProblem(_ context: TLSServerContext, hosts: [String]) -> TLSCertificateProblem? {
        let keyType = context.keyType
        guard !cipherPolicy.coversTLS12(keyType) else { return nil }
        let usable = cipherPolicy.tls12KeyTypes.map(\.rawValue).sorted().joined(separator: ", ")
        return TLSCertificateProblem(
            severity: .warning, reason: TLSCertificateProblem.noCipherSuiteForKey, certificate: context.name,
            message: "ssl-ciphers offers TLS 1.2 no suite for this certificate's \(keyType?.rawValue ?? "unsupported") key"
                + " (only for \(usable.isEmpty ? "none" : usable) keys): TLS 1.2 clients cannot connect to \(hosts.joined(separator: ", "))")
    }
}

/// The OCSP side of one store build: which certificates are stapled, and
/// what to report about them.
struct OCSPAttachments {
    private var entries: [OCSPEntry] = []
    private var seen: Set<ObjectIdentifier> = []

    /// Staples `context`'s certificate when it names a responder; with OCSP
    /// off, warns about a must-staple certificate (clients will refuse it).
    mutating func attach(_ context: TLSServerContext, chainPEM: [UInt8], stapler: OCSPStapler?, problems: inout [TLSCertificateProblem]) {
        guard let stapler else {
            if context.mustStaple {
                problems.append(
                    TLSCertificateProblem(
                        severity: .warning, reason: "MustStapleWithoutOCSP", certificate: context.name,
                        message: "the certificate requires OCSP stapling (TLS feature status_request) but enable-ocsp is false: clients that honour must-staple refuse it"))
            }
            return
        }
        let entry: OCSPEntry?
        if let attached = context.ocspEntry {
            entry = attached
        } else {
            do {
                entry = try stapler.entry(forChainPEM: chainPEM, name: context.name)
            } catch {
                problems.append(
                    TLSCertificateProblem(severity: .warning, reason: "OCSPUnavailable", certificate: context.name, message: "\(error)"))
                return
            }
            if let entry { context.installStapling(entry) }
        }
        if let entry, seen.insert(ObjectIdentifier(entry)).inserted { entries.append(entry) }
    }

    /// Drops the certificates no longer served, waits (bounded) for the
    /// first response of new must-staple certificates, and reports those
    /// served without a staple and those revoked.
    func finish(stapler: OCSPStapler?, problems: inout [TLSCertificateProblem]) {
        guard let stapler else { return }
        stapler.keepOnly(entries)
        let mustStaple = entries.filter(\.subject.mustStaple)
        stapler.waitForFirstAttempt(mustStaple, seconds: stapler.settings.timeoutSeconds + 1)
        let now = Int(time(nil))
        for entry in entries {
            let failure = stapler.lastFailure(of: entry)
            if failure?.reason == .revoked {
                problems.append(
                    TLSCertificateProblem(
                        severity: .error, reason: "CertificateRevoked", certificate: entry.name,
                        message: "the OCSP responder says this certificate is revoked; no OCSP response is stapled: replace the certificate"))
            } else if entry.subject.mustStaple, entry.current(at: now) == nil {
                problems.append(
                    TLSCertificateProblem(
                        severity: .warning, reason: "MustStapleWithoutStaple", certificate: entry.name,
                        message: "the certificate requires OCSP stapling but no current OCSP response is available yet"
                            + (failure.map { " (\($0))" } ?? "") + "; it is served without one until a fetch succeeds"))
            }
        }
    }
}
