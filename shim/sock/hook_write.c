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

/* One load: resolved, and no descriptor swapped yet? Then straight to libc. */
static inline bool idle(void) { return __builtin_expect(__atomic_load_n(&lr_libc_state, __ATOMIC_ACQUIRE) == LR_IDLE, 1); }
static inline bool maybe_ours(void) { return __atomic_load_n(&lr_libc_state, __ATOMIC_ACQUIRE) & LR_SWAPPED; }

/* Each hook is a load and a jump to the real function; the rest is out of line (so that the
 * fast path saves no registers). lr_inside is checked on the slow path. */
__attribute__((noinline)) static ssize_t write_slow(int fd, const void *buf, size_t n)
{
    struct iovec v = {(void *)buf, n};
    ssize_t r = !maybe_ours() || lr_inside ? -2 : lr_inline_write(fd, &v, 1);
    return r != -2 ? r : real.write(fd, buf, n);
}

LR_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    if (idle()) return lr_libc_tab.write(fd, buf, n);
    return write_slow(fd, buf, n);
}

__attribute__((noinline)) static ssize_t send_slow(int fd, const void *buf, size_t n, int flags)
{
    struct iovec v = {(void *)buf, n};
    ssize_t r = !maybe_ours() || lr_inside || (flags & ~PLAIN_FLAGS) ? -2 : lr_inline_write(fd, &v, 1);
    return r != -2 ? r : real.send(fd, buf, n, flags);
}

LR_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (idle()) return lr_libc_tab.send(fd, buf, n, flags);
    return send_slow(fd, buf, n, flags);
}

LR_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen)
{
    if (idle() || to) return real.sendto(fd, buf, n, flags, to, tolen);
    return send_slow(fd, buf, n, flags);
}

__attribute__((noinline)) static ssize_t sendmsg_slow(int fd, const struct msghdr *m, int flags)
{
    ssize_t r = -2;
    if (maybe_ours() && !lr_inside && m && !m->msg_name && !m->msg_controllen && !(flags & ~PLAIN_FLAGS) && m->msg_iovlen <= 1024)
        r = lr_inline_write(fd, m->msg_iov, (int)m->msg_iovlen);
    return r != -2 ? r : real.sendmsg(fd, m, flags);
}

LR_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    if (idle()) return lr_libc_tab.sendmsg(fd, m, flags);
    return sendmsg_slow(fd, m, flags);
}

__attribute__((noinline)) static ssize_t writev_slow(int fd, const struct iovec *iov, int n)
{
    ssize_t r = !maybe_ours() || lr_inside || n > 1024 ? -2 : lr_inline_write(fd, iov, n);
    return r != -2 ? r : real.writev(fd, iov, n);
}

LR_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (idle()) return lr_libc_tab.writev(fd, iov, n);
    return writev_slow(fd, iov, n);
}
