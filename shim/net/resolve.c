/* Name resolution for the socket layer: an intercepted host name gets a synthetic address
 * (IPv4 and IPv6, as the hints ask) and the resolver is never consulted for it (net/resolve.h;
 * the exported hooks are sock/hook_dns.c). */
#include "net/resolve.h"
#include "base/log.h"
#include "net/dest.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Our results, so freeaddrinfo knows which allocator they came from. */
static pthread_mutex_t ours_lock = PTHREAD_MUTEX_INITIALIZER;
static struct addrinfo **ours;
static int nours, capours;

static void fork_prepare(void) { pthread_mutex_lock(&ours_lock); }
static void fork_release(void) { pthread_mutex_unlock(&ours_lock); }
__attribute__((constructor)) static void dns_init(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

static void remember(struct addrinfo *ai)
{
    pthread_mutex_lock(&ours_lock);
    if (nours == capours) {
        int cap = capours ? capours * 2 : 16;
        struct addrinfo **v = realloc(ours, sizeof *v * (size_t)cap);
        if (v) ours = v, capours = cap;
    }
    if (nours < capours) ours[nours++] = ai;
    pthread_mutex_unlock(&ours_lock);
}

static bool forget(struct addrinfo *ai)
{
    bool found = false;
    pthread_mutex_lock(&ours_lock);
    for (int i = 0; i < nours; i++)
        if (ours[i] == ai) { ours[i] = ours[--nours]; found = true; break; }
    pthread_mutex_unlock(&ours_lock);
    return found;
}

bool lr_resolve_fakes(const char *name) { return name && lr_dest_fake_name(name); }

/* The port of service, in network order; false (with the EAI code) when it cannot be had. */
static bool service_port(const char *service, const struct addrinfo *hints, unsigned short *port_be, int *eai)
{
    *port_be = 0;
    if (!service) return true;
    char *end;
    long p = strtol(service, &end, 10);
    if (*service && !*end) {
        if (p < 0 || p > 65535) { *eai = EAI_SERVICE; return false; }
        *port_be = htons((unsigned short)p);
        return true;
    }
    if (hints && (hints->ai_flags & AI_NUMERICSERV)) { *eai = EAI_NONAME; return false; }
    struct servent se, *r = NULL;
    char buf[1024];
    if (getservbyname_r(service, "tcp", &se, buf, sizeof buf, &r) != 0 || !r) { *eai = EAI_SERVICE; return false; }
    *port_be = (unsigned short)r->s_port;
    return true;
}

int lr_resolve_addrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res)
{
    int family = hints ? hints->ai_family : AF_UNSPEC, eai = 0;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) return EAI_FAMILY;
    unsigned short port;
    if (!service_port(service, hints, &port, &eai)) return eai;
    int fams[2], nf = 0;
    if (family != AF_INET6) fams[nf++] = AF_INET;
    if (family != AF_INET) fams[nf++] = AF_INET6;
    /* glibc returns one entry per socket type when none is asked for */
    int types[3][2] = {{SOCK_STREAM, IPPROTO_TCP}, {SOCK_DGRAM, IPPROTO_UDP}, {SOCK_RAW, 0}}, nt = 3;
    if (hints && hints->ai_socktype) {
        types[0][0] = hints->ai_socktype;
        types[0][1] = hints->ai_protocol ? hints->ai_protocol
                    : hints->ai_socktype == SOCK_STREAM ? IPPROTO_TCP : hints->ai_socktype == SOCK_DGRAM ? IPPROTO_UDP : 0;
        nt = 1;
    } else if (hints && hints->ai_protocol) {
        types[0][0] = hints->ai_protocol == IPPROTO_UDP ? SOCK_DGRAM : SOCK_STREAM;
        types[0][1] = hints->ai_protocol;
        nt = 1;
    }
    int n = nf * nt;
    size_t namelen = strlen(node) + 1;
    typedef struct { struct addrinfo ai; struct sockaddr_storage sa; } item_t;
    char *block = calloc(1, sizeof(item_t) * (size_t)n + namelen);
    if (!block) return EAI_MEMORY;
    item_t *items = (item_t *)(void *)block;
    char *canon = block + sizeof(item_t) * (size_t)n;
    memcpy(canon, node, namelen);
    int k = 0;
    for (int f = 0; f < nf; f++) {
        for (int t = 0; t < nt; t++, k++) {
            item_t *it = &items[k];
            socklen_t sl;
            if (!lr_dest_fake_addr(node, fams[f], port, &it->sa, &sl)) { free(block); return EAI_MEMORY; }
            it->ai.ai_family = fams[f];
            it->ai.ai_socktype = types[t][0];
            it->ai.ai_protocol = types[t][1];
            it->ai.ai_addrlen = sl;
            it->ai.ai_addr = (struct sockaddr *)&it->sa;
            it->ai.ai_canonname = (k == 0 && hints && (hints->ai_flags & AI_CANONNAME)) ? canon : NULL;
            it->ai.ai_next = k + 1 < n ? &items[k + 1].ai : NULL;
        }
    }
    *res = &items[0].ai;
    remember(*res);
    lr_debug("resolved %s to synthetic addresses", node);
    return 0;
}

bool lr_resolve_fallback(const char *node, int rc)
{
    if (!node || !(rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL
#ifdef EAI_NODATA
                   || rc == EAI_NODATA
#endif
                   ) || !lr_dest_any_host_rule())
        return false;
    unsigned char b[16];
    return inet_pton(AF_INET, node, b) != 1 && inet_pton(AF_INET6, node, b) != 1;
}

bool lr_resolve_free(struct addrinfo *ai)
{
    if (!ai || !forget(ai)) return false;
    free(ai); /* one block: the first item is its start */
    return true;
}

/* Fill a hostent for name in buf (gethostbyname*_r layout); ERANGE when buf is too small. */
int lr_resolve_hostent(const char *name, int af, struct hostent *he, char *buf, size_t len, struct hostent **result,
                        int *herr)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    size_t alen = af == AF_INET6 ? 16 : 4, nlen = strlen(name) + 1;
    size_t need = sizeof(char *) * 3 + alen + nlen + sizeof(char *);
    *result = NULL;
    if (len < need) { if (herr) *herr = NETDB_INTERNAL; return ERANGE; }
    if (!lr_dest_fake_addr(name, af, 0, &ss, &sl)) { if (herr) *herr = NO_RECOVERY; return ENOMEM; }
    char **aliases = (char **)(void *)buf, **addrs = aliases + 1;
    char *addr = buf + sizeof(char *) * 3, *nm = addr + alen;
    aliases[0] = NULL;
    addrs[0] = addr;
    addrs[1] = NULL;
    memcpy(addr, af == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr : (void *)&((struct sockaddr_in *)&ss)->sin_addr, alen);
    memcpy(nm, name, nlen);
    he->h_name = nm;
    he->h_aliases = aliases;
    he->h_addrtype = af;
    he->h_length = (int)alen;
    he->h_addr_list = addrs;
    *result = he;
    if (herr) *herr = 0;
    return 0;
}

/* The non-reentrant forms return per-thread storage, like glibc's own static buffers. */
static __thread struct hostent tls_he;
static __thread char tls_buf[1024];

struct hostent *lr_resolve_hostent_static(const char *name, int af)
{
    struct hostent *r;
    int herr;
    if (lr_resolve_hostent(name, af, &tls_he, tls_buf, sizeof tls_buf, &r, &herr) == 0) return r;
    h_errno = herr;
    return NULL;
}
