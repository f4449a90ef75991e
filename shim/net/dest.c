#include "net/dest.h"
#include "net/proxy.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "engine/engine.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char host[128]; /* lower case; "*" for any host */
    int port;       /* 0: any port */
} rule_t;

typedef struct { rule_t *v; int n; } rules_t;
static rules_t fixed;            /* the providers' hosts and LLMREPLAY_HOSTS (fixed_once) */
static rules_t all;              /* those and the recordings' hosts (rules_once) */
static char **names; /* synthetic address i+1 belongs to names[i] */
static int nnames, capnames;
static char **denied; /* egress destinations already reported */
static int ndenied;
static pthread_mutex_t dest_lock = PTHREAD_MUTEX_INITIALIZER; /* names, denied */
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;

/* 198.18.0.0/15 is reserved for benchmarks (RFC 2544) and fd00::/8 is private: nobody else
 * hands these out, so an address in them is always one of ours. */
#define FAKE4_NET 0xC6120000u /* 198.18.0.0 */
static const unsigned char FAKE6_PREFIX[12] = {0xfd, 0x6c, 0x6d, 0x72, 0x65, 0x70, 0x6c, 0x61, 0x79, 0, 0, 0};

static void fork_prepare(void) { pthread_mutex_lock(&dest_lock); }
static void fork_release(void) { pthread_mutex_unlock(&dest_lock); }
__attribute__((constructor)) static void dest_init(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

static void lower(char *s) { for (; *s; s++) *s = (char)tolower((unsigned char)*s); }

static void add_rule(rules_t *rs, const char *host, int port)
{
    for (int i = 0; i < rs->n; i++)
        if (rs->v[i].port == port && !strcmp(rs->v[i].host, host)) return;
    rule_t *v = realloc(rs->v, sizeof *v * (size_t)(rs->n + 1));
    if (!v) return;
    rs->v = v;
    rule_t *r = &v[rs->n++];
    snprintf(r->host, sizeof r->host, "%s", host);
    lower(r->host);
    size_t l = strlen(r->host);
    if (l && r->host[l - 1] == '.') r->host[l - 1] = 0;
    r->port = port;
}

/* LLMREPLAY_HOSTS: "host", "host:port", "*:11434", "*", "[::1]:8000", comma separated. */
static void parse_hosts(rules_t *rs, const char *spec)
{
    const char *tok;
    size_t l;
    for (const char *p = spec; lr_list_next(&p, &tok, &l);) {
        char item[160];
        snprintf(item, sizeof item, "%.*s", (int)(l < sizeof item ? l : sizeof item - 1), tok);
        int port = 0;
        char *host = item;
        if (item[0] == '[') {
            char *rb = strchr(item, ']');
            if (!rb) continue;
            *rb = 0;
            host = item + 1;
            if (rb[1] == ':') port = atoi(rb + 2);
        } else {
            char *c = strrchr(item, ':');
            if (c && strchr(item, ':') == c) { *c = 0; port = atoi(c + 1); }
        }
        add_rule(rs, host, port);
    }
}

/* The providers' API hosts, intercepted always (with no recording, or a mistyped directory,
 * a call to them is a documented miss, never a request to the real API), and Ollama's port. */
static const char *const provider_hosts[] = {
    "api.openai.com", "*.openai.azure.com", "*.cognitiveservices.azure.com", "*.services.ai.azure.com",
    "api.anthropic.com", "generativelanguage.googleapis.com", "aiplatform.googleapis.com",
    "*-aiplatform.googleapis.com", "oauth2.googleapis.com", "api.mistral.ai", "api.groq.com", "api.together.xyz", "api.together.ai",
    "api.fireworks.ai", "openrouter.ai", "api.deepseek.com", "api.x.ai", "api.cohere.com", "api.cohere.ai",
    "*.ml.cloud.ibm.com", "bedrock-runtime.*.amazonaws.com", "bedrock.*.amazonaws.com",
    "bedrock-agent-runtime.*.amazonaws.com", "*:11434",
};

/* Rules known without the recordings: the providers' hosts and LLMREPLAY_HOSTS. */
static pthread_once_t fixed_once = PTHREAD_ONCE_INIT;
static void load_fixed_rules(void)
{
    for (size_t i = 0; i < sizeof provider_hosts / sizeof *provider_hosts; i++) parse_hosts(&fixed, provider_hosts[i]);
    parse_hosts(&fixed, lr_cfg()->hosts);
}

/* Then the hosts the recordings were made against, in a set of their own (readers of the
 * fixed set never see it move): this opens the recordings, so it waits until a name the
 * fixed rules do not cover is looked up, or a connect() is checked. */
static void load_rules(void)
{
    pthread_once(&fixed_once, load_fixed_rules);
    rules_t rs = {NULL, 0};
    for (int i = 0; i < fixed.n; i++) add_rule(&rs, fixed.v[i].host, fixed.v[i].port);
    lr_inside++;
    int n;
    const lr_hostport_t *hp = lr_engine_hosts(&n);
    for (int i = 0; i < n; i++) add_rule(&rs, hp[i].host, hp[i].port);
    lr_inside--;
    all = rs;
    for (int i = 0; i < all.n; i++) lr_debug("intercepting %s:%d", all.v[i].host, all.v[i].port);
}

static void ensure_rules(void) { pthread_once(&rules_once, load_rules); }

/* Does rule host pattern r name h? "*" inside a pattern stands for any run of characters. */
static bool host_is(const char *r, const char *h)
{
    return strchr(r, '*') ? fnmatch(r, h, 0) == 0 : !strcmp(r, h);
}

/* A rule that makes lookups of h synthetic: "*" (every host, any port) or a host pattern. */
static bool names_host(const rule_t *r, const char *h)
{
    if (!strcmp(r->host, "*")) return r->port == 0;
    return host_is(r->host, h);
}

static bool is_local_name(const char *h)
{
    return !strcmp(h, "localhost") || lr_has_suffix(h, strlen(h), ".localhost") || !strcmp(h, "127.0.0.1") ||
           !strcmp(h, "0.0.0.0") || !strcmp(h, "::1") || !strcmp(h, "::") || !strcmp(h, "localhost.localdomain");
}

static bool is_literal(const char *h)
{
    unsigned char b[16];
    return inet_pton(AF_INET, h, b) == 1 || inet_pton(AF_INET6, h, b) == 1;
}

bool lr_dest_fake_name(const char *name)
{
    if (!name || !*name) return false;
    char h[256];
    snprintf(h, sizeof h, "%s", name);
    lower(h);
    size_t l = strlen(h);
    if (l && h[l - 1] == '.') h[l - 1] = 0;
    /* local names and literals resolve without the network: their connects are matched */
    if (is_local_name(h) || is_literal(h)) return false;
    if (lr_proxy_is_hop(h, 0)) return true; /* the client's proxy: answered in-process too */
    pthread_once(&fixed_once, load_fixed_rules);
    for (int i = 0; i < fixed.n; i++)
        if (names_host(&fixed.v[i], h)) return true;
    ensure_rules();
    for (int i = 0; i < all.n; i++)
        if (names_host(&all.v[i], h)) return true;
    return false;
}

bool lr_dest_any_host_rule(void)
{
    ensure_rules();
    for (int i = 0; i < all.n; i++)
        if (!strcmp(all.v[i].host, "*")) return true;
    return false;
}

static int name_index(const char *name)
{
    char h[256];
    snprintf(h, sizeof h, "%s", name);
    lower(h);
    pthread_mutex_lock(&dest_lock);
    int i;
    for (i = 0; i < nnames; i++)
        if (!strcmp(names[i], h)) break;
    if (i == nnames && nnames < 65000) {
        if (nnames == capnames) {
            int cap = capnames ? capnames * 2 : 16;
            char **v = realloc(names, sizeof *v * (size_t)cap);
            if (v) names = v, capnames = cap;
        }
        if (nnames < capnames && (names[nnames] = strdup(h))) nnames++;
    }
    pthread_mutex_unlock(&dest_lock);
    return i < nnames ? i : -1;
}

bool lr_dest_fake_addr(const char *name, int family, unsigned short port_be, struct sockaddr_storage *out, socklen_t *len)
{
    int i = name_index(name);
    if (i < 0) return false;
    memset(out, 0, sizeof *out);
    uint32_t n = (uint32_t)i + 1;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        a->sin_port = port_be;
        a->sin_addr.s_addr = htonl(FAKE4_NET + n);
        *len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        a->sin6_port = port_be;
        memcpy(a->sin6_addr.s6_addr, FAKE6_PREFIX, 12);
        uint32_t be = htonl(n);
        memcpy(a->sin6_addr.s6_addr + 12, &be, 4);
        *len = sizeof *a;
    }
    return true;
}

