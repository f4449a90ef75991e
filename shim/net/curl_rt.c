#include "net/curl_rt.h"
#include "base/log.h"
#include "base/real.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

static lr_curl_t table;
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
    /* libcurl's calls to its own curl_* functions stay inside it rather than reaching the
     * shim's exported hooks (in sanitizer builds, without DEEPBIND, the hooks pass these calls
     * through, since no shadow state exists for the shim's own handles). */
    static const char *names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl-nss.so.4"};
    void *h = NULL;
    for (int i = 0; i < 3 && !h; i++) h = lr_dlopen_private(names[i]);
    if (!h) { lr_error("cannot load libcurl for upstream calls (%s); install libcurl4", dlerror()); return; }
#define SYM(f, n) if (!(*(void **)&table.f = dlsym(h, n))) goto missing
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_perform, "curl_easy_perform");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
    loaded = true;
    return;
missing:
    lr_error("the loaded libcurl lacks %s", dlerror());
}

const lr_curl_t *lr_curl(void)
{
    pthread_once(&once, load);
    return loaded ? &table : NULL;
}
