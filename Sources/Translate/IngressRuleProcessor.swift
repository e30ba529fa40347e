import Kube
import RegexEngine
import RouteModel

/// A (host, path, match) that one route rule of an Ingress asks for.
struct RouteKey: Hashable {
    var host: HostMatch
    var path: String
    var match: PathMatch
}

/// One path rule of an Ingress, checked: the route it claims and its backend.
struct RouteClaim: Equatable {
    var key: RouteKey
    /// `spec.rules[i].http.paths[j]`.
    var location: String
    var rewriteTarget: String?
    /// The Ingress's policy (source ranges, body size, refusal).
    var policy: RoutePolicy
    /// The Ingress's `ssl-redirect`, `force-ssl-redirect`, `use-port-in-redirects`.
    var httpsRedirect: HTTPSRedirect
    var backend: BackendClaim
}

/// The field paths nearly every Ingress has (`spec.rules[0].http.paths[0]`
/// and its backend's), made once. A route claim keeps its location and
/// its backend's field, and the translator keeps every claim: a string
/// that long is a heap block of its own (64-80 bytes) per claim, twice,
/// unless equal ones share one.
enum FieldPaths {
    private static let common: Set<String> = {
        var paths: Set<String> = ["spec.defaultBackend.service", "spec.defaultBackend.resource"]
        for rule in 0..<4 {
            for path in 0..<16 {
                let location = "spec.rules[\(rule)].http.paths[\(path)]"
                paths.insert(location)
                paths.insert(location + ".backend.service")
                paths.insert(location + ".backend.resource")
            }
        }
        return paths
    }()

    /// The shared copy of `path` when it is a common one, else `path`.
    static func shared(_ path: String) -> String {
        guard let index = common.firstIndex(of: path) else { return path }
        return common[index]
    }
}

/// What one Ingress asks for, read from the Ingress alone (and the Secrets
/// its annotations name): the hosts, route claims and default backend it
/// wants, and what is wrong with it. Whether a claim wins depends on the
/// older Ingresses: `IngressRuleProcessor` and `IncrementalTranslator`
/// decide that.
struct IngressRoutes: Equatable {
    /// Problems of this Ingress on its own (hosts, paths, annotations).
    var diagnostics: [Diagnostic] = []
    /// False when the Ingress is not served at all (a canary): then it
    /// claims nothing.
    var usable = true
    /// Valid rule hosts, each once, in the order written.
    var hosts: [HostMatch] = []
    /// Route claims in the order written (rule, then path).
    var claims: [RouteClaim] = []
    /// `spec.defaultBackend`, checked.
    var defaultBackend: BackendClaim?
    /// Hosts `defaultBackend` is the default of: the rule hosts, or `.any`
    /// for an Ingress without rules.
    var defaultHosts: [HostMatch] = []
    /// The hosts of its `spec.tls` entries (lower case, each once), whether
    /// or not their Secrets load: they make `ssl-redirect` apply to those
    /// hosts' routes, from any Ingress (`RouteModel.httpsHosts`).
    var tlsHosts: [String] = []

