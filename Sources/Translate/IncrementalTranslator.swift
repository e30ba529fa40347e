import Kube
import RouteModel

/// `translate` and `translateTLS` kept up to date object by object: the
/// same output as translating the whole current set of objects, for work
/// proportional to what changed.
///
/// Feed it object changes (`apply`, `remove`, or `replaceAll` with a whole
/// set), then call `translate()`. What it remembers between rounds:
/// - each served Ingress's own reading (`IngressRoutes`, `IngressCertificates`),
///   redone when the Ingress, the IngressClasses or a Secret it names change;
/// - for every (host, path, match) the Ingresses claiming it, oldest first,
///   and who holds it (the first claim with a well-formed backend); likewise
///   every host's default backend;
/// - every cluster in use, resolved once and again when its Service, its
///   EndpointSlices or Endpoints change;
/// - the sorted virtual hosts, clusters and diagnostics, patched in place.
///
/// Conflicts resolve exactly as in `translate`: the oldest Ingress
/// (`creationTimestamp`, then namespace and name) wins. Certificates are
/// assembled again (from the remembered readings) only when a TLS-relevant
/// Ingress, Secret or the default certificate changed. When two different
/// backend references map to one cluster name (a port named "80" next to port
/// 80), the round falls back to a full `translate` so the first reference in
/// age order defines the cluster, as there.
///
/// Not thread-safe: use from one thread (the controller's).
public final class IncrementalTranslator {
    /// The output of a round.
    public struct Translation: Sendable, Equatable {
        public var routes: TranslationResult
        public var tls: TLSTranslation
    }

    public let options: TranslateOptions
    /// `options.global` for default backends, computed once.
    private let defaultPolicy: RoutePolicy
    /// `--default-ssl-certificate`: `namespace/name` of a TLS Secret.
    public let defaultCertificateSecret: String?

    // MARK: Objects

    /// Tables of one kind are keyed by namespace and name (32 bytes a slot,
    /// an `ObjectKey` 48).
    private var ingressObjects: [NamespacedName: Ingress] = [:]
    private var classes: [ObjectKey: IngressClass] = [:]
    private var services: [NamespacedName: Service] = [:]
    private var slices: [NamespacedName: EndpointSlice] = [:]
    /// A Service's slices, sorted by name (an array: most Services have one
    /// slice, and a dictionary per Service cost 200 bytes).
    private var slicesByService: [NamespacedName: [EndpointSlice]] = [:]
    private var endpoints: [NamespacedName: Endpoints] = [:]
    private var secrets: [String: Secret] = [:]
    private var classFilter: IngressClassFilter

    // MARK: Changes not translated yet

    private var dirtyIngresses: Set<NamespacedName> = []
    /// Services whose Service, slices or Endpoints changed.
    private var dirtyServices: Set<NamespacedName> = []
    private var dirtySecrets: Set<String> = []
    private var classesChanged = false

    // MARK: Ingresses

    /// What a served Ingress asks for. A class (never changed once made):
    /// a table slot is then 8 bytes, not the 400 of these fields.
    private final class Contribution {
        let age: IngressAge.Key
        let key: ObjectKey
        /// `namespace/name`.
        let source: String
        let routes: IngressRoutes
        let certificates: IngressCertificates
        let secretKeys: Set<String>

        init(
            age: IngressAge.Key, key: ObjectKey, source: String, routes: IngressRoutes, certificates: IngressCertificates,
            secretKeys: Set<String>
        ) {
            self.age = age
            self.key = key
            self.source = source
            self.routes = routes
            self.certificates = certificates
            self.secretKeys = secretKeys
        }

        var name: NamespacedName { NamespacedName(namespace: key.namespace, name: key.name) }
    }

    /// A claim in a claimant list: the `index`th route claim of an Ingress
    /// (0 for a default backend claim). It holds the contribution itself
    /// (16 bytes, not a copy of its age and key: 112), which `retract`
    /// takes out of every list before the contribution is replaced.
    private struct ClaimReference {
        let contribution: Contribution
        var index: Int

        var ingress: NamespacedName { contribution.name }

        func precedes(_ other: ClaimReference) -> Bool {
            let age = contribution.age, otherAge = other.contribution.age
            if age != otherAge { return age < otherAge }
            return index < other.index
        }
    }

    private var contributions: [NamespacedName: Contribution] = [:]
    private var ingressesBySecret: [String: Set<NamespacedName>] = [:]

    // MARK: Routes

    /// Who holds a route, a host's default or the global default, and what
    /// the claimants were told: 16 bytes (the request is a reference, and a
    /// route's `Route` is kept once, in `hostRoutes`).
    private struct Outcome: Equatable {
        var request: ClusterRequest?
        var diagnostics: [Diagnostic] = []

