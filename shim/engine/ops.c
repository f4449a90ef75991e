#include "engine/ops.h"
#include "base/util.h"
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define OAI "openai.types."
#define OLL "ollama._types."
#define GG "google.genai.types."
/* One row per operation. Adding one: a row (at the end or anywhere: rows are known by name). */
static const lr_opinfo_t builtin[] = {
    [OP_NONE] = {.name = "", .endpoint = ""},
    [OP_CHAT] = {.name = "chat", .endpoint = "/v1/chat/completions", .tail = "chat/completions",
                 .aliases = "/chat/completions", .type = OAI "chat.chat_completion.ChatCompletion",
                 .chunk_type = OAI "chat.chat_completion_chunk.ChatCompletionChunk"},
    [OP_COMPLETIONS] = {.name = "completions", .endpoint = "/v1/completions", .tail = "completions",
                        .parent = PARENT_API, .aliases = "/completions", .match_as = "chat",
                        .type = OAI "completion.Completion", .chunk_type = OAI "completion.Completion",
                        .alt_object = "chat.completion.chunk",
                        .alt_type = OAI "chat.chat_completion_chunk.ChatCompletionChunk"},
    [OP_EMBEDDINGS] = {.name = "embeddings", .endpoint = "/v1/embeddings", .tail = "embeddings",
                       .parent = PARENT_API, .aliases = "/embeddings",
                       .type = OAI "create_embedding_response.CreateEmbeddingResponse",
                       .chunk_type = OAI "create_embedding_response.CreateEmbeddingResponse"},
    [OP_MODELS] = {.name = "models", .endpoint = "/v1/models", .tail = "models", .parent = PARENT_API,
                   .aliases = "/models", .listing = true, .type = OAI "model.Model",
                   .chunk_type = OAI "model.Model", .list_wrap = "{\"object\":\"list\",\"data\":[",
                   .record_items = "data", .hash_shared = "/v1/models,/v1/openai/v1/models"},
    [OP_RESPONSES] = {.name = "responses", .endpoint = "/v1/responses", .tail = "responses",
                      .parent = PARENT_API, .frame = FRAME_SSE_EVENTS, .type = OAI "responses.response.Response",
                      .chunk_type = OAI "responses.response_stream_event.ResponseStreamEvent"},
    [OP_MESSAGES] = {.name = "messages", .endpoint = "/v1/messages", .tail = "messages", .parent = PARENT_API,
                     .frame = FRAME_SSE_EVENTS, .type = "anthropic.types.message.Message",
                     .chunk_type = "anthropic.types.raw_message_stream_event.RawMessageStreamEvent"},
    [OP_OLLAMA_GENERATE] = {.name = "ollama.generate", .endpoint = "/api/generate", .tail = "api/generate",
                            .frame = FRAME_NDJSON, .errors = ERR_OLLAMA, .type = OLL "GenerateResponse",
                            .chunk_type = OLL "GenerateResponse"},
    [OP_OLLAMA_CHAT] = {.name = "ollama.chat", .endpoint = "/api/chat", .tail = "api/chat", .frame = FRAME_NDJSON,
                        .errors = ERR_OLLAMA, .type = OLL "ChatResponse", .chunk_type = OLL "ChatResponse"},
    [OP_OLLAMA_EMBED] = {.name = "ollama.embed", .endpoint = "/api/embed", .tail = "api/embed",
                         .frame = FRAME_NDJSON, .errors = ERR_OLLAMA, .type = OLL "EmbedResponse",
                         .chunk_type = OLL "EmbedResponse"},
    [OP_OLLAMA_EMBEDDINGS] = {.name = "ollama.embeddings", .endpoint = "/api/embeddings", .tail = "api/embeddings",
                              .match_as = "ollama.embed", .frame = FRAME_NDJSON, .errors = ERR_OLLAMA,
                              .type = OLL "EmbedResponse", .chunk_type = OLL "EmbedResponse"},
    [OP_OLLAMA_TAGS] = {.name = "ollama.tags", .endpoint = "/api/tags", .tail = "api/tags", .listing = true,
                        .frame = FRAME_NDJSON, .errors = ERR_OLLAMA, .type = OLL "ListResponse",
                        .chunk_type = OLL "ListResponse", .list_wrap = "{\"models\":[", .hash_shared = "/api/tags"},
    [OP_OLLAMA_PS] = {.name = "ollama.ps", .endpoint = "/api/ps", .tail = "api/ps", .listing = true,
                      .frame = FRAME_NDJSON, .errors = ERR_OLLAMA, .type = OLL "ProcessResponse",
                      .chunk_type = OLL "ProcessResponse", .list_wrap = "{\"models\":["},
    [OP_OLLAMA_PULL] = {.name = "ollama.pull", .endpoint = "/api/pull", .tail = "api/pull", .frame = FRAME_NDJSON,
                        .errors = ERR_OLLAMA, .type = OLL "ProgressResponse", .chunk_type = OLL "ProgressResponse"},
    [OP_OLLAMA_SHOW] = {.name = "ollama.show", .endpoint = "/api/show", .tail = "api/show", .frame = FRAME_NDJSON,
                        .errors = ERR_OLLAMA, .type = OLL "ShowResponse", .chunk_type = OLL "ShowResponse"},
    [OP_OLLAMA_VERSION] = {.name = "ollama.version", .endpoint = "/api/version", .tail = "api/version",
                           .listing = true, .frame = FRAME_NDJSON, .errors = ERR_OLLAMA},
    /* every other call to an intercepted host, wire-level (engine/raw.c): no URL tail, so it is
     * never recognised as an LLM operation; its recordings name it */
    {.name = "http", .endpoint = ""},
    /* Gemini API and Vertex AI (…/models/MODEL:verb); llama-stack's Vertex recordings name the
     * google-genai SDK's methods (/generate_content). */
    {.name = "gemini.generate", .endpoint = ":generateContent", .tail = ":generateContent",
     .aliases = "/generate_content", .google = true, .errors = ERR_GOOGLE, .type = GG "GenerateContentResponse",
     .chunk_type = GG "GenerateContentResponse", .ls_text = "candidates.*.content.parts.*.text"},
    {.name = "gemini.stream", .endpoint = ":streamGenerateContent", .tail = ":streamGenerateContent",
     .aliases = "/generate_content_stream", .google = true, .frame = FRAME_SSE_EVENTS, .errors = ERR_GOOGLE,
     .type = GG "GenerateContentResponse", .chunk_type = GG "GenerateContentResponse",
     .ls_text = "candidates.*.content.parts.*.text"},
    {.name = "gemini.embed", .endpoint = ":embedContent", .tail = ":embedContent", .google = true,
     .errors = ERR_GOOGLE, .type = GG "EmbedContentResponse", .chunk_type = GG "EmbedContentResponse"},
    {.name = "gemini.batch_embed", .endpoint = ":batchEmbedContents", .tail = ":batchEmbedContents",
     .aliases = "/embed_content", .match_as = "gemini.embed", .google = true, .errors = ERR_GOOGLE, .type = GG "EmbedContentResponse", .chunk_type = GG "EmbedContentResponse"},
    {.name = "gemini.predict", .endpoint = ":predict", .tail = ":predict", .match_as = "gemini.embed", .google = true, .errors = ERR_GOOGLE,
     .type = GG "EmbedContentResponse", .chunk_type = GG "EmbedContentResponse"},
    {.name = "gemini.count_tokens", .endpoint = ":countTokens", .tail = ":countTokens", .aliases = "/count_tokens",
     .google = true, .errors = ERR_GOOGLE, .type = GG "CountTokensResponse", .chunk_type = GG "CountTokensResponse"},
    {.name = "gemini.models", .endpoint = "/v1beta/models", .tail = "v1beta/models", .listing = true, .google = true,
     .errors = ERR_GOOGLE, .type = GG "ListModelsResponse", .chunk_type = GG "ListModelsResponse"},
    {.name = "vertex.models", .endpoint = "/v1/publishers/google/models", .tail = "publishers/google/models",
     .listing = true, .google = true, .errors = ERR_GOOGLE, .type = GG "ListModelsResponse", .chunk_type = GG "ListModelsResponse"},
    /* the OAuth exchange of an SDK in Vertex mode: a fake token in replay, never recorded */
    {.name = "google.token", .endpoint = "/token", .tail = "token", .host = "oauth2.googleapis.com", .local = true,
     .errors = ERR_GOOGLE},
};
#define NBUILTIN ((int)(sizeof builtin / sizeof builtin[0]))
_Static_assert(NBUILTIN >= OP_NAMED, "every named operation has a row");

