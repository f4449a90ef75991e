/* The TLS layer: OpenSSL's SSL_* calls of a dynamically linked libssl. A client session to an
 * intercepted destination (a swapped descriptor, or, for sessions over memory BIOs such as
 * asyncio's, an SNI name the shim resolves) skips the handshake and carries plaintext through
 * the session's own BIOs, so the transport's readiness is what the client sees. Everything a
 * client asks after a handshake (peer certificate, ALPN, version, cipher, verify result) gets
 * a real answer: the certificate is issued for the host by a CA made in this process.
 * Sessions to any other host are left alone. Nothing here links libssl: every function is
 * looked up in the copy the host loaded. */
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

/* ---- handshake ---------------------------------------------------------------------------- */

LR_EXPORT int SSL_do_handshake(SSL *s)
{
    NEED(do_handshake, -1, s);
    st_t *st = decide(s);
    return st ? handshake(s, st) : real.do_handshake(s);
}

/* A session of a generic method (TLS_method(), SSLv23_method(): Ruby's) is a server until
 * SSL_connect makes it a client; the real one does that first, and so do we before deciding. */
static void client_state(SSL *s)
{
    st_t *st = st_get(s);
    if (real.set_connect && !(st && (st->decided || st->accept)) && real.is_server(s) && real.in_before &&
        real.in_before(s))
        real.set_connect(s);
}

LR_EXPORT void SSL_set_accept_state(SSL *s)
{
    void *fwd = ROUTE(set_accept);
    if (fwd == MISSING) return;
    if (fwd) { ((__typeof__(real.set_accept))fwd)(s); return; }
    tls_real();
    if (!real.set_accept) return;
    st_t *st = lr_inside ? NULL : st_make(s);
    if (st) st->accept = true;
    real.set_accept(s);
}

LR_EXPORT int SSL_connect(SSL *s)
{
    NEED(connect, -1, s);
    if (usable && !from_libssl && !lr_inside) client_state(s);
    st_t *st = decide(s);
    return st ? handshake(s, st) : real.connect(s);
}

/* ---- data --------------------------------------------------------------------------------- */
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
    const char *sel = st->hs == 3 ? st->proto : NULL;
    *data = (const unsigned char *)sel;
    *len = sel ? (unsigned)strlen(sel) : 0;
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
