import Foundation
@testable import Kube
import Testing

/// `uid` and `creationTimestamp` are stored packed when they have the API
/// server's form, and must read back exactly as written either way: Events
/// name an object by its uid, conflicts are decided by creation time.
@Suite struct ObjectMetaPackingTests {
    func decoded(_ json: String) throws -> ObjectMeta {
        try JSONDecoder().decode(ObjectMeta.self, from: Data(json.utf8))
    }

    @Test(arguments: [
        "0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5f6", "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
        // Not the lower-case UUID form: kept as text, still read back as written.
        "0F8B3C5E-1D2A-4B6C-9E7F-A1B2C3D4E5F6", "0f8b3c5e1d2a4b6c9e7fa1b2c3d4e5f6", "0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5f", "u-1", "",
        "0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5f6x", "0f8b3c5e-1d2a-4b6c-9e7f_a1b2c3d4e5f6", "0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5fg",
    ])
    func aUIDReadsBackAsWritten(uid: String) throws {
        let meta = try decoded(#"{"name":"web","uid":"\#(uid)"}"#)
        #expect(meta.uid == uid)
        #expect(ObjectMeta(name: "web", uid: uid) == meta)
        // The API server's form (lower-case, dashed) is the one packed.
        let canonical = uid.utf8.count == 36 && uid.allSatisfy { "0123456789abcdef-".contains($0) } && uid.filter { $0 == "-" }.count == 4
        #expect(meta.isPacked.uid == canonical)
        var changed = meta
        changed.uid = nil
        #expect(changed.uid == nil)
        #expect(changed != meta)
    }

    @Test(arguments: [
        "2026-11-27T08:00:00Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2000-02-29T12:34:56Z", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        // Other RFC 3339 forms: kept as text, still read back as written.
        "2026-11-27T08:00:00.5Z", "2026-11-27T08:00:00+02:00", "2026-11-27t08:00:00z", "2026-11-27T23:59:60Z", "junk", "",
    ])
    func aCreationTimestampReadsBackAsWrittenAndOrdersAsParsed(text: String) throws {
        let meta = try decoded(#"{"name":"web","creationTimestamp":"\#(text)"}"#)
        #expect(meta.creationTimestamp == text)
        #expect(meta.creationTime == KubeTimestamp(rfc3339: text))
        #expect(ObjectMeta(name: "web", creationTimestamp: text) == meta)
    }

    /// Random instants round-trip through the packed form and compare as
    /// the times they are (the conflict order between Ingresses).
    @Test func randomTimestampsReadBackAndCompareAsTimes() {
        var random = Xorshift(state: 23)
        var previous: (ObjectMeta, KubeTimestamp)? = nil
        for _ in 0..<2000 {
            // Years 1600-9999 (Foundation's calendar is Julian before 1582).
            let seconds = Int64(random.next() % 265_078_396_800) - 11_676_096_000
            let time = KubeTimestamp(seconds: seconds)
            // Written the way the API server writes it, independently of the packing code.
            let text = Self.rfc3339(seconds)
            let meta = ObjectMeta(name: "x", creationTimestamp: text)
            #expect(meta.creationTimestamp == text)
            #expect(meta.creationTime == time, "\(text)")
            #expect(meta.isPacked.creation, "\(text) is kept as seconds")
            if let (other, otherTime) = previous {
                #expect((meta.creationTime! < other.creationTime!) == (time < otherTime))
            }
            previous = (meta, time)
        }
    }

    @Test func encodingWritesTheTextBack() throws {
        let json = #"{"name":"web","namespace":"shop","uid":"0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5f6","creationTimestamp":"2026-11-27T08:00:00Z"}"#
        let meta = try decoded(json)
        let again = try decoded(String(decoding: try JSONEncoder().encode(meta), as: UTF8.self))
        #expect(again == meta)
        #expect(again.uid == "0f8b3c5e-1d2a-4b6c-9e7f-a1b2c3d4e5f6")
        #expect(again.creationTimestamp == "2026-11-27T08:00:00Z")
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` through Foundation's calendar (UTC).
    static func rfc3339(_ seconds: Int64) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents(
            [.year, .month, .day, .hour, .minute, .second], from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!)
    }
}

/// A fixed sequence of pseudo-random numbers (xorshift64).
private struct Xorshift {
    var state: UInt64

    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }
}

/// An EndpointSlice endpoint keeps one address without an array and its
/// names in an optional block; what it reads back, compares and encodes
/// must not depend on that.
@Suite struct EndpointPackingTests {
    @Test(arguments: [[], ["10.0.0.1"], ["10.0.0.1", "10.0.0.2"], ["fd00::1", "10.0.0.1", "10.0.0.3"]])
    func addressesReadBackAsWritten(addresses: [String]) throws {
        let endpoint = EndpointSliceEndpoint(addresses: addresses, conditions: EndpointConditions(ready: true))
        #expect(endpoint.addresses == addresses)
        #expect(endpoint.firstAddress == addresses.first)
        var changed = endpoint
        changed.addresses = addresses + ["10.9.9.9"]
        #expect(changed != endpoint)
        changed.addresses = addresses
        #expect(changed == endpoint)
        let json = try JSONEncoder().encode(endpoint)
        #expect(try JSONDecoder().decode(EndpointSliceEndpoint.self, from: json) == endpoint)
    }

    @Test func namesAreKeptSeparatelyAndCompared() throws {
        let json = #"{"addresses":["10.0.0.7"],"conditions":{"ready":false},"hostname":"web-0","nodeName":"node-1"}"#
        var endpoint = try JSONDecoder().decode(EndpointSliceEndpoint.self, from: Data(json.utf8))
        #expect(endpoint.hostname == "web-0" && endpoint.nodeName == "node-1" && endpoint.conditions.ready == false)
        let copy = endpoint
        endpoint.hostname = nil
        #expect(endpoint.hostname == nil && endpoint.nodeName == "node-1")
        #expect(copy.hostname == "web-0", "a copy keeps its own names")
        #expect(endpoint != copy)
        endpoint.nodeName = nil
        #expect(endpoint == EndpointSliceEndpoint(addresses: ["10.0.0.7"], conditions: EndpointConditions(ready: false)))
        endpoint.hostname = "web-0"
        endpoint.nodeName = "node-1"
        #expect(endpoint == copy)
    }
}