static const lr_opinfo_t *rows = builtin;
static int nrows = NBUILTIN;

const lr_opinfo_t *lr_op_info(lr_op_t op) { return &rows[op > OP_NONE && (int)op < nrows ? op : OP_NONE]; }
int lr_op_count(void) { return nrows; }

const lr_opinfo_t *lr_ops_builtin(int *n)
{
    *n = NBUILTIN;
    return builtin;
}

/* Each row's last tail segment (or verb), found once per table: URL recognition compares it
 * first, so a row whose ending differs costs one length and one memcmp. */
typedef struct { const char *s; size_t n; } seg_t;
static seg_t *lasts;
static const lr_opinfo_t *lasts_of;
static pthread_mutex_t lasts_lock = PTHREAD_MUTEX_INITIALIZER;

static const seg_t *row_lasts(void)
{
    const seg_t *l = __atomic_load_n(&lasts, __ATOMIC_ACQUIRE);
    if (l && __atomic_load_n(&lasts_of, __ATOMIC_ACQUIRE) == rows) return l;
    pthread_mutex_lock(&lasts_lock);
    seg_t *v = calloc((size_t)nrows, sizeof *v);
    for (int i = 0; v && i < nrows; i++) {
        const char *t = rows[i].tail;
        if (!t) continue;
        const char *slash = t[0] == ':' ? NULL : strrchr(t, '/');
        v[i].s = slash ? slash + 1 : t;
        v[i].n = strlen(v[i].s);
    }
    if (v) { /* a replaced array stays allocated: a reader may still hold it (tests swap tables) */
        __atomic_store_n(&lasts_of, rows, __ATOMIC_RELEASE);
        __atomic_store_n(&lasts, v, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&lasts_lock);
    return v;
}

void lr_ops_use(const lr_opinfo_t *r, int n)
{
    rows = r && n > 0 ? r : builtin;
    nrows = r && n > 0 ? n : NBUILTIN;
}

lr_op_t lr_op_named(const char *name)
{
    if (!name || !*name) return OP_NONE;
    for (int i = 1; i < nrows; i++)
        if (!strcmp(rows[i].name, name)) return (lr_op_t)i;
    return OP_NONE;
}

lr_op_t lr_op_class(lr_op_t op)
{
    const char *as = lr_op_info(op)->match_as;
    lr_op_t c = as ? lr_op_named(as) : OP_NONE;
    return c ? c : op;
}

uint64_t lr_ops_digest(void)
{
    buf_t b;
    buf_init(&b);
    for (int i = 1; i < nrows; i++)
        buf_printf(&b, "%s>%s%c|", rows[i].name, lr_op_info(lr_op_class((lr_op_t)i))->name, rows[i].listing ? 'L' : '-');
    uint64_t h = lr_hash64(b.data ? b.data : "", b.len, 11);
    buf_free(&b);
    return h;
}

/* Is [p, p+n) one of the comma-separated items of list (exact, case-sensitive)? */
static bool in_list(const char *list, const char *p, size_t n)
{
    const char *tok;
    size_t l;
    for (const char *q = list ? list : ""; lr_list_next(&q, &tok, &l);)
        if (l == n && !memcmp(tok, p, n)) return true;
    return false;
}

const char *lr_op_type_name(lr_op_t op, bool chunk, span_t payload)
{
    const lr_opinfo_t *o = lr_op_info(op);
    span_t obj;
    if (o->alt_object && js_kind(payload) == '{' && js_get(payload, "object", &obj) && js_kind(obj) == '"') {
        span_t t = js_trim(obj);
        size_t n = strlen(o->alt_object);
        if (t.n == n + 2 && !memcmp(t.p + 1, o->alt_object, n)) return o->alt_type;
    }
    const char *t = chunk ? o->chunk_type : o->type;
    return t ? t : "dict";
}

bool lr_op_hash_shared(const char *p, size_t n)
{
    for (int i = 1; i < nrows; i++)
        if (in_list(rows[i].hash_shared, p, n)) return true;
    return false;
}

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

/* Is the segment before the tail API-ish: /v1/…, /openai/…, /serving-endpoints/…,
 * /deployments/NAME/…? */
static bool api_parent(const seg_t *sg, int k, int at)
{
    if (at >= k) return false;
    return version_seg(sg[at].s, sg[at].n) || seg_is(sg[at], "openai") || seg_is(sg[at], "serving-endpoints") ||
           (at + 1 < k && seg_is(sg[at + 1], "deployments"));
}

/* Do the last segments of the path spell tail ("chat/completions")? Returns its segment count. */
static int tail_matches(const seg_t *sg, int k, const char *tail)
{
    seg_t t[4];
    int nt = last_segments(tail, strlen(tail), t, 4);
    if (!nt || nt > k) return 0;
    for (int i = 0; i < nt; i++)
        if (sg[i].n != t[i].n || memcmp(sg[i].s, t[i].s, t[i].n)) return 0;
    return nt;
}

/* A tail ":verb" names the method of a last segment MODEL:verb (a model is needed). */
static int verb_matches(const seg_t *sg, int k, const char *verb)
{
    size_t vl = strlen(verb);
    return k >= 1 && sg[0].n > vl && !memcmp(sg[0].s + sg[0].n - vl, verb, vl) ? 1 : 0;
}

/* A row restricted to one host: does the URL name it? */
static bool host_is(const char *url, const char *host)
{
    char h[256];
    int port;
    bool https;
    return lr_url_hostport(url, h, sizeof h, &port, &https) && !strcmp(h, host);
}

/* The row whose tail ends the path; the longest tail wins (/v1beta/models is Gemini's listing,
 * /v1/models OpenAI's). */
lr_op_t lr_op_of_url(const char *url)
{
    size_t n;
    const char *p = lr_url_path(url, &n);
    seg_t sg[6];
    int k = last_segments(p, n, sg, 6), best = 0;
    lr_op_t op = OP_NONE;
    if (k < 1) return OP_NONE;
    const seg_t *last = row_lasts();
    for (int i = 1; i < nrows; i++) {
        const lr_opinfo_t *o = &rows[i];
        if (!o->tail) continue;
        if (last && o->tail[0] != ':' && (sg[0].n != last[i].n || memcmp(sg[0].s, last[i].s, last[i].n))) continue;
        int nt = o->tail[0] == ':' ? verb_matches(sg, k, o->tail) : tail_matches(sg, k, o->tail);
        if (nt <= best) continue;
        if (o->parent == PARENT_API && !api_parent(sg, k, nt)) continue;
        if (o->host && !host_is(url, o->host)) continue;
        best = nt;
        op = (lr_op_t)i;
    }
    return op;
}

lr_op_t lr_op_of_endpoint(const char *endpoint)
{
    if (!endpoint || !*endpoint) return OP_NONE;
    size_t n = strlen(endpoint);
    for (int i = 1; i < nrows; i++)
        if (!strcmp(endpoint, rows[i].endpoint)) return (lr_op_t)i;
    /* older recordings: "/chat/completions", "/v1/openai/v1/models"… */
    for (int i = 1; i < nrows; i++)
        if (in_list(rows[i].aliases, endpoint, n)) return (lr_op_t)i;
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
