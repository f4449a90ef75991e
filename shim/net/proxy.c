/* Proxy routing and pass-through. The pass-through is a plain byte splice on its own thread
 * (blocking I/O, two descriptors): rare, and never on the responder's loop. */
#include "net/proxy.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "engine/record.h"
#include "net/dest.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A proxy variable: NULL when unset or empty (not an LLMREPLAY_* setting: base/config.c has none). */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static char *origin;
void lr_proxy_set_origin(const char *base)
{
    free(origin);
    origin = base ? strdup(base) : NULL;
    size_t l = origin ? strlen(origin) : 0;
    while (l && origin[l - 1] == '/') origin[--l] = 0; /* the request target brings its own '/' */
}
const char *lr_proxy_origin(void) { return origin; }

bool lr_proxy_target(const char *s, size_t n, bool url, char *host, size_t cap, int *port)
{
    *port = 80;
    if (url) {
        if (n < 7 || strncasecmp(s, "http://", 7)) return false;
        s += 7, n -= 7;
        n = strcspn(s, "/?#") < n ? strcspn(s, "/?#") : n;
        const char *at = memchr(s, '@', n); /* user:password@ is not part of the host */
        if (at) n -= (size_t)(at + 1 - s), s = at + 1;
    } else {
        *port = 443;
    }
    const char *h = s, *colon = NULL;
    size_t hl;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb) return false;
        h = s + 1, hl = (size_t)(rb - s - 1);
        if (rb + 1 < s + n && rb[1] == ':') colon = rb + 1;
    } else {
        colon = memchr(s, ':', n);
        hl = colon ? (size_t)(colon - s) : n;
    }
    if (colon) {
        char *e;
        long p = strtol(colon + 1, &e, 10);
        if (e != s + n || p <= 0 || p > 65535) return false;
        *port = (int)p;
    } else if (!url) {
        return false; /* CONNECT names its port */
    }
    if (!hl || hl >= cap) return false;
    memcpy(host, h, hl);
    host[hl] = 0;
    return true;
}

/* Is host:port a destination the socket layer answers (recordings' hosts, LLMREPLAY_HOSTS)? */
static bool intercepted(const char *host, int port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t len;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET, a4->sin_port = htons((unsigned short)port), len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6, a6->sin6_port = htons((unsigned short)port), len = sizeof *a6;
    } else if (!strcasecmp(host, "localhost")) {
        a4->sin_family = AF_INET, a4->sin_port = htons((unsigned short)port), len = sizeof *a4;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        return lr_dest_fake_name(host);
    }
    char h[160];
    int p;
    return lr_dest_intercepts((struct sockaddr *)&ss, len, h, sizeof h, &p);
}

/* Each refused destination is reported once on stderr; the client gets the reason every time. */
static void report_once(const char *host, int port, const char *why)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t seen[64];
    static int nseen;
    char key[300];
    snprintf(key, sizeof key, "%s:%d", host, port);
    uint64_t h = lr_hash64(key, strlen(key), 5);
    pthread_mutex_lock(&lock);
    bool dup = false;
    for (int i = 0; i < nseen && !dup; i++) dup = seen[i] == h;
    if (!dup && nseen < 64) seen[nseen++] = h;
    pthread_mutex_unlock(&lock);
    if (!dup) lr_warn("%s", why + strlen("llmreplay: "));
}

lr_route_t lr_proxy_route(const char *host, int port, bool hop, char *why, size_t cap)
{
    if (intercepted(host, port)) return LR_ROUTE_SERVE;
    bool deny = lr_cfg()->egress_deny;
    if (hop && !deny) return LR_ROUTE_PASS;
    if (!hop && !deny && lr_cfg()->mode != MODE_REPLAY) return LR_ROUTE_PASS;
    snprintf(why, cap,
             "llmreplay: refused a proxy request for %s:%d: not a recorded LLM host (%s); add it to LLMREPLAY_HOSTS to "
             "answer it from recordings",
             host, port, deny ? "LLMREPLAY_EGRESS=deny" : "replay mode reaches no other host; --mode live passes it through");
    report_once(host, port, why);
    return LR_ROUTE_REFUSE;
}

