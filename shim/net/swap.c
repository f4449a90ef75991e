/* A connect() to an intercepted destination swaps the descriptor, in place, for one end of a
 * socketpair served by the in-process responder; the TCP view of such descriptors afterwards
 * (net/swap.h). The exported hooks are sock/hook_socket.c. */
#include "net/swap.h"
#include "base/log.h"
#include "base/real.h"
#include "net/dest.h"
#include "net/fdtable.h"
#include "net/proxy.h"
#include "net/responder.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define real (*lr_libc())

/* A plausible local address for the client's side of a swapped connection. */
static void fake_local(const struct sockaddr *peer, struct sockaddr_storage *out, socklen_t *len, int fd)
{
    static unsigned short next_port = 40000;
    unsigned short port = htons((unsigned short)(__atomic_fetch_add(&next_port, 1, __ATOMIC_RELAXED) % 20000 + 40000 + (fd & 7)));
    memset(out, 0, sizeof *out);
    if (peer->sa_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = port;
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = port;
        *len = sizeof *a;
    }
}

/* dup3() gives fd a new open file description, and the kernel drops the old one from every
 * epoll set: find the registrations of fd (in /proc/self/fdinfo of each epoll descriptor) so
 * they can be made again, for event loops that register a socket before connecting it. */
typedef struct { int epfd; unsigned events; unsigned long long data; } epreg_t;

static int epoll_regs(int fd, epreg_t *out, int max)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char link[64], path[64];
        int efd = atoi(e->d_name);
        if (e->d_name[0] == '.' || efd == fd || efd == dirfd(d)) continue;
        snprintf(path, sizeof path, "/proc/self/fd/%d", efd);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l <= 0) continue;
        link[l] = 0;
        if (strcmp(link, "anon_inode:[eventpoll]")) continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", efd);
        FILE *f = fopen(path, "re");
        if (!f) continue;
        char line[256];
        while (fgets(line, sizeof line, f) && n < max) {
            int tfd;
            unsigned ev;
            unsigned long long data;
            if (sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) == 3 && tfd == fd)
                out[n++] = (epreg_t){efd, ev, data};
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Replace fd by a connected socketpair end, keeping its number, O_NONBLOCK and FD_CLOEXEC. */
static int swap_in(int fd, const struct sockaddr *sa, socklen_t len, const char *host, int port)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    int fl = real.fcntl(fd, F_GETFL), fdfl = real.fcntl(fd, F_GETFD);
    if (fl >= 0) real.fcntl(sv[0], F_SETFL, fl & (O_NONBLOCK | O_ASYNC));
    /* carry over socket-level timeouts a client may rely on */
    struct timeval tv;
    socklen_t tl = sizeof tv;
    if (real.getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl) == 0) real.setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, tl);
    tl = sizeof tv;
    if (real.getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) == 0) real.setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, tl);
    /* TCP options set before connect() still read back afterwards */
    int nodelay = 0, keep = 0;
    socklen_t il = sizeof nodelay;
    real.getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &il);
    il = sizeof keep;
    real.getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keep, &il);
    epreg_t regs[8];
    int nregs = epoll_regs(fd, regs, 8);
    struct stat st;
    if (fstat(sv[0], &st) != 0 || real.dup3(sv[0], fd, (fdfl >= 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
        int e = errno;
        real.close(sv[0]);
        real.close(sv[1]);
        errno = e;
        return -1;
    }
    real.close(sv[0]);
    lr_fdinfo_t info;
    memset(&info, 0, sizeof info);
    info.ino = st.st_ino;
    info.family = sa->sa_family;
    memcpy(&info.peer, sa, len < sizeof info.peer ? len : sizeof info.peer);
    info.peerlen = len;
    fake_local(sa, &info.local, &info.locallen, fd);
    info.tcp_opts[TCP_NODELAY] = nodelay;
    info.keepalive = keep;
    lr_fdt_set(fd, &info);
    for (int i = 0; i < nregs; i++) {
        /* EPOLLEXCLUSIVE and other flags come back as they were */
        struct epoll_event ev = {.events = regs[i].events, .data.u64 = regs[i].data};
        epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    /* the client's configured proxy: its CONNECTs to recorded hosts are answered (net/proxy.c) */
    bool hop = lr_proxy_is_hop(host, port);
    unsigned long ino = (unsigned long)st.st_ino;
    lr_conn_ref_t ref = {NULL, 0};
    if (!(hop ? lr_responder_add_proxy(sv[1], host, port, host, port, fd, ino)
              : lr_responder_add(sv[1], host, port, "http", fd, ino, &ref))) {
        real.close(sv[1]);
        errno = ECONNREFUSED;
        return -1;
    }
    if (ref.conn) lr_fdt_set_conn(fd, ref.conn, ref.id); /* a proxy hop is never answered inline */
    lr_debug("connect to %s:%d on fd %d answered in-process", host, port, fd);
    return 0;
}

int lr_swap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) return real.connect(fd, sa, len);
    int type = 0;
    socklen_t tl = sizeof type;
    if (real.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0) return real.connect(fd, sa, len);
    char host[256];
    int port;
    lr_fdinfo_t known;
    if (type == SOCK_STREAM && lr_dest_intercepts(sa, len, host, sizeof host, &port)) {
        if (lr_fdt_get(fd, &known)) { errno = EISCONN; return -1; }
        int saved = errno;
        int fl = real.fcntl(fd, F_GETFL);
        if (swap_in(fd, sa, len, host, port) != 0) return -1;
        if (fl >= 0 && (fl & O_NONBLOCK)) { errno = EINPROGRESS; return -1; } /* writable at once, SO_ERROR 0 */
        errno = saved;
        return 0;
    }
    if (type == SOCK_STREAM && lr_dest_egress_denied(sa, len)) { errno = ECONNREFUSED; return -1; }
    return real.connect(fd, sa, len);
}

