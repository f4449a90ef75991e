#include "engine/recording.h"
#include "engine/raw.h"
#include "base/config.h"
#include "base/log.h"
#include "engine/gemini.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t lr_max_file_bytes(void)
{
    return lr_cfg()->max_file_bytes;
}

const char *lr_body_model(const cJSON *body)
{
    const cJSON *m = cJSON_IsObject(body) ? J.GetObjectItemCaseSensitive(body, "model") : NULL;
    return cJSON_IsString(m) && m->valuestring ? m->valuestring : "";
}

/* The request an OpenAI SDK puts on the wire for the arguments llama-stack recorded: the
 * extra_body argument merged into the top level (its keys win, as in the SDKs), extra_headers
 * and extra_query (sent as headers and query) gone. */
void lr_rec_sdk_to_wire(cJSON *body)
{
    if (!cJSON_IsObject(body)) return;
    cJSON *extra = J.DetachItemFromObjectCaseSensitive(body, "extra_body");
    for (cJSON *e = cJSON_IsObject(extra) ? extra->child : NULL, *next; e; e = next) {
        next = e->next;
        const char *k = e->string;
        J.DeleteItemFromObjectCaseSensitive(body, k);
        J.AddItemToObject(body, k, J.DetachItemViaPointer(extra, e));
    }
    if (extra) J.Delete(extra);
    J.DeleteItemFromObjectCaseSensitive(body, "extra_headers");
    J.DeleteItemFromObjectCaseSensitive(body, "extra_query");
}

void lr_match_key(lr_op_t op, const char *method, const cJSON *body, const lr_ignore_t *ig,
                  uint64_t *h1, uint64_t *h2)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "%s ", lr_op_info(lr_op_class(op))->name); /* a stable name, never the row number */
    if (!lr_op_info(op)->listing) {
        for (const char *m = method && *method ? method : "POST"; *m; m++)
            buf_addc(&b, (char)(*m >= 'a' && *m <= 'z' ? *m - 32 : *m));
        buf_addc(&b, ' ');
        if (body) lr_canon(body, ig, &b);
    }
    *h1 = lr_hash64(b.data, b.len, 0);
    *h2 = lr_hash64(b.data, b.len, 0x9e3779b97f4a7c15ULL);
    buf_free(&b);
}

