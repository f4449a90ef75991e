/* The write family: a request written on a swapped descriptor is answered before the call
 * returns (net/inline.c). Every other descriptor costs one load (no descriptor swapped yet)
 * or a look-up in the table of swapped descriptors. */
#include "base/real.h"
#include "net/fdtable.h"
#include "net/inline.h"
#include <sys/socket.h>

#define real (*lr_libc())

/* Flags a socketpair write means the same with: the rest go the real way. */
#define PLAIN_FLAGS (MSG_NOSIGNAL | MSG_DONTWAIT | MSG_MORE)

static inline bool maybe_ours(void) { return __atomic_load_n(&lr_fdt_any, __ATOMIC_ACQUIRE) && !lr_inside; }

LR_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (maybe_ours()) {
        struct iovec v = {(void *)buf, n};
        ssize_t r = lr_inline_write(fd, &v, 1);
        if (r != -2) return r;
    }
    return real.write(fd, buf, n);
}

LR_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (maybe_ours() && !(flags & ~PLAIN_FLAGS)) {
        struct iovec v = {(void *)buf, n};
        ssize_t r = lr_inline_write(fd, &v, 1);
        if (r != -2) return r;
    }
    return real.send(fd, buf, n, flags);
}

LR_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
    if (maybe_ours() && !to && !(flags & ~PLAIN_FLAGS)) {
        struct iovec v = {(void *)buf, n};
        ssize_t r = lr_inline_write(fd, &v, 1);
        if (r != -2) return r;
    }
    return real.sendto(fd, buf, n, flags, to, tolen);
}

LR_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    if (maybe_ours() && m && !m->msg_name && !m->msg_controllen && !(flags & ~PLAIN_FLAGS) && m->msg_iovlen <= 1024) {
        ssize_t r = lr_inline_write(fd, m->msg_iov, (int)m->msg_iovlen);
        if (r != -2) return r;
    }
    return real.sendmsg(fd, m, flags);
}

LR_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (maybe_ours() && n <= 1024) {
        ssize_t r = lr_inline_write(fd, iov, n);
        if (r != -2) return r;
    }
    return real.writev(fd, iov, n);
}
