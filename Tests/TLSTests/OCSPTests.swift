import Foundation
import Synchronization
@testable import TLS
import Testing

@Suite(.serialized) struct OCSPVerificationTests {
    static let now = Int(Date().timeIntervalSince1970)

    /// A CA, one leaf recorded as `revoked` or valid, and its subject.
    static func subject(revoked: Bool = false, mustStaple: Bool = false) throws -> (OCSPTestAuthority, String, OCSPSubject) {
        let authority = try OCSPTestAuthority()
        let leaf = try authority.leaf("a.example.com", mustStaple: mustStaple)
        try authority.record(leaf.name, revoked: revoked)
        let subject = try #require(try OCSPSubject.make(certificateChainPEM: leaf.chainPEM, name: "default/a"))
        return (authority, leaf.name, subject)
    }

    @Test func aGoodResponseFromTheDelegatedResponderOrTheIssuerVerifies() throws {
        let (authority, _, subject) = try Self.subject()
        #expect(subject.responderURL == "http://127.0.0.1:9/")
        #expect(!subject.mustStaple)
        for signer in [OCSPTestAuthority.Signer.delegatedResponder, .issuer] {
            let der = try authority.response(to: subject.requestDER(), signer: signer)
            let staple = try subject.verify(responseDER: der, now: Self.now).get()
            #expect(staple.der == der)
            #expect(abs(staple.thisUpdate - Self.now) < 120)
            #expect(abs(staple.nextUpdate - (Self.now + 86_400)) < 120)
        }
    }

    @Test func aResponseSignedByAnotherKeyIsRefused() throws {
        let (authority, _, subject) = try Self.subject()
        let der = try authority.response(to: subject.requestDER(), signer: .rogue)
        #expect(subject.verify(responseDER: der, now: Self.now).failureReason == .signature)
    }

    @Test func aResponseWhoseBytesWereAlteredIsRefused() throws {
        let (authority, _, subject) = try Self.subject()
        var der = try authority.response(to: subject.requestDER())
        // The last bytes are the signature value.
        der[der.count - 3] ^= 0x55
        let reason = subject.verify(responseDER: der, now: Self.now).failureReason
        #expect(reason == .signature || reason == .malformed)
    }

    @Test func anExpiredResponseIsRefusedAndOneFromTheFutureToo() throws {
        let (authority, _, subject) = try Self.subject()
        // The response's times are the moment it is made, which on a loaded
        // machine can be well after the suite started (`Self.now`): measure from here.
        let now = Int(Date().timeIntervalSince1970)
        let der = try authority.response(to: subject.requestDER(), days: 1)
        let made = Int(Date().timeIntervalSince1970)
        #expect(subject.verify(responseDER: der, now: made + 86_400 + 60).failureReason == .expired)
        #expect(subject.verify(responseDER: der, now: now - 3600).failureReason == .notYetValid)
        // Five minutes of clock skew are allowed.
        #expect(subject.verify(responseDER: der, now: now - 120).failureReason == nil)
    }

    @Test func aResponseWithoutNextUpdateLastsOneDay() throws {
        let (authority, _, subject) = try Self.subject()
        let der = try authority.response(to: subject.requestDER(), days: nil)
        let staple = try subject.verify(responseDER: der, now: Self.now).get()
        #expect(staple.nextUpdate == staple.thisUpdate + 86_400)
    }

    @Test func aRevokedCertificateIsNeverAStaple() throws {
        let (authority, _, subject) = try Self.subject(revoked: true)
        let der = try authority.response(to: subject.requestDER())
        #expect(subject.verify(responseDER: der, now: Self.now).failureReason == .revoked)
    }

    @Test func aResponseForAnotherCertificateIsRefused() throws {
        let (authority, _, subject) = try Self.subject()
        let other = try authority.leaf("b.example.com")
        try authority.record(other.name, revoked: false)
        let otherSubject = try #require(try OCSPSubject.make(certificateChainPEM: other.chainPEM, name: "default/b"))
        let der = try authority.response(to: otherSubject.requestDER())
        #expect(subject.verify(responseDER: der, now: Self.now).failureReason == .wrongCertificate)
    }