/* The address of sa as IPv4 when it is one (also IPv4-mapped IPv6); false for others. */
static bool v4_of(const struct sockaddr *sa, uint32_t *ip)
{
    if (sa->sa_family == AF_INET) { *ip = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr); return true; }
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a)) { uint32_t be; memcpy(&be, a->s6_addr + 12, 4); *ip = ntohl(be); return true; }
    return false;
}

static bool fake_host(const struct sockaddr *sa, char *host, size_t cap)
{
    uint32_t ip, n = 0;
    if (v4_of(sa, &ip)) {
        if ((ip & 0xFFFE0000u) != FAKE4_NET) return false;
        n = ip - FAKE4_NET;
    } else {
        const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(b, FAKE6_PREFIX, 12)) return false;
        uint32_t be;
        memcpy(&be, b + 12, 4);
        n = ntohl(be);
    }
    pthread_mutex_lock(&dest_lock);
    bool ok = n >= 1 && (int)n <= nnames;
    if (ok) snprintf(host, cap, "%s", names[n - 1]);
    pthread_mutex_unlock(&dest_lock);
    if (!ok) snprintf(host, cap, "unknown.llmreplay.invalid");
    return true; /* an address of ours: never a real destination */
}

static bool is_local_addr(const struct sockaddr *sa)
{
    uint32_t ip;
    if (v4_of(sa, &ip)) return (ip >> 24) == 127 || ip == 0;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_UNSPECIFIED(a);
}

