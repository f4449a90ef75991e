/* The socket layer's exported hooks: each is a guard, a fast path and a call into net/swap.c
 * (the connect swap, the TCP view of swapped descriptors) or net/fdtable.c (which descriptors
 * are swapped). The real functions come from base/real.h. */
#include "base/config.h"
#include "base/real.h"
#include "net/fdtable.h"
#include "net/proxy.h"
#include "net/swap.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/socket.h>

#define real (*lr_libc())

static bool sockets_on(void) { return !lr_inside && lr_layer_on(LR_LAYER_SOCKETS); }

LR_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (!real.connect) { errno = ENOSYS; return -1; }
    if (!sockets_on()) return real.connect(fd, sa, len);
    return lr_swap_connect(fd, sa, len);
}

LR_EXPORT int close(int fd)
{
    lr_fdt_clear(fd);
    return real.close(fd);
}

LR_EXPORT int dup(int fd)
{
    int r = real.dup(fd);
    if (r >= 0) lr_fdt_dup(fd, r);
    return r;
}

LR_EXPORT int dup2(int fd, int fd2)
{
    int r = real.dup2(fd, fd2);
    if (r >= 0) lr_fdt_dup(fd, r);
    return r;
}

LR_EXPORT int dup3(int fd, int fd2, int flags)
{
    int r = real.dup3(fd, fd2, flags);
    if (r >= 0 && !lr_inside) lr_fdt_dup(fd, r);
    return r;
}

/* fcntl's third argument is an int or a pointer depending on cmd; both travel in the same
 * register, so it is passed on as a pointer-sized value. */
static int do_fcntl(int (*f)(int, int, ...), int fd, int cmd, void *arg)
{
    int r = f(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) lr_fdt_dup(fd, r);
    return r;
}

LR_EXPORT int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(real.fcntl, fd, cmd, arg);
}

LR_EXPORT int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return do_fcntl(real.fcntl64, fd, cmd, arg);
}

LR_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
    int r;
    if (!lr_inside && lr_swap_peername(fd, sa, len, &r)) return r;
    return real.getpeername(fd, sa, len);
}

LR_EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
    int r;
    if (!lr_inside && lr_swap_sockname(fd, sa, len, &r)) return r;
    return real.getsockname(fd, sa, len);
}

LR_EXPORT int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
    int r;
    if (!lr_inside && lr_swap_getsockopt(fd, level, opt, val, len, &r)) return r;
    return real.getsockopt(fd, level, opt, val, len);
}

LR_EXPORT int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    int r;
    if (!lr_inside && lr_swap_setsockopt(fd, level, opt, val, len, &r)) return r;
    return real.setsockopt(fd, level, opt, val, len);
}