        /// The cluster of the holder, nil when nobody holds it.
        var cluster: String? { request?.name }
        var isEmpty: Bool { request == nil && diagnostics.isEmpty }
    }

    private enum OutcomeKey: Hashable {
        case route(RouteKey)
        case hostDefault(HostMatch)
        case globalDefault
    }

    /// A (host, path, match): its claimants, oldest first, and what they were
    /// told. One table for both: a `RouteKey` slot is 48 bytes, one per path.
    private struct RouteState {
        var claimants: [ClaimReference] = []
        var outcome = Outcome()
    }

    /// Kept while it has claimants or a non-empty outcome.
    private var routeStates: [RouteKey: RouteState] = [:]
    private var defaultClaimants: [HostMatch: [ClaimReference]] = [:]
    /// Served Ingresses naming a host in their rules.
    private var ruleHostCounts: [HostMatch: Int] = [:]
    /// Served Ingresses naming a host in their `spec.tls` entries.
    private var tlsHostCounts: [String: Int] = [:]
    /// `RouteModel.httpsHosts`, sorted; nil when `tlsHostCounts` changed since.
    private var httpsHosts: [String]? = []
    private var defaultOutcomes: [HostMatch: Outcome] = [:]
    private var globalDefault = Outcome()
    private var dirtyRouteKeys: Set<RouteKey> = []
    private var dirtyDefaultHosts: Set<HostMatch> = []
    private var globalDefaultDirty = true
    /// The global default backend's Service.
    private let globalDefaultService: NamespacedName?
    /// Routes held per host, in `IngressRuleProcessor.routeOrder`.
    private var hostRoutes: [HostMatch: [Route]] = [:]
    private var dirtyHosts: Set<HostMatch> = []
    private var virtualHosts: [VirtualHost] = []

    // MARK: Clusters

    /// A class: a `live` slot is then 8 bytes, not the 130 of these fields.
    private final class LiveCluster {
        var resolution: ClusterResolution
        var users: CompactSet<OutcomeKey>

        init(resolution: ClusterResolution, users: CompactSet<OutcomeKey>) {
            self.resolution = resolution
            self.users = users
        }
    }

    /// Requests some outcome uses.
    private var live: [ClusterRequest: LiveCluster] = [:]
    private var liveByService: [NamespacedName: CompactSet<ClusterRequest>] = [:]
    private var liveByName: [String: CompactSet<ClusterRequest>] = [:]
    /// Resolved this round and not (yet) live.
    private var resolvedThisRound: [ClusterRequest: ClusterResolution] = [:]
    private var dirtyClusterNames: Set<String> = []
    /// Names used by more than one live request: such a round falls back to `translate`.
    private var collidingNames: Set<String> = []
    private var clusters: [Cluster] = []

    // MARK: Diagnostics

    private var diagnosticCounts: [Diagnostic: Int] = [:]
    /// Diagnostics that appeared (true) or went away (false), in order, since the last round.
    private var diagnosticChanges: [(Diagnostic, Bool)] = []
    private var sortedDiagnostics: [Diagnostic] = []

    // MARK: Certificates

    /// Served Ingresses whose `IngressCertificates` is not empty, oldest first.
    private var certificateOrder: [ClaimReference] = []
    /// Ingresses whose place in `certificateOrder` must be redone.
    private var certificateChanges: Set<NamespacedName> = []
    private var certificatesDirty = true
    private var certificates = TLSTranslation(model: TLSModel(), diagnostics: [])

    /// Above this many changes in one round, a sorted list is rebuilt by one
    /// sort instead of being patched in place.
    private let patchLimit: Int
    /// Above this many changes (and up to `patchLimit`), the hosts and
    /// clusters are patched in one merge pass rather than one insertion
    /// each: an insertion moves every later element, and a burst of new
    /// hosts that sort before the others (64 in a round, 20,000 hosts) then
    /// moved about 64 MB per round, under the lock the endpoint path waits for.
    static let singlePatchLimit = 8

    /// An empty translator.
    public convenience init(options: TranslateOptions, defaultCertificateSecret: String? = nil) {
        self.init(options: options, defaultCertificateSecret: defaultCertificateSecret, patchLimit: 64)
    }

    /// `patchLimit` is for tests, which use both ways of updating sorted lists.
    init(options: TranslateOptions, defaultCertificateSecret: String?, patchLimit: Int) {
        self.patchLimit = patchLimit
        self.options = options
        self.defaultCertificateSecret = defaultCertificateSecret
        defaultPolicy = options.global.defaultRoutePolicy
        classFilter = IngressClassFilter(options: options, classes: [])
        if case let .service(namespace, name)? = DefaultBackendProcessor.parse(options.defaultBackendService) {
            globalDefaultService = NamespacedName(namespace: namespace, name: name)
        } else {
            globalDefaultService = nil
        }
    }

    // MARK: Objects in

