import COpenSSL
import Glibc

/// Why an OCSP response was not stapled (the `reason` label of
/// `postern_ocsp_fetch_failures_total`).
public enum OCSPFailureReason: String, Sendable, CaseIterable {
    /// No answer: connect, timeout, HTTP status, or a body that is not DER.
    case fetch
    /// The bytes are not an OCSP response.
    case malformed
    /// The responder answered with an error status (tryLater, internalError, ...).
    case unsuccessful
    /// The signature does not verify against the certificate's issuer.
    case signature
    /// The response holds no status for this certificate.
    case wrongCertificate = "wrong_certificate"
    /// `nextUpdate` has passed (or comes before `thisUpdate`).
    case expired
    /// `thisUpdate` is further in the future than clock skew explains.
    case notYetValid = "not_yet_valid"
    /// The responder says the certificate is revoked: never stapled.
    case revoked
    /// The responder does not know the certificate.
    case unknown
}

/// A failed fetch or verification: the reason for metrics, a message for logs.
public struct OCSPFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: OCSPFailureReason
    public let message: String

    public init(_ reason: OCSPFailureReason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(reason.rawValue): \(message)" }
}

/// A verified OCSP response with status good, ready to staple.
public struct OCSPStaple: Sendable, Equatable {
    /// The response as the responder sent it (DER), stapled byte for byte.
    public let der: [UInt8]
    /// Seconds since 1970.
    public let thisUpdate: Int
    /// Seconds since 1970; the staple is never sent at or after this time.
    public let nextUpdate: Int

    /// True while a client would accept it: `thisUpdate` not ahead of `now`
    /// by more than the allowed skew, `nextUpdate` still to come.
    @inline(__always)
    func isCurrent(at now: Int) -> Bool {
        now < nextUpdate && thisUpdate <= now + OCSPSubject.allowedClockSkewSeconds
    }
}

/// The leaf and issuer of one served certificate and the OCSP certificate
/// id they give: everything needed to ask for, and to check, its status.
///
/// Immutable; owns its OpenSSL objects. Used by the stapler's thread and
/// the controller thread, never by a worker.
public final class OCSPSubject: @unchecked Sendable {
    /// A response dated this far in the future is still taken (clocks differ).
    static let allowedClockSkewSeconds = 300
    /// A response without `nextUpdate` ("newer information is always
    /// available", RFC 6960 §2.4) is stapled at most this long after `thisUpdate`.
    static let lifetimeWithoutNextUpdate = 86_400

    let leaf: OpaquePointer
    let issuer: OpaquePointer
    let certificateID: OpaquePointer
    /// The responder named by the certificate (AIA, id-ad-ocsp), `http://` only.
    public let responderURL: String
    /// The certificate carries the TLS feature extension with
    /// status_request (RFC 7633): clients must receive a staple.
    public let mustStaple: Bool
    /// The leaf in DER: the key of the stapler's cache.
    let leafDER: [UInt8]

    /// The subject of the chain `certificateChainPEM` (leaf first), nil when
    /// the leaf names no OCSP responder. Throws when it names one but the
    /// response could not be verified (the issuer is not in the chain) or
    /// not fetched (not an `http://` URL).
    public static func make(certificateChainPEM: [UInt8], name: String) throws -> OCSPSubject? {
        let certificates = try PEM.readCertificates(certificateChainPEM)
        defer { certificates.forEach { X509_free($0) } }
        guard let leaf = certificates.first else { throw TLSError("\(name): tls.crt holds no certificate") }
        var buffer = [CChar](repeating: 0, count: 2048)
        let length = postern_X509_first_ocsp_url(leaf, &buffer, buffer.count)
        guard length != 0 else { return nil }
        guard length > 0 else { throw TLSError("\(name): the OCSP responder URL of the certificate is too long") }
        let url = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard url.lowercased().hasPrefix("http://") else {
            throw TLSError("\(name): OCSP responder \(url) is not an http:// URL (RFC 6960 Appendix A); nothing is stapled")
        }
        guard let issuer = certificates.dropFirst().first(where: { X509_check_issued($0, leaf) == X509_V_OK }) else {
            OpenSSLErrors.clear()
            throw TLSError(
                "\(name): the issuer of the certificate is not in tls.crt, so OCSP responses cannot be verified;"
                    + " append the intermediate certificate to tls.crt")
        }
        guard let certificateID = OCSP_cert_to_id(nil, leaf, issuer) else {
            throw TLSError.fromQueue("\(name): cannot make the OCSP certificate id")
        }
        return OCSPSubject(leaf: leaf, issuer: issuer, certificateID: certificateID, responderURL: url)
    }

