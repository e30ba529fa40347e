import Glibc
import Reactor
import RouteModel
import Routing
import TLS

/// The byte stream under HTTP on one socket (Envoy's transport socket): the
/// socket, the optional TLS session on it, and the connection's two buffers.
///
/// It is the only owner of what TLS makes awkward, so the four connection
/// types (HTTP/1.1 and HTTP/2, client and upstream side) never see it:
/// - a read may need the socket writable and a write may need it readable
///   (OpenSSL's want-read/want-write): `read`/`write` remember that,
///   `interest(reading:writing:)` asks epoll for what is really needed, and
///   `translate(_:)` turns the readiness that arrives back into "you may
///   read" / "you may write";
/// - OpenSSL may hold input epoll will never announce (records read with
///   the handshake, or several records read at once): `read` takes all of
///   it while the buffer has room, and `hasUnannouncedInput` says when the
///   caller must read again without waiting for an event;
/// - the handshake and what it negotiated (`handshake`, `negotiatedHTTP2`,
///   `sessionFacts` for the request pipeline);
/// - the buffers: chunks of the worker's pools, taken on the first read or
///   append and given back by `releaseIdleBuffers` (the connection says
///   when: after 200 ms idle, or after a flush on HTTP/2);
/// - the deadline: it stamps read and write progress itself when bytes
///   move (the loop's clock, read once per wake-up), holds the one armed
///   timeout (`arm`: which kind, how long, what progress restarts it) and
///   says when it passed (`expired`). A connection only arms the timeout
///   its state calls for and acts when it fires; no connection keeps
///   timestamps or subtracts them.
///
/// A noncopyable struct stored inline in its connection: no allocation of
/// its own, no reference to follow on the hot path, and no way to copy the
/// descriptor by mistake. A connection that hands its socket to another
/// (HTTP/1.1 to HTTP/2) does it with `handOver`.
///
/// Loop-bound, like its connection.
struct TransportSocket: ~Copyable {
    // Stored properties from the widest to the narrowest: the struct is
    // part of every connection object (56 bytes, not 70 in declaration
    // order by topic).
    private var tls: TLSConnection?
    /// Bytes read and not handled yet.
    let readBuffer: ByteBuffer
    /// Bytes waiting for the socket. Replaceable: an upstream attempt that
    /// fails carries its unsent bytes to the next connection.
    var writeBuffer: ByteBuffer
    /// The epoll registration (nil: not registered).
    private(set) var registration: Registration?
    /// The loop whose clock stamps progress (`EventLoop.now`, read once per
    /// wake-up: no system call). unowned(unsafe): the loop outlives every
    /// connection on it.
    private unowned(unsafe) let clock: EventLoop
    /// When the armed timeout was armed (loop milliseconds).
    private var armedAt: UInt64
    /// When bytes were last read, or reading last resumed (epoll interest
    /// gained `.read`): a wait for input counts from then.
    private var inputAt: UInt64
    /// When bytes were last written.
    private var outputAt: UInt64
    /// How long the armed timeout allows (`.max`: none armed).
    private var timeoutLimit: UInt64 = .max
    /// The socket (-1 once closed or handed over).
    private(set) var fd: CInt
    /// The interest last given to epoll.
    private(set) var interest: Interest = .none
    /// What the handshake waits for.
    private var handshakeInterest: Interest = .read
    /// The armed timeout's kind (the connection's `TransportTimeout` raw
    /// value; 0 when none is armed).
    private var timeoutKind: UInt8 = 0
    /// What restarts the armed timeout's clock.
    private var timeoutClock: TimeoutClock = .armed
    /// Established with TLS (stays true after `close`, for the connection's logs and metrics).
    let isEncrypted: Bool
    /// What TLS waits for beyond what the connection asked (`Waits`): zero
    /// on a plain socket and on an established session between want-read/
    /// want-write, so the hot path tests one byte.
    private var waits: UInt8
    /// The last TLS read found only part of a record inside OpenSSL: the
    /// rest comes from the socket, and epoll announces that (so reading
    /// again without an event would find nothing: no spinning).
    private var recordIncomplete = false
    /// A read took bytes and then met the end of the stream or an error
    /// that no epoll event will repeat (close_notify, a broken record after
    /// good ones): the next `read` returns it. One byte, not an optional
    /// `IOResult`: it is part of every connection object.
    private var pendingEnd: PendingEnd = .none