static char *str_field(const cJSON *o, const char *k)
{
    const cJSON *v = J.GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static void describe_invalid(const char *text, size_t len, long at, char *why, size_t cap)
{
    if (at < 0 || (size_t)at >= len) {
        snprintf(why, cap, "truncated JSON (the file ends after %zu bytes, inside a value)", len);
        return;
    }
    int line = 1, col = 1;
    for (const char *q = text; q < text + at; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    snprintf(why, cap, "not valid JSON (error at line %d, column %d)", line, col);
}

/* Google's operations match a body made from the recorded one and the model (engine/gemini.c);
 * NULL for the others, whose recorded body is matched as it is. */
static cJSON *matched_body(lr_op_t op, const cJSON *rq)
{
    if (!lr_op_info(op)->google) return NULL;
    return lr_gemini_recorded_body(str_field(rq, "url"), str_field(rq, "model"), J.GetObjectItemCaseSensitive(rq, "body"));
}

enum { F_REQUEST, F_RESPONSE, F_TEST_ID, F_MAPPING, F_COUNT };
static const char *const top_keys[F_COUNT] = {"request", "response", "test_id", "id_normalization_mapping"};

/* One validating pass over the document; NULL-free spans of the top-level fields we use. */
static bool top_fields(const char *text, size_t len, span_t *f, char *why, size_t whycap)
{
    span_t top = {text, len};
    if (js_kind(top) != '{') {
        if (js_valid(top)) snprintf(why, whycap, "not a llama-stack recording (top level is not an object)");
        else describe_invalid(text, len, js_last_error(top), why, whycap);
        return false;
    }
    if (!js_fields(top, top_keys, f, F_COUNT)) {
        describe_invalid(text, len, js_last_error(top), why, whycap);
        return false;
    }
    return true;
}

lr_rec_t *lr_rec_parse(const char *path, const char *text, size_t len, const lr_ignore_t *ig,
                       char *why, size_t whycap)
{
    if (!lr_cjson()) { snprintf(why, whycap, "libcjson is not available"); return NULL; }
    if (len == 0) { snprintf(why, whycap, "empty file"); return NULL; }
    size_t probe = len < 4096 ? len : 4096;
    if (memchr(text, 0, probe)) { snprintf(why, whycap, "binary data, not a JSON recording"); return NULL; }
    span_t f[F_COUNT];
    if (!top_fields(text, len, f, why, whycap)) return NULL;
    span_t req = f[F_REQUEST], resp = f[F_RESPONSE];
    if (!req.p || js_kind(req) != '{') {
        snprintf(why, whycap, "not a llama-stack recording (no \"request\" object)");
        return NULL;
    }
    if (!resp.p || js_kind(resp) != '{') {
        snprintf(why, whycap, "not a llama-stack recording (no \"response\" object)");
        return NULL;
    }
    cJSON *rq = lr_json_parse(req.p, req.n);
    if (!rq) { snprintf(why, whycap, "request object cannot be parsed"); return NULL; }
    lr_rec_t *r = calloc(1, sizeof *r);
    if (!r) { J.Delete(rq); snprintf(why, whycap, "out of memory"); return NULL; }
    const char *endpoint = str_field(rq, "endpoint"), *url = str_field(rq, "url");
    r->op = lr_op_of_endpoint(endpoint);
    if (!r->op && url) r->op = lr_op_of_url(url);
    if (!r->op && lr_raw_shape(rq)) { /* llama-stack's raw HTTP shape: any call, wire-level */
        bool ok = lr_raw_parse(r, rq, resp, ig, why, whycap);
        if (ok && f[F_TEST_ID].p && js_kind(f[F_TEST_ID]) == '"') r->test_id = js_strdup(f[F_TEST_ID]);
        r->path = ok ? strdup(path) : NULL;
        J.Delete(rq);
        if (ok && r->path) return r;
        if (ok) snprintf(why, whycap, "out of memory");
        lr_rec_free(r);
        return NULL;
    }
    if (!r->op) {
        snprintf(why, whycap, "unsupported endpoint %s (not an LLM API call this shim serves)",
                 endpoint ? endpoint : url ? url : "(none)");
        J.Delete(rq);
        free(r);
        return NULL;
    }
    const char *m = str_field(rq, "method");
    snprintf(r->method, sizeof r->method, "%s", m ? m : "POST");
    bool https = false;
    if (!url || !lr_url_hostport(url, r->host, sizeof r->host, &r->port, &https)) r->host[0] = 0;
    cJSON *gbody = matched_body(r->op, rq);
    const char *model = str_field(rq, "model");
    cJSON *body = J.GetObjectItemCaseSensitive(rq, "body");
    if (!body) body = J.GetObjectItemCaseSensitive(rq, "payload"); /* llama-stack's raw HTTP shape */
    lr_rec_sdk_to_wire(body);
    r->model = strdup(gbody ? lr_body_model(gbody) : model ? model : lr_body_model(body));
    if (f[F_TEST_ID].p && js_kind(f[F_TEST_ID]) == '"') r->test_id = js_strdup(f[F_TEST_ID]);
    lr_match_key(r->op, r->method, gbody ? gbody : body, ig, &r->h1, &r->h2);
    if (gbody) J.Delete(gbody);
    span_t v;
    r->streaming = js_get(resp, "is_streaming", &v) && js_is_true(v);
    r->exception = js_get(resp, "is_exception", &v) && js_is_true(v);
    r->status = 200;
    if (js_get(resp, "status", &v) && js_kind(v) >= '0' && js_kind(v) <= '9') r->status = atoi(js_trim(v).p);
    if (r->exception) {
        span_t ed, sc;
        r->status = 500;
        if (js_get(resp, "exception_data", &ed) && js_get(ed, "status_code", &sc) && js_kind(sc) >= '0' &&
            js_kind(sc) <= '9')
            r->status = atoi(js_trim(sc).p);
    }
    if (r->status < 100 || r->status > 599) r->status = r->exception ? 500 : 200;
    r->path = strdup(path);
    J.Delete(rq);
    if (!r->path || !r->model) { lr_rec_free(r); snprintf(why, whycap, "out of memory"); return NULL; }
    return r;
}

lr_rec_t *lr_rec_load(const char *path, const lr_ignore_t *ig, char *why, size_t whycap)
{
    size_t len, max = lr_max_file_bytes();
    struct stat st;
    char *text = lr_read_file_st(path, max, &len, &st);
    if (!text) {
        if (errno == EFBIG)
            snprintf(why, whycap, "larger than %zu MiB; raise LLMREPLAY_MAX_FILE_MB to load it", max >> 20);
        else
            snprintf(why, whycap, "cannot read it: %s", strerror(errno));
        return NULL;
    }
    size_t mlen;
    const char *refused;
    char *mapped = lr_rec_apply_id_mapping(text, len, &mlen, &refused);
    if (refused) {
        snprintf(why, whycap, "%s; fix or re-record it", refused);
        free(text);
        return NULL;
    }
    lr_rec_t *r = mapped ? lr_rec_parse(path, mapped, mlen, ig, why, whycap) : lr_rec_parse(path, text, len, ig, why, whycap);
    if (r) {
        r->size = (uint64_t)st.st_size;
        r->mtime_ns = lr_mtime_ns(&st);
    }
    free(mapped);
    free(text);
    return r;
}

void lr_rec_free(lr_rec_t *r)
{
    if (!r) return;
    free(r->path);
    free(r->model);
    free(r->test_id);
    free(r);
}

bool lr_rec_unchanged(const lr_rec_t *r)
{
    struct stat st;
    return stat(r->path, &st) == 0 && (uint64_t)st.st_size == r->size && lr_mtime_ns(&st) == r->mtime_ns;
}

bool lr_rec_fresh(lr_rec_t *r)
{
    int64_t now = (int64_t)(lr_now() * 1000), last = __atomic_load_n(&r->checked_ms, __ATOMIC_RELAXED);
    if (last && now - last < 100) return true;
    if (!lr_rec_unchanged(r)) return false;
    __atomic_store_n(&r->checked_ms, now, __ATOMIC_RELAXED);
    return true;
}

cJSON *lr_rec_request_body(const lr_rec_t *r)
{
    size_t len;
    char *text = lr_read_file(r->path, lr_max_file_bytes(), &len);
    if (!text) return NULL;
    size_t mlen;
    const char *refused;
    char *mapped = lr_rec_apply_id_mapping(text, len, &mlen, &refused);
    const char *t = mapped ? mapped : text;
    size_t n = mapped ? mlen : len;
    cJSON *body = NULL;
    span_t f[F_COUNT], bs;
    char why[8];
    bool ok = top_fields(t, n, f, why, sizeof why) && f[F_REQUEST].p;
    if (ok && lr_op_info(r->op)->google) {
        cJSON *rq = lr_json_parse(f[F_REQUEST].p, f[F_REQUEST].n);
        body = rq ? matched_body(r->op, rq) : NULL;
        J.Delete(rq);
    } else if (ok && (js_get(f[F_REQUEST], "body", &bs) || js_get(f[F_REQUEST], "payload", &bs))) {
        body = lr_json_parse(bs.p, bs.n);
        lr_rec_sdk_to_wire(body);
    }
    free(mapped);
    free(text);
    return body;
}

bool lr_rec_response_span(const char *text, size_t len, span_t *resp)
{
    span_t f[F_COUNT];
    char why[8];
    if (!top_fields(text, len, f, why, sizeof why) || !f[F_RESPONSE].p) return false;
    *resp = f[F_RESPONSE];
    return true;
}

/* llama-stack replaces, in the serialized recording, every original id by its normalized
 * form (mapping: normalized -> original), one entry after the other over the whole text. Here
 * it is one left-to-right pass: at each place the first entry (in file order) whose original
 * is there; a replacement is never replaced again. The same for real mappings (distinct ids),
 * and bounded for hostile ones (see LR_IDMAP_*). */
typedef struct { const char *from, *to; size_t fl, tl; uint64_t h; int next; } idmap_t;

/* A mapped text is at most GROWTH times the file plus SLACK, found in at most WORK entry
 * comparisons per byte plus SLACK: else the file is refused, with a warning naming it. */
#define LR_IDMAP_GROWTH 2
#define LR_IDMAP_WORK 16
#define LR_IDMAP_SLACK ((size_t)1 << 20)

#define HBASE 1099511628211ULL

static uint64_t win_hash(const char *p, size_t n)
{
    uint64_t h = 0;
    for (size_t i = 0; i < n; i++) h = h * HBASE + (unsigned char)p[i];
    return h;
}

/* The entries whose original is not empty; *minlen: the shortest original. */
static idmap_t *idmap_entries(const cJSON *mj, int *n, size_t *minlen)
{
    int k = 0;
    for (const cJSON *e = mj->child; e; e = e->next) k++;
    idmap_t *v = k ? calloc((size_t)k, sizeof *v) : NULL;
    *n = k && !v ? -1 : 0;
    *minlen = SIZE_MAX;
    for (const cJSON *e = mj->child; v && e; e = e->next) {
        if (!cJSON_IsString(e) || !e->string || !e->valuestring || !*e->valuestring) continue;
        idmap_t *m = &v[(*n)++];
        *m = (idmap_t){e->valuestring, e->string, strlen(e->valuestring), strlen(e->string), 0, -1};
        if (m->fl < *minlen) *minlen = m->fl;
    }
    return v;
}

/* Entries hashed by their first L bytes, compared with a rolling hash of the text. */
static char *idmap_scan(const char *text, size_t len, idmap_t *e, int ne, size_t L, size_t *outlen, const char **refused)
{
    size_t nb = 16;
    while (nb < 2 * (size_t)ne) nb <<= 1;
    int *head = malloc(nb * sizeof *head);
    if (!head) { *refused = "its id_normalization_mapping cannot be applied: out of memory"; return NULL; }
    memset(head, 0xff, nb * sizeof *head);
    for (int i = ne - 1; i >= 0; i--) { /* chains in file order */
        e[i].h = win_hash(e[i].from, L);
        e[i].next = head[e[i].h & (nb - 1)];
        head[e[i].h & (nb - 1)] = i;
    }
    uint64_t top = 1; /* HBASE^(L-1), to roll the first byte out */
    for (size_t i = 1; i < L; i++) top *= HBASE;
    size_t limit = LR_IDMAP_GROWTH * len + LR_IDMAP_SLACK, work = 0, budget = LR_IDMAP_WORK * len + LR_IDMAP_SLACK;
    buf_t b;
    buf_init(&b);
    size_t i = 0, hpos = 0, copied = 0;
    uint64_t h = len >= L ? win_hash(text, L) : 0;
    const unsigned char *u = (const unsigned char *)text;
    while (i + L <= len && !*refused) {
        for (; hpos < i; hpos++) h = (h - u[hpos] * top) * HBASE + u[hpos + L];
        int hit = -1;
        for (int k = head[h & (nb - 1)]; k >= 0 && hit < 0; k = e[k].next) {
            if (++work > budget) *refused = "its id_normalization_mapping costs too much to apply (over 16 comparisons a byte)";
            else if (e[k].h == h && e[k].fl <= len - i && !memcmp(text + i, e[k].from, e[k].fl)) hit = k;
        }
        if (hit < 0) { i++; continue; }
        buf_add(&b, text + copied, i - copied);
        buf_add(&b, e[hit].to, e[hit].tl);
        i += e[hit].fl;
        copied = i;
        if (b.len > limit) *refused = "its id_normalization_mapping would make it over twice as large (plus 1 MiB)";
    }
    free(head);
    if (!*refused && copied) buf_add(&b, text + copied, len - copied);
    if (!*refused && b.oom) *refused = "its id_normalization_mapping cannot be applied: out of memory";
    if (*refused || !copied) { buf_free(&b); return NULL; }
    return buf_steal(&b, outlen);
}

char *lr_rec_apply_id_mapping(const char *text, size_t len, size_t *outlen, const char **refused)
{
    *refused = NULL;
    /* most recordings have no mapping or an empty one: decide that without a full parse */
    const char *k = memmem(text, len, "\"id_normalization_mapping\"", 26);
    if (!k) return NULL;
    const char *v = k + 26, *end = text + len;
    while (v < end && (*v == ' ' || *v == ':' || *v == '\n' || *v == '\r' || *v == '\t')) v++;
    if (v < end && *v == '{') {
        const char *w = v + 1;
        while (w < end && (*w == ' ' || *w == '\n' || *w == '\r' || *w == '\t')) w++;
        if (w < end && *w == '}') return NULL;
    }
    span_t f[F_COUNT];
    char why[8];
    if (!top_fields(text, len, f, why, sizeof why) || !f[F_MAPPING].p || js_kind(f[F_MAPPING]) != '{') return NULL;
    span_t map = f[F_MAPPING];
    cJSON *mj = lr_json_parse(map.p, map.n);
    if (!mj) return NULL;
    int n;
    size_t minlen;
    idmap_t *e = idmap_entries(mj, &n, &minlen);
    if (n < 0) *refused = "its id_normalization_mapping cannot be applied: out of memory";
    char *out = n > 0 ? idmap_scan(text, len, e, n, minlen, outlen, refused) : NULL;
    free(e);
    J.Delete(mj);
    return out;
}