    /// Adds or replaces an object (`.unsupported` ones are ignored).
    public func apply(_ object: KubeObject) {
        switch object {
        case let .ingress(ingress):
            let key = NamespacedName(ingress.metadata)
            guard ingressObjects[key] != ingress else { return }
            ingressObjects[key] = ingress
            dirtyIngresses.insert(key)
        case let .ingressClass(ingressClass):
            let key = object.key
            guard classes[key] != ingressClass else { return }
            classes[key] = ingressClass
            classesChanged = true
        case let .service(service):
            let key = NamespacedName(service.metadata)
            guard services[key] != service else { return }
            services[key] = service
            dirtyServices.insert(key)
        case let .endpointSlice(slice):
            let key = NamespacedName(slice.metadata)
            guard slices[key] != slice else { return }
            removeSlice(key)
            slices[key] = slice
            if let service = slice.serviceName {
                let serviceKey = NamespacedName(namespace: slice.metadata.namespace, name: service)
                let name = slice.metadata.name
                slicesByService[serviceKey, default: []].setSorted(
                    slice, isBefore: { $0.metadata.name < name }, isAt: { $0.metadata.name == name })
                dirtyServices.insert(serviceKey)
            }
        case let .endpoints(object):
            let key = NamespacedName(object.metadata)
            guard endpoints[key] != object else { return }
            endpoints[key] = object
            dirtyServices.insert(key)
        case let .secret(secret):
            let key = Self.name(secret.metadata)
            guard secrets[key] != secret else { return }
            secrets[key] = secret
            dirtySecrets.insert(key)
        case .configMap, .unsupported:
            // The settings ConfigMap is read by the controller loop, not translated.
            break
        }
    }

    /// Removes an object, if present.
    public func remove(_ key: ObjectKey) {
        // The namespace and name, whatever the kind.
        let name = NamespacedName(namespace: key.namespace, name: key.name)
        switch key.kind {
        case "Ingress":
            if ingressObjects.removeValue(forKey: name) != nil { dirtyIngresses.insert(name) }
        case "IngressClass":
            if classes.removeValue(forKey: key) != nil { classesChanged = true }
        case "Service":
            if services.removeValue(forKey: name) != nil { dirtyServices.insert(name) }
        case "EndpointSlice":
            removeSlice(name)
        case "Endpoints":
            if endpoints.removeValue(forKey: name) != nil { dirtyServices.insert(name) }
        case "Secret":
            let joined = "\(key.namespace)/\(key.name)"
            if secrets.removeValue(forKey: joined) != nil { dirtySecrets.insert(joined) }
        default:
            break
        }
    }

    /// Makes the objects exactly `objects` (each identity once): applies what
    /// differs and removes what is not there.
    public func replaceAll<Objects: Sequence>(with objects: Objects) where Objects.Element == KubeObject {
        var kept = Set<ObjectKey>()
        for object in objects {
            if case .unsupported = object { continue }
            kept.insert(object.key)
            apply(object)
        }
        for key in keys where !kept.contains(key) { remove(key) }
    }

    /// Every object held, by kind.
    public func snapshot() -> ObjectSnapshot {
        ObjectSnapshot(
            ingresses: Array(ingressObjects.values), ingressClasses: Array(classes.values), services: Array(services.values),
            endpointSlices: Array(slices.values), endpoints: Array(endpoints.values), secrets: Array(secrets.values))
    }

    /// Number of objects held.
    public var objectCount: Int {
        ingressObjects.count + classes.count + services.count + slices.count + endpoints.count + secrets.count
    }

    /// Entries of the tables kept per Ingress, route, host, cluster and
    /// diagnostic (for tests: none once every object is gone, or the
    /// memory of deleted objects would stay).
    var derivedEntryCount: Int {
        contributions.count + ingressesBySecret.count + routeStates.count + defaultClaimants.count + ruleHostCounts.count
            + tlsHostCounts.count + defaultOutcomes.count + hostRoutes.count + virtualHosts.count + live.count
            + liveByService.count + liveByName.count + clusters.count + diagnosticCounts.count + sortedDiagnostics.count
            + slicesByService.count + certificateOrder.count
    }

    private var keys: [ObjectKey] {
        var keys = ingressObjects.keys.map { ObjectKey(kind: "Ingress", namespace: $0.namespace, name: $0.name) }
        keys += Array(classes.keys)
        keys += slices.keys.map { ObjectKey(kind: "EndpointSlice", namespace: $0.namespace, name: $0.name) }
        keys += services.values.map { ObjectKey(kind: "Service", namespace: $0.metadata.namespace, name: $0.metadata.name) }
        keys += endpoints.values.map { ObjectKey(kind: "Endpoints", namespace: $0.metadata.namespace, name: $0.metadata.name) }
        keys += secrets.values.map { ObjectKey(kind: "Secret", namespace: $0.metadata.namespace, name: $0.metadata.name) }
        return keys
    }