    /// What `pendingEnd` holds.
    private enum PendingEnd: UInt8 {
        case none
        case endOfFile
        case failed
    }

    /// Bits of `waits`.
    private enum Waits {
        /// TLS handshake not finished yet.
        static let handshaking: UInt8 = 1
        /// The last TLS read needs the socket writable to progress.
        static let readWantsWrite: UInt8 = 2
        /// The last TLS write needs the socket readable to progress.
        static let writeWantsRead: UInt8 = 4
    }

    private var handshaking: Bool { waits & Waits.handshaking != 0 }

    /// A plain socket, or one with `tls` (a server or client session not
    /// yet through its handshake).
    private init(fd: CInt, tls: TLSConnection?, loop: EventLoop, readPool: BufferPool, writePool: BufferPool) {
        self.fd = fd
        self.tls = tls
        self.isEncrypted = tls != nil
        self.waits = tls != nil ? Waits.handshaking : 0
        self.readBuffer = ByteBuffer(pool: readPool)
        self.writeBuffer = ByteBuffer(pool: writePool)
        self.clock = loop
        let now = loop.now
        self.armedAt = now
        self.inputAt = now
        self.outputAt = now
    }

    /// A plain TCP socket (`fd` owned from now on) on `loop`.
    init(plain fd: CInt, loop: EventLoop, readPool: BufferPool, writePool: BufferPool) {
        self.init(fd: fd, tls: nil, loop: loop, readPool: readPool, writePool: writePool)
    }

    /// An accepted socket on the HTTPS listener: a server TLS session with
    /// `secure`'s certificates (chosen by SNI during the handshake). Nil
    /// when there are no certificates or OpenSSL cannot make a session; the
    /// caller still owns `fd` then.
    init?(acceptedTLS fd: CInt, secure: SecurePolicy?, loop: EventLoop, readPool: BufferPool, writePool: BufferPool) {
        guard let store = secure?.certificates, let session = try? TLSConnection(fd: fd, store: store) else { return nil }
        self.init(fd: fd, tls: session, loop: loop, readPool: readPool, writePool: writePool)
    }

    /// Takes over `other`'s socket and session (HTTP/1.1 to HTTP/2, after
    /// ALPN `h2` or the h2c preface) with buffers from other pools. `other`
    /// is left without a socket; its buffers stay with it (their bytes are
    /// the caller's to carry over). The new owner arms its own timeout;
    /// the progress stamps come along.
    init(takingOver other: inout TransportSocket, readPool: BufferPool, writePool: BufferPool) {
        self.fd = other.fd
        self.tls = other.tls
        self.isEncrypted = other.isEncrypted
        self.waits = other.waits
        self.handshakeInterest = other.handshakeInterest
        self.recordIncomplete = other.recordIncomplete
        self.readBuffer = ByteBuffer(pool: readPool)
        self.writeBuffer = ByteBuffer(pool: writePool)
        self.clock = other.clock
        self.armedAt = other.armedAt
        self.inputAt = other.inputAt
        self.outputAt = other.outputAt
        other.fd = -1
        other.tls = nil
        other.registration = nil
    }

    // MARK: Reading and writing

    /// Reads into `readBuffer`'s free space (which must not be empty once
    /// storage is taken): with TLS, every record OpenSSL can decrypt now,
    /// until the buffer is full. `.bytes` when anything was read, even if
    /// the stream ended behind it (the next read says so).
    @inline(__always)
    mutating func read() -> IOResult {
        // A connection back from idle takes its buffer from the worker's pool now.
        readBuffer.ensureStorage()
        let result: IOResult
        if let tls {
            switch pendingEnd {
            case .none: result = readRecords(tls)
            case .endOfFile: return .endOfFile
            case .failed: return .failed(EPROTO)
            }
        } else {
            result = Socket.read(fd, into: readBuffer)
        }
        if case .bytes = result { inputAt = clock.now }
        return result
    }