/* Copy a stored address the way the kernel does: at most *len bytes, the full length reported. */
static int give_addr(const struct sockaddr_storage *a, socklen_t alen, struct sockaddr *out, socklen_t *len)
{
    if (!out || !len) { errno = EFAULT; return -1; }
    memcpy(out, a, *len < alen ? *len : alen);
    *len = alen;
    return 0;
}

static int give_int(int v, void *val, socklen_t *len)
{
    if (!val || !len || *len < sizeof(int)) { errno = EINVAL; return -1; }
    memcpy(val, &v, sizeof v);
    *len = sizeof v;
    return 0;
}

bool lr_swap_peername(int fd, struct sockaddr *sa, socklen_t *len, int *ret)
{
    lr_fdinfo_t i;
    if (!lr_fdt_get(fd, &i)) return false;
    *ret = give_addr(&i.peer, i.peerlen, sa, len);
    return true;
}

bool lr_swap_sockname(int fd, struct sockaddr *sa, socklen_t *len, int *ret)
{
    lr_fdinfo_t i;
    if (!lr_fdt_get(fd, &i)) return false;
    *ret = give_addr(&i.local, i.locallen, sa, len);
    return true;
}

bool lr_swap_getsockopt(int fd, int level, int opt, void *val, socklen_t *len, int *ret)
{
    lr_fdinfo_t i;
    if (!lr_fdt_get(fd, &i)) return false;
    if (level == IPPROTO_TCP) *ret = give_int(opt >= 0 && opt < 32 ? i.tcp_opts[opt] : 0, val, len);
    else if (level == SOL_SOCKET && opt == SO_DOMAIN) *ret = give_int(i.family, val, len);
    else if (level == SOL_SOCKET && opt == SO_PROTOCOL) *ret = give_int(IPPROTO_TCP, val, len);
    else if (level == SOL_SOCKET && opt == SO_KEEPALIVE) *ret = give_int(i.keepalive, val, len);
    else if (level == IPPROTO_IP || level == IPPROTO_IPV6) *ret = give_int(0, val, len);
    else return false;
    return true;
}

bool lr_swap_setsockopt(int fd, int level, int opt, const void *val, socklen_t len, int *ret)
{
    lr_fdinfo_t i;
    if (!lr_fdt_get(fd, &i)) return false;
    /* TCP and IP options mean nothing on a socketpair: remember them, report success */
    int v = 0;
    if (val && len >= sizeof(int)) memcpy(&v, val, sizeof v);
    if (level == IPPROTO_TCP) lr_fdt_set_tcp(fd, opt, v);
    else if (level == SOL_SOCKET && opt == SO_KEEPALIVE) lr_fdt_set_keepalive(fd, v);
    else if (level != IPPROTO_IP && level != IPPROTO_IPV6) return false;
    *ret = 0;
    return true;
}
