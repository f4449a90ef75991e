/* The libssl behind the hooks: its functions looked up in the copy the host loaded (never
 * loaded here), and each call routed to the copy its caller is bound to. */
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

static const char *const libssl[] = {"libssl.so.3", NULL};
static const char *const libcrypto[] = {"libcrypto.so.3", NULL};

lr_ssl_real_t lr_ssl_real;
int ssl_idx = -1, ctx_idx = -1;
bool usable;   /* every function the interception needs was found */
bool resolved; /* libssl was found; until then a call looks again (it may come later) */
static pthread_mutex_t resolve_lock = PTHREAD_MUTEX_INITIALIZER;

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
    S(set_accept, "SSL_set_accept_state");
    S(set_connect, "SSL_set_connect_state");
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
void tls_real(void)
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
__thread bool from_libssl; /* the current hook's caller is inside a libssl */

/* Where the caller's SSL_* calls would go without the shim, as glibc binds them: the global
 * scope first (a libssl there, after us, takes every caller), then the caller's own scope. */
static void classify(caller_t *c, const struct dl_find_object *o)
{
    const struct link_map *l = o->dlfo_link_map;
    c->map = l;
    /* a reference is kept: the object is never unloaded, so its link map is never reused */
    void *h = lr_dlopen(l->l_name && l->l_name[0] ? l->l_name : NULL, RTLD_LAZY | RTLD_NOLOAD);
    void *own = h ? dlsym(h, "SSL_read") : NULL;
    c->libssl = own && (char *)own >= (char *)o->dlfo_map_start && (char *)own < (char *)o->dlfo_map_end;
    void *global = dlsym(RTLD_NEXT, "SSL_read");
    void *f = global ? global : own;
    tls_real();
    if (!f || lr_is_own(f) || f == (void *)real.read) return;
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
void *foreign(void *ret, int idx, const char *name)
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

