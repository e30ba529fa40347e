import HTTP2
import SeededRandom
import Testing

@Suite struct HTTP2StreamMapTests {
    final class Box {
        let tag: Int
        init(_ tag: Int) { self.tag = tag }
    }

    /// Random inserts, replacements and removals, checked against a
    /// Dictionary after every step: same count, same value for every key
    /// ever used (present or removed), same key set.
    @Test(arguments: [1, 2, 3, 4])
    func behavesLikeADictionary(seed: UInt64) {
        var generator = SplitMix64(seed: seed)
        var map = HTTP2StreamMap<Box>(capacity: 4)
        var reference: [Int32: Box] = [:]
        // Mostly consecutive odd IDs like a real connection, plus far-apart
        // ones; up to 240 live keys in a table kept at most half full, so
        // probe runs, wrap-around and backward-shift deletion all happen.
        var keys: [Int32] = (0..<200).map { Int32(2 * $0 + 1) }
        keys += (1...40).map { Int32(1 + 2 * 4096 * $0) }
        for step in 0..<4_000 {
            let key = keys[generator.below(keys.count)]
            switch generator.below(3) {
            case 0, 1:
                let box = Box(step)
                map[key] = box
                reference[key] = box
            default:
                #expect(map.removeValue(forKey: key) === reference.removeValue(forKey: key))
            }
            #expect(map.count == reference.count)
            #expect(map.isEmpty == reference.isEmpty)
            if step % 50 == 0 {
                for key in keys { #expect(map[key] === reference[key], "key \(key) at step \(step)") }
                #expect(Set(map.allKeys) == Set(reference.keys))
                #expect(Set(map.allValues.map(\.tag)) == Set(reference.values.map(\.tag)))
            }
        }
        map.removeAll()
        #expect(map.isEmpty && map.count == 0)
        for key in keys { #expect(map[key] == nil) }
    }

    /// 0 (a stream not opened yet) is never a key: looking it up or removing
    /// it finds nothing and leaves the count alone, however often.
    @Test func streamZeroIsNeverFound() {
        var map = HTTP2StreamMap<Box>(capacity: 4)
        map[1] = Box(1)
        for _ in 0..<40 { #expect(map.removeValue(forKey: 0) == nil) }
        #expect(map[0] == nil)
        #expect(map.count == 1 && !map.isEmpty)
        for id in stride(from: Int32(3), through: 99, by: 2) { map[id] = Box(Int(id)) }
        #expect(map.count == 50 && map[99]?.tag == 99)
    }

    @Test func assigningNilRemoves() {
        var map = HTTP2StreamMap<Box>()
        map[3] = Box(3)
        map[5] = Box(5)
        map[3] = nil
        #expect(map[3] == nil && map[5]?.tag == 5 && map.count == 1)
    }
}
