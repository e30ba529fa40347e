import Reactor
import RouteModel
import Routing

/// What `Worker.acquireUpstream` found.
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

/// Client connections the worker tracks (HTTP/1.1 and HTTP/2), for drain.
protocol ClientConnection: AnyObject {
    /// Closes at once if no request is under way (drain).
    func drainIfIdle()
    /// Closes at once, abandoning requests (drain deadline).
    func abort()
}

extension Worker {
    /// Picks an endpoint of `cluster` round-robin (skipping `excluding`) and
    /// returns a connection to it for `owner`: a pooled keep-alive one when
    /// allowed and available, else a new non-blocking connect.
    func acquireUpstream(
        cluster: CompiledCluster, excluding: Endpoint?, allowPooled: Bool, owner: UpstreamOwner
    ) -> UpstreamAcquisition {
        var scratch: UInt32 = 0
        let picked: Endpoint?
        if cluster.index < roundRobinCounters.count {
            picked = RoundRobin.pick(cluster, counter: &roundRobinCounters[cluster.index], excluding: excluding)
        } else {
            picked = RoundRobin.pick(cluster, counter: &scratch, excluding: excluding)
        }
        guard let endpoint = picked else { return .noEndpoint }
        var secure: UpstreamTLSContext?
        if let settings = cluster.upstream.tls {
            guard let context = clientContext(for: settings) else { return .tlsUnavailable }
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
        let address = SocketAddress(bytes: endpoint.address.bytes, port: endpoint.port)
        let (socketFD, result) = connectUpstream(to: address)
        if case .failed = result {
            if socketFD >= 0 { Socket.close(socketFD) }
            return .refused(endpoint)
        }
        // Connected at once to an HTTPS endpoint: still wait for writability,
        // so the TLS handshake starts from the loop like every other.
        let connecting = result == .wouldBlock || secure != nil
        let connection = HTTP1UpstreamConnection(
            fd: socketFD, endpoint: endpoint, worker: self, connecting: connecting, secure: secure,
            serverName: cluster.upstream.tls?.serverName ?? "")
        let initialInterest: Interest = connecting ? .write : .read
        do {
            try connection.register(interest: initialInterest)
        } catch {
            Socket.close(socketFD)
            return .refused(endpoint)
        }
        metrics.upstreamConnectionsOpened.add()
        if connection.state == .connecting {
            connection.deadline = loop.now + configuration.connectTimeoutMilliseconds
        }
        connection.owner = owner
        connection.requestsServed += 1
        return .connection(connection, reused: false)
    }
}