    private static func name(_ metadata: ObjectMeta) -> String {
        "\(metadata.namespace)/\(metadata.name)"
    }

    private func removeSlice(_ key: NamespacedName) {
        guard let old = slices.removeValue(forKey: key), let service = old.serviceName else { return }
        let serviceKey = NamespacedName(namespace: old.metadata.namespace, name: service)
        let name = old.metadata.name
        slicesByService[serviceKey]?.setSorted(nil, isBefore: { $0.metadata.name < name }, isAt: { $0.metadata.name == name })
        if slicesByService[serviceKey]?.isEmpty == true { slicesByService[serviceKey] = nil }
        dirtyServices.insert(serviceKey)
    }

    // MARK: A round

    /// Brings the output up to date with the objects and returns it: equal
    /// to `translate` and `translateTLS` of `snapshot()`.
    public func translate() -> Translation {
        if classesChanged {
            classesChanged = false
            classFilter = IngressClassFilter(options: options, classes: Array(classes.values))
            for (key, ingress) in ingressObjects where classFilter.serves(ingress) != (contributions[key] != nil) {
                dirtyIngresses.insert(key)
            }
        }
        for key in dirtySecrets {
            dirtyIngresses.formUnion(ingressesBySecret[key] ?? [])
            if key == defaultCertificateSecret { certificatesDirty = true }
        }
        dirtySecrets.removeAll()
        refreshClusters()
        for key in dirtyIngresses { reread(key) }
        dirtyIngresses.removeAll()

        for key in dirtyRouteKeys { decideRoute(key) }
        dirtyRouteKeys.removeAll()
        for host in dirtyDefaultHosts { decideHostDefault(host) }
        dirtyDefaultHosts.removeAll()
        if globalDefaultDirty {
            globalDefaultDirty = false
            decideGlobalDefault()
        }
        resolvedThisRound.removeAll()

        updateVirtualHosts()
        updateClusters()
        updateDiagnostics()
        if certificatesDirty || !certificateChanges.isEmpty { updateCertificates() }

        var routes = TranslationResult(
            model: RouteModel(
                virtualHosts: virtualHosts, clusters: clusters, defaultCluster: globalDefault.cluster,
                defaultPolicy: defaultPolicy, httpsHosts: currentHTTPSHosts(),
                defaultHTTPSRedirect: options.global.defaultHTTPSRedirect,
                strictTransportSecurity: options.strictTransportSecurity),
            diagnostics: sortedDiagnostics)
        if !collidingNames.isEmpty {
            // Which reference defines a shared cluster name depends on the
            // order of every claim: let the full translation decide.
            routes = Translate.translate(snapshot(), options: options)
        }
        return Translation(routes: routes, tls: certificates)
    }

    /// `RouteModel.httpsHosts`, sorted again only after the set changed.
    private func currentHTTPSHosts() -> [String] {
        if let httpsHosts { return httpsHosts }
        let sorted = tlsHostCounts.keys.sorted()
        httpsHosts = sorted
        return sorted
    }

    // MARK: Ingresses

    /// Reads the Ingress `key` again (or drops it) and updates its claims.
    private func reread(_ key: NamespacedName) {
        let old = contributions[key]
        var new: Contribution? = nil
        if let ingress = ingressObjects[key], classFilter.serves(ingress) {
            var lookup = SecretLookup(secrets)
            let routes = IngressRoutes(ingress, secrets: &lookup, global: options.global)
            let certificates = IngressCertificates(ingress, secrets: &lookup, global: options.global)
            new = Contribution(
                age: IngressAge.Key(ingress), key: ingress.key, source: ingress.sourceName, routes: routes, certificates: certificates,
                secretKeys: Set(lookup.keys))
        }
        if let old, let new, old.age == new.age, old.routes == new.routes, old.certificates == new.certificates,
           old.secretKeys == new.secretKeys
        {
            // Nothing the translation reads changed (status, labels, other annotations).
            return
        }
        if let old { retract(old) }
        if let new { add(new) }
    }

    private func retract(_ old: Contribution) {
        let key = old.name
        contributions[key] = nil
        tally(old.routes.diagnostics, by: -1)
        for host in old.routes.tlsHosts {
            let remaining = (tlsHostCounts[host] ?? 1) - 1
            tlsHostCounts[host] = remaining > 0 ? remaining : nil
            if remaining == 0 { httpsHosts = nil }
        }
        if old.routes.usable {
            for host in old.routes.hosts {
                let remaining = (ruleHostCounts[host] ?? 1) - 1
                ruleHostCounts[host] = remaining > 0 ? remaining : nil
                dirtyHosts.insert(host)
            }
            for routeKey in Set(old.routes.claims.map(\.key)) {
                // `decideRoute` drops the state once its outcome is empty too.
                routeStates[routeKey]?.claimants.removeAll { $0.contribution === old }
                dirtyRouteKeys.insert(routeKey)
            }
            if old.routes.defaultBackend != nil {
                for host in old.routes.defaultHosts {
                    defaultClaimants[host]?.removeAll { $0.contribution === old }
                    if defaultClaimants[host]?.isEmpty == true { defaultClaimants[host] = nil }
                    dirtyDefaultHosts.insert(host)
                }
            }
        }
        if !old.certificates.isEmpty { certificateChanges.insert(key) }
        for secret in old.secretKeys {
            ingressesBySecret[secret]?.remove(key)
            if ingressesBySecret[secret]?.isEmpty == true { ingressesBySecret[secret] = nil }
        }
    }

