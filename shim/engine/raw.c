/* Raw HTTP exchanges: their match key (method, path, query, body) and the parsing of raw
 * recordings. Rendering, misses and writing are in rawout.c. */
#include "engine/raw.h"
#include "base/config.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

lr_op_t lr_op_http(void) { return lr_op_named("http"); }

/* ---- base64 and text ------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void lr_b64_encode(const void *p, size_t n, buf_t *out)
{
    const unsigned char *s = p;
    if (!buf_reserve(out, (n + 2) / 3 * 4 + 1)) return;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=', i + 2 < n ? B64[v & 63] : '='};
        buf_add(out, q, 4);
    }
}

bool lr_b64_decode(const char *s, size_t n, buf_t *out)
{
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '=' || ch == '\n' || ch == '\r') continue;
        const char *at = ch ? memchr(B64, ch, 64) : NULL;
        if (!at) return false;
        v = (v << 6 | (unsigned)(at - B64)) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_addc(out, (char)(v >> bits & 0xFF));
        }
    }
    return !out->oom;
}

bool lr_raw_is_text(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p, *e = s + n;
    while (s < e) {
        unsigned c = *s;
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
            if (c == 0x7f) return false;
            s++;
            continue;
        }
        int k = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 && c < 0xE0 ? 1 : -1;
        if (c >= 0xF5 || k < 0 || e - s <= k) return false;
        for (int i = 1; i <= k; i++)
            if ((s[i] & 0xC0) != 0x80) return false;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
            (c == 0xF4 && s[1] >= 0x90))
            return false; /* overlong, surrogate, beyond U+10FFFF */
        s += k + 1;
    }
    return true;
}

/* ---- the key ----------------------------------------------------------------------------- */

bool lr_multipart_boundary(const char *body, size_t len, const char **b, size_t *bn)
{
    if (len < 8 || body[0] != '-' || body[1] != '-') return false;
    const char *nl = memchr(body, '\n', len < 80 ? len : 80);
    if (!nl) return false;
    const char *e = nl > body && nl[-1] == '\r' ? nl - 1 : nl;
    size_t n = (size_t)(e - body - 2);
    if (n < 1 || n > 70) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)body[2 + i] <= ' ' || (unsigned char)body[2 + i] >= 0x7f) return false;
    *b = body + 2;
    *bn = n;
    return true;
}

/* The parts of a multipart body, each as its headers (names lower-cased) and its bytes, the
 * boundary left out; false when the body is not well-formed multipart. */
static bool multipart_key(const char *body, size_t len, buf_t *out)
{
    const char *bd;
    size_t bn;
    if (!lr_multipart_boundary(body, len, &bd, &bn)) return false;
    char delim[80];
    int dl = snprintf(delim, sizeof delim, "\r\n--%.*s", (int)bn, bd);
    const char *end = body + len, *p = memchr(body, '\n', len);
    if (!p) return false;
    p++;
    for (int parts = 0; parts < 10000; parts++) {
        const char *stop = memmem(p, (size_t)(end - p), delim, (size_t)dl);
        if (!stop) return false;
        const char *hend = memmem(p, (size_t)(stop - p), "\r\n\r\n", 4);
        const char *data = hend ? hend + 4 : p;
        buf_adds(out, "[");
        for (const char *l = p; hend && l < hend;) {
            const char *le = memmem(l, (size_t)(hend - l), "\r\n", 2);
            if (!le) le = hend;
            const char *colon = memchr(l, ':', (size_t)(le - l));
            for (const char *q = l; q < le; q++) buf_addc(out, (char)(colon && q < colon ? tolower((unsigned char)*q) : *q));
            buf_addc(out, '\n');
            l = le + 2;
        }
        buf_printf(out, "]%zu:", (size_t)(stop - data));
        buf_add(out, data, (size_t)(stop - data));
        p = stop + dl;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') return true;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return false;
        p = nl + 1;
    }
    return false;
}

/* Query parameters that carry credentials (Gemini's ?key=, SAS-like tokens): never matched,
 * never written. */
static bool secret_param(const char *p, size_t n)
{
    size_t k = 0;
    while (k < n && p[k] != '=') k++;
    return lr_list_has("key,api_key,api-key,apikey,access_token,x-goog-api-key", p, k) ||
           lr_list_has(lr_cfg()->redact, p, k);
}

