import Synchronization
@testable import TLS
import Testing

@Suite struct TLSSessionCacheTests {
    /// A clock the test moves by hand.
    final class Clock: Sendable {
        let seconds = Atomic<UInt64>(1000)
        func advance(_ by: UInt64) { seconds.add(by, ordering: .relaxed) }
        var now: @Sendable () -> UInt64 { { [self] in seconds.load(ordering: .relaxed) } }
    }

    static func id(_ byte: UInt8, shard: UInt8 = 0) -> [UInt8] {
        // The first byte picks the shard (16 shards): keep tests in one shard when asked.
        [shard] + [UInt8](repeating: byte, count: 31)
    }

    @Test func returnsAStoredSessionByItsIdAndNothingForAnUnknownId() {
        let cache = TLSSessionCache(capacityBytes: 1 << 20, timeoutSeconds: 600)
        #expect(cache.store(id: Self.id(1), encoded: [1, 2, 3]))
        #expect(cache.fetch(id: Self.id(1)) == [1, 2, 3])
        #expect(cache.fetch(id: Self.id(2)) == nil)
        #expect(cache.count == 1)
    }

    @Test func aSessionExpiresAfterTheTimeout() {
        let clock = Clock()
        let cache = TLSSessionCache(capacityBytes: 1 << 20, timeoutSeconds: 10, now: clock.now)
        cache.store(id: Self.id(1), encoded: [1])
        clock.advance(9)
        #expect(cache.fetch(id: Self.id(1)) == [1])
        clock.advance(1)
        #expect(cache.fetch(id: Self.id(1)) == nil)
        #expect(cache.count == 0)
    }

    @Test func expiredSessionsLeaveAsNewOnesArrive() {
        let clock = Clock()
        let cache = TLSSessionCache(capacityBytes: 1 << 20, timeoutSeconds: 10, now: clock.now)
        for byte in UInt8(0)..<50 { cache.store(id: Self.id(byte), encoded: [byte]) }
        clock.advance(11)
        cache.store(id: Self.id(200), encoded: [200])
        #expect(cache.count == 1)
    }

    @Test func theOldestSessionsLeaveWhenTheBudgetIsFull() {
        // 16 shards of 1,000 bytes; one entry costs 100 + 64 bytes: six fit in a shard.
        let cache = TLSSessionCache(capacityBytes: 16_000, timeoutSeconds: 600)
        let body = [UInt8](repeating: 7, count: 100)
        for byte in UInt8(0)..<10 { cache.store(id: Self.id(byte), encoded: body) }
        #expect(cache.count == 6)
        #expect(cache.fetch(id: Self.id(0)) == nil)
        #expect(cache.fetch(id: Self.id(3)) == nil)
        #expect(cache.fetch(id: Self.id(4)) == body)
        #expect(cache.fetch(id: Self.id(9)) == body)
    }

    @Test func aSessionLargerThanNginxsLimitIsNotCached() {
        let cache = TLSSessionCache(capacityBytes: 1 << 20, timeoutSeconds: 600)
        #expect(!cache.store(id: Self.id(1), encoded: [UInt8](repeating: 0, count: TLSSessionCache.maximumSessionBytes + 1)))
        #expect(cache.fetch(id: Self.id(1)) == nil)
        #expect(!cache.store(id: [UInt8](repeating: 1, count: 33), encoded: [1]), "session ids are at most 32 bytes")
    }

    @Test func readsTheHostNameFromAServerNameExtension() {
        func parse(_ bytes: [UInt8]) -> String? { bytes.withUnsafeBytes { ServerNameExtension.hostName($0) } }
        let name = Array("a.example.com".utf8)
        let entry: [UInt8] = [0, 0, UInt8(name.count)] + name
        #expect(parse([0, UInt8(entry.count)] + entry) == "a.example.com")
        #expect(parse([0, UInt8(entry.count + 1)] + entry) == nil, "list length must match")
        #expect(parse([0, 3, 0, 0, 9]) == nil, "entry longer than the list")
        #expect(parse([0, 4, 0, 0, 1, 0]) == nil, "NUL in the name")
        #expect(parse([]) == nil)
    }
}