    private func add(_ new: Contribution) {
        let key = new.name
        contributions[key] = new
        tally(new.routes.diagnostics, by: 1)
        for host in new.routes.tlsHosts {
            tlsHostCounts[host, default: 0] += 1
            if tlsHostCounts[host] == 1 { httpsHosts = nil }
        }
        if new.routes.usable {
            for host in new.routes.hosts {
                ruleHostCounts[host, default: 0] += 1
                dirtyHosts.insert(host)
            }
            for (index, claim) in new.routes.claims.enumerated() {
                Self.insert(ClaimReference(contribution: new, index: index), into: &routeStates[claim.key, default: RouteState()].claimants)
                dirtyRouteKeys.insert(claim.key)
            }
            if new.routes.defaultBackend != nil {
                for host in new.routes.defaultHosts {
                    Self.insert(ClaimReference(contribution: new, index: 0), into: &defaultClaimants[host, default: []])
                    dirtyDefaultHosts.insert(host)
                }
            }
        }
        if !new.certificates.isEmpty { certificateChanges.insert(key) }
        for secret in new.secretKeys {
            ingressesBySecret[secret, default: []].insert(key)
        }
    }

    private static func insert(_ reference: ClaimReference, into list: inout [ClaimReference]) {
        list.insert(reference, at: list.partitionPoint { $0.precedes(reference) })
    }

    // MARK: Who holds what

    /// The holder of a (host, path, match): the oldest claim with a
    /// well-formed backend. Malformed claims before it are told why they
    /// hold nothing; every later claim is told it conflicts.
    private func decideRoute(_ key: RouteKey) {
        var outcome = Outcome()
        var route: Route? = nil
        var owner: (source: String, location: String)? = nil
        let state = routeStates[key]
        for reference in state?.claimants ?? [] {
            let contribution = reference.contribution
            let claim = contribution.routes.claims[reference.index]
            if let owner {
                outcome.diagnostics.append(
                    IngressRoutes.conflict(claim, of: contribution.key, source: contribution.source, owner: owner))
                continue
            }
            outcome.diagnostics += claim.backend.diagnostics
            guard let request = claim.backend.request else { continue }
            for problem in resolution(of: request).problems {
                outcome.diagnostics.append(problem.diagnostic(referrer: contribution.key, field: claim.backend.field))
            }
            outcome.request = request
            route = Route(
                path: key.path, match: key.match, cluster: request.name, source: contribution.source,
                location: claim.location, rewriteTarget: claim.rewriteTarget, policy: claim.policy,
                httpsRedirect: claim.httpsRedirect)
            owner = (contribution.source, claim.location)
        }
        let old = state?.outcome ?? Outcome()
        if outcome != old { replace(old, with: outcome, for: .route(key)) }
        if let state {
            if state.claimants.isEmpty, outcome.isEmpty {
                routeStates[key] = nil
            } else if outcome != old {
                routeStates[key]?.outcome = outcome
            }
        }
        if setRoute(route, for: key) { dirtyHosts.insert(key.host) }
    }

    /// A host's default backend: the oldest Ingress naming the host with a
    /// well-formed default backend.
    private func decideHostDefault(_ host: HostMatch) {
        var outcome = Outcome()
        var owner: String? = nil
        for reference in defaultClaimants[host] ?? [] {
            let contribution = reference.contribution
            guard let claim = contribution.routes.defaultBackend else {
                preconditionFailure("default backend claimant \(reference.ingress) of \(host) has no claim")
            }
            if let owner {
                if owner != contribution.source {
                    outcome.diagnostics.append(IngressRoutes.defaultConflict(host: host, of: contribution.key, owner: owner))
                }
                continue
            }
            outcome.diagnostics += claim.diagnostics
            guard let request = claim.request else { continue }
            for problem in resolution(of: request).problems {
                outcome.diagnostics.append(problem.diagnostic(referrer: contribution.key, field: claim.field))
            }
            outcome.request = request
            owner = contribution.source
        }
        let old = defaultOutcomes[host] ?? Outcome()
        guard outcome != old else { return }
        replace(old, with: outcome, for: .hostDefault(host))
        defaultOutcomes[host] = outcome.isEmpty ? nil : outcome
        if outcome.cluster != old.cluster { dirtyHosts.insert(host) }
    }