    private init(leaf: OpaquePointer, issuer: OpaquePointer, certificateID: OpaquePointer, responderURL: String) {
        X509_up_ref(leaf)
        X509_up_ref(issuer)
        self.leaf = leaf
        self.issuer = issuer
        self.certificateID = certificateID
        self.responderURL = responderURL
        self.mustStaple = OCSPSubject.isMustStaple(leaf)
        let length = i2d_X509(leaf, nil)
        var der = [UInt8](repeating: 0, count: max(0, Int(length)))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            _ = i2d_X509(leaf, &cursor)
        }
        self.leafDER = der
    }

    deinit {
        OCSP_CERTID_free(certificateID)
        X509_free(leaf)
        X509_free(issuer)
    }

    /// True when `certificate` has a TLS feature extension listing status_request (5).
    static func isMustStaple(_ certificate: OpaquePointer) -> Bool {
        let index = X509_get_ext_by_NID(certificate, NID_tlsfeature, -1)
        guard index >= 0, let ext = X509_get_ext(certificate, index), let data = X509_EXTENSION_get_data(ext),
            let bytes = ASN1_STRING_get0_data(data)
        else { return false }
        return TLSFeatureExtension.listsStatusRequest(UnsafeRawBufferPointer(start: bytes, count: Int(ASN1_STRING_length(data))))
    }

    /// The DER OCSP request for this certificate (one id, no nonce: responders
    /// that pre-sign answer faster, and the staple is checked by its dates).
    public func requestDER() -> [UInt8] {
        guard let request = OCSP_REQUEST_new() else { return [] }
        defer { OCSP_REQUEST_free(request) }
        guard let id = OCSP_CERTID_dup(certificateID) else { return [] }
        guard OCSP_request_add0_id(request, id) != nil else {
            OCSP_CERTID_free(id)
            return []
        }
        let length = i2d_OCSP_REQUEST(request, nil)
        guard length > 0 else { return [] }
        var der = [UInt8](repeating: 0, count: Int(length))
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            _ = i2d_OCSP_REQUEST(request, &cursor)
        }
        return der
    }

    /// Checks `der` as the response for this certificate at `now` (seconds
    /// since 1970): a successful response, signed by the issuer or by a
    /// responder the issuer delegated to (id-kp-OCSPSigning), holding this
    /// certificate's id with status good, and current. Returns it as a staple.
    public func verify(responseDER der: [UInt8], now: Int) -> Result<OCSPStaple, OCSPFailure> {
        defer { OpenSSLErrors.clear() }
        guard !der.isEmpty, der.count <= Int(Int32.max) else { return .failure(OCSPFailure(.malformed, "empty response")) }
        let parsed: OpaquePointer? = der.withUnsafeBufferPointer { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress
            return d2i_OCSP_RESPONSE(nil, &cursor, buffer.count)
        }
        guard let response = parsed else { return .failure(OCSPFailure(.malformed, "not a DER OCSP response")) }
        defer { OCSP_RESPONSE_free(response) }
        let status = OCSP_response_status(response)
        guard status == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            let text = String(cString: OCSP_response_status_str(Int(status)))
            return .failure(OCSPFailure(.unsuccessful, "the responder answered \(text)"))
        }
        guard let basic = OCSP_response_get1_basic(response) else {
            return .failure(OCSPFailure(.malformed, "no basic OCSP response"))
        }
        defer { OCSP_BASICRESP_free(basic) }
        guard let store = X509_STORE_new() else { return .failure(OCSPFailure(.signature, "X509_STORE_new failed")) }
        defer { X509_STORE_free(store) }
        // The issuer is the only trust anchor: a response verifies only when
        // signed by it or by a responder certificate it issued for OCSP.
        // PARTIAL_CHAIN lets an intermediate issuer anchor without its root.
        guard X509_STORE_add_cert(store, issuer) == 1, X509_STORE_set_flags(store, UInt(X509_V_FLAG_PARTIAL_CHAIN)) == 1 else {
            return .failure(OCSPFailure(.signature, "cannot set up verification" + OpenSSLErrors.drain()))
        }
        guard postern_OCSP_basic_verify_issuer(basic, issuer, store) == 1 else {
            return .failure(OCSPFailure(.signature, "the response does not verify against the issuer" + OpenSSLErrors.drain()))
        }
        var certificateStatus: Int32 = -1
        var revocationReason: Int32 = -1
        var revokedAt: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var thisUpdateTime: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var nextUpdateTime: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard
            OCSP_resp_find_status(
                basic, certificateID, &certificateStatus, &revocationReason, &revokedAt, &thisUpdateTime, &nextUpdateTime) == 1
        else {
            return .failure(OCSPFailure(.wrongCertificate, "the response holds no status for this certificate"))
        }
        switch certificateStatus {
        case V_OCSP_CERTSTATUS_GOOD: break
        case V_OCSP_CERTSTATUS_REVOKED:
            let when = revokedAt.flatMap(OCSPSubject.seconds).map { " at \($0)" } ?? ""
            return .failure(OCSPFailure(.revoked, "the responder says the certificate was revoked\(when)"))
        default:
            return .failure(OCSPFailure(.unknown, "the responder does not know the certificate"))
        }
        guard let thisUpdate = thisUpdateTime.flatMap(OCSPSubject.seconds) else {
            return .failure(OCSPFailure(.malformed, "thisUpdate is unreadable"))
        }
        let nextUpdate: Int
        if let nextUpdateTime {
            guard let seconds = OCSPSubject.seconds(nextUpdateTime) else {
                return .failure(OCSPFailure(.malformed, "nextUpdate is unreadable"))
            }
            nextUpdate = seconds
        } else {
            nextUpdate = thisUpdate + OCSPSubject.lifetimeWithoutNextUpdate
        }
        guard nextUpdate > thisUpdate, nextUpdate > now else {
            return .failure(OCSPFailure(.expired, "the response expired (nextUpdate \(nextUpdate), now \(now))"))
        }
        guard thisUpdate <= now + OCSPSubject.allowedClockSkewSeconds else {
            return .failure(OCSPFailure(.notYetValid, "thisUpdate \(thisUpdate) is in the future (now \(now))"))
        }
        return .success(OCSPStaple(der: der, thisUpdate: thisUpdate, nextUpdate: nextUpdate))
    }

    /// An ASN.1 time as seconds since 1970.
    private static func seconds(_ time: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>) -> Int? {
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Int(timegm(&parts))
    }
}

/// The TLS feature extension (RFC 7633 §4.2): `SEQUENCE OF INTEGER`.
enum TLSFeatureExtension {
    /// The status_request extension number (RFC 6066 §8).
    static let statusRequest = 5

    /// True when the DER `SEQUENCE OF INTEGER` lists status_request; false
    /// for anything malformed.
    static func listsStatusRequest(_ der: UnsafeRawBufferPointer) -> Bool {
        guard der.count >= 2, der[0] == 0x30, der[1] < 0x80, Int(der[1]) == der.count - 2 else { return false }
        var offset = 2
        while offset + 2 <= der.count {
            guard der[offset] == 0x02 else { return false }
            let length = Int(der[offset + 1])
            offset += 2
            guard length >= 1, length <= 4, offset + length <= der.count else { return false }
            var value = 0
            for index in offset..<offset + length { value = value << 8 | Int(der[index]) }
            if value == statusRequest { return true }
            offset += length
        }
        return false
    }
}
