/* Raw HTTP exchanges: the answer a raw recording replays (status, content headers, the body
 * byte for byte, a stream event by event) and the explanation of a raw miss. */
#include "engine/raw.h"
#include "base/config.h"
#include "base/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool lr_raw_keep_header(const char *name, size_t n)
{
    /* what describes the content; framing (length, chunking) is the responder's own, and the
     * body is stored decoded, so Content-Encoding is not kept */
    return lr_list_has("content-type,content-disposition,content-language,content-range,"
                       "accept-ranges,etag,last-modified,location,retry-after,x-request-id,request-id",
                       name, n) && !lr_secret_header(name, n);
}

/* Is the first line of a text stream SSE ("data:", "event:", "id:", ":")? */
static bool sniff_sse(span_t list)
{
    const char *pos = NULL;
    span_t item;
    if (!js_next(list, &pos, &item)) return false;
    char *s = js_strdup(item);
    bool sse = s && (!strncmp(s, "data:", 5) || !strncmp(s, "event:", 6) || !strncmp(s, "id:", 3) || s[0] == ':' ||
                     !strncmp(s, "retry:", 6));
    free(s);
    return sse;
}

void lr_raw_stream_lines(lr_response_t *o, span_t list, bool sse, bool final_newline, buf_t *b)
{
    const char *pos = NULL;
    span_t item;
    o->stream = true;
    bool more = js_next(list, &pos, &item);
    while (more) {
        char *line = js_kind(item) == '"' ? js_strdup(item) : NULL;
        span_t next;
        more = js_next(list, &pos, &next);
        if (line) {
            buf_adds(b, line);
            if (more || final_newline) buf_addc(b, '\n');
        }
        /* an SSE event ends at its blank line; other streams are one event per line */
        bool blank = line && (!line[0] || !strcmp(line, "\r"));
        if (!sse || blank || !more) lr_response_event(o, b);
        free(line);
        item = next;
    }
}

/* The recorded content headers: Content-Type into o (owned), the rest as header lines. */
static void put_headers(lr_response_t *o, span_t resp, buf_t *hdr)
{
    span_t v;
    if (!js_get(resp, "headers", &v) || js_kind(v) != '{') return;
    cJSON *h = lr_json_parse(v.p, v.n);
    for (const cJSON *e = h ? h->child : NULL; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->string || !e->valuestring || strpbrk(e->valuestring, "\r\n") ||
            strpbrk(e->string, "\r\n: "))
            continue;
        if (!strcasecmp(e->string, "content-type")) {
            free(o->own_ctype);
            o->own_ctype = strdup(e->valuestring);
        } else if (lr_raw_keep_header(e->string, strlen(e->string))) {
            buf_printf(hdr, "%s: %s\r\n", e->string, e->valuestring);
        }
    }
    if (h) J.Delete(h);
}

/* One body string: as text, or its base64 bytes. */
static bool put_string(span_t s, bool b64, buf_t *b)
{
    char *t = js_strdup(s);
    if (!t) return false;
    bool ok = b64 ? lr_b64_decode(t, strlen(t), b) : (buf_adds(b, t), true);
    free(t);
    return ok;
}

static void put_times(lr_response_t *o, span_t resp)
{
    span_t times, t;
    const char *tpos = NULL;
    if (!js_get(resp, "chunk_times_ms", &times) || js_kind(times) != '[') return;
    o->times_ms = calloc((size_t)o->nevents + 1, sizeof *o->times_ms);
    while (o->times_ms && o->ntimes < o->nevents && js_next(times, &tpos, &t))
        o->times_ms[o->ntimes++] = strtod(js_trim(t).p, NULL);
}

bool lr_raw_render(lr_response_t *o, const lr_rec_t *r, span_t resp, buf_t *b, char *why, size_t cap)
{
    span_t body, v;
    bool have = js_get(resp, "body", &body) && !js_is_null(body);
    char enc = 0; /* 't' text, 'b' base64, 0 JSON */
    if (js_get(resp, "body_encoding", &v) && js_kind(v) == '"') enc = js_trim(v).p[1] == 'b' ? 'b' : 't';
    buf_t hdr;
    buf_init(&hdr);
    put_headers(o, resp, &hdr);
    const char *dflt = enc == 'b' ? "application/octet-stream" : enc == 't' ? "text/plain; charset=utf-8" : "application/json";
    if (r->streaming && have && js_kind(body) == '[') {
        const char *ct = o->own_ctype;
        if (enc == 'b') {
            const char *pos = NULL;
            span_t item;
            o->stream = true;
            while (js_next(body, &pos, &item)) {
                if (!put_string(item, true, b)) { snprintf(why, cap, "a stream chunk is not base64"); buf_free(&hdr); return false; }
                lr_response_event(o, b);
            }
        } else {
            bool sse = ct ? strstr(ct, "event-stream") != NULL : sniff_sse(body);
            bool nofinal = js_get(resp, "llmreplay_no_final_newline", &v) && js_is_true(v);
            lr_raw_stream_lines(o, body, sse, !nofinal, b);
            dflt = sse ? "text/event-stream; charset=utf-8" : "application/x-ndjson";
        }
        put_times(o, resp);
    } else {
        if (js_get(resp, "llmreplay_raw_body", &v) && js_kind(v) == '"') {
            put_string(v, false, b);
        } else if (have && enc) {
            if (!put_string(body, enc == 'b', b)) { snprintf(why, cap, "response.body is not base64"); buf_free(&hdr); return false; }
        } else if (have) {
            js_minify(body, b);
        }
        lr_response_event(o, b);
    }
    o->content_type = o->own_ctype ? o->own_ctype : dflt;
    buf_add(b, hdr.data ? hdr.data : "", hdr.len);
    buf_free(&hdr);
    return true;
}