    /// Reads `ingress`; Secrets come from `secrets`, which records the keys
    /// asked for. `global` fills what the annotations leave unset.
    init(_ ingress: Ingress, secrets: inout SecretLookup, global: GlobalPolicy) {
        let key = ingress.key
        let namespace = ingress.metadata.namespace
        let review = AnnotationReview(ingress)
        diagnostics += review.diagnostics
        for entry in ingress.spec.tls {
            for host in entry.hosts where !host.isEmpty {
                let lower = host.lowercased()
                if !tlsHosts.contains(lower) { tlsHosts.append(lower) }
            }
        }
        guard !review.isCanary else {
            usable = false
            return
        }
        let annotations = IngressAnnotations.parse(ingress, secrets: &secrets, into: &diagnostics)
        let policy = global.policy(for: review)
        let httpsRedirect = RedirectAnnotations.parse(ingress.metadata.annotations, global: global, ingress: key, into: &diagnostics)
        for (ruleIndex, rule) in ingress.spec.rules.enumerated() {
            guard let host = HostRule.parse(rule.host) else {
                diagnostics.append(Diagnostic(.error, key, field: "spec.rules[\(ruleIndex)].host", reason: "InvalidHost",
                    message: "host \"\(rule.host ?? "")\" is not a host name or *.suffix wildcard; rule skipped"))
                continue
            }
            if !hosts.contains(host) { hosts.append(host) }
            for (pathIndex, path) in (rule.http?.paths ?? []).enumerated() {
                let location = FieldPaths.shared("spec.rules[\(ruleIndex)].http.paths[\(pathIndex)]")
                let regex = annotations.implementationSpecificIsRegex
                switch PathRule.parse(path: path.path, pathType: path.pathType, implementationSpecificIsRegex: regex) {
                case let .failure(problem):
                    diagnostics.append(Diagnostic(.error, key, field: location + problem.field, reason: problem.reason,
                        message: "\(problem.message); path skipped"))
                case let .success(parsed):
                    if let warning = parsed.warning {
                        diagnostics.append(Diagnostic(.warning, key, field: location + ".pathType", reason: "InvalidPath", message: warning))
                    }
                    if let target = annotations.rewriteTarget {
                        let highest = IngressAnnotations.highestGroup(target)
                        if highest > parsed.groups {
                            diagnostics.append(Diagnostic(.warning, key, field: location + ".path", reason: "RewriteGroupMissing",
                                message: "rewrite-target \"\(target)\" names $\(highest) but path \"\(parsed.path)\" has \(parsed.groups) capture group(s); the missing ones expand to nothing"))
                        }
                    }
                    claims.append(RouteClaim(
                        key: RouteKey(host: host, path: parsed.path, match: parsed.match), location: location,
                        rewriteTarget: annotations.rewriteTarget, policy: policy, httpsRedirect: httpsRedirect,
                        backend: BackendClaim(
                            path.backend, namespace: namespace, referrer: key, field: location + ".backend",
                            upstream: annotations.upstream)))
                }
            }
        }
        guard let backend = ingress.spec.defaultBackend else { return }
        // A host's default backend carries no policy in the model: the
        // default of an Ingress with a policy (refused, source ranges, body
        // size) is withheld (its requests get the next default or 404),
        // never served unprotected.
        guard review.policy.isEmpty else {
            if !review.isRefused {
                diagnostics.append(Diagnostic(.warning, key, field: "spec.defaultBackend", reason: "UnsupportedDefaultBackend",
                    message: "the default backend of an Ingress with source ranges or a body size is not served yet (they cannot be enforced on it); write it as a Prefix / rule"))
            }
            return
        }
        defaultBackend = BackendClaim(
            backend, namespace: namespace, referrer: key, field: "spec.defaultBackend", upstream: annotations.upstream)
        defaultHosts = ingress.spec.rules.isEmpty ? [.any] : hosts
    }

    /// The `PathConflict` diagnostic for a claim that an older claim holds.
    static func conflict(
        _ claim: RouteClaim, of ingress: ObjectKey, source: String, owner: (source: String, location: String)
    ) -> Diagnostic {
        let key = claim.key
        let by = owner.source == source
            ? "an earlier path of this Ingress (\(owner.location))" : "Ingress \(owner.source), which is older"
        return Diagnostic(.warning, ingress, field: claim.location + ".path", reason: "PathConflict",
            message: "\(HostRule.describe(key.host)) \(PathRule.describe(key.match)) \(key.path) is already served by \(by); ignored")
    }

    /// The `DefaultBackendConflict` diagnostic for an Ingress whose default
    /// for `host` an older Ingress holds.
    static func defaultConflict(host: HostMatch, of ingress: ObjectKey, owner: String) -> Diagnostic {
        Diagnostic(.warning, ingress, field: "spec.defaultBackend", reason: "DefaultBackendConflict",
            message: "default backend for \(HostRule.describe(host)) is already set by Ingress \(owner), which is older; ignored")
    }
}

