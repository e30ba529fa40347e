import HTTP1
import Routing

/// The state of one HTTP/1.1 request on a client connection, from its
/// first byte to the end of its response. The connection holds one and
/// replaces it whole (`HTTP1ClientConnection.resetExchange`) once a
/// response is done, so nothing a request set (its body framing, its
/// keep-alive wish, a half-read chunk, a paused upstream) can reach the
/// next request on the connection. A value without references but the
/// routed cluster: resetting it allocates nothing.
///
/// Not in it: the connection's own state (transport, buffers, lifecycle,
/// whether the client half-closed) and the parse scratch (`head`,
/// `responseHead`), which each parse overwrites.
struct HTTP1Exchange {
    /// A byte of the request has arrived (the transport's armed timeout is
    /// then the header timeout, counted from that byte).
    var requestStarted = false
    /// Bytes of an incomplete head already parsed once (0: none).
    var parsedHeadBytes = 0
    /// The routed cluster (nil before routing).
    var cluster: CompiledCluster?
    /// Connection attempts after the first (one retry on another endpoint).
    var attempts = 0
    /// The upstream connection came from the keep-alive pool.
    var upstreamReused = false
    /// How much of the request body is still to be forwarded.
    var requestBody: HTTP1ClientConnection.RequestBody = .complete
    var requestChunkedDecoder = HTTP1ChunkedDecoder()
    var isHEAD = false
    var clientIsHTTP10 = false
    /// The client may send another request after this one.
    var clientKeepAlive = true
    /// The response head went to the client.
    var responseHeadDone = false
    /// How the response body is read from the upstream.
    var responseBody: HTTP1ClientConnection.ResponseBody = .none
    var responseChunkedDecoder = HTTP1ChunkedDecoder()
    /// The response is re-framed as chunked for the client.
    var encodeResponseChunked = false
    /// The connection closes once this response is written.
    var closeAfterResponse = false
    /// Upstream reading is paused until the client drains its write buffer.
    var upstreamReadPaused = false
    /// The request asks for a WebSocket upgrade (GET, `Connection: upgrade`,
    /// `Upgrade: websocket`): Upgrade and Connection are forwarded for it.
    var upgradeRequested = false
    /// A large cleartext body in transit through a pipe (`+Splice`), or nil.
    var splice: ResponseSplice?
}
