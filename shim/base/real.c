#include "base/real.h"
#include "base/log.h"
#include "base/util.h"
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

__thread int lr_inside;

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
    if (f && f == self) {
        lr_error("%s resolves to llmreplay's own hook (the library is loaded twice?); aborting", name);
        abort();
    }
    return f;
}

bool lr_layer_enabled(const char *layer)
{
    const char *v = lr_getenv("LLMREPLAY_LAYERS");
    if (!v) v = "curl,sockets,tls";
    size_t n = strlen(layer);
    for (const char *p = v; *p;) {
        size_t l = strcspn(p, ", ");
        if (l == n && !strncmp(p, layer, n)) return true;
        p += l;
        while (*p == ',' || *p == ' ') p++;
    }
    return false;
}
