/* The TLS layer: OpenSSL's SSL_* calls of a dynamically linked libssl. A client session to an
 * intercepted destination (a swapped descriptor, or, for sessions over memory BIOs such as
 * asyncio's, an SNI name the shim resolves) skips the handshake and carries plaintext through
 * the session's own BIOs, so the transport's readiness is what the client sees. Everything a
 * client asks after a handshake (peer certificate, ALPN, version, cipher, verify result) gets
 * a real answer: the certificate is issued for the host by a CA made in this process.
 * Sessions to any other host are left alone. Nothing here links libssl: every function is
 * looked up in the copy the host loaded. */
#include "base/config.h"
#include "tls/cert.h"
#include "net/dest.h"
#include "net/fdtable.h"
#include "base/log.h"
#include "net/responder.h"
#include "base/real.h"
#include "net/hello.h"
#include "base/util.h"
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stddef.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    bool h11;      /* "http/1.1" was offered: it is the selected protocol */
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

static const char *const libssl[] = {"libssl.so.3", NULL};
static const char *const libcrypto[] = {"libcrypto.so.3", NULL};

static struct {
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
    /* not hooked */
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
} real;
static int ssl_idx = -1, ctx_idx = -1;
static bool usable;   /* every function the interception needs was found */
static bool resolved; /* libssl was found; until then a call looks again (it may come later) */
static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

static void st_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);
static int st_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp);
static void ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp);

/* Every function, looked up without holding a lock of ours: dlsym takes the loader's lock, and
 * a thread inside dlopen may call SSL_* (a constructor) and wait for ours. */