    @Test func aCertificateTheResponderDoesNotKnowIsNotStapled() throws {
        let authority = try OCSPTestAuthority()
        let leaf = try authority.leaf("a.example.com")
        let subject = try #require(try OCSPSubject.make(certificateChainPEM: leaf.chainPEM, name: "default/a"))
        let der = try authority.response(to: subject.requestDER())
        #expect(subject.verify(responseDER: der, now: Self.now).failureReason == .unknown)
    }

    @Test func garbageIsMalformedNotACrash() throws {
        let (_, _, subject) = try Self.subject()
        #expect(subject.verify(responseDER: [], now: Self.now).failureReason == .malformed)
        #expect(subject.verify(responseDER: [0x30, 0x03, 0x0a, 0x01, 0x00, 0xff], now: Self.now).failureReason == .malformed)
        #expect(subject.verify(responseDER: Array("<html>oops</html>".utf8), now: Self.now).failureReason == .malformed)
        // tryLater (3): a well-formed response without a status.
        #expect(subject.verify(responseDER: [0x30, 0x03, 0x0a, 0x01, 0x03], now: Self.now).failureReason == .unsuccessful)
    }

    @Test func subjectsNeedAnIssuerInTheChainAndAnHTTPResponder() throws {
        let authority = try OCSPTestAuthority()
        let noResponder = try authority.leaf("a.example.com", responder: nil)
        #expect(try OCSPSubject.make(certificateChainPEM: noResponder.chainPEM, name: "x") == nil)
        let leaf = try authority.leaf("a.example.com")
        let leafOnly = Array(try Data(contentsOf: URL(fileURLWithPath: authority.path(leaf.name + ".crt"))))
        #expect { try OCSPSubject.make(certificateChainPEM: leafOnly, name: "default/a") } throws: {
            "\($0)".contains("issuer of the certificate is not in tls.crt")
        }
        let https = try authority.leaf("a.example.com", responder: "https://127.0.0.1:9/")
        #expect { try OCSPSubject.make(certificateChainPEM: https.chainPEM, name: "default/a") } throws: {
            "\($0)".contains("not an http:// URL")
        }
    }

    @Test func mustStapleIsReadFromTheTLSFeatureExtension() throws {
        let (_, _, subject) = try Self.subject(mustStaple: true)
        #expect(subject.mustStaple)
        func lists(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBytes { TLSFeatureExtension.listsStatusRequest($0) } }
        #expect(lists([0x30, 0x03, 0x02, 0x01, 0x05]))
        #expect(lists([0x30, 0x06, 0x02, 0x01, 0x11, 0x02, 0x01, 0x05]))
        #expect(!lists([0x30, 0x03, 0x02, 0x01, 0x11]))
        #expect(!lists([0x30, 0x05, 0x02, 0x01, 0x05]))
        #expect(!lists([0x02, 0x01, 0x05]))
        #expect(!lists([]))
    }
}

@Suite(.serialized) struct OCSPStaplerTests {
    /// A clock and a responder the test controls.
    final class Script: Sendable {
        let seconds = Atomic<Int>(Int(Date().timeIntervalSince1970))
        let answer = Mutex<Result<[UInt8], OCSPFailure>>(.failure(OCSPFailure(.fetch, "connection refused")))
        let fetches = Atomic<Int>(0)
        let logged = Mutex<[OCSPLogEntry]>([])

        func stapler(_ settings: OCSPSettings = OCSPSettings()) -> OCSPStapler {
            OCSPStapler(
                settings: settings,
                fetch: { _, _, _ in
                    self.fetches.add(1, ordering: .relaxed)
                    return self.answer.withLock { $0 }
                },
                clock: { self.seconds.load(ordering: .relaxed) },
                log: { entry in self.logged.withLock { $0.append(entry) } }, background: false)
        }

        var now: Int { seconds.load(ordering: .relaxed) }
        func advance(_ by: Int) { seconds.add(by, ordering: .relaxed) }
    }

    /// A leaf recorded as valid, served by a stapler without its thread.
    static func served() throws -> (OCSPTestAuthority, OCSPTestAuthority.Leaf, Script, OCSPStapler, OCSPEntry) {
        let authority = try OCSPTestAuthority()
        let leaf = try authority.leaf("a.example.com")
        try authority.record(leaf.name, revoked: false)
        let script = Script()
        let stapler = script.stapler()
        let entry = try #require(try stapler.entry(forChainPEM: leaf.chainPEM, name: "default/a"))
        return (authority, leaf, script, stapler, entry)
    }

