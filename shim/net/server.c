/* The responder's server: one thread per process running one epoll loop over every
 * connection (all non-blocking), the registry of connections, the wake-up upstream workers
 * use, and what happens on fork. The HTTP side of a connection is conn.c. */
#include "net/responder.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "net/conn.h"
#include "net/hello.h"
#include "net/tls_term.h"
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static pthread_mutex_t resp_lock = PTHREAD_MUTEX_INITIALIZER; /* startup and the registry */
static int epfd = -1;
static int wakefd = -1; /* upstream workers wake the loop when they are done */
static char wake_marker;
static pid_t owner; /* process whose thread runs the loop */
static lr_conn_t **conns;
static int nconns, capconns;

void lr_server_arm(lr_conn_t *c)
{
    /* after the client's EOF, reading is over: watching it would report readiness forever */
    struct epoll_event ev = {.events = (c->eof ? 0u : EPOLLIN | EPOLLRDHUP) | (c->want_out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void lr_server_unwatch(lr_conn_t *c) { epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); }

void lr_server_watch(lr_conn_t *c, int fd)
{
    c->fd = fd;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) c->dead = true;
}

void lr_server_wake(void)
{
    uint64_t one = 1;
    ssize_t w = lr_write(wakefd, &one, sizeof one);
    (void)w;
}

static void unregister(lr_conn_t *c)
{
    pthread_mutex_lock(&resp_lock);
    for (int i = 0; i < nconns; i++)
        if (conns[i] == c) { conns[i] = conns[--nconns]; break; }
    pthread_mutex_unlock(&resp_lock);
}

/* A connection can go only once no upstream worker writes to it. Called with c->lock held
 * (which it releases): a client's write hook (net/inline.c) may hold a reference meanwhile,
 * so the last reference frees it. */
static void unlock_maybe_drop(lr_conn_t *c)
{
    bool drop = c->dead && !c->gone && !lr_conn_upstream_busy(c);
    if (drop) c->gone = true;
    pthread_mutex_unlock(&c->lock);
    if (!drop) return;
    unregister(c);
    if (c->fd >= 0) epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL); /* -1: a TLS connection the helper could not take */
    lr_conn_unref(c);
}

lr_conn_t *lr_server_get(void *p, unsigned long long id)
{
    lr_conn_t *found = NULL;
    pthread_mutex_lock(&resp_lock);
    for (int i = 0; i < nconns; i++) /* empty in a forked child: fork_child */
        if (conns[i] == p && conns[i]->id == id) {
            found = conns[i];
            __atomic_add_fetch(&found->refs, 1, __ATOMIC_ACQ_REL);
            break;
        }
    pthread_mutex_unlock(&resp_lock);
    return found;
}

/* A copy of the connection list, to walk without the lock (only this thread drops entries). */
static lr_conn_t **snapshot(int *k)
{
    pthread_mutex_lock(&resp_lock);
    *k = nconns;
    lr_conn_t **list = nconns ? malloc(sizeof *list * (size_t)nconns) : NULL;
    if (list) memcpy(list, conns, sizeof *list * (size_t)nconns);
    pthread_mutex_unlock(&resp_lock);
    return list;
}

/* Milliseconds until the next paced event is due; -1 when no stream is paced. */
static int next_timeout(void)
{
    double now = lr_now(), best = 0;
    bool any = false; /* not best < 0: an overdue stream's time left is negative */
    pthread_mutex_lock(&resp_lock);
    for (int i = 0; i < nconns; i++) {
        lr_conn_t *c = conns[i];
        /* a client's hook at work on it wakes the loop if it leaves it anything to do */
        if (pthread_mutex_trylock(&c->lock) != 0) continue;
        if (c->resp && c->pace_ms != 0 && (c->next_ev < c->resp->nevents || c->fault.on) && !c->want_out) {
            double left = c->due - now;
            if (!any || left < best) best = left;
            any = true;
        }
        double due = c->want_out ? -1 : lr_conn_h2_due(c); /* < 0: no h2 stream waits */
        if (due >= 0 && (!any || due - now < best)) {
            best = due - now;
            any = true;
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&resp_lock);
    if (!any) return -1;
    return best <= 0 ? 0 : (int)(best * 1000) + 1;
}

static void on_event(lr_conn_t *c, uint32_t events)
{
    pthread_mutex_lock(&c->lock);
    if (c->gone) { pthread_mutex_unlock(&c->lock); return; }
    if (lr_conn_upstream_busy(c)) {
        /* the worker owns the output; keep reading pipelined input, notice hang-ups */
        if (events & (EPOLLIN | EPOLLRDHUP)) lr_conn_readable(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) lr_conn_readable(c);
    if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) c->dead = true;
    lr_conn_service(c);
    unlock_maybe_drop(c);
}

/* After a wake-up (an upstream answer finished, due: false) or a timeout (paced events,
 * due: true): serve the connections that can go on. */
static void serve_waiting(bool due)
{
    int k;
    lr_conn_t **list = snapshot(&k);
    double now = lr_now();
    for (int i = 0; list && i < k; i++) {
        lr_conn_t *c = list[i];
        pthread_mutex_lock(&c->lock);
        bool ready = c->resp ? c->pace_ms != 0 && c->due <= now : lr_conn_h2_due(c) >= 0 && lr_conn_h2_due(c) <= now;
        if (c->gone || lr_conn_upstream_busy(c) || (due && !(ready && !c->want_out))) {
            pthread_mutex_unlock(&c->lock);
            continue;
        }
        lr_conn_service(c);
        unlock_maybe_drop(c);
    }
    free(list);
}

static void *loop(void *arg)
{
    (void)arg;
    lr_inside = 1; /* this thread's own calls never meet the hooks' interception */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the host's signal handlers run in its own threads */
    struct epoll_event evs[64];
    for (;;) {
        int timeout = next_timeout();
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) break;
        bool woken = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &wake_marker) {
                uint64_t v;
                ssize_t r = read(wakefd, &v, sizeof v);
                (void)r;
                woken = true;
                continue;
            }
            on_event(evs[i].data.ptr, evs[i].events);
        }
        if (woken) serve_waiting(false); /* an upstream answer finished: go on with its connection */
        if (timeout >= 0) serve_waiting(true); /* paced streams whose next event is due */
    }
    return NULL;
}