static void resolve(__typeof__(real) *t, int *sidx, int *cidx, bool *ok)
{
#define S(f, name) *(void **)&t->f = lr_real(name, NULL, libssl)
#define C(f, name) *(void **)&t->f = lr_real(name, NULL, libcrypto)
    S(connect, "SSL_connect");
    S(do_handshake, "SSL_do_handshake");
    S(read, "SSL_read");
    S(read_ex, "SSL_read_ex");
    S(peek, "SSL_peek");
    S(peek_ex, "SSL_peek_ex");
    S(write, "SSL_write");
    S(write_ex, "SSL_write_ex");
    S(pending, "SSL_pending");
    S(has_pending, "SSL_has_pending");
    S(get_error, "SSL_get_error");
    S(shutdown, "SSL_shutdown");
    S(get_shutdown, "SSL_get_shutdown");
    S(is_init_finished, "SSL_is_init_finished");
    S(in_init, "SSL_in_init");
    S(in_before, "SSL_in_before");
    S(get_state, "SSL_get_state");
    S(want, "SSL_want");
    S(get1_peer, "SSL_get1_peer_certificate");
    S(get0_peer, "SSL_get0_peer_certificate");
    S(peer_chain, "SSL_get_peer_cert_chain");
    S(verified_chain, "SSL_get0_verified_chain");
    S(verify_result, "SSL_get_verify_result");
    S(version, "SSL_version");
    S(get_version, "SSL_get_version");
    S(current_cipher, "SSL_get_current_cipher");
    S(alpn_selected, "SSL_get0_alpn_selected");
    S(set_alpn, "SSL_set_alpn_protos");
    S(ctx_set_alpn, "SSL_CTX_set_alpn_protos");
    S(ctrl, "SSL_ctrl");
    S(clear, "SSL_clear");
    S(get_ex, "SSL_get_ex_data");
    S(set_ex, "SSL_set_ex_data");
    S(ctx_get_ex, "SSL_CTX_get_ex_data");
    S(ctx_set_ex, "SSL_CTX_set_ex_data");
    S(get_ctx, "SSL_get_SSL_CTX");
    S(is_server, "SSL_is_server");
    S(get_fd, "SSL_get_fd");
    S(rbio, "SSL_get_rbio");
    S(wbio, "SSL_get_wbio");
    S(cipher_find, "SSL_CIPHER_find");
    C(bio_read, "BIO_read");
    C(bio_write, "BIO_write");
    C(bio_flags, "BIO_test_flags");
    C(new_index, "CRYPTO_get_ex_new_index");
    C(x509_up_ref, "X509_up_ref");
    C(sk_new, "OPENSSL_sk_new_null");
    C(sk_push, "OPENSSL_sk_push");
    C(sk_free, "OPENSSL_sk_free");
    C(err_new, "ERR_new");
    C(err_set_debug, "ERR_set_debug");
    C(err_set_error, "ERR_set_error");
#undef S
#undef C
    *ok = t->get_ex && t->set_ex && t->ctx_get_ex && t->ctx_set_ex && t->get_ctx && t->is_server &&
             t->get_fd && t->rbio && t->wbio && t->bio_read && t->bio_write && t->bio_flags && t->new_index &&
             t->x509_up_ref && t->sk_new && t->sk_push && t->sk_free;
    if (*ok) {
        /* a thread that loses the race below wastes two indexes, nothing else */
        *sidx = t->new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, st_dup, st_free);
        *cidx = t->new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL, NULL, NULL, ctx_free);
        *ok = *sidx >= 0 && *cidx >= 0;
    }
}
static void tls_real(void)
{
    if (__atomic_load_n(&resolved, __ATOMIC_ACQUIRE) || !lr_real("SSL_read", NULL, libssl)) return;
    __typeof__(real) t;
    memset(&t, 0, sizeof t);
    int sidx = -1, cidx = -1;
    bool ok = false;
    resolve(&t, &sidx, &cidx, &ok);
    pthread_mutex_lock(&resolve_lock);
    if (!resolved) {
        real = t, ssl_idx = sidx, ctx_idx = cidx, usable = ok;
        __atomic_store_n(&resolved, true, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&resolve_lock);
}

/* ---- which libssl a call comes from ----------------------------------------------------------
 * The hooks catch SSL_* calls from every libssl copy in the process: a library may carry its
 * own (a Python wheel's bundled libssl, another version). Only calls bound to the libssl the
 * hooks resolved are handled; the others go to the copy their caller would have reached
 * without the shim (classify). Callers are told apart by object (_dl_find_object: lock-free)
 * and remembered. */
enum { NCALLERS = 512, NFUNCS = sizeof real / sizeof(void *) };
typedef struct {
    const void *map;  /* the caller's link map */
    void *handle;     /* its scope, for another copy's functions; NULL: the resolved libssl */
    bool libssl;      /* the caller is a libssl itself (an internal call, e.g. the SSL BIO's) */
    void *fn[NFUNCS]; /* another copy's functions, looked up on first use */
} caller_t;
static caller_t callers[NCALLERS];
static int ncallers;
static pthread_mutex_t callers_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool from_libssl; /* the current hook's caller is inside a libssl */
#define MISSING ((void *)-1)      /* the caller's copy lacks the function */

/* Where the caller's SSL_* calls would go without the shim, as glibc binds them: the global
 * scope first (a libssl there, after us, takes every caller), then the caller's own scope. */
static void classify(caller_t *c, const struct dl_find_object *o)
{
    const struct link_map *l = o->dlfo_link_map;
    c->map = l;
    /* a reference is kept: the object is never unloaded, so its link map is never reused */
    void *h = dlopen(l->l_name && l->l_name[0] ? l->l_name : NULL, RTLD_LAZY | RTLD_NOLOAD);
    void *own = h ? dlsym(h, "SSL_read") : NULL;
    c->libssl = own && (char *)own >= (char *)o->dlfo_map_start && (char *)own < (char *)o->dlfo_map_end;
    void *global = dlsym(RTLD_NEXT, "SSL_read");
    void *f = global ? global : own;
    tls_real();
    if (!f || f == (void *)SSL_read || f == (void *)real.read) return;
    c->handle = h;
}

static caller_t *caller_of(void *ret)
{
    struct dl_find_object o;
    if (_dl_find_object(ret, &o) != 0) return NULL;
    int n = __atomic_load_n(&ncallers, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (callers[i].map == o.dlfo_link_map) return &callers[i];
    if (n == NCALLERS) return NULL; /* 512 objects calling SSL_*: the rest go to ours */
    caller_t c;
    memset(&c, 0, sizeof c);
    classify(&c, &o); /* dlopen/dlsym: not under our lock (a dlopen in progress may call us) */
    pthread_mutex_lock(&callers_lock);
    caller_t *found = NULL;
    for (int i = 0; i < ncallers && !found; i++)
        if (callers[i].map == c.map) found = &callers[i];
    if (!found && ncallers < NCALLERS) {
        found = &callers[ncallers];
        *found = c;
        __atomic_store_n(&ncallers, ncallers + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&callers_lock);
    return found;
}

/* The function of another libssl copy that the caller at ret is bound to: NULL for ours,
 * MISSING when that copy lacks it. */
static void *foreign(void *ret, int idx, const char *name)
{
    caller_t *c = caller_of(ret);
    from_libssl = c && c->libssl;
    if (!c || !c->handle) return NULL;
    void *f = __atomic_load_n(&c->fn[idx], __ATOMIC_ACQUIRE);
    if (!f) {
        f = dlsym(c->handle, name);
        if (!f) f = MISSING;
        __atomic_store_n(&c->fn[idx], f, __ATOMIC_RELEASE);
    }
    return f;
}

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

static void st_reset(st_t *st)
{
    if (st->chain) real.sk_free((OPENSSL_STACK *)st->chain);
    if (st->vchain) real.sk_free((OPENSSL_STACK *)st->vchain);
    free(st->pk);
    char *sni = st->sni;
    unsigned char *alpn = st->alpn;
    unsigned alpn_len = st->alpn_len;
    bool alpn_set = st->alpn_set;
    memset(st, 0, sizeof *st);
    st->sni = sni, st->alpn = alpn, st->alpn_len = alpn_len, st->alpn_set = alpn_set;
}

static void st_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    st_t *st = ptr;
    if (!st) return;
    st_reset(st);
    free(st->sni);
    free(st->alpn);
    free(st);
}

static bool copy_alpn(unsigned char **dst, unsigned *dlen, const unsigned char *p, unsigned n)
{
    unsigned char *c = n ? malloc(n) : NULL;
    if (n && !c) return false;
    if (n) memcpy(c, p, n);
    free(*dst);
    *dst = c;
    *dlen = n;
    return true;
}

/* SSL_dup: the copy gets its own state (the SNI name and ALPN list), not yet decided. */
static int st_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp)
{
    st_t *st = *from_d, *c = st ? calloc(1, sizeof *c) : NULL;
    if (c) {
        c->sni = st->sni ? strdup(st->sni) : NULL;
        c->alpn_set = st->alpn_set && copy_alpn(&c->alpn, &c->alpn_len, st->alpn, st->alpn_len);
    }
    *from_d = c;
    return 1;
}

static void ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    ctx_st_t *c = ptr;
    if (c) free(c->alpn);
    free(c);
}