    /// Like `read()`, but a plain socket gives at most `limit` bytes (the
    /// rest stays in the socket, for `splice`); with TLS, the same as `read()`
    /// (OpenSSL reads whole records).
    @inline(__always)
    mutating func read(atMost limit: Int) -> IOResult {
        guard tls == nil else { return read() }
        readBuffer.ensureStorage()
        let result = Socket.read(fd, into: readBuffer, atMost: limit)
        if case .bytes = result { inputAt = clock.now }
        return result
    }

    /// The descriptor for `splice(2)`, which moves bytes between sockets
    /// without copying them: only a plain socket's (nil with TLS, whose
    /// bytes must pass through OpenSSL).
    var spliceDescriptor: CInt? { tls == nil && !isEncrypted ? fd : nil }

    /// Moves up to `count` bytes this plain socket holds into `pipe`
    /// (`splice(2)`, no copy through user space). Only when
    /// `spliceDescriptor` is not nil.
    @inline(__always)
    mutating func splice(into pipe: SplicePipe, count: Int) -> IOResult {
        precondition(tls == nil, "splice on a TLS socket")
        let result = Splice.move(from: fd, to: pipe.writeEnd, count: count, more: false)
        if case .bytes = result { inputAt = clock.now }
        return result
    }

    /// Moves up to `count` bytes from `pipe` into this plain socket.
    @inline(__always)
    mutating func splice(from pipe: SplicePipe, count: Int) -> IOResult {
        precondition(tls == nil, "splice on a TLS socket")
        let result = Splice.move(from: pipe.readEnd, to: fd, count: count, more: false)
        if case let .bytes(count) = result, count > 0 { outputAt = clock.now }
        return result
    }

    /// The TLS read loop: OpenSSL's buffered records are not announced by
    /// epoll, so they are taken now (the one place for that rule).
    private mutating func readRecords(_ tls: TLSConnection) -> IOResult {
        var total = 0
        while readBuffer.writableBytes > 0 {
            switch tls.read(into: readBuffer.writable) {
            case let .bytes(count):
                readBuffer.didWrite(count)
                total += count
                recordIncomplete = false
                if !tls.hasPendingInput { return .bytes(total) }
            case .wantRead:
                recordIncomplete = tls.hasPendingInput
                return total > 0 ? .bytes(total) : .wouldBlock
            case .wantWrite:
                waits |= Waits.readWantsWrite
                return total > 0 ? .bytes(total) : .wouldBlock
            case .closed:
                guard total > 0 else { return .endOfFile }
                pendingEnd = .endOfFile
                return .bytes(total)
            case .failed:
                guard total > 0 else { return .failed(EPROTO) }
                pendingEnd = .failed
                return .bytes(total)
            }
        }
        return .bytes(total)
    }

    /// Input that is ready without a readiness event: bytes OpenSSL holds
    /// (when not just part of a record), or an end of stream found behind
    /// the last bytes read. The caller reads again (once there is room)
    /// instead of waiting for epoll, which will not announce it.
    @inline(__always)
    var hasUnannouncedInput: Bool {
        // Only TLS holds input (and only a TLS read keeps an end for later).
        guard let tls else { return false }
        if pendingEnd != .none { return true }
        // Reading waits for writability first: it would fail the same way.
        guard !recordIncomplete, waits & (Waits.handshaking | Waits.readWantsWrite) == 0 else { return false }
        return tls.hasPendingInput
    }

    /// Writes `writeBuffer`'s bytes, consuming what the socket took.
    /// `.wouldBlock` when nothing could be written now; `.failed` when the
    /// stream is broken.
    @inline(__always)
    mutating func write() -> IOResult {
        guard let tls else {
            let result = Socket.write(fd, from: writeBuffer)
            if case let .bytes(count) = result, count > 0 { outputAt = clock.now }
            return result
        }
        switch tls.write(writeBuffer.readable) {
        case let .bytes(count):
            writeBuffer.consume(count)
            if count > 0 { outputAt = clock.now }
            return .bytes(count)
        case .wantWrite:
            return .wouldBlock
        case .wantRead:
            waits |= Waits.writeWantsRead
            return .wouldBlock
        case .closed, .failed:
            return .failed(EPIPE)
        }
    }

