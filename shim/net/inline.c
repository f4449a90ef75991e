/* Answering in the caller's thread: a client's write on a swapped descriptor that completes a
 * request is served before the write returns, by the same conn.c code the loop runs, so the
 * answer is in the socket pair when the client reads (no trip to the responder thread and
 * back). The bytes go straight into the connection's input, never through the pair.
 *
 * The loop and the hook never work on a connection at once: each holds its lock. When the
 * pair already holds bytes (written by a path no hook sees) or the client shut its side down,
 * the bytes go the real way, after them, and the loop reads them all: the client's order and
 * EPIPE are kept. Only replay without pacing or fault rules is answered here, and only on a
 * connection that is idle, speaks HTTP/1 (plain, or hooked TLS; no proxy) and has had a first
 * request answered by the loop (which tells HELLO, ClientHello, h2 and HTTP/1 apart).
 * Whatever the answer leaves to do (a large answer waiting for the client to read, a
 * connection to close) goes back to the loop. */
#include "net/inline.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "engine/render.h"
#include "net/conn.h"
#include "net/fdtable.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_HEAD (64 * 1024) /* as conn.c: what the input may hold beyond the body limit */

static unsigned long long answered; /* requests answered in callers' threads (debug, tests) */

/* Replay, unpaced, no fault rule (their steps are timed by the loop): decided once (the
 * settings never change). */
static bool mode_allows(void)
{
    static int ok = -1;
    int v = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        const lr_config_t *cf = lr_cfg();
        v = cf->mode == MODE_REPLAY && lr_pace_setting() == 0 && !(cf->faults && *cf->faults);
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v;
}

static bool idle_http1(const lr_conn_t *c)
{
    return !c->gone && !c->dead && !c->closing && !c->eof && c->sniffed && !c->helper && !c->proxy && !c->h2 && c->served > 0 &&
           !c->resp && c->out_off >= c->out.len && !lr_conn_upstream_busy(c);
}

/* LLMREPLAY_LOG=debug: how many requests skipped the trip to the responder thread (at exit;
 * registered with the first such answer, so other programs have no exit handler of ours). */
static void inline_report(void)
{
    unsigned long long n = __atomic_load_n(&answered, __ATOMIC_RELAXED);
    if (n) lr_debug("%llu requests answered in the caller's thread", n);
}
static void report_init(void) { atexit(inline_report); }

/* Under c->lock: take the bytes, answer what they complete. False: the caller writes them. */
static bool feed(lr_conn_t *c, int fd, const struct iovec *iov, int n, size_t total)
{
    if (!idle_http1(c) || c->in.len + total > c->max_request + MAX_HEAD) return false;
    /* Bytes in the pair (written some way no hook sees) come first, and a client that shut
     * its side down must get EPIPE: either way the loop reads them, after the real write. */
    char b;
    ssize_t k = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return false;
    for (int i = 0; i < n; i++) buf_add(&c->in, iov[i].iov_base, iov[i].iov_len);
    int before = c->served;
    lr_conn_service(c);
    if (c->served > before) {
        __atomic_add_fetch(&answered, (unsigned long long)(c->served - before), __ATOMIC_RELAXED);
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, report_init);
        if (!c->inline_logged) {
            c->inline_logged = true;
            lr_debug("requests on fd %d are answered in the caller's thread", fd);
        }
    }
    if (c->dead) lr_server_wake(); /* the loop drops it (an answer left to write waits for EPOLLOUT) */
    return true;
}

ssize_t lr_inline_write(int fd, const struct iovec *iov, int n)
{
    if (!mode_allows() || n < 0) return -2;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len > SSIZE_MAX - total) return -2;
        total += iov[i].iov_len;
    }
    if (!total) return -2;
    lr_fdinfo_t info;
    if (!lr_fdt_get(fd, &info) || !info.conn) return -2;
    lr_conn_t *c = lr_server_get(info.conn, info.conn_id);
    if (!c) return -2;
    int saved = errno;
    bool done;
    lr_inside++; /* the engine's own calls (files, logs) pass the hooks */
    pthread_mutex_lock(&c->lock);
    done = feed(c, fd, iov, n, total);
    pthread_mutex_unlock(&c->lock);
    lr_inside--;
    lr_conn_unref(c);
    errno = saved;
    return done ? (ssize_t)total : -2;
}