static st_t *st_get(const SSL *s)
{
    tls_real();
    return usable && s ? real.get_ex(s, ssl_idx) : NULL;
}

static st_t *st_make(SSL *s)
{
    st_t *st = st_get(s);
    if (st || !usable || !s) return st;
    st = calloc(1, sizeof *st);
    if (st && !real.set_ex(s, ssl_idx, st)) { free(st); st = NULL; }
    return st;
}

/* The intercepted session's state, or NULL for a session the shim leaves alone. */
static st_t *ours(const SSL *s)
{
    st_t *st = st_get(s);
    return st && st->ours ? st : NULL;
}

/* Decide, once, at the session's first handshake or I/O call: is this session ours? */
static st_t *decide(SSL *s)
{
    st_t *st = st_get(s);
    if (st && st->decided) return st->ours ? st : NULL;
    if (!usable) return NULL;
    /* a call from inside libssl, or a session whose real handshake began without the hooks
     * (the SSL BIO calls libssl's internals directly, and its reads and writes never pass
     * through here): TLS for real (terminated), even if the program calls SSL_read later */
    bool never = lr_inside || from_libssl || !lr_layer_on(LR_LAYER_TLS) || real.is_server(s) ||
                 (real.in_before && !real.in_before(s));
    if (!never && (!real.rbio(s) || !real.wbio(s))) return NULL; /* nothing to talk through yet */
    st = st_make(s);
    if (!st) return NULL;
    st->decided = true;
    if (never) return NULL;
    int fd = real.get_fd(s);
    lr_fdinfo_t info;
    if (fd >= 0) {
        /* on a descriptor: ours exactly when the socket layer swapped it */
        char host[256];
        int port;
        if (!lr_fdt_get(fd, &info) || !lr_dest_intercepts((struct sockaddr *)&info.peer, info.peerlen, host, sizeof host, &port))
            return NULL;
        snprintf(st->host, sizeof st->host, "%s", st->sni ? st->sni : host);
    } else {
        /* memory or custom BIOs: the name the client resolved through the shim; the ACK
         * confirms that the transport really is the responder */
        if (!st->sni || !lr_layer_on(LR_LAYER_SOCKETS) || !lr_dest_fake_name(st->sni)) return NULL;
        snprintf(st->host, sizeof st->host, "%s", st->sni);
    }
    st->ours = true;
    lr_debug("TLS session to %s handled in plaintext", st->host);
    return st;
}

