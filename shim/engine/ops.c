#include "engine/ops.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const lr_opinfo_t infos[OP_COUNT] = {
    [OP_NONE] = {"", false, FRAME_SSE_DONE},
    [OP_CHAT] = {"/v1/chat/completions", false, FRAME_SSE_DONE},
    [OP_COMPLETIONS] = {"/v1/completions", false, FRAME_SSE_DONE},
    [OP_EMBEDDINGS] = {"/v1/embeddings", false, FRAME_SSE_DONE},
    [OP_MODELS] = {"/v1/models", true, FRAME_SSE_DONE},
    [OP_RESPONSES] = {"/v1/responses", false, FRAME_SSE_EVENTS},
    [OP_MESSAGES] = {"/v1/messages", false, FRAME_SSE_EVENTS},
    [OP_OLLAMA_GENERATE] = {"/api/generate", false, FRAME_NDJSON},
    [OP_OLLAMA_CHAT] = {"/api/chat", false, FRAME_NDJSON},
    [OP_OLLAMA_EMBED] = {"/api/embed", false, FRAME_NDJSON},
    [OP_OLLAMA_EMBEDDINGS] = {"/api/embeddings", false, FRAME_NDJSON},
    [OP_OLLAMA_TAGS] = {"/api/tags", true, FRAME_NDJSON},
    [OP_OLLAMA_PS] = {"/api/ps", true, FRAME_NDJSON},
    [OP_OLLAMA_PULL] = {"/api/pull", false, FRAME_NDJSON},
    [OP_OLLAMA_SHOW] = {"/api/show", false, FRAME_NDJSON},
    [OP_OLLAMA_VERSION] = {"/api/version", true, FRAME_NDJSON},
};

const lr_opinfo_t *lr_op_info(lr_op_t op) { return &infos[op < OP_COUNT ? op : OP_NONE]; }

const char *lr_url_path(const char *url, size_t *len)
{
    const char *p = url;
    const char *scheme = strstr(url, "://");
    if (scheme && (size_t)(scheme - url) < 16) {
        p = scheme + 3;
        p += strcspn(p, "/?#");
    }
    size_t n = strcspn(p, "?#");
    if (!n) { *len = 1; return "/"; }
    *len = n;
    return p;
}

/* Is segment [s, s+n) an API version such as v1, v2, v1beta? */
static bool version_seg(const char *s, size_t n)
{
    return n >= 2 && s[0] == 'v' && isdigit((unsigned char)s[1]);
}

typedef struct { const char *s; size_t n; } seg_t;

/* The last k segments of path (fewer when the path is shorter). */
static int last_segments(const char *p, size_t n, seg_t *out, int k)
{
    int got = 0;
    size_t end = n;
    while (end > 0 && p[end - 1] == '/') end--; /* a trailing slash still names the endpoint */
    while (got < k && end > 0) {
        size_t st = end;
        while (st > 0 && p[st - 1] != '/') st--;
        out[got++] = (seg_t){p + st, end - st};
        end = st;
        while (end > 0 && p[end - 1] == '/') end--;
    }
    return got;
}

static bool seg_is(seg_t s, const char *w) { return s.n == strlen(w) && !memcmp(s.s, w, s.n); }

lr_op_t lr_op_of_url(const char *url)
{
    size_t n;
    const char *p = lr_url_path(url, &n);
    seg_t sg[3];
    int k = last_segments(p, n, sg, 3);
    if (k < 1) return OP_NONE;
    seg_t last = sg[0];
    if (k >= 2 && seg_is(sg[1], "api")) {
        static const struct { const char *w; lr_op_t op; } ol[] = {
            {"generate", OP_OLLAMA_GENERATE}, {"chat", OP_OLLAMA_CHAT}, {"embed", OP_OLLAMA_EMBED},
            {"embeddings", OP_OLLAMA_EMBEDDINGS}, {"tags", OP_OLLAMA_TAGS}, {"ps", OP_OLLAMA_PS},
            {"pull", OP_OLLAMA_PULL}, {"show", OP_OLLAMA_SHOW}, {"version", OP_OLLAMA_VERSION},
        };
        for (size_t i = 0; i < sizeof ol / sizeof ol[0]; i++)
            if (seg_is(last, ol[i].w)) return ol[i].op;
        return OP_NONE;
    }
    /* ".../chat/completions" is distinctive wherever it sits (Azure deployments, gateways). */
    if (k >= 2 && seg_is(last, "completions") && seg_is(sg[1], "chat")) return OP_CHAT;
    /* The generic names need an API-ish parent: /v1/…, /openai/…, /deployments/NAME/…,
     * /serving-endpoints/…, so that an unrelated "/models" or "/messages" passes untouched. */
    bool apiish = k >= 2 && (version_seg(sg[1].s, sg[1].n) || seg_is(sg[1], "openai") ||
                             seg_is(sg[1], "serving-endpoints") || (k >= 3 && seg_is(sg[2], "deployments")));
    if (!apiish) return OP_NONE;
    if (seg_is(last, "completions")) return OP_COMPLETIONS;
    if (seg_is(last, "embeddings")) return OP_EMBEDDINGS;
    if (seg_is(last, "models")) return OP_MODELS;
    if (seg_is(last, "responses")) return OP_RESPONSES;
    if (seg_is(last, "messages")) return OP_MESSAGES;
    return OP_NONE;
}

lr_op_t lr_op_of_endpoint(const char *endpoint)
{
    if (!endpoint || !*endpoint) return OP_NONE;
    for (int i = 1; i < OP_COUNT; i++)
        if (!strcmp(endpoint, infos[i].endpoint)) return (lr_op_t)i;
    /* Older recordings: "/chat/completions", "/v1/openai/v1/models"… */
    if (!strcmp(endpoint, "/chat/completions")) return OP_CHAT;
    if (!strcmp(endpoint, "/completions")) return OP_COMPLETIONS;
    if (!strcmp(endpoint, "/embeddings")) return OP_EMBEDDINGS;
    if (!strcmp(endpoint, "/models")) return OP_MODELS;
    return lr_op_of_url(endpoint);
}

bool lr_url_hostport(const char *url, char *host, size_t hostcap, int *port, bool *https)
{
    const char *s = strstr(url, "://");
    if (!s) return false;
    *https = (s - url == 5 && !strncasecmp(url, "https", 5));
    const char *h = s + 3;
    size_t auth = strcspn(h, "/?#");
    const char *at = memchr(h, '@', auth); /* user:pass@host */
    if (at) { auth -= (size_t)(at + 1 - h); h = at + 1; }
    const char *hend = h + auth, *colon = NULL;
    if (*h == '[') {
        const char *rb = memchr(h, ']', auth);
        if (!rb) return false;
        colon = (rb + 1 < hend && rb[1] == ':') ? rb + 1 : NULL;
        size_t hl = (size_t)(rb - h - 1);
        if (hl + 1 > hostcap) return false;
        memcpy(host, h + 1, hl);
        host[hl] = 0;
    } else {
        colon = memchr(h, ':', auth);
        size_t hl = (size_t)((colon ? colon : hend) - h);
        if (hl + 1 > hostcap) return false;
        for (size_t i = 0; i < hl; i++) host[i] = (char)tolower((unsigned char)h[i]);
        host[hl] = 0;
    }
    *port = colon && colon + 1 < hend ? atoi(colon + 1) : (*https ? 443 : 80);
    return true;
}
