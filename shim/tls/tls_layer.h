/* The TLS layer's shared state: the libssl functions the hooks resolved, the routing of a
 * call to the libssl copy its caller is bound to, and what the shim knows of each session.
 * Internal to tls/. */
#ifndef LR_TLS_LAYER_H
#define LR_TLS_LAYER_H
#include "net/hello.h"
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* What the shim knows of one SSL object (its ex_data, freed with it). */
typedef struct {
    bool decided, ours;
    char *sni;
    unsigned char *alpn; /* SSL_set_alpn_protos' list (wire format) */
    unsigned alpn_len;
    bool alpn_set;
    int hs;        /* handshake: 0 not started, 1 sending HELLO, 2 reading ACK, 3 done */
    size_t hs_off; /* bytes of HELLO sent / ACK read */
    unsigned char ack[LR_TLS_ACK_LEN];
    const char *proto; /* the ALPN protocol selected from the offer (http/1.1, h2), NULL without ALPN */
    bool accept;   /* SSL_set_accept_state was called: a server, even through SSL_connect */
    int err;       /* SSL_get_error's answer for the last call */
    int shut;      /* SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN */
    size_t wr_off; /* progress of a write that must be retried with the same buffer */
    char *pk;      /* bytes SSL_peek read ahead */
    size_t pk_len, pk_off;
    char host[256];
    X509 *leaf; /* borrowed from the issuer */
    STACK_OF(X509) *chain, *vchain;
} st_t;

typedef struct {
    unsigned char *alpn;
    unsigned len;
} ctx_st_t;

/* The libssl and libcrypto the host loaded (tls/libssl.c). */
typedef struct {
    int (*connect)(SSL *);
    int (*do_handshake)(SSL *);
    int (*read)(SSL *, void *, int);
    int (*read_ex)(SSL *, void *, size_t, size_t *);
    int (*peek)(SSL *, void *, int);
    int (*peek_ex)(SSL *, void *, size_t, size_t *);
    int (*write)(SSL *, const void *, int);
    int (*write_ex)(SSL *, const void *, size_t, size_t *);
    int (*pending)(const SSL *);
    int (*has_pending)(const SSL *);
    int (*get_error)(const SSL *, int);
    int (*shutdown)(SSL *);
    int (*get_shutdown)(const SSL *);
    int (*is_init_finished)(const SSL *);
    int (*in_init)(const SSL *);
    int (*in_before)(const SSL *);
    OSSL_HANDSHAKE_STATE (*get_state)(const SSL *);
    int (*want)(const SSL *);
    X509 *(*get1_peer)(const SSL *);
    X509 *(*get0_peer)(const SSL *);
    STACK_OF(X509) *(*peer_chain)(const SSL *);
    STACK_OF(X509) *(*verified_chain)(const SSL *);
    long (*verify_result)(const SSL *);
    int (*version)(const SSL *);
    const char *(*get_version)(const SSL *);
    const SSL_CIPHER *(*current_cipher)(const SSL *);
    void (*alpn_selected)(const SSL *, const unsigned char **, unsigned int *);
    int (*set_alpn)(SSL *, const unsigned char *, unsigned int);
    int (*ctx_set_alpn)(SSL_CTX *, const unsigned char *, unsigned int);
    long (*ctrl)(SSL *, int, long, void *);
    int (*clear)(SSL *);
    void (*set_accept)(SSL *);
    /* not hooked */
    void (*set_connect)(SSL *);
    void *(*get_ex)(const SSL *, int);
    int (*set_ex)(SSL *, int, void *);
    void *(*ctx_get_ex)(const SSL_CTX *, int);
    int (*ctx_set_ex)(SSL_CTX *, int, void *);
    SSL_CTX *(*get_ctx)(const SSL *);
    int (*is_server)(const SSL *);
    int (*get_fd)(const SSL *);
    BIO *(*rbio)(const SSL *);
    BIO *(*wbio)(const SSL *);
    const SSL_CIPHER *(*cipher_find)(SSL *, const unsigned char *);
    int (*bio_read)(BIO *, void *, int);
    int (*bio_write)(BIO *, const void *, int);
    int (*bio_flags)(const BIO *, int);
    int (*new_index)(int, long, void *, CRYPTO_EX_new *, CRYPTO_EX_dup *, CRYPTO_EX_free *);
    int (*x509_up_ref)(X509 *);
    OPENSSL_STACK *(*sk_new)(OPENSSL_sk_compfunc);
    int (*sk_push)(OPENSSL_STACK *, const void *);
    void (*sk_free)(OPENSSL_STACK *);
    void (*err_new)(void);
    void (*err_set_debug)(const char *, int, const char *);
    void (*err_set_error)(int, int, const char *, ...);
} lr_ssl_real_t;
extern lr_ssl_real_t lr_ssl_real;
#define real lr_ssl_real
#define MISSING ((void *)-1) /* the caller's copy lacks the function */

void st_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);
int st_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp);
void ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);
void tls_real(void);
void *foreign(void *ret, int idx, const char *name);
extern int ssl_idx, ctx_idx;
extern bool usable;   /* every function the interception needs was found */;
extern bool resolved; /* libssl was found; until then a call looks again (it may come later) */;
extern __thread bool from_libssl; /* the current hook's caller is inside a libssl */
void st_reset(st_t *st);
bool copy_alpn(unsigned char **dst, unsigned *dlen, const unsigned char *p, unsigned n);
st_t *st_get(const SSL *s);
st_t *st_make(SSL *s);
st_t *ours(const SSL *s);
st_t *decide(SSL *s);
int fail(st_t *st, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int handshake(SSL *s, st_t *st);
int pt_write(SSL *s, st_t *st, const void *buf, size_t n, size_t *done);
int read_ex(SSL *s, st_t *st, void *buf, size_t n, size_t *got, bool peek);
int read_int(SSL *s, st_t *st, void *buf, int n, bool peek);
bool done(const SSL *s, st_t **out);
X509 *leaf(st_t *st);
STACK_OF(X509) *chain(st_t *st, bool with_ca);
bool tls13(const SSL *s);

/* In a hook: the other copy's f for this caller, NULL for ours, or MISSING. */
#define ROUTE(f) foreign(__builtin_return_address(0), (int)(offsetof(__typeof__(real), f) / sizeof(void *)), __func__)

/* Every hook starts here: a call bound to another libssl copy goes to it; a function missing
 * from ours fails as it would without it. */
#define NEED(f, fail, ...)                                                                             \
    do {                                                                                               \
        void *fwd_ = ROUTE(f);                                                                         \
        if (fwd_ == MISSING) { errno = ENOSYS; return fail; }                                         \
        if (fwd_) return ((__typeof__(real.f))fwd_)(__VA_ARGS__);                                      \
        tls_real();                                                                                    \
        if (!real.f) { errno = ENOSYS; return fail; }                                                  \
    } while (0)
#endif
