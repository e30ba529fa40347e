import ArgumentParser
import FoundationEssentials
import RouteModel
import Routing
import Support
import Translate

/// `postern route`: explain where one request would go.
struct RouteRequest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Print which Ingress, rule, path and backend a request would take, and why the others lost.")

    @OptionGroup var options: ManifestOptions

    @Argument(help: "The request URL, e.g. http://shop.example.com/api/items?x=1 (or just /path with --header 'Host: ...').")
    var url: String

    @Option(name: .customLong("header"), help: "A request header 'Name: value' (Host overrides the URL's host); repeatable.")
    var headers: [String] = []

    /// Host and path from the URL and the Host header.
    static func split(url: String, headers: [String]) throws -> (host: String, path: String) {
        var rest = Substring(url)
        var host = ""
        if let scheme = rest.firstRange(of: "://") {
            rest = rest[scheme.upperBound...]
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            host = String(rest[..<end])
            if let at = host.lastIndex(of: "@") { host = String(host[host.index(after: at)...]) }
            rest = rest[end...]
        }
        var path = String(rest)
        if path.isEmpty || path.hasPrefix("?") { path = "/" + path }
        if let fragment = path.firstIndex(of: "#") { path = String(path[..<fragment]) }
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else {
                throw SettingsError("--header \(header): expected 'Name: value'")
            }
            if header[..<colon].trimmingWhitespace().lowercased() == "host" {
                host = header[header.index(after: colon)...].trimmingWhitespace()
            }
        }
        return (host, path)
    }

    func run() throws {
        let result: DirectoryTranslation
        let request: (host: String, path: String)
        do {
            request = try RouteRequest.split(url: url, headers: headers)
            result = try options.translateDirectory()
        } catch let error as SettingsError {
            throw exitWithSettingsError(error)
        }
        let explanation = result.table.explain(host: request.host, path: request.path)
        print("request: host \"\(request.host)\" path \(request.path)")
        if explanation.matchedPath != request.path.prefix(while: { $0 != "?" }) {
            print("matched as: \(explanation.matchedPath) (dot-segments removed)")
        }
        print("host: \(explanation.hostReason)")
        for candidate in explanation.candidates {
            let route = candidate.route
            let rule = "\(PathRuleName.describe(route.match)) \(route.path) -> \(route.cluster)  (Ingress \(route.source) \(route.location))"
            switch candidate.verdict {
            case .chosen: print("  chosen:    \(rule)")
            case let .outranked(why): print("  outranked: \(rule): \(why)")
            case .noMatch: print("  no match:  \(rule)")
            }
        }
        // Rules that never made it into the table because an older Ingress holds the same path.
        if let host = explanation.host {
            let prefix = PathRuleName.describeHost(host) + " "
            for diagnostic in result.diagnostics where diagnostic.reason == "PathConflict" && diagnostic.message.hasPrefix(prefix) {
                print("  ignored:   Ingress \(diagnostic.namespace)/\(diagnostic.name) \(diagnostic.fieldPath ?? ""): \(diagnostic.message)")
            }
        }
        switch explanation.outcome {
        case let .rule(route):
            print("result: Ingress \(route.source) \(route.location), \(PathRuleName.describe(route.match)) \(route.path), backend \(route.cluster)")
        case let .hostDefault(cluster):
            print("result: no path of this host matches; the Ingress default backend \(cluster) answers")
        case let .globalDefault(cluster):
            print("result: no rule matches; the global default backend \(cluster) answers")
        case .notFound:
            print("result: 404: \(explanation.host == nil ? "no rule for this host" : "no path of this host matches and there is no default backend")")
        }
        if let cluster = explanation.cluster {
            if cluster.endpoints.isEmpty {
                print("backend: 503: \(cluster.unavailableReason ?? "no ready endpoints")")
            } else {
                print("backend: \(cluster.name): \(cluster.endpoints.map(\.description).joined(separator: ", "))")
            }
        }
        if let rewritten = explanation.rewrittenPath {
            // The proxy keeps the client's query after a rewritten path.
            let query = request.path.firstIndex(of: "?").map { String(request.path[$0...]) } ?? ""
            print("upstream path: \(rewritten)\(query) (rewrite-target)")
        }
    }
}

/// Names for rule kinds and hosts as diagnostics spell them.
enum PathRuleName {
    static func describe(_ match: PathMatch) -> String {
        switch match {
        case .exact: return "Exact"
        case .prefix: return "Prefix"
        case .regex: return "regex"
        }
    }

    static func describeHost(_ host: HostMatch) -> String {
        switch host {
        case let .exact(name): return "host \(name)"
        case let .wildcard(suffix): return "host *\(suffix)"
        case .any: return "rules without a host"
        }
    }
}
