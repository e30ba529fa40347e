import RouteModel
import Testing

@Suite struct IPRangeParsing {
    @Test func parsesCIDRsAndClearsHostBits() {
        #expect(IPRange(parsing: "10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(IPRange(parsing: " 192.168.1.7 ")?.description == "192.168.1.7/32")
        #expect(IPRange(parsing: "2001:db8::1/32")?.description == "2001:db8::/32")
        #expect(IPRange(parsing: "::/0")?.description == "::/0")
    }

    @Test(arguments: ["10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "::1/129", "10.0.0.0/8/8", "10.0.0.0/-1", "x", ""])
    func refusesInvalidRanges(text: String) {
        #expect(IPRange(parsing: text) == nil)
    }

    @Test func containsChecksTheLeadingBitsOfTheSameFamily() throws {
        let range = try #require(IPRange(parsing: "172.16.0.0/12"))
        #expect(range.contains([172, 31, 255, 1]))
        #expect(!range.contains([172, 32, 0, 1]))
        let v6 = try #require(IPRange(parsing: "fd00::/8"))
        #expect(v6.contains([0xfd] + [UInt8](repeating: 7, count: 15)))
        #expect(!v6.contains([172, 16, 0, 1]), "another family never matches")
    }
}