typedef struct {
    int fd;
    char host[256];
    int port;
    char *pre;
    size_t prelen;
    bool tunnel;
} splice_t;

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = lr_send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

/* A real TCP connection to host:port; -1 with err set. */
static int dial(const splice_t *s, char *err, size_t cap)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    int rc = lr_libc()->getaddrinfo(s->host, port, &hints, &res);
    if (rc) { snprintf(err, cap, "cannot resolve %s: %s", s->host, gai_strerror(rc)); return -1; }
    int fd = -1;
    snprintf(err, cap, "no address");
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && lr_libc()->connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(err, cap, "%s", strerror(errno));
            lr_close(fd);
            fd = -1;
        }
    }
    lr_libc()->freeaddrinfo(res);
    return fd;
}

/* Copy both ways; a side's EOF is passed on as a half-close, until both are done. */
static void pump(int a, int b)
{
    struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[65536];
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int to = i ? a : b;
            ssize_t n = recv(p[i].fd, buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return; /* reset */
            if (n == 0) { shutdown(to, SHUT_WR); p[i].fd = -1; continue; }
            if (!send_all(to, buf, (size_t)n)) return; /* the other side is gone */
        }
    }
}

static void *splice_thread(void *arg)
{
    splice_t *s = arg;
    lr_inside = 1; /* real DNS and connect: the network, not the hooks */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    lr_fcntl(s->fd, F_SETFL, lr_fcntl(s->fd, F_GETFL, 0) & ~O_NONBLOCK);
    char err[300];
    int up = dial(s, err, sizeof err);
    if (up < 0) {
        char body[700], head[200];
        int bl = snprintf(body, sizeof body, "llmreplay: cannot pass a request for a host without recordings on to %s:%d: %s "
                          "(name the host in LLMREPLAY_HOSTS to answer it from recordings)\n", s->host, s->port, err);
        lr_warn("%.*s", bl - 12, body + 11);
        int hl = snprintf(head, sizeof head, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n", bl);
        if (send_all(s->fd, head, (size_t)hl)) send_all(s->fd, body, (size_t)bl);
    } else {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if ((!s->tunnel || send_all(s->fd, ok, sizeof ok - 1)) && (!s->prelen || send_all(up, s->pre, s->prelen)))
            pump(s->fd, up);
        lr_close(up);
    }
    lr_close(s->fd);
    free(s->pre);
    free(s);
    return NULL;
}

void lr_proxy_splice(int fd, const char *host, int port, const void *pre, size_t prelen, bool tunnel)
{
    splice_t *s = calloc(1, sizeof *s);
    if (s && prelen && !(s->pre = malloc(prelen))) { free(s); s = NULL; }
    if (!s) { lr_close(fd); return; }
    s->fd = fd;
    snprintf(s->host, sizeof s->host, "%s", host);
    s->port = port;
    if (prelen) memcpy(s->pre, pre, prelen), s->prelen = prelen;
    s->tunnel = tunnel;
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, splice_thread, s) != 0) {
        lr_error("cannot pass a proxy connection to %s:%d through: %s", host, port, strerror(errno));
        lr_close(fd);
        free(s->pre);
        free(s);
    }
    pthread_attr_destroy(&a);
}

/* Does a NO_PROXY entry (curl/Go/Python semantics: "*", "host", ".host", "*.host", with an
 * optional ":port") cover host? Address and CIDR entries never cover a name. */
bool lr_no_proxy_covers(const char *entry, size_t n, const char *host)
{
    while (n && isspace((unsigned char)*entry)) entry++, n--;
    while (n && isspace((unsigned char)entry[n - 1])) n--;
    if (n == 1 && *entry == '*') return true;
    if (n >= 2 && entry[0] == '*' && entry[1] == '.') entry++, n--;
    if (n && entry[0] == '.') entry++, n--;
    const char *colon = memchr(entry, ':', n);
    if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - entry))) n = (size_t)(colon - entry);
    size_t hl = strlen(host);
    if (!n || n > hl || strncasecmp(host + hl - n, entry, n)) return false;
    return n == hl || host[hl - n - 1] == '.';
}

/* ---- the proxies a preloaded client is configured with ------------------------------------ */