/// Turns Ingress rules and `spec.defaultBackend` into virtual hosts.
///
/// Feed Ingresses oldest first: the first Ingress to claim a (host, path,
/// match) keeps it and later claimants get a `PathConflict` diagnostic; the
/// same holds for a host's default backend (`DefaultBackendConflict`). A
/// claim with a malformed backend holds nothing.
///
/// `spec.defaultBackend` becomes the default of every host the Ingress names
/// in its rules (the `.any` host included when a rule has no host). An
/// Ingress with a default backend and no rules at all is a catch-all: its
/// backend becomes the `.any` host's default, answering requests for hosts
/// no rule names (before the global `--default-backend-service`).
struct IngressRuleProcessor {
    private let context: TranslationContext
    private let clusters: ClusterResolver

    private var hosts: Set<HostMatch> = []
    /// The `spec.tls` hosts of every served Ingress.
    private var tlsHosts: Set<String> = []
    private var routes: [RouteKey: Route] = [:]
    /// Host → (cluster, source Ingress).
    private var hostDefaults: [HostMatch: (cluster: String, source: String)] = [:]

    /// The global policy keys, merged into every route's policy.
    private let global: GlobalPolicy

    init(context: TranslationContext, clusters: ClusterResolver, global: GlobalPolicy) {
        self.context = context
        self.clusters = clusters
        self.global = global
    }

    /// Adds one Ingress's hosts, routes and default backend.
    mutating func process(_ ingress: Ingress) {
        var secrets = SecretLookup(context.secretsByKey)
        let wanted = IngressRoutes(ingress, secrets: &secrets, global: global)
        for diagnostic in wanted.diagnostics { context.report(diagnostic) }
        tlsHosts.formUnion(wanted.tlsHosts)
        guard wanted.usable else { return }
        let key = ingress.key
        let source = ingress.sourceName
        hosts.formUnion(wanted.hosts)
        for claim in wanted.claims {
            if let owner = routes[claim.key] {
                context.report(IngressRoutes.conflict(claim, of: key, source: source, owner: (owner.source, owner.location)))
                continue
            }
            guard let cluster = clusters.cluster(for: claim.backend, referrer: key) else { continue }
            routes[claim.key] = Route(
                path: claim.key.path, match: claim.key.match, cluster: cluster, source: source,
                location: claim.location, rewriteTarget: claim.rewriteTarget, policy: claim.policy,
                httpsRedirect: claim.httpsRedirect)
        }
        guard let backend = wanted.defaultBackend else { return }
        for host in wanted.defaultHosts {
            if let owner = hostDefaults[host] {
                if owner.source != source {
                    context.report(IngressRoutes.defaultConflict(host: host, of: key, owner: owner.source))
                }
                continue
            }
            guard let cluster = clusters.cluster(for: backend, referrer: key) else { continue }
            hosts.insert(host)
            hostDefaults[host] = (cluster, source)
        }
    }

    /// The virtual hosts, sorted by host; routes sorted by path, Exact before Prefix.
    func virtualHosts() -> [VirtualHost] {
        var byHost: [HostMatch: [Route]] = [:]
        for (key, route) in routes {
            byHost[key.host, default: []].append(route)
        }
        return hosts.sorted().map { host in
            let sortedRoutes = (byHost[host] ?? []).sorted(by: IngressRuleProcessor.routeOrder)
            return VirtualHost(host: host, routes: sortedRoutes, defaultCluster: hostDefaults[host]?.cluster)
        }
    }

    /// `RouteModel.httpsHosts`: the `spec.tls` hosts of the Ingresses processed, sorted.
    func httpsHosts() -> [String] { tlsHosts.sorted() }

    /// A virtual host's route order: by path, then Exact, Prefix, regex.
    static func routeOrder(_ lhs: Route, _ rhs: Route) -> Bool {
        (lhs.path, lhs.match) < (rhs.path, rhs.match)
    }
}