/* ---- misses ------------------------------------------------------------------------------- */

/* The recorded request of a raw recording: method, URL, and the payload's text. */
typedef struct {
    char method[16];
    const char *url;
    const cJSON *payload; /* NULL for a body recorded as bytes: compared by key only */
    cJSON *doc;
} rawreq_t;

static bool read_rawreq(const lr_rec_t *r, rawreq_t *q)
{
    size_t len;
    memset(q, 0, sizeof *q);
    char *text = lr_read_file(r->path, lr_max_file_bytes(), &len);
    cJSON *j = text ? lr_json_parse(text, len) : NULL;
    free(text);
    const cJSON *rq = j ? J.GetObjectItemCaseSensitive(j, "request") : NULL;
    const cJSON *u = rq ? J.GetObjectItemCaseSensitive(rq, "url") : NULL;
    if (!cJSON_IsString(u)) { if (j) J.Delete(j); return false; }
    snprintf(q->method, sizeof q->method, "%s", r->method);
    q->doc = j;
    q->url = u->valuestring;
    if (!cJSON_IsString(J.GetObjectItemCaseSensitive(rq, "payload_encoding")))
        q->payload = J.GetObjectItemCaseSensitive(rq, "payload");
    return true;
}

static bool same_path(const char *a, const char *b)
{
    size_t na, nb;
    const char *pa = lr_url_path(a, &na), *pb = lr_url_path(b, &nb);
    return na == nb && !memcmp(pa, pb, na);
}

bool lr_raw_target(const lr_rec_t *r, char *out, size_t cap)
{
    rawreq_t q;
    if (!read_rawreq(r, &q)) return false;
    size_t n;
    const char *p = lr_url_path(q.url, &n);
    snprintf(out, cap, "%s %s", q.method, p);
    J.Delete(q.doc);
    return true;
}

void lr_raw_miss(lr_store_t *s, const lr_req_t *rq, buf_t *out, char **nearest)
{
    size_t plen;
    const char *path = lr_url_path(rq->url, &plen);
    buf_printf(out, "llmreplay: no recording matches %s %.*s (not an LLM API call: matched by method, path, query and body)",
               rq->method, (int)(plen > 600 ? 600 : plen), path);
    *nearest = NULL;
    int nall = 0, budget = 200, best = -1;
    lr_rec_t **all = s ? lr_store_all(s, &nall) : NULL;
    lr_diff_t bd = {.count = -1};
    char bmethod[16] = "", *burl = NULL;
    for (int i = 0; i < nall && budget > 0; i++) {
        if (!lr_op_is_raw(all[i]->op)) continue;
        budget--;
        rawreq_t q;
        if (!read_rawreq(all[i], &q)) continue;
        int score = (strcasecmp(q.method, rq->method) ? 4 : 0) + (same_path(q.url, rq->url) ? 0 : 8);
        lr_diff_t d = {.count = 0};
        if (rq->body || q.payload) lr_diff(rq->body, q.payload, lr_store_ignore(s), &d);
        score = score * 1000 + (d.count > 999 ? 999 : d.count);
        if (best < 0 || score < best) {
            best = score;
            free(*nearest);
            free(burl);
            *nearest = strdup(all[i]->path);
            burl = strdup(q.url);
            snprintf(bmethod, sizeof bmethod, "%s", q.method);
            bd = d;
        }
        J.Delete(q.doc);
    }
    if (*nearest && burl) {
        size_t qn;
        const char *qp = lr_url_path(burl, &qn);
        buf_printf(out, "; nearest recording: %s (%s %.*s)", *nearest, bmethod, (int)(qn > 300 ? 300 : qn), qp);
        if (bd.count > 0)
            buf_printf(out, ", first difference at %s: request has %s, recording has %s", bd.path[0] ? bd.path : "the body",
                       bd.mine, bd.theirs);
        else if (same_path(burl, rq->url) && !strcasecmp(bmethod, rq->method))
            buf_adds(out, ", which differs in its query or its (non-JSON) body");
    } else {
        buf_adds(out, "; there is no recording of a non-LLM call in LLMREPLAY_DIR");
    }
    free(burl);
    buf_adds(out, ". To fix it, record it against the real API with LLMREPLAY_MODE=record-if-missing (every call to an "
                  "intercepted host is recorded), or add a recording of it to LLMREPLAY_DIR");
}
