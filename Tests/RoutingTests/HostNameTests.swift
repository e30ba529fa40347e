import Routing
import Testing

@Suite struct HostNameCanonicalisation {
    @Test(arguments: [
        ("tls.test", "tls.test"),
        ("TLS.Test", "tls.test"),
        ("tls.test.", "tls.test"),
        ("TLS.Test.:80", "tls.test"),
        ("tls.test:443", "tls.test"),
        ("tls.test:", "tls.test"),
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]", "[::1]"),
        ("[::1]:8443", "[::1]"),
        ("[FE80::A]:1", "[fe80::a]"),
        ("under_score.internal", "under_score.internal"),
        ("", ""),
    ])
    func spellingsOfOneHostGiveOneCanonicalForm(spelling: String, canonical: String) {
        #expect(HostName.canonical(spelling) == canonical)
    }

    @Test(arguments: [
        "plain.test@tls.test", "user:pass@tls.test", "tls.test,plain.test", "tls.test..", "tls..test", ".tls.test",
        "tls.test:99999", "tls.test:80:80", "tls.test:8o", "tls.test:123456", "tls%2etest", "tls.test/x", "tls.test#x",
        "tls test", "tls.test\\", "[::1", "[::1]x", "[fe80::1%25eth0]", "[]", ":80", ".", "..", "tls.test?x",
        String(repeating: "a", count: 256),
    ])
    func invalidAuthoritiesAreRefused(spelling: String) {
        #expect(HostName.canonical(spelling) == nil, "\(spelling) was accepted")
    }
}

@Suite struct RequestTargetPolicyTests {
    private func violation(_ target: String) -> RequestTargetPolicy.Violation? {
        var text = target
        return text.withUTF8 { RequestTargetPolicy.violation(UnsafeRawBufferPointer($0)) }
    }

    @Test func encodedSeparatorsAndNULInThePathAreRefused() {
        for target in ["/public/..%2fadmin", "/public/..%2Fadmin", "/public/%2e%2e%2fadmin", "/a%5cb", "/a%5C..%5Cb", "/a\\b"] {
            #expect(violation(target) == .encodedSeparator, "\(target)")
        }
        #expect(violation("/public/%00/../admin") == .encodedNUL)
    }

    @Test func aFragmentAnywhereIsRefused() {
        #expect(violation("/public#/../admin") == .fragment)
        #expect(violation("/public?q=1#x") == .fragment)
    }

    @Test func ordinaryTargetsAndEncodedDataInTheQueryPass() {
        for target in ["/", "/a/b", "/a%20b", "/%2e%2e/x", "/a?next=%2Fadmin%5c%00", "/a?x=/b\\c", "", "/100%25"] {
            #expect(violation(target) == nil, "\(target)")
        }
    }
}