/// Validation of Ingress rule hosts.
enum HostRule {
    /// `HostMatch` for a rule's host: nil/empty → `.any`, `*.example.com` →
    /// `.wildcard(suffix: ".example.com")`, else an exact lower-cased name.
    /// nil when the host is malformed.
    static func parse(_ host: String?) -> HostMatch? {
        guard let host, !host.isEmpty else { return .any }
        let lower = host.lowercased()
        if lower.hasPrefix("*.") {
            let suffix = lower.dropFirst(2)
            guard isHostName(suffix) else { return nil }
            return .wildcard(suffix: "." + suffix)
        }
        guard isHostName(lower[...]) else { return nil }
        return .exact(lower)
    }

    /// Labels of letters, digits, `-` and `_`, separated by single dots.
    private static func isHostName(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        var previousWasDot = true
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "."):
                if previousWasDot { return false }
                previousWasDot = true
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"):
                previousWasDot = false
            default:
                return false
            }
        }
        return !previousWasDot
    }

    /// `host example.com`, `hosts *.example.com`, `requests without a matching host`.
    static func describe(_ host: HostMatch) -> String {
        switch host {
        case let .exact(name): return "host \(name)"
        case let .wildcard(suffix): return "host *\(suffix)"
        case .any: return "rules without a host"
        }
    }
}

/// Validation and normalisation of Ingress paths.
enum PathRule {
    struct Parsed {
        var path: String
        var match: PathMatch
        var warning: String?
        /// Capture groups of a regex path (0 otherwise).
        var groups = 0
    }

    struct Problem: Error {
        var message: String
        /// Suffix of the path's field path: `.path` or `.pathType`.
        var field = ".path"
        var reason = "InvalidPath"
    }

    /// `Exact`, `Prefix`, `ImplementationSpecific`, `Regex`.
    static func describe(_ match: PathMatch) -> String {
        switch match {
        case .exact: return "Exact"
        case .prefix: return "Prefix"
        case .regex: return "regex"
        }
    }

    /// `Exact` → `.exact`; `Prefix` → `.prefix` with trailing `/` removed
    /// (except for `/`); `ImplementationSpecific` → `.regex` when the
    /// Ingress asks for regexes, else `.prefix`. A missing `pathType` (the API
    /// server requires one) is read as `ImplementationSpecific`, with a warning.
    static func parse(path: String?, pathType: String?, implementationSpecificIsRegex: Bool = false) -> Result<Parsed, Problem> {
        var warning: String? = nil
        let implementationSpecific = implementationSpecificIsRegex ? PathMatch.regex : .prefix
        let match: PathMatch
        switch pathType {
        case "Exact": match = .exact
        case "Prefix": match = .prefix
        case "ImplementationSpecific": match = implementationSpecific
        case nil:
            match = implementationSpecific
            warning = "pathType is missing; treated as ImplementationSpecific (\(describe(match)))"
        case let other?:
            return .failure(Problem(
                message: "pathType \"\(other)\" is not Exact, Prefix or ImplementationSpecific", field: ".pathType"))
        }
        var text = path ?? ""
        if text.isEmpty {
            guard pathType == nil || pathType == "ImplementationSpecific" else {
                return .failure(Problem(message: "path is empty; \(pathType ?? "") paths must start with \"/\""))
            }
            text = "/"
        }
        guard text.utf8.first == UInt8(ascii: "/") else {
            return .failure(Problem(message: "path \"\(text)\" must start with \"/\""))
        }
        if match == .regex {
            for byte in text.utf8 where byte <= 0x20 || byte == 0x7f {
                return .failure(Problem(message: "regex path \"\(text)\" contains a space or control character"))
            }
            do {
                let regex = try LinearRegex(text)
                return .success(Parsed(path: text, match: .regex, warning: warning, groups: regex.groupCount))
            } catch {
                return .failure(Problem(
                    message: "path \"\(text)\" is not a valid RE2 regular expression: \(error.description)",
                    reason: "InvalidRegex"))
            }
        }
        for byte in text.utf8 where byte <= 0x20 || byte == 0x7f || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") {
            return .failure(Problem(message: "path \"\(text)\" contains a space, control character, \"?\" or \"#\""))
        }
        if match == .prefix {
            while text.utf8.count > 1, text.hasSuffix("/") { text.removeLast() }
        }
        return .success(Parsed(path: text, match: match, warning: warning))
    }
}
