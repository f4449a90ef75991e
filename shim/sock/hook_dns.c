/* The resolver hooks of the socket layer: an intercepted host name gets a synthetic answer
 * from net/resolve.c and the resolver is never consulted for it; every other lookup goes to
 * the real function (base/real.h). */
#include "base/config.h"
#include "base/real.h"
#include "net/resolve.h"
#include <errno.h>
#include <netdb.h>

#define real (*lr_libc())

static bool sockets_on(void) { return !lr_inside && lr_layer_on(LR_LAYER_SOCKETS); }
static bool intercept_name(const char *name) { return name && sockets_on() && lr_resolve_fakes(name); }

LR_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    if (!real.getaddrinfo) return EAI_SYSTEM;
    bool numeric = hints && (hints->ai_flags & AI_NUMERICHOST);
    if (!numeric && intercept_name(node)) return lr_resolve_addrinfo(node, service, hints, res);
    int rc = real.getaddrinfo(node, service, hints, res);
    /* "*:PORT" rules: a name no resolver knows (no network at all) still gets an address */
    if (rc != 0 && !numeric && sockets_on() && lr_resolve_fallback(node, rc))
        return lr_resolve_addrinfo(node, service, hints, res);
    return rc;
}

LR_EXPORT void freeaddrinfo(struct addrinfo *ai)
{
    if (lr_resolve_free(ai)) return;
    if (real.freeaddrinfo) real.freeaddrinfo(ai);
}

LR_EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *he, char *buf, size_t len,
                               struct hostent **result, int *herr)
{
    if ((af == AF_INET || af == AF_INET6) && intercept_name(name)) return lr_resolve_hostent(name, af, he, buf, len, result, herr);
    return real.gethostbyname2_r ? real.gethostbyname2_r(name, af, he, buf, len, result, herr) : ENOSYS;
}

LR_EXPORT int gethostbyname_r(const char *name, struct hostent *he, char *buf, size_t len, struct hostent **result,
                              int *herr)
{
    if (intercept_name(name)) return lr_resolve_hostent(name, AF_INET, he, buf, len, result, herr);
    return real.gethostbyname_r ? real.gethostbyname_r(name, he, buf, len, result, herr) : ENOSYS;
}

LR_EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
    if ((af == AF_INET || af == AF_INET6) && intercept_name(name)) return lr_resolve_hostent_static(name, af);
    return real.gethostbyname2 ? real.gethostbyname2(name, af) : NULL;
}

/* not through gethostbyname2: the shim never calls its own interposed symbols */
LR_EXPORT struct hostent *gethostbyname(const char *name)
{
    if (intercept_name(name)) return lr_resolve_hostent_static(name, AF_INET);
    return real.gethostbyname ? real.gethostbyname(name) : NULL;
}
