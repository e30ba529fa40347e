import Kube
import RouteModel

/// What Postern made of one annotation of one Ingress.
public struct AnnotationVerdict: Sendable, Hashable, Codable {
    /// The four outcomes `postern check` reports.
    public enum Outcome: String, Sendable, Hashable, Codable {
        /// Read and applied.
        case honoured
        /// Accepted; it cannot change what Postern does.
        case withoutEffect = "no-effect"
        /// Not implemented (or not a known key) and ignored, with a warning.
        case ignored
        /// Unsupported and security-relevant, or an invalid value of an
        /// honoured key: the Ingress's rules answer 503.
        case refused
    }

    /// The full annotation key.
    public var key: String
    public var value: String
    public var outcome: Outcome
    /// Why, for an operator (empty for a plainly honoured key).
    public var reason: String
}

/// The ingress-nginx (and `postern.dev/`) annotations of one Ingress,
/// reviewed against `AnnotationCatalog`, and the route policy they ask for.
///
/// Fail closed: an unsupported key whose absence would leave the routes
/// less protected, or an invalid value of an honoured key, sets
/// `policy.refusal`, so every route of the Ingress answers 503 and never
/// reaches its backend; other Ingresses are untouched.
public struct AnnotationReview: Sendable, Equatable {
    /// One verdict per annotation under the two prefixes, sorted by key.
    public var verdicts: [AnnotationVerdict] = []
    /// Source ranges and body size as parsed, with `refusal` set when any
    /// verdict is `.refused`.
    public var policy = RoutePolicy()
    /// `canary: "true"`: canary Ingresses are not implemented, so the
    /// Ingress is not served at all (its paths stay with the main Ingress).
    public var isCanary = false
    /// Diagnostics for refused, ignored and unknown keys.
    public var diagnostics: [Diagnostic] = []
    /// The Ingress sets its own `proxy-body-size` (so the global one does not apply).
    public var setsBodySize = false
    /// The Ingress sets its own allow list (`whitelist-` / `allowlist-source-range`).
    public var setsAllowList = false
    /// The Ingress sets its own `denylist-source-range`.
    public var setsDenyList = false

    /// A review of no annotations.
    public init() {}

    /// True when the Ingress's rules are kept out of service.
    public var isRefused: Bool { policy.refusal != nil }

    static let allowlistKey = AnnotationCatalog.nginxPrefix + "allowlist-source-range"
    static let whitelistKey = AnnotationCatalog.nginxPrefix + "whitelist-source-range"
    static let denylistKey = AnnotationCatalog.nginxPrefix + "denylist-source-range"
    static let bodySizeKey = AnnotationCatalog.nginxPrefix + "proxy-body-size"
    static let canaryKey = AnnotationCatalog.nginxPrefix + "canary"

    /// Reviews the annotations of `ingress`.
    public init(_ ingress: Ingress) {
        let object = ingress.key
        let annotations = ingress.metadata.annotations
        var refusals: [String] = []
        for key in annotations.keys.sorted() {
            guard let value = annotations[key] else { continue }
            let verdict: AnnotationVerdict
            if key.hasPrefix(AnnotationCatalog.nginxPrefix) {
                verdict = review(key: key, value: value, annotations: annotations)
            } else if key.hasPrefix(AnnotationCatalog.posternPrefix) {
                verdict = AnnotationVerdict(
                    key: key, value: value, outcome: .ignored, reason: "unknown: Postern defines no annotation of this name")
            } else {
                continue
            }
            verdicts.append(verdict)
            let field = IngressAnnotations.field(key)
            switch verdict.outcome {
            case .honoured, .withoutEffect:
                break
            case .ignored:
                let known = AnnotationCatalog.entry(forKey: key) != nil
                diagnostics.append(Diagnostic(.warning, object, field: field, reason: known ? "UnsupportedAnnotation" : "UnknownAnnotation",
                    message: "annotation \(key): \(verdict.reason); ignored"))
            case .refused:
                let unsupported = AnnotationCatalog.entry(forKey: key)?.support == .unsupportedSecurity
                refusals.append(unsupported ? "annotation \(key) is not supported" : "annotation \(key) has an invalid value")
                diagnostics.append(Diagnostic(.error, object, field: field, reason: unsupported ? "UnsupportedAnnotation" : "InvalidAnnotation",
                    message: "annotation \(key): \(verdict.reason); the Ingress's rules answer 503 until "
                        + (unsupported ? "it is removed" : "the value is fixed")))
            }
        }
        if isCanary {
            // A canary's paths duplicate its main Ingress's: serving (or
            // refusing) them could take over the main Ingress's traffic.
            diagnostics = [Diagnostic(.warning, object, field: IngressAnnotations.field(AnnotationReview.canaryKey),
                reason: "UnsupportedAnnotation",
                message: "canary Ingresses are not supported yet; this Ingress is not served and all traffic stays on the main Ingress")]
            return
        }
        if !refusals.isEmpty { policy.refusal = refusals.joined(separator: "; ") }
    }