    /// PROXY protocol header bytes, before any TLS: looks at what the socket
    /// holds without taking it.
    func peek(into space: UnsafeMutableRawBufferPointer) -> IOResult { Socket.peek(fd, into: space) }

    /// PROXY protocol header bytes, before any TLS: takes exactly what fits `space`.
    func receive(into space: UnsafeMutableRawBufferPointer) -> IOResult { Socket.receive(fd, into: space) }

    // MARK: Readiness

    /// The epoll interest for what the connection wants (`.read`: it has
    /// room for input; `.write`: output is queued; other flags pass
    /// through). During the TLS handshake, what the handshake waits for; a
    /// TLS read or write that needs the other direction adds it.
    @inline(__always)
    func interest(for wanted: Interest) -> Interest {
        if waits == 0 { return wanted }
        return interestForTLS(wanted)
    }

    private func interestForTLS(_ wanted: Interest) -> Interest {
        if handshaking { return handshakeInterest }
        var adjusted = wanted
        if waits & Waits.readWantsWrite != 0 {
            adjusted.insert(.write)
            // The read cannot progress before the socket is writable (OpenSSL
            // must first send what it owes, e.g. a KeyUpdate): input waiting
            // in the socket, or a half-close, would wake the owner on every
            // wait for a read that fails the same way.
            if waits & Waits.writeWantsRead == 0 {
                adjusted.remove(.read)
                adjusted.insert(.ignoringReadHangup)
            }
        }
        if waits & Waits.writeWantsRead != 0 { adjusted.insert(.read) }
        return adjusted
    }

    /// The connection waits for its peer's input: epoll watches for it, or
    /// a TLS read waits for writability first (and epoll watches that).
    var awaitsInput: Bool { interest.contains(.read) || waits & Waits.readWantsWrite != 0 }

    /// The readiness epoll reported, in the connection's terms: a TLS read
    /// that waited for writability may read now (`.readable`), a TLS write
    /// that waited for input may write now (`.writable`).
    @inline(__always)
    mutating func translate(_ readiness: Readiness) -> Readiness {
        if waits & (Waits.readWantsWrite | Waits.writeWantsRead) == 0 { return readiness }
        return translateForTLS(readiness)
    }

    private mutating func translateForTLS(_ readiness: Readiness) -> Readiness {
        var translated = readiness
        if waits & Waits.readWantsWrite != 0, readiness.contains(.writable) {
            waits &= ~Waits.readWantsWrite
            translated.insert(.readable)
        }
        if waits & Waits.writeWantsRead != 0, !readiness.isDisjoint(with: [.readable, .hangup, .error]) {
            waits &= ~Waits.writeWantsRead
            translated.insert(.writable)
        }
        return translated
    }

    /// Registers the socket with `loop` for `handler`.
    mutating func register(on loop: EventLoop, interest initial: Interest, handler: EventHandler) throws {
        registration = try loop.register(fd: fd, interest: initial, handler: handler)
        interest = initial
    }

    /// Sets the epoll interest; no system call when unchanged. Returns
    /// whether it changed. `loop` is only evaluated then (reading it
    /// through the connection's worker costs a retain).
    @inline(__always)
    @discardableResult
    mutating func setInterest(_ new: Interest, on loop: @autoclosure () -> EventLoop) -> Bool {
        guard new != interest, let registration else { return false }
        // A wait for input counts from when reading resumes, not from the
        // last bytes read before a pause for backpressure.
        if new.contains(.read), !interest.contains(.read) { inputAt = clock.now }
        interest = new
        loop().setInterest(registration, new)
        return true
    }

    /// Stops epoll reporting this socket (before a hand-over or close).
    mutating func deregister(from loop: EventLoop) {
        if let registration { loop.deregister(registration) }
        registration = nil
    }