    /// `--default-backend-service`, as `DefaultBackendProcessor` resolves it.
    private func decideGlobalDefault() {
        var outcome = Outcome()
        switch DefaultBackendProcessor.parse(options.defaultBackendService) {
        case nil:
            break
        case let .malformed(diagnostic)?:
            outcome.diagnostics = [diagnostic]
        case let .service(namespace, name)?:
            let request = ClusterResolver.firstPortRequest(
                namespace: namespace, service: name, object: services[NamespacedName(namespace: namespace, name: name)])
            for problem in resolution(of: request).problems {
                outcome.diagnostics.append(problem.diagnostic(referrer: DefaultBackendProcessor.option, field: nil))
            }
            outcome.request = request
        }
        let old = globalDefault
        guard outcome != old else { return }
        replace(old, with: outcome, for: .globalDefault)
        globalDefault = outcome
    }

    /// Swaps an outcome's diagnostics and cluster use.
    private func replace(_ old: Outcome, with new: Outcome, for key: OutcomeKey) {
        tally(new.diagnostics, by: 1)
        tally(old.diagnostics, by: -1)
        if old.request != new.request {
            if let request = new.request { use(request, by: key) }
            if let request = old.request { release(request, by: key) }
        }
    }

    /// Puts `route` in its host's routes (or removes the one there when
    /// nil); true when that changed them.
    private func setRoute(_ route: Route?, for key: RouteKey) -> Bool {
        guard var routes = hostRoutes.removeValue(forKey: key.host) else {
            guard let route else { return false }
            hostRoutes[key.host] = [route]
            return true
        }
        let changed = routes.setSorted(
            route, isBefore: { ($0.path, $0.match) < (key.path, key.match) },
            isAt: { $0.path == key.path && $0.match == key.match })
        if !routes.isEmpty { hostRoutes[key.host] = routes }
        return changed
    }

    // MARK: Clusters

    /// The resolution of `request` as the objects are now.
    private func resolution(of request: ClusterRequest) -> ClusterResolution {
        if let known = live[request]?.resolution ?? resolvedThisRound[request] { return known }
        let resolved = resolveNow(request)
        resolvedThisRound[request] = resolved
        return resolved
    }

    private func resolveNow(_ request: ClusterRequest) -> ClusterResolution {
        guard let key = request.serviceName else {
            return ClusterResolver.resolve(request, service: nil, slices: [], endpoints: nil)
        }
        return ClusterResolver.resolve(request, service: services[key], slices: slicesByService[key] ?? [], endpoints: endpoints[key])
    }

    private func use(_ request: ClusterRequest, by user: OutcomeKey) {
        if let entry = live[request] {
            entry.users.insert(user)
            return
        }
        let resolved = resolution(of: request)
        live[request] = LiveCluster(resolution: resolved, users: CompactSet(user))
        if let service = request.serviceName { liveByService[service, default: CompactSet()].insert(request) }
        liveByName[request.name, default: CompactSet()].insert(request)
        dirtyClusterNames.insert(request.name)
        tally(resolved.endpointDiagnostics, by: 1)
    }

    private func release(_ request: ClusterRequest, by user: OutcomeKey) {
        guard let entry = live[request] else { return }
        entry.users.remove(user)
        guard entry.users.isEmpty else { return }
        live[request] = nil
        if let service = request.serviceName {
            liveByService[service]?.remove(request)
            if liveByService[service]?.isEmpty == true { liveByService[service] = nil }
        }
        liveByName[request.name]?.remove(request)
        if liveByName[request.name]?.isEmpty == true { liveByName[request.name] = nil }
        dirtyClusterNames.insert(request.name)
        tally(entry.resolution.endpointDiagnostics, by: -1)
    }

    /// Resolves the clusters of changed Services again; their users are
    /// decided again when what they are told (the problems) changed.
    private func refreshClusters() {
        for service in dirtyServices {
            if service == globalDefaultService { globalDefaultDirty = true }
            for request in liveByService[service] ?? CompactSet() {
                guard let entry = live[request] else { continue }
                let resolved = resolveNow(request)
                guard resolved != entry.resolution else { continue }
                tally(resolved.endpointDiagnostics, by: 1)
                tally(entry.resolution.endpointDiagnostics, by: -1)
                if resolved.problems != entry.resolution.problems {
                    for user in entry.users {
                        switch user {
                        case let .route(key): dirtyRouteKeys.insert(key)
                        case let .hostDefault(host): dirtyDefaultHosts.insert(host)
                        case .globalDefault: globalDefaultDirty = true
                        }
                    }
                }
                entry.resolution = resolved
                dirtyClusterNames.insert(request.name)
            }
        }
        dirtyServices.removeAll()
    }

