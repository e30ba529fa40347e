import COpenSSL
import Glibc
import Synchronization

/// The server-side TLS session cache (`ssl-session-cache`): sessions by id,
/// for TLS 1.2 session-ID resumption and TLS 1.3 resumption with stateful
/// tickets (`ssl-session-tickets: false`). One per process, shared by every
/// worker and kept across certificate reloads.
///
/// OpenSSL's own cache is one table per `SSL_CTX` behind one lock, and
/// OpenSSL 3.0 walks the whole table under that lock every 255 handshakes
/// to drop expired sessions. This cache is split into shards, each behind
/// its own lock, chosen by the (random) session id: two workers meet on a
/// lock only when their sessions land on the same shard, and a lock is held
/// for one hash-table operation (the session is encoded and decoded outside
/// it). Expired sessions are dropped from the oldest end as new ones arrive.
///
/// Sessions are stored DER-encoded, as nginx's shared cache stores them, and
/// the size is a byte budget in nginx's units: an entry costs its encoding
/// plus `entryOverheadBytes`, so 1 MiB holds about 4,000 sessions without
/// client certificates. A session larger than `maximumSessionBytes` (a long
/// client-certificate chain) is not cached, as in nginx.
public final class TLSSessionCache: Sendable {
    /// Bookkeeping counted per entry on top of its encoding.
    public static let entryOverheadBytes = 64
    /// Sessions whose encoding is larger are not cached (nginx's limit).
    public static let maximumSessionBytes = 4096
    static let shardCount = 16

    /// Seconds a session stays resumable (`ssl-session-timeout`).
    public let timeoutSeconds: Int
    /// Byte budget of the whole cache (`ssl-session-cache-size`).
    public let capacityBytes: Int
    private let shards: [Shard]
    private let now: @Sendable () -> UInt64

    /// `now` returns seconds on a monotonic clock (injected by tests).
    public init(capacityBytes: Int, timeoutSeconds: Int, now: @escaping @Sendable () -> UInt64 = TLSSessionCache.monotonicSeconds) {
        precondition(capacityBytes > 0 && timeoutSeconds > 0, "a session cache needs room and a positive timeout")
        self.capacityBytes = capacityBytes
        self.timeoutSeconds = timeoutSeconds
        self.now = now
        let perShard = max(capacityBytes / TLSSessionCache.shardCount, 1)
        shards = (0..<TLSSessionCache.shardCount).map { _ in Shard(budget: perShard) }
    }