    // MARK: Deadline

    /// Arms `kind`, replacing whatever was armed: it passes `milliseconds`
    /// after now, or after the progress `restartedBy` names when that comes
    /// later. Arming again (even the same kind) starts it over.
    @inline(__always)
    mutating func arm<Kind: TransportTimeout>(_ kind: Kind, after milliseconds: UInt64, restartedBy progress: TimeoutClock = .armed) {
        timeoutKind = kind.rawValue
        timeoutLimit = milliseconds
        timeoutClock = progress
        armedAt = clock.now
    }

    /// No timeout armed.
    @inline(__always)
    mutating func disarm() {
        timeoutKind = 0
        timeoutLimit = .max
    }

    /// The armed timeout's kind (nil: none armed).
    func armed<Kind: TransportTimeout>(as _: Kind.Type = Kind.self) -> Kind? {
        timeoutLimit == .max ? nil : Kind(rawValue: timeoutKind)
    }

    /// The armed timeout, when it has passed at `now` (the loop's tick).
    func expired<Kind: TransportTimeout>(now: UInt64, as _: Kind.Type = Kind.self) -> Kind? {
        guard timeoutLimit != .max, now &- start(of: timeoutClock) >= timeoutLimit else { return nil }
        return Kind(rawValue: timeoutKind)
    }

    /// No bytes written for `milliseconds` since the later of the arming
    /// and the last write: output has stalled (the send timeout, which runs
    /// beside the armed one while a connection has bytes for its peer).
    func outputStalled(for milliseconds: UInt64, now: UInt64) -> Bool {
        now &- start(of: .output) >= milliseconds
    }

    /// Nothing armed anew and no bytes moved either way for
    /// `milliseconds`: the connection has been quiet that long (when idle
    /// buffers go back to their pools).
    func quiet(for milliseconds: UInt64, now: UInt64) -> Bool {
        now &- start(of: .traffic) >= milliseconds
    }

    /// When a clock restarted last: the arming, or later progress it counts.
    @inline(__always)
    private func start(of progress: TimeoutClock) -> UInt64 {
        switch progress {
        case .armed: return armedAt
        case .input: return max(armedAt, inputAt)
        case .output: return max(armedAt, outputAt)
        case .traffic: return max(armedAt, max(inputAt, outputAt))
        }
    }

    // MARK: Handshake

    /// How far the TLS handshake got.
    enum HandshakeProgress {
        /// Done (or no TLS): application bytes may flow.
        case complete
        /// Waiting for the socket (`interest` says which way).
        case waiting
        /// The peer went away or spoke something else.
        case failed
    }

    /// Advances the TLS handshake (server or client side).
    mutating func handshake() -> HandshakeProgress {
        guard let tls, handshaking else { return .complete }
        switch tls.handshake() {
        case .bytes:
            waits &= ~Waits.handshaking
            return .complete
        case .wantRead:
            handshakeInterest = .read
            return .waiting
        case .wantWrite:
            handshakeInterest = .write
            return .waiting
        case .closed, .failed:
            return .failed
        }
    }

    /// The handshake resumed an earlier session.
    var resumedSession: Bool { tls?.resumedSession ?? false }

    /// ALPN agreed on HTTP/2 (`h2`).
    var negotiatedHTTP2: Bool { tls?.applicationProtocol == Self.h2Protocol }

    /// ALPN identifier of HTTP/2 over TLS.
    private static let h2Protocol: [UInt8] = Array("h2".utf8)

    /// What the request pipeline reads of the TLS session (nil: plain).
    @inline(__always)
    var sessionFacts: TLSSessionFacts? {
        guard let tls else { return nil }
        return TLSSessionFacts(session: tls)
    }

    /// After the handshake, for HTTP/1.1: a record at a time from here on
    /// (its reads stop for backpressure and resume on epoll readiness), and
    /// the handshake's record buffers go back until the request.
    mutating func settleForHTTP1() {
        guard let tls else { return }
        tls.endReadAhead()
        if !tls.hasPendingInput { tls.releaseIdleBuffers() }
    }

