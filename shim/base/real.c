#include "base/real.h"
#include "base/log.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

__thread int lr_inside;

bool lr_is_own(const void *f)
{
    Dl_info mine, found;
    return f && dladdr((void *)lr_is_own, &mine) && dladdr(f, &found) && mine.dli_fbase == found.dli_fbase;
}

void *lr_real(const char *name, void *self, const char *const *libs)
{
    void *f = dlsym(RTLD_NEXT, name);
    for (int i = 0; !f && libs && libs[i]; i++) {
        void *h = dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            f = dlsym(h, name);
            dlclose(h); /* NOLOAD took a reference: give it back, the library stays loaded */
        }
    }
    /* resolving into this very object means the library is loaded twice (or RTLD_NEXT found
     * nothing behind it): calling it would recurse forever */
    if (f && (f == self || lr_is_own(f))) {
        lr_error("%s resolves to llmreplay's own hook (the library is loaded twice?); aborting", name);
        abort();
    }
    return f;
}

static lr_libc_t libc;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void resolve(void)
{
#define R(f) *(void **)&libc.f = lr_real(#f, NULL, NULL)
    R(connect);
    R(close);
    R(dup);
    R(dup2);
    R(dup3);
    R(fcntl);
    R(fcntl64);
    R(getpeername);
    R(getsockname);
    R(getsockopt);
    R(setsockopt);
    R(getaddrinfo);
    R(freeaddrinfo);
    R(gethostbyname);
    R(gethostbyname2);
    R(gethostbyname_r);
    R(gethostbyname2_r);
    R(setenv);
    R(unsetenv);
    R(putenv);
    R(clearenv);
#undef R
    if (!libc.fcntl64) libc.fcntl64 = libc.fcntl;
}

const lr_libc_t *lr_libc(void)
{
    pthread_once(&once, resolve);
    return &libc;
}
