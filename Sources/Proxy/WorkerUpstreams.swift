import Reactor
import RouteModel
import Routing
import Telemetry

/// How an endpoint of a cluster is chosen for a request: the load-balancing
/// interface. Round robin implements it today; canary weights, session
/// affinity, consistent hashing, EWMA and health checks are further pickers
/// (or wrap one). `state` is this worker's state for the cluster, kept
/// across table publications while the cluster stays (`WorkerUpstreams`).
protocol EndpointPicker {
    /// An endpoint of `cluster` other than `excluding` (the endpoint a failed
    /// attempt used), or nil when none is left.
    func pick(_ cluster: CompiledCluster, state: inout UInt32, excluding: Endpoint?) -> Endpoint?
}

/// Round robin over a cluster's endpoints (`RoundRobin`).
struct RoundRobinPicker: EndpointPicker {
    @inline(__always)
    func pick(_ cluster: CompiledCluster, state: inout UInt32, excluding: Endpoint?) -> Endpoint? {
        RoundRobin.pick(cluster, counter: &state, excluding: excluding)
    }
}

/// What `WorkerUpstreams.acquire` found.
enum UpstreamAcquisition {
    /// A connection for the request: pooled (`reused`) or just started
    /// (connecting, or connected at once).
    case connection(HTTP1UpstreamConnection, reused: Bool)
    /// The cluster has no endpoint left to try.
    case noEndpoint
    /// The connect failed at once (the endpoint is named for a retry elsewhere).
    case refused(Endpoint)
    /// The cluster's TLS settings cannot be turned into a client context.
    case tlsUnavailable
}

/// A worker's upstream side, in one owner: the load-balancing pick and its
/// per-cluster state, the HTTP/1.1 keep-alive pool, the HTTP/2 (gRPC, h2c)
/// connections, and the client TLS contexts for HTTPS endpoints. Client
/// connections and HTTP/2 streams ask it for a connection (`acquire`,
/// `acquireHTTP2`) and hand HTTP/1.1 connections back (`release`); nothing
/// else reaches the pools.
///
/// Loop-bound: one per worker, used from that worker's loop only.
final class WorkerUpstreams {
    /// The worker new connections belong to (set once, right after the
    /// worker is made; the worker owns this). Only new connections use it:
    /// the per-request paths (a pooled connection, a release) read the
    /// three below, held without reference counting.
    unowned(unsafe) var worker: Worker!
    private unowned(unsafe) let loop: EventLoop
    private unowned(unsafe) let metrics: WorkerMetrics
    /// Idle HTTP/1.1 keep-alive connections per endpoint.
    let pool: UpstreamPool
    /// HTTP/2 upstream connections (gRPC, h2c), several streams each.
    private(set) var http2Connections: [PoolKey: [HTTP2UpstreamConnection]] = [:]
    /// The pick, and its state per cluster of the worker's table (index =
    /// cluster index).
    private let picker = RoundRobinPicker()
    private var pickState: [UInt32]
    /// Client TLS contexts for HTTPS endpoints, one per distinct settings.
    private var tlsContexts = UpstreamTLSContexts()

    init(configuration: ProxyConfiguration, table: RoutingTable, loop: EventLoop, metrics: WorkerMetrics) {
        self.loop = loop
        self.metrics = metrics
        pool = UpstreamPool(perEndpointLimit: configuration.upstreamKeepAliveConnections)
        pickState = Array(repeating: 0, count: table.clusters.count)
    }

    // MARK: Picking

    /// An endpoint of `cluster` for this worker's next request to it.
    @inline(__always)
    func pick(_ cluster: CompiledCluster, excluding: Endpoint?) -> Endpoint? {
        if cluster.index < pickState.count {
            return picker.pick(cluster, state: &pickState[cluster.index], excluding: excluding)
        }
        // A cluster of a table this worker has not installed yet.
        var scratch: UInt32 = 0
        return picker.pick(cluster, state: &scratch, excluding: excluding)
    }

    /// A new table is in service: each cluster keeps its pick state, so that
    /// a configuration change does not send every cluster's next request
    /// back to the same endpoint. By index when the table kept them (a
    /// patched table), else through the table's map from the previous
    /// indexes. New clusters start at a different offset per worker, so that
    /// workers do not all pick the same first endpoint.
    func tableInstalled(_ newTable: RoutingTable, replacing oldTable: RoutingTable, workerIndex: Int) {
        let count = newTable.clusters.count
        if let moved = newTable.previousClusterIndexes, moved.generation == oldTable.generation {
            var state: [UInt32] = []
            state.reserveCapacity(count)
            for (position, old) in moved.indexes.enumerated() {
                let carried = old >= 0 && Int(old) < pickState.count
                state.append(carried ? pickState[Int(old)] : UInt32(truncatingIfNeeded: position &+ workerIndex))
            }
            pickState = state
        } else {
            if pickState.count > count {
                pickState.removeLast(pickState.count - count)
            }
            while pickState.count < count {
                pickState.append(UInt32(truncatingIfNeeded: pickState.count &+ workerIndex))
            }
        }
    }

    /// Installs the client TLS contexts made for a new table (off the loop).
    func installTLS(_ prepared: UpstreamTLSContextSet) {
        tlsContexts.install(prepared)
    }