    @Sendable public static func monotonicSeconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec)
    }

    /// A session id (at most 32 bytes, RFC 5246 §7.4.1.2), as a hash key.
    struct SessionID: Hashable {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        var length: Int

        init?(_ bytes: UnsafeRawBufferPointer) {
            guard !bytes.isEmpty, bytes.count <= 32 else { return nil }
            length = bytes.count
            withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
        }

        static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.length == rhs.length && lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1
                && lhs.words.2 == rhs.words.2 && lhs.words.3 == rhs.words.3
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(words.0)
            hasher.combine(words.1)
            hasher.combine(words.2)
            hasher.combine(words.3)
        }

        /// Session ids are random: their first bytes pick the shard.
        var shardIndex: Int { Int(truncatingIfNeeded: words.0 % UInt64(TLSSessionCache.shardCount)) }
    }

    private struct Entry {
        var encoded: [UInt8]
        var expiresAt: UInt64
        var cost: Int { encoded.count + TLSSessionCache.entryOverheadBytes }
    }

    private struct Table {
        var entries: [SessionID: Entry] = [:]
        /// Ids in insertion order (so also expiry order: one timeout for all);
        /// ids already removed are skipped when reached.
        var order: [SessionID] = []
        var head = 0
        var bytes = 0

        mutating func remove(_ id: SessionID) {
            if let old = entries.removeValue(forKey: id) { bytes -= old.cost }
        }

        /// Drops the oldest entries while over `budget` or expired.
        mutating func trim(budget: Int, now: UInt64) {
            while head < order.count {
                let id = order[head]
                guard let entry = entries[id] else {
                    head += 1
                    continue
                }
                guard bytes > budget || entry.expiresAt <= now else { break }
                remove(id)
                head += 1
            }
            if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    private final class Shard: Sendable {
        let budget: Int
        let table = Mutex(Table())
        init(budget: Int) { self.budget = budget }
    }

    /// Number of sessions held (tests and metrics).
    public var count: Int { shards.reduce(0) { sum, shard in sum + shard.table.withLock { $0.entries.count } } }

    /// Stores an encoded session under `id`; false when it is not cached (too large, bad id).
    @discardableResult
    func store(id: UnsafeRawBufferPointer, encoded: [UInt8]) -> Bool {
        guard let key = SessionID(id), encoded.count <= TLSSessionCache.maximumSessionBytes else { return false }
        let shard = shards[key.shardIndex]
        let now = self.now()
        let entry = Entry(encoded: encoded, expiresAt: now &+ UInt64(timeoutSeconds))
        shard.table.withLock { table in
            if let old = table.entries.updateValue(entry, forKey: key) {
                table.bytes -= old.cost
            } else {
                table.order.append(key)
            }
            table.bytes += entry.cost
            table.trim(budget: shard.budget, now: now)
        }
        return true
    }

    /// The encoded session stored under `id`, unless it expired.
    func fetch(id: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let key = SessionID(id) else { return nil }
        let now = self.now()
        return shards[key.shardIndex].table.withLock { table -> [UInt8]? in
            guard let entry = table.entries[key] else { return nil }
            guard entry.expiresAt > now else {
                table.remove(key)
                return nil
            }
            return entry.encoded
        }
    }

    /// Forgets the session stored under `id` (a fatal alert on it, or OpenSSL found it stale).
    func remove(id: UnsafeRawBufferPointer) {
        guard let key = SessionID(id) else { return }
        shards[key.shardIndex].table.withLock { $0.remove(key) }
    }

    /// Public test hooks over raw bytes.
    public func store(id: [UInt8], encoded: [UInt8]) -> Bool { id.withUnsafeBytes { store(id: $0, encoded: encoded) } }
    public func fetch(id: [UInt8]) -> [UInt8]? { id.withUnsafeBytes { fetch(id: $0) } }

    /// Makes `context` (the front context: OpenSSL's session context for
    /// every connection) store and look up sessions here only.
    func install(on context: OpaquePointer) {
        _ = postern_SSL_CTX_set_session_cache_mode(context, postern_SSL_SESS_CACHE_SERVER_EXTERNAL())
        SSL_CTX_sess_set_new_cb(context, sessionCacheNew)
        SSL_CTX_sess_set_get_cb(context, sessionCacheGet)
        SSL_CTX_sess_set_remove_cb(context, sessionCacheRemove)
        // The remove callback gets the context only: it finds the cache through app data (index 0).
        SSL_CTX_set_ex_data(context, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Encodes a session and stores it under its id.
    fileprivate func add(_ session: OpaquePointer) {
        var length: UInt32 = 0
        guard let id = SSL_SESSION_get_id(session, &length), length > 0 else { return }
        let size = i2d_SSL_SESSION(session, nil)
        guard size > 0, Int(size) <= TLSSessionCache.maximumSessionBytes else { return }
        var encoded = [UInt8](repeating: 0, count: Int(size))
        let written = encoded.withUnsafeMutableBufferPointer { buffer -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = buffer.baseAddress
            return i2d_SSL_SESSION(session, &cursor)
        }
        guard written == size else { return }
        store(id: UnsafeRawBufferPointer(start: id, count: Int(length)), encoded: encoded)
    }

    /// The session stored under `id`, decoded (the caller owns the reference).
    fileprivate func lookup(_ id: UnsafeRawBufferPointer) -> OpaquePointer? {
        guard let encoded = fetch(id: id) else { return nil }
        return encoded.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_SSL_SESSION(nil, &cursor, buffer.count)
        }
    }
}

/// The cache of the connection's store (reached through the connection, app data index 0).
private func sessionCache(of ssl: OpaquePointer?) -> TLSSessionCache? {
    guard let ssl, let raw = SSL_get_ex_data(ssl, 0) else { return nil }
    return Unmanaged<TLSConnection>.fromOpaque(raw).takeUnretainedValue().store?.sessionCache
}

/// OpenSSL: a new session after a full handshake. Returns 0: the cache keeps
/// an encoding, not OpenSSL's reference.
private func sessionCacheNew(_ ssl: OpaquePointer?, _ session: OpaquePointer?) -> Int32 {
    guard let ssl, let session, let cache = sessionCache(of: ssl) else { return 0 }
    // A TLS 1.3 session sealed in a stateless ticket has a dummy id: the
    // client brings the ticket back, never the id. Caching it wastes room.
    if SSL_version(ssl) == postern_TLS1_3_VERSION(), SSL_get_options(ssl) & postern_SSL_OP_NO_TICKET() == 0 { return 0 }
    cache.add(session)
    return 0
}

/// OpenSSL: the session a client offers by id (or TLS 1.3 stateful ticket).
/// `copy` = 0: the returned reference is OpenSSL's.
private func sessionCacheGet(
    _ ssl: OpaquePointer?, _ id: UnsafePointer<UInt8>?, _ length: Int32, _ copy: UnsafeMutablePointer<Int32>?
) -> OpaquePointer? {
    copy?.pointee = 0
    guard let id, length > 0, let cache = sessionCache(of: ssl) else { return nil }
    return cache.lookup(UnsafeRawBufferPointer(start: id, count: Int(length)))
}

/// OpenSSL: forget a session (fatal alert, expired, single-use ticket used).
private func sessionCacheRemove(_ context: OpaquePointer?, _ session: OpaquePointer?) {
    guard let context, let session, let raw = SSL_CTX_get_ex_data(context, 0) else { return }
    let cache = Unmanaged<TLSSessionCache>.fromOpaque(raw).takeUnretainedValue()
    var length: UInt32 = 0
    guard let id = SSL_SESSION_get_id(session, &length), length > 0 else { return }
    cache.remove(id: UnsafeRawBufferPointer(start: id, count: Int(length)))
}