    /// The verdict on one `nginx.ingress.kubernetes.io/` key; fills `policy`.
    private mutating func review(key: String, value: String, annotations: [String: String]) -> AnnotationVerdict {
        func verdict(_ outcome: AnnotationVerdict.Outcome, _ reason: String) -> AnnotationVerdict {
            AnnotationVerdict(key: key, value: value, outcome: outcome, reason: reason)
        }
        guard let entry = AnnotationCatalog.entry(forKey: key) else {
            let name = String(key.dropFirst(AnnotationCatalog.nginxPrefix.count))
            let hint = AnnotationCatalog.closestName(to: name).map { " (did you mean \(AnnotationCatalog.nginxPrefix)\($0)?)" } ?? ""
            return verdict(.ignored, "unknown: not an annotation ingress-nginx documents\(hint)")
        }
        switch entry.support {
        case .withoutEffect:
            return verdict(.withoutEffect, entry.note)
        case .unsupported:
            if key == AnnotationReview.canaryKey {
                guard GoBool.parse(value) == true else {
                    return verdict(.withoutEffect, "the Ingress is not a canary")
                }
                isCanary = true
            }
            return verdict(.ignored, "not supported: \(entry.note)")
        case .unsupportedSecurity:
            if let why = AnnotationReview.asksForNothing(name: entry.name, value: value) {
                return verdict(.withoutEffect, why)
            }
            return verdict(.refused, "not supported, and serving without it would leave the routes less protected: \(entry.note)")
        case .honoured:
            if let problem = problem(key: key, value: value, annotations: annotations) {
                return verdict(.refused, "invalid value: \(problem)")
            }
            return verdict(.honoured, entry.note)
        }
    }

    /// Why a security-relevant key asks for nothing with this value (so
    /// ignoring it weakens nothing), or nil: an empty value, a switch
    /// turned off (`enable-modsecurity: "false"`, which ingress-nginx users
    /// write to exempt a path from a global WAF), a limit of 0 (nginx's
    /// "no limit"), `satisfy: all` (the default).
    static func asksForNothing(name: String, value: String) -> String? {
        let trimmed = value.filter { $0 != " " && $0 != "\t" && $0 != "\n" && $0 != "\r" }
        if trimmed.isEmpty { return "empty: asks for nothing" }
        switch name {
        case "enable-modsecurity", "enable-owasp-core-rules", "ssl-passthrough":
            return GoBool.parse(value) == false ? "turned off: Postern has nothing to turn off" : nil
        case "limit-connections", "limit-rps", "limit-rpm", "limit-rate", "limit-rate-after", "global-rate-limit":
            return trimmed == "0" ? "0: no limit" : nil
        case "satisfy":
            return trimmed == "all" ? "all: the default" : nil
        default:
            return nil
        }
    }