    /// For HTTP/2, long-lived and busy: one read takes every record the
    /// socket holds, and OpenSSL keeps its record buffers while busy
    /// (`releaseIdleBuffers(includingSession:)` frees them when idle).
    mutating func settleForHTTP2() {
        tls?.tuneForMultiplexing()
    }

    /// Starts the client side of TLS on a connected socket to an upstream
    /// (`serverName` as SNI and, when the context verifies, the name checked).
    /// False when OpenSSL cannot make the session.
    mutating func startClientTLS(_ context: UpstreamTLSContext, serverName: String) -> Bool {
        guard let session = try? TLSConnection(fd: fd, client: context.context, serverName: serverName) else { return false }
        tls = session
        waits |= Waits.handshaking
        handshakeInterest = .write
        return true
    }

    /// The error of a non-blocking connect, once the socket is writable (0: connected).
    var connectError: CInt { Socket.pendingError(fd) }

    // MARK: Buffers and closing

    /// Gives the buffers back to their pools when they hold nothing (a
    /// no-op for one that holds bytes); `includingSession` also frees
    /// OpenSSL's record buffers (about 17 KiB each way) when empty.
    @inline(__always)
    func releaseIdleBuffers(includingSession: Bool) {
        readBuffer.releaseStorage()
        writeBuffer.releaseStorage()
        if includingSession { tls?.releaseIdleBuffers() }
    }

    /// Sends close_notify (TLS) and shuts the write side: the peer reads
    /// the end of the stream, and may still send.
    mutating func shutdownWrite() {
        tls?.shutdown()
        Socket.shutdownWrite(fd)
    }

    /// Deregisters and closes the socket; with `notify`, says close_notify
    /// first. Idempotent.
    mutating func close(loop: EventLoop, notify: Bool) {
        deregister(from: loop)
        guard fd >= 0 else { return }
        if notify { tls?.shutdown() }
        // The session goes before its descriptor.
        tls = nil
        Socket.close(fd)
        fd = -1
    }
}

/// A connection's kinds of timeout (an enum with `UInt8` raw values, none
/// of them 0): what it arms on its transport and acts on when it fires.
protocol TransportTimeout: RawRepresentable where RawValue == UInt8 {}

/// What restarts an armed timeout's clock besides arming it again. The
/// transport stamps progress itself when bytes move.
enum TimeoutClock: UInt8 {
    /// Nothing: a budget for the whole phase (a TLS handshake, a request
    /// head, an idle keep-alive wait, a connect).
    case armed
    /// Bytes read, or reading resuming after a pause (a request body, an
    /// upstream response).
    case input
    /// Bytes written (a peer that must take what is queued).
    case output
    /// Bytes either way (an idle tunnel, an idle HTTP/2 connection).
    case traffic
}

/// What the request pipeline may know of a client's TLS session: SNI, the
/// context the handshake chose, the verified client certificate. A view of
/// the session that connections pass on without seeing the session itself.
struct TLSSessionFacts: ClientTLSFacts {
    fileprivate let session: TLSConnection

    /// SNI (lower case, no trailing dot), empty when the client sent none.
    @inline(__always) var serverName: [UInt8] { session.serverName }
    /// The context the handshake chose for that name.
    @inline(__always) var selectedContext: TLSServerContext? { session.selectedContext }
    /// A client certificate was presented and verified on that context.
    @inline(__always) var hasVerifiedClientCertificate: Bool { session.hasVerifiedClientCertificate }
    /// The verified client certificate as URL-encoded PEM (empty: none, or not passed).
    @inline(__always) var escapedClientCertificate: [UInt8] { session.escapedClientCertificate }
}

/// An upstream's client TLS configuration (CAs, verification, ALPN offer),
/// opaque outside the transport.
struct UpstreamTLSContext {
    fileprivate let context: TLSClientContext

    /// Identifies the configuration: pooled connections are reused only with their own.
    var identity: ObjectIdentifier { ObjectIdentifier(context) }
}

