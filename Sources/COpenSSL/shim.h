// OpenSSL for Swift. Macros that Swift cannot import are wrapped once here
// as static inline functions; the TLS target is their only user.
#ifndef POSTERN_COPENSSL_H
#define POSTERN_COPENSSL_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <openssl/core_names.h>
#include <openssl/ocsp.h>
#include <openssl/http.h>
#include <string.h>

static inline long postern_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }
static inline long postern_SSL_MODE_proxy(void) {
    return SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS;
}
/// A busy multiplexed connection keeps its record buffers (no malloc and free per record).
static inline long postern_SSL_keep_buffers(SSL *ssl) { return SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS); }
static inline int postern_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) { return (int)SSL_CTX_set_min_proto_version(ctx, version); }
static inline int postern_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) { return (int)SSL_CTX_set_max_proto_version(ctx, version); }
static inline int postern_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) { return (int)SSL_CTX_set1_groups_list(ctx, list); }
static inline int postern_SSL_CTX_add1_chain_cert(SSL_CTX *ctx, X509 *cert) { return (int)SSL_CTX_add1_chain_cert(ctx, cert); }
static inline long postern_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_session_cache_mode(ctx, mode); }
static inline long postern_SSL_SESS_CACHE_SERVER(void) { return SSL_SESS_CACHE_SERVER; }
static inline long postern_SSL_SESS_CACHE_OFF(void) { return SSL_SESS_CACHE_OFF; }
/// Server cache through Postern's callbacks only (OpenSSL's own store and lookup off).
static inline long postern_SSL_SESS_CACHE_SERVER_EXTERNAL(void) { return SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL; }
static inline int postern_SSL_CLIENT_HELLO_SUCCESS(void) { return SSL_CLIENT_HELLO_SUCCESS; }
static inline uint64_t postern_SSL_OP_PRIORITIZE_CHACHA(void) { return SSL_OP_PRIORITIZE_CHACHA; }
static inline long postern_SSL_set_tlsext_host_name(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }
static inline long postern_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, int (*callback)(SSL *, int *, void *)) {
    return SSL_CTX_set_tlsext_servername_callback(ctx, callback);
}
static inline long postern_SSL_CTX_set_tlsext_servername_arg(SSL_CTX *ctx, void *arg) { return SSL_CTX_set_tlsext_servername_arg(ctx, arg); }
static inline int postern_SSL_session_reused(const SSL *ssl) { return (int)SSL_session_reused(ssl); }
static inline uint64_t postern_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t postern_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t postern_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t postern_SSL_OP_NO_TICKET(void) { return SSL_OP_NO_TICKET; }
static inline int postern_TLS1_2_VERSION(void) { return TLS1_2_VERSION; }
static inline int postern_TLS1_3_VERSION(void) { return TLS1_3_VERSION; }
static inline long postern_BIO_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }
static inline EVP_PKEY *postern_EVP_EC_gen_P256(void) { return EVP_EC_gen("P-256"); }
static inline EVP_PKEY *postern_EVP_RSA_gen_2048(void) { return EVP_RSA_gen(2048); }
static inline int postern_X509_set_notBefore_now(X509 *cert) { return X509_gmtime_adj(X509_getm_notBefore(cert), 0) != NULL; }
static inline int postern_X509_set_notAfter_days(X509 *cert, long days) {
    return X509_gmtime_adj(X509_getm_notAfter(cert), days * 24 * 3600) != NULL;
}
/// The context's cipher list (TLS 1.2 and TLS 1.3 suites), one by one: the stack type is a macro.
static inline int postern_SSL_CTX_cipher_count(const SSL_CTX *ctx) { return sk_SSL_CIPHER_num(SSL_CTX_get_ciphers(ctx)); }
static inline const SSL_CIPHER *postern_SSL_CTX_cipher_at(const SSL_CTX *ctx, int index) {
    return sk_SSL_CIPHER_value(SSL_CTX_get_ciphers(ctx), index);
}
/// OCSP stapling: the status callback and its argument are set through SSL_CTX_ctrl macros.
static inline long postern_SSL_CTX_set_tlsext_status_cb(SSL_CTX *ctx, int (*callback)(SSL *, void *)) {
    return SSL_CTX_set_tlsext_status_cb(ctx, callback);
}
static inline long postern_SSL_CTX_set_tlsext_status_arg(SSL_CTX *ctx, void *arg) { return SSL_CTX_set_tlsext_status_arg(ctx, arg); }
/// Staples a copy of `der` on `ssl`: OpenSSL takes ownership of an OPENSSL_malloc'd buffer (a macro).
static inline int postern_SSL_staple_copy(SSL *ssl, const unsigned char *der, long length) {
    unsigned char *copy = OPENSSL_malloc((size_t)length);
    if (copy == NULL) return 0;
    memcpy(copy, der, (size_t)length);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, length) != 1) { OPENSSL_free(copy); return 0; }
    return 1;
}
/// The first OCSP responder URL of the certificate's AIA into `out` (NUL-terminated);
/// returns its length, 0 without one, -1 when it does not fit. The list is a stack (macros).
static inline int postern_X509_first_ocsp_url(X509 *cert, char *out, size_t capacity) {
    STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
    int result = 0;
    if (urls != NULL && sk_OPENSSL_STRING_num(urls) > 0) {
        const char *url = sk_OPENSSL_STRING_value(urls, 0);
        size_t length = strlen(url);
        if (length + 1 > capacity) result = -1;
        else { memcpy(out, url, length + 1); result = (int)length; }
    }
    X509_email_free(urls);
    return result;
}
/// OCSP_basic_verify with `issuer` offered as a possible signer (a one-element stack: macros).
static inline int postern_OCSP_basic_verify_issuer(OCSP_BASICRESP *response, X509 *issuer, X509_STORE *store) {
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (certs == NULL || !sk_X509_push(certs, issuer)) { sk_X509_free(certs); return -1; }
    int result = OCSP_basic_verify(response, certs, store, 0);
    sk_X509_free(certs);
    return result;
}
#endif
