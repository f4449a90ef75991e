/* The listening side of `llmreplay serve` and of `llmreplay run`'s proxy for Go and static
 * programs. Only accept() runs here; the connections go to the responder's loop. */
#include "net/serve.h"
#include "base/log.h"
#include "base/real.h"
#include "net/proxy.h"
#include "net/responder.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned long accepted;
unsigned long lr_serve_accepted(void) { return __atomic_load_n(&accepted, __ATOMIC_RELAXED); }

static bool parse_spec(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128] = "127.0.0.1";
    const char *port = spec;
    if (spec[0] == '[') {
        const char *rb = strchr(spec, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof host) return false;
        snprintf(host, sizeof host, "%.*s", (int)(rb - spec - 1), spec + 1);
        port = rb + 2;
    } else if (spec[0] == ':') { /* every interface, as Go and Docker read ":PORT" */
        snprintf(host, sizeof host, "0.0.0.0");
        port = spec + 1;
    } else if (strrchr(spec, ':')) {
        const char *c = strrchr(spec, ':');
        if ((size_t)(c - spec) >= sizeof host) return false;
        if (c > spec) snprintf(host, sizeof host, "%.*s", (int)(c - spec), spec);
        port = c + 1;
    }
    char *e;
    long p = strtol(port, &e, 10);
    if (!*port || *e || p < 0 || p > 65535) return false;
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET, a4->sin_port = htons((unsigned short)p), *len = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6, a6->sin6_port = htons((unsigned short)p), *len = sizeof *a6;
    } else {
        return false;
    }
    return true;
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[64];
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    }
}

/* Can a client reach the listener? In a network namespace whose loopback is down, bind and
 * listen succeed but every connect fails with ENETUNREACH: say so now, not in the client. */
static bool reachable(int lfd, struct sockaddr_storage *ss, socklen_t len, const char *bound, char *err, size_t cap)
{
    struct sockaddr_storage to = *ss;
    if (to.ss_family == AF_INET && ((struct sockaddr_in *)&to)->sin_addr.s_addr == htonl(INADDR_ANY))
        ((struct sockaddr_in *)&to)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (to.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&to)->sin6_addr))
        ((struct sockaddr_in6 *)&to)->sin6_addr = in6addr_loopback;
    int fd = socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) { snprintf(err, cap, "llmreplay: socket: %s", strerror(errno)); return false; }
    int rc = lr_libc()->connect(fd, (struct sockaddr *)&to, len);
    int e = errno;
    lr_close(fd);
    if (rc == 0) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 1000) > 0) {
            int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (a >= 0) lr_close(a);
        }
        return true;
    }
    if (e == ENETUNREACH || e == EADDRNOTAVAIL)
        snprintf(err, cap, "llmreplay: the loopback interface is down (connect to %s: %s), so no client can reach "
                 "llmreplay's proxy: bring it up (ip link set lo up; docker --network none has it up)", bound, strerror(e));
    else
        snprintf(err, cap, "llmreplay: cannot connect to llmreplay's own listener at %s: %s", bound, strerror(e));
    return false;
}

int lr_serve_listen(const char *spec, char *bound, size_t cap, char *err, size_t errcap)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (!parse_spec(spec, &ss, &len)) {
        snprintf(err, errcap, "llmreplay: bad listen address %s (use HOST:PORT, [V6]:PORT or PORT; HOST an IP address)", spec);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) lr_libc()->setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 512) != 0) {
        snprintf(err, errcap, "llmreplay: cannot listen on %s: %s%s", spec, strerror(errno),
                 errno == EADDRINUSE ? " (choose another --listen port, or 0 for any)" : "");
        if (fd >= 0) lr_close(fd);
        return -1;
    }
    socklen_t l = sizeof ss;
    lr_libc()->getsockname(fd, (struct sockaddr *)&ss, &l);
    addr_text(&ss, bound, cap);
    if (!reachable(fd, &ss, l, bound, err, errcap)) { lr_close(fd); return -1; }
    return fd;
}

static void *accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    lr_inside = 1;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) { usleep(10000); continue; }
            lr_error("llmreplay's proxy stopped accepting: %s", strerror(errno));
            return NULL;
        }
        int one = 1;
        lr_libc()->setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* each event goes out on its own */
        struct sockaddr_storage me;
        socklen_t ml = sizeof me;
        char host[96] = "127.0.0.1";
        int port = 0;
        if (lr_libc()->getsockname(fd, (struct sockaddr *)&me, &ml) == 0) {
            char t[96];
            addr_text(&me, t, sizeof t);
            char *c = strrchr(t, ':');
            port = atoi(c + 1);
            *c = 0;
            snprintf(host, sizeof host, "%s", t[0] == '[' ? t + 1 : t);
            if (host[0] && host[strlen(host) - 1] == ']') host[strlen(host) - 1] = 0;
        }
        __atomic_add_fetch(&accepted, 1, __ATOMIC_RELAXED);
        if (!lr_responder_add_proxy(fd, host, port, NULL, 0, -1, 0)) lr_close(fd);
    }
}

bool lr_serve_start(int lfd)
{
    lr_proxy_prepare();
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool ok = pthread_create(&th, &a, accept_loop, (void *)(intptr_t)lfd) == 0;
    pthread_attr_destroy(&a);
    if (!ok) lr_error("cannot start llmreplay's proxy: %s", strerror(errno));
    return ok;
}
