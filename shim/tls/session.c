/* One hooked session: whether it is taken over, the hello/ack in place of a handshake,
 * plaintext through its BIOs, and what the handshake would have told (peer certificate). */
#include "tls/tls_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "base/util.h"
#include "net/dest.h"
#include "net/fdtable.h"
#include "tls/cert.h"
#include <dlfcn.h>
#include <link.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_reset(st_t *st)
{
    if (st->chain) real.sk_free((OPENSSL_STACK *)st->chain);
    if (st->vchain) real.sk_free((OPENSSL_STACK *)st->vchain);
    free(st->pk);
    char *sni = st->sni;
    unsigned char *alpn = st->alpn;
    unsigned alpn_len = st->alpn_len;
    bool alpn_set = st->alpn_set, accept = st->accept;
    memset(st, 0, sizeof *st);
    st->sni = sni, st->alpn = alpn, st->alpn_len = alpn_len, st->alpn_set = alpn_set, st->accept = accept;
}

void st_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    st_t *st = ptr;
    if (!st) return;
    st_reset(st);
    free(st->sni);
    free(st->alpn);
    free(st);
}

bool copy_alpn(unsigned char **dst, unsigned *dlen, const unsigned char *p, unsigned n)
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
int st_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp)
{
    st_t *st = *from_d, *c = st ? calloc(1, sizeof *c) : NULL;
    if (c) {
        c->sni = st->sni ? strdup(st->sni) : NULL;
        c->alpn_set = st->alpn_set && copy_alpn(&c->alpn, &c->alpn_len, st->alpn, st->alpn_len);
    }
    *from_d = c;
    return 1;
}

void ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    ctx_st_t *c = ptr;
    if (c) free(c->alpn);
    free(c);
}

st_t *st_get(const SSL *s)
{
    tls_real();
    return usable && s ? real.get_ex(s, ssl_idx) : NULL;
}

st_t *st_make(SSL *s)
{
    st_t *st = st_get(s);
    if (st || !usable || !s) return st;
    st = calloc(1, sizeof *st);
    if (st && !real.set_ex(s, ssl_idx, st)) { free(st); st = NULL; }
    return st;
}

/* The intercepted session's state, or NULL for a session the shim leaves alone. */
st_t *ours(const SSL *s)
{
    st_t *st = st_get(s);
    return st && st->ours ? st : NULL;
}

/* Decide, once, at the session's first handshake or I/O call: is this session ours? */
st_t *decide(SSL *s)
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

int fail(st_t *st, int reason, const char *fmt, ...)
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
int handshake(SSL *s, st_t *st)
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
        st->proto = lr_alpn_select(alpn, alpn_len, list, sizeof list);
        if (alpn_len && !st->proto) return fail(st, SSL_R_NO_APPLICATION_PROTOCOL, LR_ALPN_REFUSED, st->host, list);
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

int pt_write(SSL *s, st_t *st, const void *buf, size_t n, size_t *done)
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
int read_ex(SSL *s, st_t *st, void *buf, size_t n, size_t *got, bool peek)
{
    size_t g;
    int ok = pt_read(s, st, buf, n, &g, peek);
    if (got) *got = g;
    return ok;
}

/* SSL_read/SSL_peek's: the count, 0 at a clean close, -1 otherwise. */
int read_int(SSL *s, st_t *st, void *buf, int n, bool peek)
{
    size_t g;
    if (pt_read(s, st, buf, n < 0 ? 0 : (size_t)n, &g, peek)) return (int)g;
    return st->err == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

/* ---- what the handshake would have told -------------------------------------------------- */

bool done(const SSL *s, st_t **out)
{
    st_t *st = ours(s);
    if (out) *out = st;
    return st && st->hs == 3;
}

static lr_issuer_t *the_issuer;
static void make_issuer(void)
{
    const lr_crypto_t *cr = lr_crypto_host();
    the_issuer = cr ? lr_issuer_ephemeral(cr) : NULL;
    if (!the_issuer) lr_error("cannot make a certificate authority with this process's libcrypto; TLS clients will see no peer certificate");
}

X509 *leaf(st_t *st)
{
    if (st->leaf) return st->leaf;
    static pthread_once_t io = PTHREAD_ONCE_INIT;
    pthread_once(&io, make_issuer);
    if (!the_issuer) return NULL;
    st->leaf = lr_issuer_leaf(the_issuer, st->host); /* it takes "[::1]" as "::1" */
    return st->leaf;
}

STACK_OF(X509) *chain(st_t *st, bool with_ca)
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

/* TLS 1.3 unless the client capped the version lower. */
bool tls13(const SSL *s)
{
    long max = real.ctrl ? real.ctrl((SSL *)s, SSL_CTRL_GET_MAX_PROTO_VERSION, 0, NULL) : 0;
    return max == 0 || max >= TLS1_3_VERSION;
}