static int cmp_span(const void *a, const void *b)
{
    const span_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* "PATH?a=1&b=2": the query's parameters sorted, credentials and empty ones left out. */
static void target_key(const char *url, buf_t *out)
{
    size_t plen;
    const char *path = lr_url_path(url, &plen);
    buf_add(out, path, plen);
    const char *q = path + plen;
    if (*q != '?') return;
    q++;
    size_t qn = strcspn(q, "#");
    int n = 0, cap = 0;
    span_t *v = NULL;
    for (size_t i = 0; i < qn;) {
        size_t l = strcspn(q + i, "&#");
        if (l > qn - i) l = qn - i;
        if (l && !secret_param(q + i, l)) {
            if (n == cap) {
                int nc = cap ? cap * 2 : 16;
                span_t *nv = realloc(v, sizeof *nv * (size_t)nc);
                if (!nv) break;
                v = nv, cap = nc;
            }
            v[n++] = (span_t){q + i, l};
        }
        i += l + 1;
    }
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_span);
    for (int i = 0; i < n; i++) {
        buf_addc(out, i ? '&' : '?');
        buf_add(out, v[i].p, v[i].n);
    }
    free(v);
}

static bool bodyless_method(const char *m)
{
    return !strcasecmp(m, "GET") || !strcasecmp(m, "HEAD") || !strcasecmp(m, "DELETE") || !strcasecmp(m, "OPTIONS");
}

/* The body's part of the key: "-" none, "j" canonical JSON, "m" multipart parts, "b" bytes. */
static void body_key(const char *method, const cJSON *json, const char *body, size_t len, const lr_ignore_t *ig,
                     buf_t *out)
{
    cJSON *mine = NULL;
    if (!json && len && lr_cjson()) json = mine = lr_json_parse(body, len);
    if (json) {
        bool empty = cJSON_IsNull(json) || (cJSON_IsObject(json) && !json->child && bodyless_method(method));
        if (empty) buf_addc(out, '-');
        else { buf_addc(out, 'j'); lr_canon(json, ig, out); }
    } else if (!len) {
        buf_addc(out, '-');
    } else {
        size_t at = out->len;
        buf_addc(out, 'm');
        if (!multipart_key(body, len, out)) {
            out->len = at;
            buf_addc(out, 'b');
            buf_add(out, body, len);
        }
    }
    if (mine) J.Delete(mine);
}

void lr_raw_key(const char *method, const char *url, const cJSON *json, const char *body, size_t len,
                const lr_ignore_t *ig, uint64_t *h1, uint64_t *h2)
{
    buf_t b;
    buf_init(&b);
    const char *m = method && *method ? method : "GET";
    buf_adds(&b, "http ");
    for (const char *c = m; *c; c++) buf_addc(&b, (char)toupper((unsigned char)*c));
    buf_addc(&b, ' ');
    target_key(url ? url : "/", &b);
    buf_addc(&b, ' ');
    body_key(m, json, body, len, ig, &b);
    *h1 = lr_hash64(b.data ? b.data : "", b.len, 0);
    *h2 = lr_hash64(b.data ? b.data : "", b.len, 0x9e3779b97f4a7c15ULL);
    buf_free(&b);
}

void lr_req_key(const lr_req_t *rq, const lr_ignore_t *ig, uint64_t *h1, uint64_t *h2)
{
    if (lr_op_is_raw(rq->op)) lr_raw_key(rq->method, rq->url, rq->body, rq->raw, rq->raw_len, ig, h1, h2);
    else lr_match_key(rq->op, rq->method, rq->body, ig, h1, h2);
}

/* ---- raw recordings ---------------------------------------------------------------------- */

bool lr_raw_shape(const cJSON *rq)
{
    return J.GetObjectItemCaseSensitive(rq, "payload") && !J.GetObjectItemCaseSensitive(rq, "endpoint") &&
           !J.GetObjectItemCaseSensitive(rq, "body");
}

static bool token(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (!n || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("!#$%&'*+-.^_`|~", s[i])) return false;
    return true;
}

/* An absolute http(s) URL whose path is printable ASCII without spaces. */
static bool url_ok(const char *u)
{
    if (strncasecmp(u, "http://", 7) && strncasecmp(u, "https://", 8)) return false;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) return false;
    return strlen(u) < 8192;
}

/* The recorded request body as bytes (payload_encoding "base64" or "text"). */
static bool payload_bytes(const cJSON *pl, const cJSON *enc, buf_t *out, char *why, size_t cap)
{
    if (!cJSON_IsString(enc) || !cJSON_IsString(pl) || !pl->valuestring) {
        snprintf(why, cap, "request.payload_encoding needs a string payload");
        return false;
    }
    if (!strcmp(enc->valuestring, "text")) { buf_adds(out, pl->valuestring); return true; }
    if (!strcmp(enc->valuestring, "base64") && lr_b64_decode(pl->valuestring, strlen(pl->valuestring), out)) return true;
    snprintf(why, cap, "request.payload_encoding \"%.40s\" is not \"text\" or \"base64\", or the payload does not decode",
             enc->valuestring);
    return false;
}