    /// The live cluster named `name`; records a name two requests share.
    private func liveCluster(named name: String) -> Cluster? {
        guard let requests = liveByName[name], let first = requests.first else {
            collidingNames.remove(name)
            return nil
        }
        if requests.count > 1 { collidingNames.insert(name) } else { collidingNames.remove(name) }
        return live[first]?.resolution.cluster
    }

    private func updateClusters() {
        defer { dirtyClusterNames.removeAll() }
        if dirtyClusterNames.count > patchLimit {
            collidingNames.removeAll()
            clusters = liveByName.keys.compactMap { liveCluster(named: $0) }.sorted { $0.name < $1.name }
            return
        }
        if dirtyClusterNames.count > Self.singlePatchLimit {
            clusters.setSorted(keys: dirtyClusterNames.sorted(), keyOf: \.name) { liveCluster(named: $0) }
            return
        }
        for name in dirtyClusterNames {
            clusters.setSorted(liveCluster(named: name), isBefore: { $0.name < name }, isAt: { $0.name == name })
        }
    }

    // MARK: Virtual hosts

    /// The virtual host for `host`, nil when no served Ingress names it.
    private func virtualHost(_ host: HostMatch) -> VirtualHost? {
        let defaultCluster = defaultOutcomes[host]?.cluster
        guard ruleHostCounts[host] != nil || defaultCluster != nil else { return nil }
        return VirtualHost(host: host, routes: hostRoutes[host] ?? [], defaultCluster: defaultCluster)
    }

    private func updateVirtualHosts() {
        defer { dirtyHosts.removeAll() }
        if dirtyHosts.count > patchLimit {
            var hosts = Set(ruleHostCounts.keys)
            for (host, outcome) in defaultOutcomes where outcome.cluster != nil { hosts.insert(host) }
            virtualHosts = hosts.sorted().compactMap { virtualHost($0) }
            return
        }
        if dirtyHosts.count > Self.singlePatchLimit {
            virtualHosts.setSorted(keys: dirtyHosts.sorted(), keyOf: \.host) { virtualHost($0) }
            return
        }
        for host in dirtyHosts {
            virtualHosts.setSorted(virtualHost(host), isBefore: { $0.host < host }, isAt: { $0.host == host })
        }
    }

    // MARK: Diagnostics

    private func tally(_ diagnostics: [Diagnostic], by delta: Int) {
        for diagnostic in diagnostics {
            let before = diagnosticCounts[diagnostic] ?? 0
            let after = before + delta
            precondition(after >= 0, "diagnostic counted away more often than in: \(diagnostic)")
            diagnosticCounts[diagnostic] = after == 0 ? nil : after
            if before == 0 { diagnosticChanges.append((diagnostic, true)) }
            if after == 0 { diagnosticChanges.append((diagnostic, false)) }
        }
    }

    private func updateDiagnostics() {
        defer { diagnosticChanges.removeAll() }
        guard !diagnosticChanges.isEmpty else { return }
        if diagnosticChanges.count > patchLimit {
            sortedDiagnostics = diagnosticCounts.keys.sorted()
            return
        }
        for (diagnostic, present) in diagnosticChanges {
            sortedDiagnostics.setSorted(present ? diagnostic : nil, isBefore: { $0 < diagnostic }, isAt: { $0 == diagnostic })
        }
    }

    // MARK: Certificates

    private func updateCertificates() {
        certificatesDirty = false
        if !certificateChanges.isEmpty {
            let changed = certificateChanges
            certificateChanges.removeAll()
            certificateOrder.removeAll { changed.contains($0.ingress) }
            let added = changed.compactMap { key -> ClaimReference? in
                guard let contribution = contributions[key], !contribution.certificates.isEmpty else { return nil }
                return ClaimReference(contribution: contribution, index: 0)
            }
            if added.count > patchLimit {
                certificateOrder = (certificateOrder + added).sorted { $0.precedes($1) }
            } else {
                for reference in added { Self.insert(reference, into: &certificateOrder) }
            }
        }
        let wanted = certificateOrder.map(\.contribution.certificates)
        certificates = IngressCertificates.assemble(
            wanted, defaultCertificateSecret: defaultCertificateSecret,
            defaultSecret: defaultCertificateSecret.flatMap { secrets[$0] })
    }
}