    @Test func keepsTheLastGoodResponseWhileTheResponderFailsUntilItExpires() throws {
        let (authority, _, script, stapler, entry) = try Self.served()

        // Responder down at first: nothing to staple, and a retry soon.
        stapler.refresh(entry)
        #expect(entry.current(at: script.now) == nil)
        #expect(stapler.lastFailure(of: entry)?.reason == .fetch)
        let good = try authority.response(to: entry.subject.requestDER(), days: 1)
        script.answer.withLock { $0 = .success(good) }
        stapler.refresh(entry)
        #expect(entry.current(at: script.now)?.der == good)
        // Refreshed halfway to nextUpdate at the latest, and hourly by default.
        #expect(entry.nextAttempt == script.now + 3600)

        script.answer.withLock { $0 = .failure(OCSPFailure(.fetch, "connection refused")) }
        script.advance(3600)
        stapler.refresh(entry)
        #expect(entry.current(at: script.now)?.der == good, "the last good response is still stapled")
        #expect(entry.nextAttempt == script.now + 10)
        stapler.refresh(entry)
        #expect(entry.nextAttempt == script.now + 20, "retries back off")
        #expect(script.logged.withLock { $0.last?.message.contains("still stapling the last good response") } == true)
        // Past nextUpdate it is never sent, whatever the responder does.
        #expect(entry.current(at: script.now + 86_400) == nil)

        let metrics = stapler.renderPrometheus()
        #expect(metrics.contains("postern_ocsp_fetch_failures_total{reason=\"fetch\"} 3"))
        let age = metrics.split(separator: "\n").first { $0.hasPrefix("postern_ocsp_staple_age_seconds{certificate=\"default/a\"} ") }
        #expect(age.flatMap { Int($0.split(separator: " ").last ?? "") }.map { (3590...3700).contains($0) } == true, "\(metrics)")
        #expect(metrics.contains("postern_ocsp_certificates{stapled=\"true\"} 1"))
    }

    @Test func badlySignedOrExpiredResponsesNeverReplaceAGoodOne() throws {
        let (authority, _, script, stapler, entry) = try Self.served()
        let rogue = try authority.response(to: entry.subject.requestDER(), signer: .rogue)
        script.answer.withLock { $0 = .success(rogue) }
        stapler.refresh(entry)
        #expect(entry.current(at: script.now) == nil)
        #expect(stapler.lastFailure(of: entry)?.reason == .signature)

        let good = try authority.response(to: entry.subject.requestDER(), days: 1)
        script.answer.withLock { $0 = .success(good) }
        stapler.refresh(entry)
        script.answer.withLock { $0 = .success(rogue) }
        stapler.refresh(entry)
        #expect(entry.current(at: script.now)?.der == good)
        // The same good response, seen again after its nextUpdate: expired, not stapled.
        script.answer.withLock { $0 = .success(good) }
        script.advance(86_400 + 1)
        stapler.refresh(entry)
        #expect(stapler.lastFailure(of: entry)?.reason == .expired)
        #expect(entry.current(at: script.now) == nil)
        #expect(stapler.renderPrometheus().contains("postern_ocsp_certificates{stapled=\"false\"} 1"))
    }

    @Test func aRevokedStatusDropsTheStapleAndIsLoggedAsAnError() throws {
        let (authority, leaf, script, stapler, entry) = try Self.served()
        script.answer.withLock { $0 = .success((try? authority.response(to: entry.subject.requestDER())) ?? []) }
        stapler.refresh(entry)
        #expect(entry.current(at: script.now) != nil)
        // Revoke it: a second index line for the same serial would be ambiguous, so start a new index.
        try Data().write(to: authority.folder.appendingPathComponent("index.txt"))
        try authority.record(leaf.name, revoked: true)
        script.answer.withLock { $0 = .success((try? authority.response(to: entry.subject.requestDER())) ?? []) }
        stapler.refresh(entry)
        #expect(entry.current(at: script.now) == nil)
        let last = try #require(script.logged.withLock { $0.last })
        #expect(last.level == .error)
        #expect(last.message.contains("REVOKED"))
        #expect(stapler.renderPrometheus().contains("postern_ocsp_fetch_failures_total{reason=\"revoked\"} 1"))
    }

