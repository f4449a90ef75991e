#include "base/real.h"
#include "base/log.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

__thread int lr_inside;

bool lr_is_own(const void *f)
{
    /* _dl_find_object, not dladdr: no symbol search (dladdr cost ~100,000 instructions a call,
     * once per real function resolved) */
    struct dl_find_object mine, found;
    return f && _dl_find_object((void *)lr_is_own, &mine) == 0 && _dl_find_object((void *)f, &found) == 0 &&
           mine.dlfo_link_map == found.dlfo_link_map;
}

void *lr_real(const char *name, void *self, const char *const *libs)
{
    void *f = dlsym(RTLD_NEXT, name);
    for (int i = 0; !f && libs && libs[i]; i++) {
        void *h = lr_dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD); /* libc's: resolve() passes no libs */
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

lr_libc_t lr_libc_tab;
unsigned lr_libc_state;
static pthread_mutex_t publish_lock = PTHREAD_MUTEX_INITIALIZER;

static void resolve(lr_libc_t *t)
{
#define R(f) *(void **)&t->f = lr_real(#f, NULL, NULL)
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
    R(dlopen);
    R(write);
    R(send);
    R(sendto);
    R(sendmsg);
    R(writev);
    R(setenv);
    R(unsetenv);
    R(putenv);
    R(clearenv);
#undef R
    if (!t->fcntl64) t->fcntl64 = t->fcntl;
}

/* Resolved without holding a lock of ours across dlsym (which takes the loader's lock): a thread
 * inside dlopen whose constructor calls a hook (or the shim's own dlopen) would otherwise wait
 * for a thread that waits for the loader. Racing threads compute the same table; one publishes. */
const lr_libc_t *lr_libc_resolve(void)
{
    if (__atomic_load_n(&lr_libc_state, __ATOMIC_ACQUIRE) & LR_READY) return &lr_libc_tab;
    lr_libc_t t;
    resolve(&t);
    pthread_mutex_lock(&publish_lock);
    if (!(__atomic_load_n(&lr_libc_state, __ATOMIC_RELAXED) & LR_READY)) {
        lr_libc_tab = t;
        __atomic_fetch_or(&lr_libc_state, LR_READY, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&publish_lock);
    return &lr_libc_tab;
}
