import RegexEngine
import RouteModel

/// Why a request goes where it goes: the virtual host chosen, every rule of
/// that host with its verdict, and what answered. Built off the data path,
/// for `postern route`; its outcome always agrees with `route(host:path:)`.
public struct RouteExplanation: Sendable {
    /// A rule of the chosen host and what became of it.
    public struct Candidate: Sendable {
        public var route: Route
        public var verdict: Verdict
    }

    /// What became of one rule.
    public enum Verdict: Sendable, Equatable {
        /// This rule answers the request.
        case chosen
        /// The rule matches but another one takes precedence; says why.
        case outranked(String)
        /// The rule does not match the path.
        case noMatch
    }

    /// What answers the request.
    public enum Outcome: Sendable {
        /// A path rule of the chosen host.
        case rule(Route)
        /// The chosen host's default backend (an Ingress `spec.defaultBackend`).
        case hostDefault(String)
        /// The global `--default-backend-service`.
        case globalDefault(String)
        /// Nothing: 404.
        case notFound
    }

    /// The path as matched: no query, dot-segments removed.
    public var matchedPath: String
    /// The virtual host chosen, nil when no host (and no host-less rule) applies.
    public var host: HostMatch?
    /// One line on how the host was chosen.
    public var hostReason: String
    /// Every rule of the chosen host, in precedence order.
    public var candidates: [Candidate]
    public var outcome: Outcome
    /// The path sent upstream when a rewrite applies.
    public var rewrittenPath: String?
    /// The cluster that answers, nil for 404.
    public var cluster: CompiledCluster?
}

extension RoutingTable {
    /// Explains the routing of `host` and `path` (a `?query` is ignored).
    public func explain(host: String, path: String) -> RouteExplanation {
        var path = path
        if let query = path.utf8.firstIndex(of: UInt8(ascii: "?")) { path = String(path[..<query]) }
        let matchedPath = PathNormalization.normalize(path)
        let (decision, rewrittenPath) = routeWithRewrite(host: host, path: path)
        var hostCopy = host
        let hostIndex = hostCopy.withUTF8 { virtualHostIndex(host: UnsafeRawBufferPointer($0)) }
        var explanation = RouteExplanation(
            matchedPath: matchedPath, host: nil, hostReason: "", candidates: [], outcome: .notFound,
            rewrittenPath: rewrittenPath, cluster: nil)
        if case let .cluster(cluster) = decision { explanation.cluster = cluster }

        guard hostIndex >= 0 else {
            explanation.hostReason = "no rule names host \"\(host)\" and there are no rules without a host"
            if let name = model.defaultCluster {
                explanation.outcome = .globalDefault(name)
            }
            return explanation
        }
        guard let vhost = modelVirtualHost(at: hostIndex) else {
            preconditionFailure("virtual host \(hostIndex) of the table has no host in its model")
        }
        explanation.host = vhost.host
        switch vhost.host {
        case let .exact(name): explanation.hostReason = "exact host \(name)"
        case let .wildcard(suffix):
            explanation.hostReason = "wildcard host *\(suffix) (one label before \(suffix); no exact host rule for it)"
        case .any: explanation.hostReason = "no rule names this host; rules without a host apply"
        }

        let compiled = virtualHosts[Int(hostIndex)]
        var regexOrder: [Int: Int] = [:]
        for (position, i) in (Int(compiled.regexStart)..<Int(compiled.regexEnd)).enumerated() {
            regexOrder[Int(routes[Int(regexRoutes[i].route)].modelRoute)] = position
        }
        struct Match { var index: Int; var route: Route; var rank: (Int, Int) }
        var matches: [Match] = []
        var candidates: [(Int, RouteExplanation.Candidate)] = []
        for (index, route) in vhost.routes.enumerated() {
            let rank: (Int, Int)?
            switch route.match {
            case .exact:
                rank = route.path == matchedPath ? (0, 0) : nil
            case .regex:
                if let position = regexOrder[index], let regex = regexRoutes[Int(compiled.regexStart) + position].regex as LinearRegex? {
                    rank = regex.matchesPrefix(matchedPath).matched ? (1, position) : nil
                } else {
                    rank = nil
                }
            case .prefix:
                rank = RoutingTable.prefixMatches(route.path, matchedPath) ? (2, -route.path.utf8.count) : nil
            }
            if let rank {
                matches.append(Match(index: index, route: route, rank: rank))
            } else {
                candidates.append((index, .init(route: route, verdict: .noMatch)))
            }
        }
        matches.sort { $0.rank < $1.rank }
        if let winner = matches.first {
            explanation.outcome = .rule(winner.route)
            candidates.append((winner.index, .init(route: winner.route, verdict: .chosen)))
            for loser in matches.dropFirst() {
                let why: String
                switch (winner.route.match, loser.route.match) {
                case (.exact, _): why = "an Exact match beats every other rule"
                case (.regex, .regex): why = "regex \(winner.route.path) is longer, so ingress-nginx tries it first"
                case (.regex, _): why = "a matching regex rule beats Prefix rules"
                default: why = "a longer prefix (\(winner.route.path)) wins"
                }
                candidates.append((loser.index, .init(route: loser.route, verdict: .outranked(why))))
            }
        } else if let name = vhost.defaultCluster {
            explanation.outcome = .hostDefault(name)
        } else if let name = model.defaultCluster {
            explanation.outcome = .globalDefault(name)
        }
        let order: (RouteExplanation.Verdict) -> Int = {
            switch $0 {
            case .chosen: return 0
            case .outranked: return 1
            case .noMatch: return 2
            }
        }
        explanation.candidates = candidates.sorted {
            (order($0.1.verdict), $0.0) < (order($1.1.verdict), $1.0)
        }.map(\.1)
        return explanation
    }

    /// The model's virtual host compiled into index `slot` (indexes follow
    /// model order only in a table compiled from scratch): the first whose
    /// name leads there.
    func modelVirtualHost(at slot: Int32) -> VirtualHost? {
        model.virtualHosts.first { vhost in
            switch vhost.host {
            case let .exact(name):
                return ByteKeyTable.withUTF8(RoutingTable.lowercased(name)) {
                    hostTable.lookup(tag: RoutingTable.exactHostTag, key: $0)
                } == slot
            case let .wildcard(suffix):
                return ByteKeyTable.withUTF8(RoutingTable.lowercased(suffix)) {
                    hostTable.lookup(tag: RoutingTable.wildcardHostTag, key: $0)
                } == slot
            case .any:
                return anyHost == slot
            }
        }
    }

    /// Element-wise Prefix matching, straight from the Ingress specification.
    static func prefixMatches(_ rule: String, _ path: String) -> Bool {
        let ruleSegments = rule.split(separator: "/")
        let pathSegments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard ruleSegments.count <= pathSegments.count else { return false }
        return zip(ruleSegments, pathSegments).allSatisfy { $0 == $1 }
    }
}