/* The response's types: status an integer, headers an object of strings, body_encoding known,
 * a streamed body a list of strings. */
static bool response_ok(span_t resp, lr_rec_t *r, char *why, size_t cap)
{
    span_t v, item;
    r->status = 200;
    if (js_get(resp, "status", &v) && !js_is_null(v)) {
        char k = js_kind(v);
        long st = (k >= '0' && k <= '9') ? strtol(js_trim(v).p, NULL, 10) : 0;
        if (st < 100 || st > 599) { snprintf(why, cap, "response.status is not an HTTP status (100-599)"); return false; }
        r->status = (int)st;
    }
    if (js_get(resp, "headers", &v) && !js_is_null(v)) {
        if (js_kind(v) != '{') { snprintf(why, cap, "response.headers is not an object"); return false; }
        cJSON *h = lr_json_parse(v.p, v.n);
        for (const cJSON *e = h ? h->child : NULL; e; e = e->next)
            if (!cJSON_IsString(e) || !e->string || !token(e->string, 100) || strpbrk(e->valuestring, "\r\n")) {
                snprintf(why, cap, "response.headers has a header that is not a name and a one-line string value");
                J.Delete(h);
                return false;
            }
        if (h) J.Delete(h);
    }
    char enc[16] = "";
    if (js_get(resp, "body_encoding", &v) && !js_is_null(v)) {
        char *e = js_kind(v) == '"' ? js_strdup(v) : NULL;
        if (!e || (strcmp(e, "text") && strcmp(e, "base64"))) {
            free(e);
            snprintf(why, cap, "response.body_encoding is not \"text\" or \"base64\"");
            return false;
        }
        snprintf(enc, sizeof enc, "%s", e);
        free(e);
    }
    bool have = js_get(resp, "body", &v) && !js_is_null(v);
    if (r->streaming) {
        const char *pos = NULL;
        if (!have || js_kind(v) != '[') { snprintf(why, cap, "a streamed response.body is not a list"); return false; }
        while (js_next(v, &pos, &item))
            if (js_kind(item) != '"') { snprintf(why, cap, "a streamed raw response.body holds a non-string item"); return false; }
    } else if (enc[0] && have && js_kind(v) != '"') {
        snprintf(why, cap, "response.body with body_encoding is not a string");
        return false;
    }
    return true;
}

bool lr_raw_parse(lr_rec_t *r, const cJSON *rq, span_t resp, const lr_ignore_t *ig, char *why, size_t cap)
{
    const cJSON *url = J.GetObjectItemCaseSensitive(rq, "url"), *m = J.GetObjectItemCaseSensitive(rq, "method");
    const cJSON *pl = J.GetObjectItemCaseSensitive(rq, "payload"), *enc = J.GetObjectItemCaseSensitive(rq, "payload_encoding");
    if (!cJSON_IsString(url) || !url->valuestring) { snprintf(why, cap, "request.url is not a string"); return false; }
    if (!url_ok(url->valuestring)) {
        snprintf(why, cap, "request.url is not an absolute http(s) URL with a printable path");
        return false;
    }
    if (m && (!cJSON_IsString(m) || !m->valuestring || !token(m->valuestring, sizeof r->method - 1))) {
        snprintf(why, cap, "request.method is not an HTTP method token (at most %zu characters)", sizeof r->method - 1);
        return false;
    }
    r->op = lr_op_http();
    if (!r->op) { snprintf(why, cap, "unsupported raw HTTP recording (no \"http\" operation)"); return false; }
    snprintf(r->method, sizeof r->method, "%s", m ? m->valuestring : "POST");
    for (char *c = r->method; *c; c++) *c = (char)toupper((unsigned char)*c);
    bool https;
    if (!lr_url_hostport(url->valuestring, r->host, sizeof r->host, &r->port, &https)) r->host[0] = 0;
    span_t v;
    r->streaming = js_get(resp, "is_streaming", &v) && js_is_true(v);
    if (!response_ok(resp, r, why, cap)) return false;
    if (enc && !cJSON_IsNull(enc)) {
        buf_t b;
        buf_init(&b);
        bool ok = payload_bytes(pl, enc, &b, why, cap);
        if (ok) lr_raw_key(r->method, url->valuestring, NULL, b.data ? b.data : "", b.len, ig, &r->h1, &r->h2);
        buf_free(&b);
        if (!ok) return false;
    } else {
        lr_raw_key(r->method, url->valuestring, pl, NULL, 0, ig, &r->h1, &r->h2);
    }
    r->model = strdup(lr_body_model(cJSON_IsObject(pl) ? pl : NULL));
    return r->model != NULL || (snprintf(why, cap, "out of memory"), false);
}