static void fork_prepare(void) { pthread_mutex_lock(&resp_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&resp_lock); }
static void fork_child(void)
{
    /* The loop thread did not come along. The child's copies of the server ends belong to the
     * parent's connections (which the parent keeps serving): close them and start afresh. */
    for (int i = 0; i < nconns; i++) lr_close(conns[i]->fd);
    nconns = 0;
    if (epfd >= 0) lr_close(epfd);
    if (wakefd >= 0) lr_close(wakefd);
    epfd = wakefd = -1;
    owner = 0;
    pthread_mutex_unlock(&resp_lock);
}
__attribute__((constructor)) static void server_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

/* The loop of this process, started on first use (again in a forked child); under resp_lock. */
static bool start_loop(void)
{
    if (owner == getpid()) return true;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_marker};
    if (epfd >= 0 && wakefd >= 0) epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &wev);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool ok = epfd >= 0 && pthread_create(&th, &a, loop, NULL) == 0;
    pthread_attr_destroy(&a);
    if (ok) owner = getpid();
    else lr_error("cannot start the in-process responder: %s", strerror(errno));
    return ok;
}

/* Add c to the registry, starting the loop if this process has none yet. */
static bool register_conn(lr_conn_t *c)
{
    pthread_mutex_lock(&resp_lock);
    bool ok = start_loop();
    if (ok && nconns == capconns) {
        int cap = capconns ? capconns * 2 : 16;
        lr_conn_t **v = realloc(conns, sizeof *v * (size_t)cap);
        if (v) conns = v, capconns = cap;
        else ok = false;
    }
    if (ok) conns[nconns++] = c;
    pthread_mutex_unlock(&resp_lock);
    return ok;
}

static bool add(int fd, const char *host, int port, const char *scheme, bool proxy, const char *hop, int hop_port,
                int client_fd, unsigned long client_ino, lr_conn_ref_t *ref)
{
    static unsigned long long next_id;
    lr_tls_term_prepare();
    lr_hello_ack(); /* made now: a connection made before a fork is acknowledged alike */
    lr_conn_t *c = lr_conn_new(fd, host, port, scheme);
    if (!c) return false;
    c->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    if (ref) *ref = (lr_conn_ref_t){c, c->id};
    c->client_fd = client_fd;
    c->client_ino = client_ino;
    c->proxy = proxy;
    snprintf(c->hop, sizeof c->hop, "%s", hop ? hop : "");
    c->hop_port = hop_port;
    lr_fcntl(fd, F_SETFL, lr_fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    bool ok = register_conn(c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (ok && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        unregister(c);
        ok = false;
    }
    if (!ok) {
        c->fd = -1; /* the caller keeps fd */
        lr_conn_free(c);
    }
    return ok;
}

bool lr_responder_add(int fd, const char *host, int port, const char *scheme, int client_fd, unsigned long client_ino,
                      lr_conn_ref_t *ref)
{
    return add(fd, host, port, scheme, false, NULL, 0, client_fd, client_ino, ref);
}

bool lr_responder_add_proxy(int fd, const char *host, int port, const char *hop, int hop_port, int client_fd,
                            unsigned long client_ino)
{
    return add(fd, host, port, "http", true, hop, hop_port, client_fd, client_ino, NULL);
}