    @Test func retryDelaysDoubleUpToFiveMinutesAndRefreshesComeHalfwayAtTheLatest() {
        var settings = OCSPSettings()
        #expect((1...8).map { settings.retryDelay(afterFailures: $0) } == [10, 20, 40, 80, 160, 300, 300, 300])
        #expect(settings.refreshDelay(now: 0, nextUpdate: 600) == 300)
        #expect(settings.refreshDelay(now: 0, nextUpdate: 7 * 86_400) == 3600)
        #expect(settings.refreshDelay(now: 0, nextUpdate: 1) == 1)
        settings.refreshIntervalSeconds = 2
        settings.retryIntervalSeconds = 1
        #expect((1...4).map { settings.retryDelay(afterFailures: $0) } == [1, 2, 2, 2])
    }

    /// The whole store path: a must-staple certificate is first published
    /// with its staple (the build waits for the first fetch), the response is
    /// reused by the next build, and a certificate no longer served is dropped.
    @Test func storeBuildsWaitForMustStapleResponsesAndReuseCachedOnes() throws {
        let authority = try OCSPTestAuthority()
        let leaf = try authority.leaf("a.example.com", mustStaple: true)
        try authority.record(leaf.name, revoked: false)
        let subject = try #require(try OCSPSubject.make(certificateChainPEM: leaf.chainPEM, name: "default/a"))
        let good = try authority.response(to: subject.requestDER())
        let fetches = Atomic<Int>(0)
        var settings = TLSServerSettings()
        settings.enableOCSP = true
        let stapler = OCSPStapler(
            settings: settings.ocsp,
            fetch: { _, _, _ in
                fetches.add(1, ordering: .relaxed)
                usleep(200_000)
                return .success(good)
            },
            clock: { Int(time(nil)) }, log: { _ in })
        defer { stapler.stop() }
        let builder = try TLSStoreBuilder(settings: settings, defaultCertificate: nil, ocspStapler: stapler)
        let input = TLSCertificateInput(name: "default/a", hosts: ["a.example.com"], certificateChainPEM: leaf.chainPEM, privateKeyPEM: leaf.keyPEM)
        let (store, problems) = builder.build([input])
        #expect(problems.isEmpty, "\(problems)")
        let context = store.context(forServerName: "a.example.com")
        #expect(context.mustStaple)
        #expect(context.ocspEntry?.current(at: Int(time(nil)))?.der == good)
        let (again, _) = builder.build([input])
        #expect(again.context(forServerName: "a.example.com").ocspEntry === context.ocspEntry)
        #expect(fetches.load(ordering: .relaxed) == 1)
        _ = builder.build([])
        #expect(stapler.renderPrometheus().contains("postern_ocsp_certificates{stapled=\"true\"} 0"))
    }

    @Test func mustStapleWithoutAResponseOrWithOCSPOffIsReported() throws {
        let authority = try OCSPTestAuthority()
        let leaf = try authority.leaf("a.example.com", mustStaple: true)
        let input = TLSCertificateInput(name: "default/a", hosts: ["a.example.com"], certificateChainPEM: leaf.chainPEM, privateKeyPEM: leaf.keyPEM)
        let off = try TLSStoreBuilder(settings: TLSServerSettings(), defaultCertificate: nil)
        #expect(off.ocspStapler == nil)
        let (offStore, offProblems) = off.build([input])
        #expect(offProblems.map(\.reason) == ["MustStapleWithoutOCSP"])
        #expect(offStore.context(forServerName: "a.example.com").ocspEntry == nil)

        var settings = TLSServerSettings()
        settings.enableOCSP = true
        settings.ocsp.timeoutSeconds = 1
        let stapler = OCSPStapler(
            settings: settings.ocsp, fetch: { _, _, _ in .failure(OCSPFailure(.fetch, "connection refused")) },
            clock: { Int(time(nil)) }, log: { _ in })
        defer { stapler.stop() }
        let on = try TLSStoreBuilder(settings: settings, defaultCertificate: nil, ocspStapler: stapler)
        let (_, problems) = on.build([input])
        #expect(problems.map(\.reason) == ["MustStapleWithoutStaple"])
        #expect(problems.first?.message.contains("connection refused") == true)
    }
}

extension Result where Failure == OCSPFailure {
    var failureReason: OCSPFailureReason? {
        if case .failure(let failure) = self { return failure.reason }
        return nil
    }
}
