#include "real.h"
#include "log.h"
#include "util.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

__thread int lr_inside;

static pthread_mutex_t init_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
void lr_init_enter(void) { pthread_mutex_lock(&init_lock); }
void lr_init_leave(void) { pthread_mutex_unlock(&init_lock); }
static void fork_prepare(void) { pthread_mutex_lock(&init_lock); }
static void fork_release(void) { pthread_mutex_unlock(&init_lock); }
/* registered first, so its prepare handler runs last: every other lock is taken by then */
__attribute__((constructor(101))) static void real_init(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

void *lr_real(const char *name, void *self, const char *const *libs)
{
    lr_init_enter();
    void *f = dlsym(RTLD_NEXT, name);
    for (int i = 0; !f && libs && libs[i]; i++) {
        void *h = dlopen(libs[i], RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            f = dlsym(h, name);
            dlclose(h); /* NOLOAD took a reference: give it back, the library stays loaded */
        }
    }
    lr_init_leave();
    if (f && f == self) {
        lr_error("%s resolves to llmreplay's own hook (the library is loaded twice?); aborting", name);
        abort();
    }
    return f;
}

bool lr_layer_enabled(const char *layer)
{
    const char *v = lr_getenv("LLMREPLAY_LAYERS");
    if (!v) v = "curl,sockets";
    size_t n = strlen(layer);
    for (const char *p = v; *p;) {
        size_t l = strcspn(p, ", ");
        if (l == n && !strncmp(p, layer, n)) return true;
        p += l;
        while (*p == ',' || *p == ' ') p++;
    }
    return false;
}