static void addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    uint32_t ip;
    if (v4_of(sa, &ip)) {
        struct in_addr a = {htonl(ip)};
        inet_ntop(AF_INET, &a, out, (socklen_t)cap);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
    }
}

bool lr_dest_intercepts(const struct sockaddr *sa, socklen_t len, char *host, size_t hostcap, int *port)
{
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) return false;
    if (len < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6))) return false;
    *port = ntohs(((const struct sockaddr_in *)sa)->sin_port); /* same offset in sockaddr_in6 */
    if (fake_host(sa, host, hostcap)) return true;
    ensure_rules();
    bool local = is_local_addr(sa);
    char lit[64];
    addr_text(sa, lit, sizeof lit);
    for (int i = 0; i < all.n; i++) {
        const rule_t *r = &all.v[i];
        if (r->port && r->port != *port) continue;
        bool any = !strcmp(r->host, "*");
        if (any || (local && is_local_name(r->host)) || !strcmp(r->host, lit)) {
            /* the name the client used: the rule's own host, or the address for a "*" rule */
            snprintf(host, hostcap, "%s", any ? lit : r->host);
            return true;
        }
    }
    const char *hop = lr_proxy_is_hop(lit, *port) ? lit : local && lr_proxy_is_hop("localhost", *port) ? "localhost" : NULL;
    if (hop) snprintf(host, hostcap, "%s", hop);
    return hop != NULL;
}

void lr_dest_format(const struct sockaddr *sa, char *out, size_t cap)
{
    char lit[64];
    addr_text(sa, lit, sizeof lit);
    int port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6 && strchr(lit, ':')) snprintf(out, cap, "[%s]:%d", lit, port);
    else snprintf(out, cap, "%s:%d", lit, port);
}

bool lr_dest_egress_denied(const struct sockaddr *sa, socklen_t len)
{
    if (!lr_cfg()->egress_deny) return false;
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || is_local_addr(sa)) return false;
    (void)len;
    char d[80];
    lr_dest_format(sa, d, sizeof d);
    pthread_mutex_lock(&dest_lock);
    bool seen = false;
    for (int i = 0; i < ndenied && !seen; i++) seen = !strcmp(denied[i], d);
    if (!seen) {
        char **v = realloc(denied, sizeof *v * (size_t)(ndenied + 1));
        if (v) { denied = v; denied[ndenied++] = strdup(d); }
    }
    pthread_mutex_unlock(&dest_lock);
    if (!seen) lr_warn("LLMREPLAY_EGRESS=deny: refused a connection to %s (not a recorded LLM host); "
                       "add it to LLMREPLAY_HOSTS if it should be answered from recordings", d);
    return true;
}

bool lr_dest_names(const char *name, int port)
{
    if (!name || !*name) return false;
    char h[256];
    snprintf(h, sizeof h, "%s", name);
    lower(h);
    ensure_rules();
    bool local = is_local_name(h);
    for (int i = 0; i < all.n; i++) {
        const rule_t *r = &all.v[i];
        if (r->port && r->port != port) continue;
        if (!strcmp(r->host, "*") || host_is(r->host, h) || (local && is_local_name(r->host))) return true;
    }
    return false;
}
