import Reactor
import RouteModel
import Routing

/// A request on its way to an HTTP/1.1 upstream: the part of the exchange
/// both client protocols share (an HTTP/1.1 client connection, an HTTP/2
/// stream). Picking an endpoint, attaching a pooled or new connection,
/// queueing the serialized head, and the one retry on another endpoint when
/// the connect fails, is refused or times out, all live here once.
///
/// Loop-bound, like its conformers.
protocol UpstreamAttempt: UpstreamOwner {
    var worker: Worker { get }
    /// The routed cluster (nil before routing).
    var cluster: CompiledCluster? { get }
    /// The attached upstream connection.
    var upstream: HTTP1UpstreamConnection? { get set }
    /// The attached connection came from the idle pool.
    var upstreamReused: Bool { get set }
    /// Retries spent (at most one per request).
    var attempts: Int { get set }
    /// The serialized upstream request head, kept for a retry.
    var upstreamRequestHead: ByteBuffer { get }
    /// Answers the client with `error` before any response byte went out.
    func respondBeforeUpstream(_ error: ErrorResponse)
    /// Writes what is queued for the upstream.
    func flushUpstream()
}

extension UpstreamAttempt {
    /// Picks an endpoint and attaches an upstream connection: a pooled one
    /// when allowed and available, else a new non-blocking connect. The
    /// request head (or `carrying`, the unsent bytes of a failed attempt) is
    /// queued on it. Returns false when it answered the client with an error instead.
    @discardableResult
    func connectUpstream(excluding: Endpoint?, carrying: ByteBuffer?, allowPooled: Bool) -> Bool {
        guard let cluster else { return false }
        switch worker.upstreams.acquire(cluster: cluster, excluding: excluding, allowPooled: allowPooled, owner: self) {
        case .noEndpoint:
            worker.metrics.count(.noEndpoints)
            respondBeforeUpstream(.serviceUnavailable)
            return false
        case .tlsUnavailable:
            worker.metrics.count(.tlsHandshake)
            respondBeforeUpstream(.badGateway)
            return false
        case let .refused(endpoint):
            worker.metrics.count(.connectRefused)
            return retryOrFail(failed: endpoint, carrying: carrying, error: .badGateway)
        case let .connection(acquired, reused):
            upstream = acquired
            upstreamReused = reused
            if let carrying, carrying !== upstreamRequestHead {
                acquired.writeBuffer = carrying
            } else {
                acquired.writeBuffer.clear()
                acquired.writeBuffer.append(upstreamRequestHead.readable)
            }
            return true
        }
    }

    /// After a failed connect: one retry on another endpoint, else `error`.
    @discardableResult
    func retryOrFail(failed endpoint: Endpoint, carrying: ByteBuffer?, error: ErrorResponse) -> Bool {
        guard attempts == 0, let cluster, cluster.endpoints.count > 1 else {
            respondBeforeUpstream(error)
            return false
        }
        attempts += 1
        worker.metrics.upstreamRetries.add()
        guard connectUpstream(excluding: endpoint, carrying: carrying, allowPooled: true) else { return false }
        // A pooled connection is ready now; a new one flushes once connected.
        flushUpstream()
        return true
    }

    /// The connect started by `connectUpstream` finished (`error` 0: connected).
    func upstreamConnected(_ connection: HTTP1UpstreamConnection, error: CInt) {
        guard connection === upstream else { return connection.close() }
        if error != 0 {
            worker.metrics.count(connection.failureKind(error: error))
            abandonAttempt(connection, retryWith: .badGateway)
            return
        }
        flushUpstream()
    }

    /// The connection's deadline passed while it was still connecting or in
    /// its TLS handshake: retry elsewhere (504 when not possible). Returns
    /// false, doing nothing, once the connection carries the request.
    func connectTimedOut(_ connection: HTTP1UpstreamConnection) -> Bool {
        guard connection.state == .connecting || connection.state == .handshaking else { return false }
        worker.metrics.count(.connectTimeout)
        abandonAttempt(connection, retryWith: .gatewayTimeout)
        return true
    }

    /// Drops a connection that never carried the request and retries its
    /// unsent bytes on another endpoint.
    private func abandonAttempt(_ connection: HTTP1UpstreamConnection, retryWith error: ErrorResponse) {
        let pending = connection.writeBuffer
        connection.writeBuffer = ByteBuffer(capacity: 16)
        upstream = nil
        connection.close()
        retryOrFail(failed: connection.endpoint, carrying: pending, error: error)
    }
}