    /// The client TLS context for `settings` (nil when it cannot be made,
    /// e.g. an unusable CA bundle: the request gets 502). Prepared with the
    /// table; made here only for a table that was not prepared.
    func tlsContext(for settings: UpstreamTLS, applicationProtocols: [String] = []) -> UpstreamTLSContext? {
        tlsContexts.context(for: settings, applicationProtocols: applicationProtocols)
    }

    // MARK: HTTP/1.1

    /// Picks an endpoint of `cluster` (skipping `excluding`) and returns a
    /// connection to it for `owner`: a pooled keep-alive one when allowed and
    /// available, else a new non-blocking connect.
    func acquire(
        cluster: CompiledCluster, excluding: Endpoint?, allowPooled: Bool, owner: UpstreamOwner
    ) -> UpstreamAcquisition {
        guard let endpoint = pick(cluster, excluding: excluding) else { return .noEndpoint }
        var secure: UpstreamTLSContext?
        if let settings = cluster.upstream.tls {
            guard let context = tlsContext(for: settings) else { return .tlsUnavailable }
            secure = context
        }
        let key = PoolKey(endpoint: endpoint, secure: secure?.identity)
        if allowPooled, let pooled = pool.take(key) {
            pooled.state = .busy
            pooled.owner = owner
            pooled.requestsServed += 1
            metrics.upstreamConnectionsReused.add()
            return .connection(pooled, reused: true)
        }
        let worker = self.worker!
        let address = SocketAddress(bytes: endpoint.address.bytes, port: endpoint.port)
        let (socketFD, result) = worker.connectUpstream(to: address)
        if case .failed = result {
            if socketFD >= 0 { Socket.close(socketFD) }
            return .refused(endpoint)
        }
        // Connected at once to an HTTPS endpoint: still wait for writability,
        // so the TLS handshake starts from the loop like every other.
        let connecting = result == .wouldBlock || secure != nil
        let connection = HTTP1UpstreamConnection(
            fd: socketFD, endpoint: endpoint, worker: worker, connecting: connecting, secure: secure,
            serverName: cluster.upstream.tls?.serverName ?? "")
        let initialInterest: Interest = connecting ? .write : .read
        do {
            try connection.register(interest: initialInterest)
        } catch {
            Socket.close(socketFD)
            return .refused(endpoint)
        }
        worker.metrics.upstreamConnectionsOpened.add()
        if connection.state == .connecting { connection.armConnectTimeout() }
        connection.owner = owner
        connection.requestsServed += 1
        return .connection(connection, reused: false)
    }

    /// Takes back a connection whose exchange ended: parked for the next
    /// request when `reusable` (and the pool has room), else closed.
    func release(_ connection: HTTP1UpstreamConnection, reusable: Bool) {
        connection.owner = nil
        guard reusable else {
            connection.close()
            return
        }
        connection.state = .idle
        connection.armIdleTimeout()
        connection.setInterest(.read)
        if !pool.park(connection) { connection.close() }
    }

    /// An idle pooled connection was closed by its endpoint or timed out.
    func forget(_ connection: HTTP1UpstreamConnection) {
        pool.remove(connection)
    }

    // MARK: HTTP/2

    /// An HTTP/2 upstream connection with room for a stream to an endpoint
    /// of `cluster`: an open one, or a new one (connecting).
    func acquireHTTP2(cluster: CompiledCluster) -> HTTP2UpstreamConnection? {
        guard let endpoint = pick(cluster, excluding: nil) else { return nil }
        var secure: UpstreamTLSContext?
        if let settings = cluster.upstream.tls {
            guard let context = tlsContext(for: settings, applicationProtocols: ["h2"]) else { return nil }
            secure = context
        }
        let key = PoolKey(endpoint: endpoint, secure: secure?.identity)
        if let existing = http2Connections[key]?.first(where: { $0.canOpenStream }) {
            metrics.upstreamConnectionsReused.add()
            return existing
        }
        let worker = self.worker!
        let address = SocketAddress(bytes: endpoint.address.bytes, port: endpoint.port)
        let (socketFD, result) = worker.connectUpstream(to: address)
        if case .failed = result {
            if socketFD >= 0 { Socket.close(socketFD) }
            worker.metrics.count(.connectRefused)
            return nil
        }
        let transport = HTTP1UpstreamConnection(
            fd: socketFD, endpoint: endpoint, worker: worker, connecting: true, secure: secure,
            serverName: cluster.upstream.tls?.serverName ?? "")
        do {
            try transport.register(interest: .write)
        } catch {
            Socket.close(socketFD)
            return nil
        }
        worker.metrics.upstreamConnectionsOpened.add()
        transport.armConnectTimeout()
        let connection = HTTP2UpstreamConnection(transport: transport, worker: worker)
        transport.owner = connection
        http2Connections[key, default: []].append(connection)
        return connection
    }

    /// An HTTP/2 upstream connection closed.
    func forget(_ connection: HTTP2UpstreamConnection) {
        let key = connection.transport.poolKey
        http2Connections[key]?.removeAll { $0 === connection }
        if http2Connections[key]?.isEmpty == true { http2Connections.removeValue(forKey: key) }
    }

    // MARK: Drain

    /// Drain begins: idle connections close; HTTP/2 ones carrying streams finish them.
    func closeIdle() {
        pool.closeAll()
        for connections in http2Connections.values {
            for connection in connections where connection.streams.isEmpty { connection.close() }
        }
    }

    /// The worker stops: everything left closes.
    func closeAll() {
        pool.closeAll()
        for connection in http2Connections.values.flatMap({ $0 }) { connection.close() }
        http2Connections.removeAll()
    }
}