/* The error SSL_get_error gives after a BIO call returned r <= 0. */
static int bio_error(BIO *b, int r)
{
    if (real.bio_flags(b, BIO_FLAGS_SHOULD_RETRY)) {
        if (real.bio_flags(b, BIO_FLAGS_READ)) return SSL_ERROR_WANT_READ;
        if (real.bio_flags(b, BIO_FLAGS_WRITE)) return SSL_ERROR_WANT_WRITE;
        return SSL_ERROR_WANT_READ;
    }
    return r == 0 ? SSL_ERROR_ZERO_RETURN : SSL_ERROR_SYSCALL;
}

static void push_error(int reason, const char *msg)
{
    if (!real.err_new || !real.err_set_debug || !real.err_set_error) return;
    real.err_new();
    real.err_set_debug("llmreplay", 0, "SSL_do_handshake");
    real.err_set_error(ERR_LIB_SSL, reason, "%s", msg);
}

static int fail(st_t *st, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(st_t *st, int reason, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st->hs = -1;
    st->err = SSL_ERROR_SSL;
    push_error(reason, msg);
    lr_error("%s", msg);
    return -1;
}

/* The skipped handshake: ALPN check, HELLO out, ACK in. 1 when done, else -1 with st->err. */
static int handshake(SSL *s, st_t *st)
{
    if (st->hs == 3) return 1;
    if (st->hs < 0) { st->err = SSL_ERROR_SSL; return -1; }
    if (st->hs == 0) {
        const unsigned char *alpn = st->alpn;
        unsigned alpn_len = st->alpn_len;
        if (!st->alpn_set) {
            ctx_st_t *c = real.ctx_get_ex(real.get_ctx(s), ctx_idx);
            alpn = c ? c->alpn : NULL;
            alpn_len = c ? c->len : 0;
        }
        char list[256];
        st->h11 = lr_alpn_h11(alpn, alpn_len, list, sizeof list);
        if (alpn_len && !st->h11) return fail(st, SSL_R_NO_APPLICATION_PROTOCOL, LR_ALPN_REFUSED, st->host, list);
        st->hs = 1;
    }
    while (st->hs == 1) {
        BIO *w = real.wbio(s);
        int r = real.bio_write(w, LR_TLS_HELLO + st->hs_off, (int)(LR_TLS_HELLO_LEN - st->hs_off));
        if (r <= 0) { st->err = bio_error(w, r); return -1; }
        st->hs_off += (size_t)r;
        if (st->hs_off == LR_TLS_HELLO_LEN) st->hs = 2, st->hs_off = 0;
    }
    while (st->hs == 2) {
        BIO *rb = real.rbio(s);
        int r = real.bio_read(rb, st->ack + st->hs_off, (int)(LR_TLS_ACK_LEN - st->hs_off));
        if (r <= 0) {
            int e = bio_error(rb, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { st->err = e; return -1; }
            return fail(st, SSL_R_UNEXPECTED_EOF_WHILE_READING,
                        "TLS to %s: the connection closed before llmreplay's responder answered; is a proxy "
                        "(HTTPS_PROXY) in the way? Set NO_PROXY for intercepted hosts", st->host);
        }
        st->hs_off += (size_t)r;
        /* the public prefix is checked as it comes (a real server answers something else at
         * once); the secret, in constant time, once complete */
        size_t pre = st->hs_off < LR_TLS_ACK_PREFIX_LEN ? st->hs_off : LR_TLS_ACK_PREFIX_LEN;
        unsigned diff = 0;
        const unsigned char *want = lr_hello_ack();
        if (memcmp(st->ack, want, pre) != 0) diff = 1;
        else if (st->hs_off == LR_TLS_ACK_LEN)
            for (size_t i = pre; i < LR_TLS_ACK_LEN; i++) diff |= st->ack[i] ^ want[i];
        if (diff)
            return fail(st, SSL_R_WRONG_VERSION_NUMBER,
                        "TLS to %s reached a peer that is not llmreplay's responder (a proxy?); nothing was sent in "
                        "plaintext. Set NO_PROXY for intercepted hosts, or LLMREPLAY_LAYERS=curl,sockets", st->host);
        if (st->hs_off == LR_TLS_ACK_LEN) st->hs = 3;
    }
    st->err = SSL_ERROR_NONE;
    return 1;
}

/* ---- handshake ---------------------------------------------------------------------------- */

LR_EXPORT int SSL_do_handshake(SSL *s)
{
    NEED(do_handshake, -1, s);
    st_t *st = decide(s);
    return st ? handshake(s, st) : real.do_handshake(s);
}

LR_EXPORT int SSL_connect(SSL *s)
{
    NEED(connect, -1, s);
    st_t *st = decide(s);
    return st ? handshake(s, st) : real.connect(s);
}

/* ---- data --------------------------------------------------------------------------------- */

/* Read up to n bytes of plaintext: first what a peek read ahead, then the transport. */
static int pt_read(SSL *s, st_t *st, void *buf, size_t n, size_t *got, bool peek)
{
    *got = 0;
    if (handshake(s, st) != 1) return 0;
    if (n > INT_MAX) n = INT_MAX;
    if (st->pk_len - st->pk_off == 0) {
        if (!n) { st->err = SSL_ERROR_NONE; return 1; }
        if (st->shut & SSL_RECEIVED_SHUTDOWN) { st->err = SSL_ERROR_ZERO_RETURN; return 0; }
        char *tmp = peek ? realloc(st->pk, n) : NULL;
        if (peek && !tmp) { st->err = SSL_ERROR_SYSCALL; errno = ENOMEM; return 0; }
        if (peek) st->pk = tmp;
        BIO *rb = real.rbio(s);
        int r = real.bio_read(rb, peek ? st->pk : buf, (int)n);
        if (r <= 0) {
            st->err = bio_error(rb, r);
            if (st->err == SSL_ERROR_ZERO_RETURN) st->shut |= SSL_RECEIVED_SHUTDOWN; /* the responder's close is a clean one */
            return 0;
        }
        if (!peek) { *got = (size_t)r; st->err = SSL_ERROR_NONE; return 1; }
        st->pk_len = (size_t)r, st->pk_off = 0;
    }
    size_t have = st->pk_len - st->pk_off;
    size_t k = have < n ? have : n;
    memcpy(buf, st->pk + st->pk_off, k);
    if (!peek) {
        st->pk_off += k;
        if (st->pk_off == st->pk_len) st->pk_off = st->pk_len = 0;
    }
    *got = k;
    st->err = SSL_ERROR_NONE;
    return 1;
}

static int pt_write(SSL *s, st_t *st, const void *buf, size_t n, size_t *done)
{
    *done = 0;
    if (handshake(s, st) != 1) return 0;
    if (st->shut & SSL_SENT_SHUTDOWN) { st->err = SSL_ERROR_ZERO_RETURN; return 0; }
    bool partial = real.ctrl && (real.ctrl(s, SSL_CTRL_MODE, 0, NULL) & SSL_MODE_ENABLE_PARTIAL_WRITE);
    BIO *w = real.wbio(s);
    /* a retried write comes back with the same bytes: carry on where the transport stopped */
    while (st->wr_off < n) {
        size_t chunk = n - st->wr_off;
        int r = real.bio_write(w, (const char *)buf + st->wr_off, chunk > INT_MAX ? INT_MAX : (int)chunk);
        if (r <= 0) {
            if (partial && st->wr_off) break;
            st->err = bio_error(w, r);
            if (st->err == SSL_ERROR_ZERO_RETURN) st->err = SSL_ERROR_SYSCALL;
            return 0;
        }
        st->wr_off += (size_t)r;
        if (partial) break;
    }
    *done = st->wr_off;
    st->wr_off = 0;
    st->err = SSL_ERROR_NONE;
    return 1;
}

/* SSL_read_ex/SSL_peek_ex's convention: 1 or 0, the count through got. */
static int read_ex(SSL *s, st_t *st, void *buf, size_t n, size_t *got, bool peek)
{
    size_t g;
    int ok = pt_read(s, st, buf, n, &g, peek);
    if (got) *got = g;
    return ok;
}

/* SSL_read/SSL_peek's: the count, 0 at a clean close, -1 otherwise. */
static int read_int(SSL *s, st_t *st, void *buf, int n, bool peek)
{
    size_t g;
    if (pt_read(s, st, buf, n < 0 ? 0 : (size_t)n, &g, peek)) return (int)g;
    return st->err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

LR_EXPORT int SSL_read_ex(SSL *s, void *buf, size_t n, size_t *got)
{
    NEED(read_ex, 0, s, buf, n, got);
    st_t *st = decide(s);
    return st ? read_ex(s, st, buf, n, got, false) : real.read_ex(s, buf, n, got);
}

LR_EXPORT int SSL_read(SSL *s, void *buf, int n)
{
    NEED(read, -1, s, buf, n);
    st_t *st = decide(s);
    return st ? read_int(s, st, buf, n, false) : real.read(s, buf, n);
}

LR_EXPORT int SSL_peek_ex(SSL *s, void *buf, size_t n, size_t *got)
{
    NEED(peek_ex, 0, s, buf, n, got);
    st_t *st = decide(s);
    return st ? read_ex(s, st, buf, n, got, true) : real.peek_ex(s, buf, n, got);
}

LR_EXPORT int SSL_peek(SSL *s, void *buf, int n)
{
    NEED(peek, -1, s, buf, n);
    st_t *st = decide(s);
    return st ? read_int(s, st, buf, n, true) : real.peek(s, buf, n);
}

LR_EXPORT int SSL_write_ex(SSL *s, const void *buf, size_t n, size_t *done)
{
    NEED(write_ex, 0, s, buf, n, done);
    st_t *st = decide(s);
    size_t d;
    if (!st) return real.write_ex(s, buf, n, done);
    int ok = pt_write(s, st, buf, n, &d);
    if (done) *done = d;
    return ok;
}

LR_EXPORT int SSL_write(SSL *s, const void *buf, int n)
{
    NEED(write, -1, s, buf, n);
    st_t *st = decide(s);
    size_t d = 0;
    if (!st) return real.write(s, buf, n);
    if (n < 0) n = 0;
    int ok = pt_write(s, st, buf, (size_t)n, &d);
    return ok ? (int)d : -1;
}

LR_EXPORT int SSL_pending(const SSL *s)
{
    NEED(pending, 0, s);
    st_t *st = ours(s);
    return st ? (int)(st->pk_len - st->pk_off) : real.pending(s);
}

LR_EXPORT int SSL_has_pending(const SSL *s)
{
    NEED(has_pending, 0, s);
    st_t *st = ours(s);
    return st ? st->pk_len > st->pk_off : real.has_pending(s);
}

LR_EXPORT int SSL_get_error(const SSL *s, int ret)
{
    NEED(get_error, SSL_ERROR_SSL, s, ret);
    st_t *st = ours(s);
    if (!st) return real.get_error(s, ret);
    return ret > 0 ? SSL_ERROR_NONE : st->err;
}

LR_EXPORT int SSL_want(const SSL *s)
{
    NEED(want, SSL_NOTHING, s);
    st_t *st = ours(s);
    if (!st) return real.want(s);
    return st->err == SSL_ERROR_WANT_READ ? SSL_READING : st->err == SSL_ERROR_WANT_WRITE ? SSL_WRITING : SSL_NOTHING;
}

LR_EXPORT int SSL_shutdown(SSL *s)
{
    NEED(shutdown, -1, s);
    st_t *st = ours(s);
    if (!st) return real.shutdown(s);
    /* no close_notify to send; the answer may still be coming (a half-closing client reads
     * on), so the receiving side ends only with the transport */
    st->shut |= SSL_SENT_SHUTDOWN;
    st->err = SSL_ERROR_NONE;
    return 1;
}

LR_EXPORT int SSL_get_shutdown(const SSL *s)
{
    NEED(get_shutdown, 0, s);
    st_t *st = ours(s);
    return st ? st->shut : real.get_shutdown(s);
}

LR_EXPORT int SSL_clear(SSL *s)
{
    NEED(clear, 0, s);
    st_t *st = st_get(s);
    if (st) st_reset(st); /* a reused object decides afresh */
    return real.clear(s);
}

/* ---- state queries -------------------------------------------------------------------------- */

static bool done(const SSL *s, st_t **out)
{
    st_t *st = ours(s);
    if (out) *out = st;
    return st && st->hs == 3;
}

LR_EXPORT int SSL_is_init_finished(const SSL *s)
{
    NEED(is_init_finished, 0, s);
    st_t *st;
    return done(s, &st) ? 1 : st ? 0 : real.is_init_finished(s);
}

LR_EXPORT int SSL_in_init(const SSL *s)
{
    NEED(in_init, 1, s);
    st_t *st;
    return done(s, &st) ? 0 : st ? 1 : real.in_init(s);
}

LR_EXPORT int SSL_in_before(const SSL *s)
{
    NEED(in_before, 1, s);
    st_t *st;
    return done(s, &st) ? 0 : st ? st->hs == 0 : real.in_before(s);
}

LR_EXPORT OSSL_HANDSHAKE_STATE SSL_get_state(const SSL *s)
{
    NEED(get_state, TLS_ST_BEFORE, s);
    st_t *st;
    return done(s, &st) ? TLS_ST_OK : st ? TLS_ST_BEFORE : real.get_state(s);
}

/* ---- what the handshake would have told -------------------------------------------------- */

static lr_issuer_t *the_issuer;
static void make_issuer(void)
{
    const lr_crypto_t *cr = lr_crypto_host();
    the_issuer = cr ? lr_issuer_ephemeral(cr) : NULL;
    if (!the_issuer) lr_error("cannot make a certificate authority with this process's libcrypto; TLS clients will see no peer certificate");
}

static X509 *leaf(st_t *st)
{
    if (st->leaf) return st->leaf;
    static pthread_once_t io = PTHREAD_ONCE_INIT;
    pthread_once(&io, make_issuer);
    if (!the_issuer) return NULL;
    st->leaf = lr_issuer_leaf(the_issuer, st->host); /* it takes "[::1]" as "::1" */
    return st->leaf;
}

LR_EXPORT X509 *SSL_get1_peer_certificate(const SSL *s)
{
    NEED(get1_peer, NULL, s);
    st_t *st;
    if (!done(s, &st)) return st ? NULL : real.get1_peer(s);
    X509 *x = leaf(st);
    if (x) real.x509_up_ref(x);
    return x;
}

LR_EXPORT X509 *SSL_get0_peer_certificate(const SSL *s)
{
    NEED(get0_peer, NULL, s);
    st_t *st;
    if (!done(s, &st)) return st ? NULL : real.get0_peer(s);
    return leaf(st);
}

static STACK_OF(X509) *chain(st_t *st, bool with_ca)
{
    STACK_OF(X509) **slot = with_ca ? &st->vchain : &st->chain;
    if (*slot) return *slot;
    X509 *x = leaf(st);
    if (!x) return NULL;
    OPENSSL_STACK *sk = real.sk_new(NULL);
    if (!sk) return NULL;
    real.sk_push(sk, x);
    if (with_ca) real.sk_push(sk, lr_issuer_ca_cert(the_issuer));
    *slot = (STACK_OF(X509) *)sk;
    return *slot;
}

LR_EXPORT STACK_OF(X509) *SSL_get_peer_cert_chain(const SSL *s)
{
    NEED(peer_chain, NULL, s);
    st_t *st;
    if (!done(s, &st)) return st ? NULL : real.peer_chain(s);
    return chain(st, false);
}

LR_EXPORT STACK_OF(X509) *SSL_get0_verified_chain(const SSL *s)
{
    NEED(verified_chain, NULL, s);
    st_t *st;
    if (!done(s, &st)) return st ? NULL : real.verified_chain(s);
    return chain(st, true);
}

LR_EXPORT long SSL_get_verify_result(const SSL *s)
{
    NEED(verify_result, X509_V_ERR_UNSPECIFIED, s);
    st_t *st = ours(s);
    return st ? X509_V_OK : real.verify_result(s);
}

/* TLS 1.3 unless the client capped the version lower. */
static bool tls13(const SSL *s)
{
    long max = real.ctrl ? real.ctrl((SSL *)s, SSL_CTRL_GET_MAX_PROTO_VERSION, 0, NULL) : 0;
    return max == 0 || max >= TLS1_3_VERSION;
}

LR_EXPORT int SSL_version(const SSL *s)
{
    NEED(version, 0, s);
    return done(s, NULL) ? (tls13(s) ? TLS1_3_VERSION : TLS1_2_VERSION) : real.version(s);
}

LR_EXPORT const char *SSL_get_version(const SSL *s)
{
    NEED(get_version, "unknown", s);
    return done(s, NULL) ? (tls13(s) ? "TLSv1.3" : "TLSv1.2") : real.get_version(s);
}

LR_EXPORT const SSL_CIPHER *SSL_get_current_cipher(const SSL *s)
{
    NEED(current_cipher, NULL, s);
    if (!done(s, NULL) || !real.cipher_find) return real.current_cipher(s);
    /* TLS_AES_256_GCM_SHA384, or ECDHE-ECDSA-AES256-GCM-SHA384 under TLS 1.2 */
    const SSL_CIPHER *c = real.cipher_find((SSL *)s, (const unsigned char *)(tls13(s) ? "\x13\x02" : "\xc0\x2c"));
    return c ? c : real.current_cipher(s);
}

LR_EXPORT void SSL_get0_alpn_selected(const SSL *s, const unsigned char **data, unsigned int *len)
{
    /* NEED's routing, for a function with no result */
    void *fwd = ROUTE(alpn_selected);
    if (fwd == MISSING) { *data = NULL, *len = 0; return; }
    if (fwd) { ((__typeof__(real.alpn_selected))fwd)(s, data, len); return; }
    st_t *st = ours(s);
    if (!st) {
        if (real.alpn_selected) real.alpn_selected(s, data, len);
        else *data = NULL, *len = 0;
        return;
    }
    bool sel = st->hs == 3 && st->h11;
    *data = sel ? (const unsigned char *)"http/1.1" : NULL;
    *len = sel ? 8 : 0;
}

/* ---- what the client asks for before the handshake ---------------------------------------- */

LR_EXPORT long SSL_ctrl(SSL *s, int cmd, long larg, void *parg)
{
    NEED(ctrl, 0, s, cmd, larg, parg);
    long r = real.ctrl(s, cmd, larg, parg);
    if (cmd == SSL_CTRL_SET_TLSEXT_HOSTNAME && larg == TLSEXT_NAMETYPE_host_name && r == 1 && !lr_inside) {
        st_t *st = st_make(s);
        if (st) {
            free(st->sni);
            st->sni = parg ? strdup(parg) : NULL;
        }
    }
    return r;
}

LR_EXPORT int SSL_set_alpn_protos(SSL *s, const unsigned char *p, unsigned int n)
{
    NEED(set_alpn, 1, s, p, n);
    int r = real.set_alpn(s, p, n);
    st_t *st = r == 0 && !lr_inside ? st_make(s) : NULL;
    if (st && copy_alpn(&st->alpn, &st->alpn_len, p, p ? n : 0)) st->alpn_set = true;
    return r;
}

LR_EXPORT int SSL_CTX_set_alpn_protos(SSL_CTX *ctx, const unsigned char *p, unsigned int n)
{
    NEED(ctx_set_alpn, 1, ctx, p, n);
    int r = real.ctx_set_alpn(ctx, p, n);
    if (r != 0 || !usable || lr_inside || !ctx) return r;
    ctx_st_t *c = real.ctx_get_ex(ctx, ctx_idx);
    if (!c && (c = calloc(1, sizeof *c)) && !real.ctx_set_ex(ctx, ctx_idx, c)) { free(c); c = NULL; }
    if (c) copy_alpn(&c->alpn, &c->len, p, p ? n : 0);
    return r;
}
