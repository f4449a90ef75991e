/* Finding the real functions behind the hooks. */
#ifndef LR_REAL_H
#define LR_REAL_H
#include <stdbool.h>
#include "base/util.h"

/* dlsym(RTLD_NEXT, name), falling back to already-loaded libraries in libs (a NULL-terminated
 * list tried with RTLD_NOLOAD: a libcurl dlopen()ed RTLD_LOCAL, e.g. by Python's ctypes, is not
 * in the global scope). Aborts with a clear message when it resolves to the hook itself. */
void *lr_real(const char *name, void *self, const char *const *libs);
/* Thread-local "inside the shim" depth: the shim's own calls into hooked APIs pass through. */
extern __thread int lr_inside;
/* Is layer ("curl", "sockets", "tls") enabled by LLMREPLAY_LAYERS (default curl,sockets)? */
bool lr_layer_enabled(const char *layer);
#endif
