/// An open-addressing hash table from (tag, bytes) to an `Int32`, looked up
/// with raw bytes so the hot path never builds a `String`.
///
/// The tag namespaces keys (e.g. one per virtual host and match kind), so one
/// table serves every host's paths. Keys come from configuration only; a
/// request can look up but never insert, and the load factor stays at or
/// below one half, so probe sequences are short whatever the request holds.
/// A table in service is never changed: the compiler changes a copy
/// (`insert`, `remove`) to make the next table.
struct ByteKeyTable: Sendable {
    private struct Entry: Sendable {
        var hash: UInt64
        var tag: UInt32
        var start: Int32
        var length: Int32
        var value: Int32
    }

    /// Every key's bytes, back to back (removed keys' bytes stay until a rebuild).
    private var keyBytes: [UInt8]
    /// Every key added (removed ones stay until a rebuild, unreferenced).
    private var entries: [Entry]
    /// Entry index per slot, -1 when empty. Count is a power of two.
    private var slots: [Int32]
    private let mask: Int
    /// Keys in the table.
    private(set) var count: Int

    /// Entries of removed keys still taking room.
    var removedCount: Int { entries.count - count }

    /// Keys the table can hold before `insert` answers `.full`.
    var capacityBeforeFull: Int { slots.count / 2 }

    /// What `insert` did.
    enum Insertion {
        case inserted
        /// The (tag, key) is already there; its value is unchanged.
        case present
        /// The table would be more than half full: build a larger one instead.
        case full
    }

    /// Adds (tag, key) → value.
    mutating func insert(tag: UInt32, key: UnsafeBufferPointer<UInt8>, value: Int32) -> Insertion {
        let hash = ByteKeyTable.hash(tag: tag, key)
        if find(tag: tag, hash: hash, key: key) != nil { return .present }
        guard (count + 1) * 2 <= slots.count, keyBytes.count + key.count < Int(Int32.max) else { return .full }
        var slot = ByteKeyTable.slot(for: hash, mask: mask)
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(entries.count)
        entries.append(Entry(hash: hash, tag: tag, start: Int32(keyBytes.count), length: Int32(key.count), value: value))
        keyBytes.append(contentsOf: key)
        count += 1
        return .inserted
    }

    /// Removes (tag, key); returns its value, or `missing` when absent.
    @discardableResult
    mutating func remove(tag: UInt32, key: UnsafeBufferPointer<UInt8>) -> Int32 {
        let hash = ByteKeyTable.hash(tag: tag, key)
        guard var hole = find(tag: tag, hash: hash, key: key) else { return ByteKeyTable.missing }
        let value = entries[Int(slots[hole])].value
        slots[hole] = -1
        count -= 1
        // Backward-shift deletion (Knuth 6.4, algorithm R): move later keys of
        // the probe run into the hole when their home slot is not after it,
        // so lookups never stop early at the hole.
        var next = hole
        while true {
            next = (next + 1) & mask
            let index = slots[next]
            if index < 0 { break }
            let home = ByteKeyTable.slot(for: entries[Int(index)].hash, mask: mask)
            let stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if stays { continue }
            slots[hole] = index
            slots[next] = -1
            hole = next
        }
        return value
    }

    /// The same keys in a new table without the room of removed ones, with
    /// space for `spare` more before it is half full: what a table that is
    /// full, or holds many removed entries, becomes. O(keys + slots).
    func compacted(spare: Int) -> ByteKeyTable {
        var builder = Builder(capacity: count)
        keyBytes.withUnsafeBufferPointer { bytes in
            for index in slots where index >= 0 {
                let entry = entries[Int(index)]
                let start = Int(entry.start)
                builder.add(tag: entry.tag, key: UnsafeBufferPointer(rebasing: bytes[start..<start + Int(entry.length)]), value: entry.value)
            }
        }
        return builder.build(spare: spare)
    }

    /// The slot holding (tag, key), nil when absent.
    private func find(tag: UInt32, hash: UInt64, key: UnsafeBufferPointer<UInt8>) -> Int? {
        var slot = ByteKeyTable.slot(for: hash, mask: mask)
        while true {
            let index = slots[slot]
            if index < 0 { return nil }
            let entry = entries[Int(index)]
            if entry.hash == hash, entry.tag == tag, Int(entry.length) == key.count,
               keyBytes[Int(entry.start)..<Int(entry.start + entry.length)].elementsEqual(key)
            {
                return slot
            }
            slot = (slot + 1) & mask
        }
    }

    private static func hash(tag: UInt32, _ key: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hasher = ByteHasher(tag: tag)
        for byte in key { hasher.add(byte) }
        return hasher.value
    }

    /// Value returned by `lookup` for a missing key.
    static let missing: Int32 = -1

    /// Builds the table; for a repeated (tag, key) the first value wins.
    init(_ keys: [(tag: UInt32, key: [UInt8], value: Int32)]) {
        var builder = Builder(capacity: keys.count)
        for item in keys {
            item.key.withUnsafeBufferPointer { builder.add(tag: item.tag, key: $0, value: item.value) }
        }
        self = builder.build()
    }

