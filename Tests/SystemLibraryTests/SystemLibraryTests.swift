import CNGHTTP2
import COpenSSL
import Testing

/// The system libraries that later layers build on must be found by
/// pkg-config, import into Swift and link: these tests fail on a machine
/// where `libssl-dev` or `libnghttp2-dev` is missing or too old.
@Suite struct SystemLibraryTests {
    @Test func openSSLIsVersion3AndCreatesAServerContextLimitedToTLS12AndUp() throws {
        #expect(OpenSSL_version_num() >= 0x3000_0000)
        let context = try #require(SSL_CTX_new(TLS_server_method()))
        defer { SSL_CTX_free(context) }
        #expect(postern_SSL_CTX_set_min_proto_version(context, postern_TLS1_2_VERSION()) == 1)
    }

    @Test func nghttp2IsAtLeastVersion152() throws {
        let info = try #require(nghttp2_version(0))
        #expect(info.pointee.version_num >= 0x013400)
    }
}