/// Client TLS contexts for HTTPS, gRPCS and h2 endpoints, one per distinct
/// settings and ALPN offer, kept across publications (one context serves every
/// connection with those settings, and pooled connections stay reusable only
/// while their context is the same object).
///
/// Made off the worker loops: `prepare(for:)` runs on the publishing thread
/// for every cluster of a new table, and the workers receive the result
/// (`UpstreamTLSContextSet`) with the table. A context that cannot be made (an
/// unusable CA bundle) is remembered as a failure, reported once, and its
/// requests get 502 without another attempt.
struct UpstreamTLSContexts {
    private var made: [UpstreamTLSKey: UpstreamTLSContext?] = [:]

    /// The key a cluster's endpoints need: nil for cleartext clusters.
    static func key(for upstream: UpstreamSettings) -> UpstreamTLSKey? {
        guard let settings = upstream.tls else { return nil }
        // gRPC over TLS speaks HTTP/2 (ALPN h2); HTTPS speaks HTTP/1.1.
        return UpstreamTLSKey(settings: settings, applicationProtocols: upstream.wireProtocol == .grpcs ? ["h2"] : [])
    }

    /// Makes the contexts `clusters` need that are not made yet, drops those
    /// no cluster uses any more, and returns the set the workers use, with
    /// the keys that failed this time (each failure is reported once).
    mutating func prepare(for clusters: [CompiledCluster]) -> (contexts: UpstreamTLSContextSet, newFailures: [UpstreamTLSKey]) {
        var wanted: [UpstreamTLSKey: UpstreamTLSContext?] = [:]
        var newFailures: [UpstreamTLSKey] = []
        for cluster in clusters {
            guard let key = Self.key(for: cluster.upstream), wanted[key] == nil else { continue }
            if let known = made[key] {
                wanted[key] = known
            } else {
                let context = Self.make(key)
                if context == nil { newFailures.append(key) }
                wanted[key] = .some(context)
            }
        }
        made = wanted
        return (UpstreamTLSContextSet(made), newFailures)
    }

    /// A worker's lookup; a key missing from the prepared set (a table that
    /// was not prepared: tests, or a cluster added by a patch) is made here.
    mutating func context(for settings: UpstreamTLS, applicationProtocols: [String]) -> UpstreamTLSContext? {
        let key = UpstreamTLSKey(settings: settings, applicationProtocols: applicationProtocols)
        if let known = made[key] { return known }
        let context = Self.make(key)
        // Bounded: settings come from configuration, not from requests.
        if made.count > 1024 { made.removeAll() }
        made[key] = .some(context)
        return context
    }

    /// Installs a prepared set (worker loop), replacing the previous one.
    mutating func install(_ prepared: UpstreamTLSContextSet) {
        made = prepared.contexts
    }

    private static func make(_ key: UpstreamTLSKey) -> UpstreamTLSContext? {
        guard let context = try? TLSClientContext(
            verify: key.settings.verify, certificateAuthoritiesPEM: key.settings.certificateAuthoritiesPEM)
        else { return nil }
        if !key.applicationProtocols.isEmpty {
            guard (try? context.offerApplicationProtocols(key.applicationProtocols)) != nil else { return nil }
        }
        return UpstreamTLSContext(context: context)
    }
}

/// The client TLS contexts of one publication, handed to every worker with
/// the table (immutable; an OpenSSL client context serves connections on
/// any thread). A key mapped to nil is a context that could not be made.
final class UpstreamTLSContextSet: @unchecked Sendable {
    fileprivate let contexts: [UpstreamTLSKey: UpstreamTLSContext?]

    fileprivate init(_ contexts: [UpstreamTLSKey: UpstreamTLSContext?]) {
        self.contexts = contexts
    }

    /// Contexts (and failures) in the set.
    var count: Int { contexts.count }

    /// Settings whose context could not be made.
    var failures: Int {
        contexts.values.reduce(0) { count, context in
            if case .none = context { return count + 1 }
            return count
        }
    }
}

/// Client TLS contexts are per upstream TLS settings and ALPN offer.
struct UpstreamTLSKey: Hashable {
    var settings: UpstreamTLS
    var applicationProtocols: [String]
}