typedef struct {
    char host[128];
    int port; /* 0: none given (clients differ on the default: any port matches) */
} hop_t;
static hop_t hops[6];
static int nhops;
static bool hops_on = true; /* no constructor: a program that never calls an LLM runs none of this */
static pthread_once_t hops_once = PTHREAD_ONCE_INIT;

void lr_proxy_disable_hops(void) { hops_on = false; }

/* "http://[user:pass@]host[:port][/]" or "host:port"; other schemes (socks5, https) are not
 * answered: the client's own connection to them passes through untouched. */
static bool parse_proxy(const char *v, hop_t *h)
{
    const char *s = v ? strstr(v, "://") : NULL;
    if (!v || (s && strncasecmp(v, "http://", 7))) return false;
    char url[300];
    snprintf(url, sizeof url, "http://%s", s ? s + 3 : v);
    int port;
    if (!lr_proxy_target(url, strlen(url), true, h->host, sizeof h->host, &port)) return false;
    /* was a port given? look at the authority, after any user:password@ */
    const char *au = url + 7;
    size_t al = strcspn(au, "/?#");
    const char *at = memchr(au, '@', al);
    if (at) al -= (size_t)(at + 1 - au), au = at + 1;
    const char *rb = au[0] == '[' ? memchr(au, ']', al) : NULL;
    bool given = rb ? (size_t)(rb - au) + 1 < al && rb[1] == ':' : memchr(au, ':', al) != NULL;
    h->port = given ? port : 0;
    for (char *c = h->host; *c; c++) *c = (char)tolower((unsigned char)*c);
    return true;
}

static void add_hop(const char *v)
{
    hop_t h;
    if (nhops >= (int)(sizeof hops / sizeof hops[0]) || !parse_proxy(v, &h)) return;
    for (int i = 0; i < nhops; i++)
        if (!strcmp(hops[i].host, h.host) && hops[i].port == h.port) return;
    hops[nhops++] = h;
}

static void load_hops(void)
{
    if (!lr_cfg()->dir && !lr_cfg()->hosts) return; /* nothing to answer */
    static const char *vars[] = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) add_hop(env(vars[i]));
    for (int i = 0; i < nhops; i++) lr_debug("answering proxy %s:%d in-process", hops[i].host, hops[i].port);
}

bool lr_proxy_is_hop(const char *host, int port)
{
    if (!hops_on || !host) return false;
    pthread_once(&hops_once, load_hops);
    for (int i = 0; i < nhops; i++)
        if ((!hops[i].port || !port || hops[i].port == port) && !strcasecmp(hops[i].host, host)) return true;
    return false;
}

/* Read once, on the first pass-through (serve and run set nothing in their own environment). */
static struct { bool https, http; hop_t s, h; char *no_proxy; } chain;
static pthread_once_t chain_once = PTHREAD_ONCE_INIT;
static void load_chain(void)
{
    const char *all = env("ALL_PROXY") ? env("ALL_PROXY") : env("all_proxy");
    const char *hs = env("HTTPS_PROXY") ? env("HTTPS_PROXY") : env("https_proxy");
    chain.https = parse_proxy(hs ? hs : all, &chain.s);
    const char *hp = env("HTTP_PROXY") ? env("HTTP_PROXY") : env("http_proxy");
    chain.http = parse_proxy(hp ? hp : all, &chain.h);
    const char *np = env("NO_PROXY") ? env("NO_PROXY") : env("no_proxy");
    chain.no_proxy = np ? strdup(np) : NULL;
}

void lr_proxy_prepare(void) { pthread_once(&chain_once, load_chain); }

bool lr_proxy_chain(bool tunnel, const char *host, char *hop, size_t cap, int *port)
{
    pthread_once(&chain_once, load_chain);
    const hop_t *h = tunnel ? &chain.s : &chain.h;
    if (!(tunnel ? chain.https : chain.http)) return false;
    for (const char *p = chain.no_proxy; p && *p;) {
        size_t l = strcspn(p, ",");
        if (l && lr_no_proxy_covers(p, l, host)) return false;
        p += l + (p[l] == ',');
    }
    snprintf(hop, cap, "%s", h->host);
    *port = h->port ? h->port : 80;
    return true;
}