    /// Collects keys straight into one byte buffer (no array per key), then
    /// builds the table.
    struct Builder {
        private var keyBytes: [UInt8] = []
        private var entries: [Entry] = []

        /// `capacity`: the number of keys expected.
        init(capacity: Int) {
            entries.reserveCapacity(capacity)
        }

        /// Adds `key` under `tag`.
        mutating func add(tag: UInt32, key: UnsafeBufferPointer<UInt8>, value: Int32) {
            precondition(keyBytes.count + key.count < Int(Int32.max), "routing table keys exceed 2 GiB")
            entries.append(Entry(
                hash: ByteKeyTable.hash(tag: tag, key), tag: tag, start: Int32(keyBytes.count), length: Int32(key.count),
                value: value))
            keyBytes.append(contentsOf: key)
        }

        /// Adds the UTF-8 of `key` under `tag`.
        mutating func add(tag: UInt32, key: String, value: Int32) {
            ByteKeyTable.withUTF8(key) { add(tag: tag, key: $0, value: value) }
        }

        /// The table; for a repeated (tag, key) the first value wins. Room is
        /// left for `spare` more keys before the table is half full.
        func build(spare: Int = 0) -> ByteKeyTable {
            var capacity = 8
            while capacity < (entries.count + spare) * 2 { capacity *= 2 }
            var slots = [Int32](repeating: -1, count: capacity)
            var kept: [Entry] = []
            kept.reserveCapacity(entries.count)
            let mask = capacity - 1
            keyBytes.withUnsafeBufferPointer { bytes in
                for item in entries {
                    var slot = ByteKeyTable.slot(for: item.hash, mask: mask)
                    var duplicate = false
                    while slots[slot] >= 0 {
                        let entry = kept[Int(slots[slot])]
                        if entry.hash == item.hash, entry.tag == item.tag, entry.length == item.length,
                           bytes[Int(entry.start)..<Int(entry.start + entry.length)]
                            .elementsEqual(bytes[Int(item.start)..<Int(item.start + item.length)])
                        {
                            duplicate = true
                            break
                        }
                        slot = (slot + 1) & mask
                    }
                    if duplicate { continue }
                    slots[slot] = Int32(kept.count)
                    kept.append(item)
                }
            }
            return ByteKeyTable(keyBytes: keyBytes, entries: kept, slots: slots, mask: mask)
        }
    }

    private init(keyBytes: [UInt8], entries: [Entry], slots: [Int32], mask: Int) {
        self.keyBytes = keyBytes
        self.entries = entries
        self.slots = slots
        self.mask = mask
        count = entries.count
    }

    /// Calls `body` with the UTF-8 bytes of `text`, without copying them when
    /// the string is stored contiguously (native strings are).
    static func withUTF8<Result>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(text.utf8).withUnsafeBufferPointer(body)
    }

    /// The value for `key` under `tag`, or `missing` (hashes the key; for
    /// building tables, not for the request path, which hashes as it scans).
    func lookup(tag: UInt32, key: UnsafeBufferPointer<UInt8>) -> Int32 {
        guard let slot = find(tag: tag, hash: ByteKeyTable.hash(tag: tag, key), key: key) else { return ByteKeyTable.missing }
        return entries[Int(slots[slot])].value
    }

    @inline(__always)
    private static func slot(for hash: UInt64, mask: Int) -> Int {
        // FNV's low bits are weak; fold the high bits in (murmur3 fmix64).
        var h = hash
        h ^= h >> 33
        h &*= 0xff51afd7ed558ccd
        h ^= h >> 33
        return Int(truncatingIfNeeded: h) & mask
    }

    /// The value for the key `bytes[0..<count]` hashed (with `tag`) to `hash`,
    /// or `missing`.
    @inline(__always)
    func lookup(tag: UInt32, hash: UInt64, bytes: UnsafePointer<UInt8>, count: Int) -> Int32 {
        var slot = ByteKeyTable.slot(for: hash, mask: mask)
        return slots.withUnsafeBufferPointer { slots in
            entries.withUnsafeBufferPointer { entries in
                keyBytes.withUnsafeBufferPointer { keyBytes in
                    while true {
                        let index = slots[slot]
                        if index < 0 { return ByteKeyTable.missing }
                        let entry = entries[Int(index)]
                        if entry.hash == hash, entry.tag == tag, Int(entry.length) == count {
                            var equal = true
                            let start = Int(entry.start)
                            for i in 0..<count where keyBytes[start + i] != bytes[i] {
                                equal = false
                                break
                            }
                            if equal { return entry.value }
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }
}

/// FNV-1a over a 4-byte tag and then the key bytes; incremental, so the hash
/// of every prefix of a path is available in one pass.
struct ByteHasher {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    @inline(__always)
    init(tag: UInt32) {
        add(UInt8(truncatingIfNeeded: tag))
        add(UInt8(truncatingIfNeeded: tag >> 8))
        add(UInt8(truncatingIfNeeded: tag >> 16))
        add(UInt8(truncatingIfNeeded: tag >> 24))
    }

    @inline(__always)
    mutating func add(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x100_0000_01b3
    }
}
