import HTTP1
import Reactor

/// Settings of the proxy data path. Timeouts default to nginx's (and
/// ingress-nginx's) values so that migrating operators see the same behaviour.
public struct ProxyConfiguration: Sendable {
    /// Address of the plain-HTTP listener; port 0 picks a free port.
    public var httpListen: SocketAddress
    /// Address of the HTTPS listener (nil: no HTTPS); port 0 picks a free port.
    public var httpsListen: SocketAddress?
    /// Accept cleartext HTTP/2 with prior knowledge on the HTTP listener (`h2c`).
    public var h2c = true
    /// Concurrent streams a client may open on one HTTP/2 connection.
    public var http2MaxConcurrentStreams: UInt32 = 128
    /// Initial HTTP/2 stream window (bytes a client may send before the proxy acknowledges).
    public var http2InitialWindowSize: UInt32 = 65_535
    /// Stream resets per second per connection above which the client is
    /// cut off with GOAWAY ENHANCE_YOUR_CALM (Rapid Reset, CVE-2023-44487).
    public var http2MaxResetsPerSecond: Int = 100
    /// Status of the HTTP → HTTPS redirect (`--http-redirect-code`: 301, 302, 307 or 308).
    public var httpRedirectCode: Int = 308
    /// The ports clients use (a Service or load balancer's `port`), apart
    /// from the ports the listeners bind: HTTPS redirects and
    /// `X-Forwarded-Port` name these.
    public var publicHTTPPort: UInt16 = 80
    public var publicHTTPSPort: UInt16 = 443
    /// `enable-underscores-in-headers`: forward client fields whose names
    /// hold `_` (default false, as in ingress-nginx: they are dropped).
    public var allowUnderscoresInHeaders = false
    /// Forwarded headers and PROXY protocol: who the client is.
    public var clientAddress = ClientAddressSettings()
    /// Number of worker loops (each with its own SO_REUSEPORT listener).
    public var workers: Int
    /// Upstream TCP connect timeout (`proxy-connect-timeout`, 5 s).
    public var connectTimeoutMilliseconds: UInt64 = 5_000
    /// Longest wait between two reads from an upstream (`proxy-read-timeout`, 60 s).
    public var upstreamReadTimeoutMilliseconds: UInt64 = 60_000
    /// Longest wait for an upstream to accept more request bytes (`proxy-send-timeout`, 60 s).
    public var upstreamSendTimeoutMilliseconds: UInt64 = 60_000
    /// Time allowed for a client to send a whole request head (`client-header-timeout`, 60 s).
    public var clientHeaderTimeoutMilliseconds: UInt64 = 60_000
    /// Longest wait between two reads of a request body (`client-body-timeout`, 60 s).
    public var clientBodyTimeoutMilliseconds: UInt64 = 60_000
    /// Longest wait for a client to accept response bytes (nginx `send_timeout`, 60 s).
    public var clientSendTimeoutMilliseconds: UInt64 = 60_000
    /// Idle time after which a keep-alive client connection is closed (`keep-alive`, 75 s).
    public var keepAliveTimeoutMilliseconds: UInt64 = 75_000
    /// Idle time after which a pooled upstream connection is closed (`upstream-keepalive-timeout`, 60 s).
    public var upstreamKeepAliveTimeoutMilliseconds: UInt64 = 60_000
    /// Idle upstream connections kept per endpoint per worker (`upstream-keepalive-connections`).
    public var upstreamKeepAliveConnections: Int = 320
    /// Request head limits (431/414).
    public var limits = HTTP1Limits()
    /// Bytes buffered toward one side before reading from the other pauses.
    public var bufferHighWaterMark: Int = 64 * 1024

    /// Creates a configuration listening on `httpListen` with `workers` loops.
    public init(httpListen: SocketAddress, workers: Int) {
        self.httpListen = httpListen
        self.workers = workers
    }
}