    /// Why `value` is not a valid value of the honoured `key`, or nil; the
    /// policy keys are parsed into `policy` on the way.
    private mutating func problem(key: String, value: String, annotations: [String: String]) -> String? {
        let name = key.dropFirst(AnnotationCatalog.nginxPrefix.count)
        switch name {
        case "use-regex", "use-port-in-redirects":
            return GoBool.parse(value) == nil ? "\"\(value)\" is not true or false" : nil
        case "ssl-redirect", "force-ssl-redirect", "auth-tls-pass-certificate-to-upstream":
            return ["true", "false"].contains(value.lowercased()) ? nil : "\"\(value)\" is not true or false"
        case "proxy-ssl-verify":
            return ["on", "off", "true", "false"].contains(value.lowercased()) ? nil : "\"\(value)\" is not on or off"
        case "auth-tls-verify-client":
            return ["on", "off", "optional", "optional_no_ca"].contains(value.lowercased())
                ? nil : "\"\(value)\" is not on, optional, optional_no_ca or off"
        case "auth-tls-verify-depth":
            guard let depth = Int(value), depth >= 1, depth <= 10 else { return "\"\(value)\" is not a number from 1 to 10" }
            return nil
        case "backend-protocol":
            return UpstreamSettings.WireProtocol(rawValue: value.uppercased()) == nil
                ? "\"\(value)\" is not HTTP, HTTPS, GRPC, GRPCS or H2C" : nil
        case "rewrite-target":
            return IngressAnnotations.rewriteTargetProblem(value).map { "\"\(value)\" \($0)" }
        case "auth-tls-secret", "proxy-ssl-secret":
            let parts = value.split(separator: "/", omittingEmptySubsequences: false)
            let wellFormed = parts.count <= 2 && parts.allSatisfy { part in
                !part.isEmpty && part.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
            }
            return wellFormed ? nil : "\"\(value)\" is not NAME or NAMESPACE/NAME"
        case "proxy-ssl-name":
            return value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) ? nil : "\"\(value)\" contains a space or control character"
        case "whitelist-source-range", "allowlist-source-range":
            switch SourceRangeList.parse(value) {
            case let .failure(problem): return problem.text
            case let .success(ranges):
                let other = name == "whitelist-source-range" ? AnnotationReview.allowlistKey : AnnotationReview.whitelistKey
                if name == "allowlist-source-range", let otherText = annotations[other],
                    case let .success(otherRanges) = SourceRangeList.parse(otherText), otherRanges != ranges
                {
                    return "it differs from \(other); give one of the two"
                }
                policy.allowedSourceRanges = ranges
                setsAllowList = true
                return nil
            }
        case "denylist-source-range":
            switch SourceRangeList.parse(value) {
            case let .failure(problem): return problem.text
            case let .success(ranges):
                policy.deniedSourceRanges = ranges
                setsDenyList = true
                return nil
            }
        case "proxy-body-size":
            switch NginxSize.parse(value) {
            case nil: return "\"\(value)\" is not a size (bytes, or a number with k, m or g)"
            case let .some(size):
                policy.maximumBodySize = size == 0 ? nil : size
                setsBodySize = true
                return nil
            }
        default:
            return nil
        }
    }
}

extension RouteModel {
    /// The Ingresses (`namespace/name`) with a refused route, for the
    /// `postern_ingresses_refused` metric and reports.
    public var refusedIngresses: Set<String> {
        var sources: Set<String> = []
        for host in virtualHosts {
            for route in host.routes where route.policy.refusal != nil { sources.insert(route.source) }
        }
        return sources
    }
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses for boolean annotations.
enum GoBool {
    static func parse(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": return true
        case "0", "f", "F", "false", "FALSE", "False": return false
        default: return nil
        }
    }
}

/// A comma-separated list of IPv4/IPv6 addresses and CIDRs, as
/// `whitelist-source-range` and `denylist-source-range` take it.
enum SourceRangeList {
    struct Problem: Error, Equatable {
        var text: String
    }

    /// The ranges, sorted and without repeats. Spaces around entries and
    /// empty entries (a trailing comma) are allowed; an invalid entry, or a
    /// list with no entry at all, fails the whole list (fail closed).
    static func parse(_ text: String) -> Result<[IPRange], Problem> {
        var ranges: Set<IPRange> = []
        for entry in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = entry.trimmingCharacters(in: " \t")
            if trimmed.isEmpty { continue }
            guard let range = IPRange(parsing: trimmed) else {
                return .failure(Problem(text: "\"\(trimmed)\" is not an IPv4 or IPv6 address or CIDR"))
            }
            ranges.insert(range)
        }
        guard !ranges.isEmpty else { return .failure(Problem(text: "the list of ranges is empty")) }
        return .success(ranges.sorted())
    }
}

/// nginx's size syntax (`client_max_body_size`): bytes, or a number with a
/// `k`/`K`, `m`/`M` or `g`/`G` suffix.
enum NginxSize {
    /// The size in bytes, or nil when the text is not a size or overflows.
    static func parse(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var multiplier: UInt64 = 1
        switch digits.last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: break
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 19, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
            let number = UInt64(digits)
        else { return nil }
        let (product, overflow) = number.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
}

extension Substring {
    /// Without leading and trailing characters from `set`.
    fileprivate func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}

/// The annotation review of every Ingress this controller serves (by class,
/// as `translate` selects them), sorted by namespace and name: what
/// `postern check` reports for a migration from ingress-nginx.
public func reviewAnnotations(_ snapshot: ObjectSnapshot, options: TranslateOptions) -> [(ingress: ObjectKey, review: AnnotationReview)] {
    let classFilter = IngressClassFilter(options: options, classes: snapshot.ingressClasses)
    return snapshot.ingresses.filter { classFilter.serves($0) }
        .sorted { ($0.metadata.namespace, $0.metadata.name) < ($1.metadata.namespace, $1.metadata.name) }
        .map { ($0.key, AnnotationReview($0)) }
}
