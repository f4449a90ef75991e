/* The real functions behind the hooks, resolved in one place. The shim never calls its own
 * interposed symbols: hook files call the real function through this table, and every other
 * file calls lr_close()/lr_fcntl()… (scripts/check-layers.sh checks it on the objects). */
#ifndef LR_REAL_H
#define LR_REAL_H
#include "base/util.h"
#include <stdbool.h>
#include <dlfcn.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* dlsym(RTLD_NEXT, name), falling back to already-loaded libraries in libs (a NULL-terminated
 * list tried with RTLD_NOLOAD: a libcurl dlopen()ed RTLD_LOCAL, e.g. by Python's ctypes, is not
 * in the global scope). Aborts with a clear message when it resolves to the hook itself. */
void *lr_real(const char *name, void *self, const char *const *libs);
/* Is f a function of this library itself (one of its hooks)? */
bool lr_is_own(const void *f);

/* Every libc function the shim interposes. */
typedef struct {
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*close)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*fcntl64)(int, int, ...);
    int (*getpeername)(int, struct sockaddr *, socklen_t *);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    void (*freeaddrinfo)(struct addrinfo *);
    struct hostent *(*gethostbyname)(const char *);
    struct hostent *(*gethostbyname2)(const char *, int);
    int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t, struct hostent **, int *);
    int (*gethostbyname2_r)(const char *, int, struct hostent *, char *, size_t, struct hostent **, int *);
    void *(*dlopen)(const char *, int); /* sock/hook_dl.c */
    /* the write family (sock/hook_write.c): a request written on a swapped descriptor */
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    int (*setenv)(const char *, const char *, int);
    int (*unsetenv)(const char *);
    int (*putenv)(char *);
    int (*clearenv)(void);
} lr_libc_t;

/* The table, resolved on first use (from any thread); inline: a hook's fast path to the real
 * function is one load and a jump. */
extern lr_libc_t lr_libc_tab;
/* LR_READY: the table is resolved. The write hooks' fast path is one load: LR_IDLE while no
 * descriptor has been swapped (net/fdtable.c sets LR_SWAPPED); any other value is the slow path. */
enum { LR_READY = 1, LR_SWAPPED = 2, LR_IDLE = LR_READY };
extern unsigned lr_libc_state;
const lr_libc_t *lr_libc_resolve(void);
static inline const lr_libc_t *lr_libc(void)
{
    return __builtin_expect(__atomic_load_n(&lr_libc_state, __ATOMIC_ACQUIRE) & LR_READY, 1) ? &lr_libc_tab : lr_libc_resolve();
}
static inline int lr_close(int fd) { return lr_libc()->close(fd); }
static inline ssize_t lr_write(int fd, const void *p, size_t n) { return lr_libc()->write(fd, p, n); }
static inline ssize_t lr_send(int fd, const void *p, size_t n, int fl) { return lr_libc()->send(fd, p, n, fl); }
static inline ssize_t lr_sendmsg(int fd, const struct msghdr *m, int fl) { return lr_libc()->sendmsg(fd, m, fl); }
static inline void *lr_dlopen(const char *file, int mode) { return lr_libc()->dlopen(file, mode); }
/* A library the shim uses for itself (libcjson, libcurl, libnghttp2), loaded RTLD_LOCAL and
 * RTLD_DEEPBIND: its calls to its own functions stay inside it, never reaching a host's copy
 * of the same names or the shim's hooks. Sanitizer runtimes refuse DEEPBIND, so sanitized
 * builds load it RTLD_LOCAL only. */
static inline void *lr_dlopen_private(const char *file)
{
    int flags = RTLD_NOW | RTLD_LOCAL;
#if !defined(__SANITIZE_ADDRESS__) && !defined(LR_NO_DEEPBIND)
    flags |= RTLD_DEEPBIND;
#endif
    return lr_dlopen(file, flags);
}
#define lr_fcntl(fd, cmd, arg) (lr_libc()->fcntl((fd), (cmd), (arg)))
static inline int lr_getsockopt(int fd, int level, int opt, void *v, socklen_t *l)
{
    return lr_libc()->getsockopt(fd, level, opt, v, l);
}

/* Thread-local "inside the shim" depth: while it is non-zero every hook passes straight
 * through, so the shim's own DNS, sockets, libcurl and OpenSSL calls are never intercepted. */
extern __thread int lr_inside;
/* The one guard for the shim's own calls into hooked APIs. */
#define LR_OWN(stmt) do { lr_inside++; stmt; lr_inside--; } while (0)
#endif