extension Array {
    /// The first index whose element is not `isBefore` (binary search): where
    /// an element goes in an array sorted so that `isBefore` holds for a prefix.
    func partitionPoint(_ isBefore: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if isBefore(self[middle]) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

extension Array {
    /// In an array sorted by `keyOf`, with no key twice: sets the element
    /// of each of `keys` (sorted, none twice) to `element(key)`, replacing
    /// the one with that key or removing it when `element` gives nil, in
    /// one pass: O(count + keys × log count), elements copied once into a
    /// new array (the same bytes, so unchanged ones still compare as
    /// identical with a model that shares them).
    mutating func setSorted<Key: Comparable>(keys: [Key], keyOf: (Element) -> Key, element: (Key) -> Element?) {
        var merged: [Element] = []
        merged.reserveCapacity(count + keys.count)
        var next = 0
        for key in keys {
            let end = next + self[next...].partitionPoint { keyOf($0) < key }
            merged.append(contentsOf: self[next..<end])
            next = end
            if next < count, keyOf(self[next]) == key { next += 1 }
            if let element = element(key) { merged.append(element) }
        }
        merged.append(contentsOf: self[next...])
        self = merged
    }
}

extension ArraySlice {
    /// `Array.partitionPoint` of a slice, as an offset from its start.
    func partitionPoint(_ isBefore: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if isBefore(self[startIndex + middle]) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}

extension Array where Element: Equatable {
    /// In an array sorted by some key: puts `element` at the place `isBefore`
    /// finds, replacing the one there when `isAt` says it has the same key,
    /// or removes that one when `element` is nil. An equal element is left
    /// alone (no write, so storage shared with a published model stays shared).
    /// True when the array changed.
    @discardableResult
    mutating func setSorted(_ element: Element?, isBefore: (Element) -> Bool, isAt: (Element) -> Bool) -> Bool {
        let index = partitionPoint(isBefore)
        let found = index < count && isAt(self[index])
        switch (element, found) {
        case let (element?, true):
            guard self[index] != element else { return false }
            self[index] = element
        case let (element?, false): insert(element, at: index)
        case (nil, true): remove(at: index)
        case (nil, false): return false
        }
        return true
    }
}

/// An object's namespace and name as a table key of one kind: side by side,
/// not joined into `namespace/name` (a string that long is a heap block of
/// its own, one per key of each of four Service tables at 10,000 Services),
/// and without the kind of an `ObjectKey` (16 bytes more per slot).
struct NamespacedName: Hashable {
    var namespace: String
    var name: String

    init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    init(_ metadata: ObjectMeta) {
        self.init(namespace: metadata.namespace, name: metadata.name)
    }
}

/// A set that keeps one element inline, a few in a small array and more in
/// a `Set`: the translator keeps three sets per cluster in use (its users,
/// and the clusters of its Service and of its name), nearly always of one
/// element, and a one-element `Set` takes about 300 bytes (10,000 clusters:
/// 7 MB), a one-element array its element plus 32 in a heap block of its own.
struct CompactSet<Element: Hashable>: Sequence {
    private enum Storage {
        case none
        case one(Element)
        /// Two to `arrayLimit` elements.
        case few([Element])
        case many(Set<Element>)
    }

    private var storage = Storage.none
    /// Above this many elements, `contains` would cost more than hashing.
    private static var arrayLimit: Int { 8 }

    /// An empty set.
    init() {}

    /// A set of one element.
    init(_ element: Element) {
        storage = .one(element)
    }

    var isEmpty: Bool {
        switch storage {
        case .none: return true
        case .one: return false
        case let .few(elements): return elements.isEmpty
        case let .many(elements): return elements.isEmpty
        }
    }

    var count: Int {
        switch storage {
        case .none: return 0
        case .one: return 1
        case let .few(elements): return elements.count
        case let .many(elements): return elements.count
        }
    }

    var first: Element? {
        switch storage {
        case .none: return nil
        case let .one(element): return element
        case let .few(elements): return elements.first
        case let .many(elements): return elements.first
        }
    }

    mutating func insert(_ element: Element) {
        switch storage {
        case .none:
            storage = .one(element)
        case let .one(existing):
            if existing != element { storage = .few([existing, element]) }
        case var .few(elements):
            guard !elements.contains(element) else { return }
            // Let go of the stored array first, so that the append does not copy it.
            storage = .none
            if elements.count < Self.arrayLimit {
                elements.append(element)
                storage = .few(elements)
            } else {
                storage = .many(Set(elements + [element]))
            }
        case var .many(elements):
            storage = .none
            elements.insert(element)
            storage = .many(elements)
        }
    }

    mutating func remove(_ element: Element) {
        switch storage {
        case .none:
            break
        case let .one(existing):
            if existing == element { storage = .none }
        case var .few(elements):
            guard let index = elements.firstIndex(of: element) else { return }
            storage = .none
            elements.remove(at: index)
            storage = elements.count == 1 ? .one(elements[0]) : .few(elements)
        case var .many(elements):
            storage = .none
            elements.remove(element)
            storage = .many(elements)
        }
    }

    func makeIterator() -> Array<Element>.Iterator {
        switch storage {
        case .none: return [].makeIterator()
        case let .one(element): return [element].makeIterator()
        case let .few(elements): return elements.makeIterator()
        case let .many(elements): return Array(elements).makeIterator()
        }
    }
}
