/* The real functions behind the hooks, resolved in one place. The shim never calls its own
 * interposed symbols: hook files call the real function through this table, and every other
 * file calls lr_close()/lr_fcntl()… (scripts/check-layers.sh checks it on the objects). */
#ifndef LR_REAL_H
#define LR_REAL_H
#include "base/util.h"
#include <stdbool.h>
#include <netdb.h>
#include <sys/socket.h>

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
    int (*setenv)(const char *, const char *, int);
    int (*unsetenv)(const char *);
    int (*putenv)(char *);
    int (*clearenv)(void);
} lr_libc_t;

/* The table, resolved on first use (from any thread; pthread_once). */
const lr_libc_t *lr_libc(void);
static inline int lr_close(int fd) { return lr_libc()->close(fd); }
static inline void *lr_dlopen(const char *file, int mode) { return lr_libc()->dlopen(file, mode); }
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
