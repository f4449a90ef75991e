/* `llmreplay run` for programs LD_PRELOAD cannot reach. Go resolves and dials with its own
 * code and static binaries never run the loader, but both honour HTTPS_PROXY/HTTP_PROXY: so
 * run starts llmreplay's proxy (serve.c) on 127.0.0.1 in its own process, which only waits
 * for the child, and points the child at it. SSL_CERT_FILE (set by run for every child) makes
 * the child trust the CA of the TLS the proxy terminates. */
#include "cli/run_proxy.h"
#include "base/util.h"
#include "base/config.h"
#include "cli/elfinfo.h"
#include "engine/engine.h"
#include "net/dest.h"
#include "net/proxy.h"
#include "net/responder.h"
#include "net/serve.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *which(const char *cmd)
{
    if (strchr(cmd, '/')) return access(cmd, X_OK) == 0 ? strdup(cmd) : NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%.*s/%s", (int)l, path, cmd);
        if (l && access(p, X_OK) == 0) return strdup(p);
        path += l;
        if (*path) path++;
    }
    return NULL;
}

/* The intercepted host a NO_PROXY entry covers, if any: a recording's host, a name of
 * LLMREPLAY_HOSTS, or the entry's own domain or its api. host when the socket layer answers
 * those (the providers' API hosts are answered always). */
static const char *covered_host(const char *entry, size_t n)
{
    static char hit[200];
    int nh = 0;
    const lr_hostport_t *hp = lr_engine_hosts(&nh);
    for (int i = 0; hp && i < nh; i++)
        if (lr_no_proxy_covers(entry, n, hp[i].host)) return hp[i].host;
    for (const char *p = lr_cfg()->hosts; p && *p;) {
        size_t l = strcspn(p, ", ");
        snprintf(hit, sizeof hit, "%.*s", (int)(l < sizeof hit ? l : sizeof hit - 1), p);
        char *c = strrchr(hit, ':');
        if (c && hit[0] != '[') *c = 0;
        if (hit[0] && !strchr(hit, '*') && lr_no_proxy_covers(entry, n, hit)) return hit;
        p += l;
        while (*p == ',' || *p == ' ') p++;
    }
    char dom[160];
    snprintf(dom, sizeof dom, "%.*s", (int)(n < sizeof dom ? n : sizeof dom - 1), entry);
    char *d = dom + strspn(dom, " \t*.");
    d[strcspn(d, ": \t")] = 0;
    if (!strcmp(dom + strspn(dom, " \t"), "*")) return "every host";
    if (!*d) return NULL;
    snprintf(hit, sizeof hit, "%s", d);
    if (lr_dest_fake_name(hit)) return hit;
    snprintf(hit, sizeof hit, "api.%s", d);
    return lr_dest_fake_name(hit) ? hit : NULL;
}

/* The child's proxy variables, set only in the child (after the fork): in this process,
 * libcurl (the responder's upstream calls in record and live modes) must not take its own
 * proxy for a proxy. */
static char *child_vars[8];
static bool started;
static int nchild;
static void child_set(const char *name, const char *value)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "%s=%s", name, value);
    if (nchild < 8) child_vars[nchild++] = buf_steal(&b, NULL);
    else buf_free(&b);
}

void lr_run_proxy_finish(void)
{
    if (!started) return;
    for (int i = 0; i < 1000 && lr_responder_busy(); i++) usleep(10000); /* recordings being written */
}

void lr_run_proxy_export(void)
{
    for (int i = 0; i < nchild; i++) putenv(child_vars[i]);
}

/* NO_PROXY for the child: the user's entries (both spellings) minus those that would send a
 * recorded host around the proxy, each left out with one line saying so. */
static void export_no_proxy(const char *cmd)
{
    buf_t out;
    buf_init(&out);
    const char *vars[] = {getenv("NO_PROXY"), getenv("no_proxy")};
    for (int v = 0; v < 2; v++) {
        for (const char *p = vars[v]; p && *p;) {
            size_t l = strcspn(p, ",");
            const char *hit = l ? covered_host(p, l) : NULL;
            bool dup = false; /* the same entry in both spellings */
            for (const char *q = out.data; q && *q && !dup;) {
                size_t m = strcspn(q, ",");
                dup = m == l && !strncmp(q, p, l);
                q += m + (q[m] == ',');
            }
            if (hit)
                fprintf(stderr, "llmreplay: NO_PROXY entry %.*s covers the replayed host %s: left out for %s, so that its "
                        "requests reach llmreplay's proxy\n", (int)l, p, hit, cmd);
            else if (l && !dup) {
                if (out.len) buf_addc(&out, ',');
                buf_add(&out, p, l);
            }
            p += l + (p[l] == ',');
        }
    }
    child_set("NO_PROXY", out.len ? out.data : "");
    child_set("no_proxy", out.len ? out.data : "");
    buf_free(&out);
}

bool lr_run_proxy(const char *cmd, bool force)
{
    char *path = which(cmd);
    lr_elfinfo_t info;
    bool known = path && lr_elfinfo(path, &info);
    free(path);
    if (known && info.setid)
        fprintf(stderr, "llmreplay: warning: %s is setuid/setgid: the loader ignores LD_PRELOAD for it, nothing will be replayed\n", cmd);
    bool need = force || (known && (info.go || info.is_static));
    if (!need) return true;
    char bound[96], err[512];
    int lfd = lr_serve_listen("127.0.0.1:0", bound, sizeof bound, err, sizeof err);
    if (lfd < 0 || !lr_serve_start(lfd)) {
        fprintf(stderr, "%s\n", lfd < 0 ? err : "llmreplay: cannot start llmreplay's proxy");
        return false;
    }
    if (known && info.is_static && !info.go)
        fprintf(stderr, "llmreplay: %s is statically linked: LD_PRELOAD has no effect on it; it is answered through "
                "llmreplay's proxy at %s if it honours HTTPS_PROXY/HTTP_PROXY\n", cmd, bound);
    started = true;
    char url[128];
    snprintf(url, sizeof url, "http://%s", bound);
    static const char *vars[] = {"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"};
    for (int i = 0; i < 4; i++) child_set(vars[i], url);
    export_no_proxy(cmd);
    return true;
}
