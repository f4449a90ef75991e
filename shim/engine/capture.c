/* Capturing a live exchange as its bytes arrive, and handing it to its writer. */
#include "engine/lsfile.h"
#include "engine/raw.h"
#include <ctype.h>
#include "engine/testid.h"
#include "engine/usage.h"
#include "base/config.h"
#include "base/real.h"
#include "json/cjson_rt.h"
#include "json/jspan.h"
#include "base/log.h"
#include "engine/gemini.h"
#include "engine/pyjson.h"
#include "base/sha256.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

lr_capture_t *lr_capture_new(const char *method, const char *url)
{
    lr_capture_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->method = strdup(method ? method : "POST");
    c->url = url ? lr_url_without_key(url) : NULL; /* the Gemini API key is never written */
    if (!c->url) c->url = strdup(url ? url : "");
    c->op = lr_op_of_url(c->url);
    c->t_start = lr_now();
    char tid[1024];
    const char *t = lr_testid(tid, sizeof tid);
    c->test_id = t ? strdup(t) : NULL;
    return c;
}

void lr_capture_free(lr_capture_t *c)
{
    if (!c) return;
    free(c->method);
    free(c->url);
    free(c->test_id);
    buf_free(&c->req);
    buf_free(&c->req_headers);
    buf_free(&c->body);
    buf_free(&c->keep_headers);
    free(c->ends);
    free(c->ends_ms);
    free(c);
}

void lr_capture_data(lr_capture_t *c, const void *p, size_t n)
{
    if (!c || !n) return;
    double t = (lr_now() - c->t_start) * 1000;
    if (!c->t_first) c->t_first = t;
    buf_add(&c->body, p, n);
    if (c->npieces == c->cappieces) {
        int cap = c->cappieces ? c->cappieces * 2 : 64;
        size_t *e = realloc(c->ends, sizeof *e * (size_t)cap);
        double *m = realloc(c->ends_ms, sizeof *m * (size_t)cap);
        if (e) c->ends = e;
        if (m) c->ends_ms = m;
        if (!e || !m) return;
        c->cappieces = cap;
    }
    c->ends[c->npieces] = c->body.len;
    c->ends_ms[c->npieces++] = t;
}

void lr_capture_header(lr_capture_t *c, const char *line, size_t n)
{
    if (!c) return;
    if (n > 9 && !strncmp(line, "HTTP/", 5)) {
        const char *sp = memchr(line, ' ', n);
        if (sp) c->status = atoi(sp + 1);
        c->content_type[0] = 0; /* a new response (after 100 Continue, a redirect): start over */
        c->keep_headers.len = 0;
        c->chunked = false;
        return;
    }
    const char *colon = memchr(line, ':', n);
    if (colon && colon > line) {
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1, *e = line + n;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
        if (nl == 17 && !strncasecmp(line, "transfer-encoding", nl) && e - v >= 7 && !strncasecmp(e - 7, "chunked", 7))
            c->chunked = true;
        if (lr_raw_keep_header(line, nl)) {
            for (size_t i = 0; i < nl; i++) buf_addc(&c->keep_headers, (char)tolower((unsigned char)line[i]));
            buf_addc(&c->keep_headers, 0);
            buf_add(&c->keep_headers, v, (size_t)(e - v));
            buf_addc(&c->keep_headers, 0);
        }
    }
    if (n > 13 && !strncasecmp(line, "content-type:", 13)) {
        const char *v = line + 13, *e = line + n;
        while (v < e && (*v == ' ' || *v == '\t')) v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) e--;
        snprintf(c->content_type, sizeof c->content_type, "%.*s", (int)(e - v), v);
    }
}

/* ---- secrets --------------------------------------------------------------------------- */

/* Authorization, api keys, cookies, organisation/project headers, and LLMREPLAY_REDACT. */
bool lr_secret_header(const char *name, size_t n)
{
    static const char *builtin = "authorization,proxy-authorization,api-key,x-api-key,cookie,set-cookie,"
                                 "openai-organization,openai-project,x-goog-api-key,anthropic-api-key";
    return lr_list_has(builtin, name, n) || lr_list_has(lr_cfg()->redact, name, n);
}

/* The request body to store: LLMREPLAY_REDACT fields (top level or dotted) become "[REDACTED]". */
void lr_capture_stored_body(const lr_capture_t *c, buf_t *out)
{
    span_t raw = {c->req.data ? c->req.data : "", c->req.len};
    const char *red = lr_cfg()->redact;
    if (!c->req.len || !js_valid(raw)) { buf_adds(out, "{}"); return; }
    cJSON *j = red && lr_cjson() ? lr_json_parse(raw.p, raw.n) : NULL;
    bool changed = false;
    if (cJSON_IsObject(j)) {
        const char *tok;
        size_t l;
        for (const char *p = red; lr_list_next(&p, &tok, &l);) {
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(l < 127 ? l : 127), tok);
            cJSON *parent = j;
            char *dot, *k = key;
            while ((dot = strchr(k, '.')) && parent) { *dot = 0; parent = J.GetObjectItemCaseSensitive(parent, k); k = dot + 1; }
            if (cJSON_IsObject(parent) && J.GetObjectItemCaseSensitive(parent, k)) {
                J.DeleteItemFromObjectCaseSensitive(parent, k);
                J.AddItemToObject(parent, k, J.CreateString("[REDACTED]"));
                changed = true;
            }
        }
    }
    if (changed) {
        char *s = J.Print(j);
        buf_adds(out, s ? s : "{}");
        J.free(s);
    } else {
        buf_add(out, raw.p, raw.n);
    }
    if (j) J.Delete(j);
}

/* 'S' for an SSE answer, 'N' for NDJSON, 0 for a plain one. */
char lr_capture_stream_kind(const lr_capture_t *c)
{
    if (strstr(c->content_type, "text/event-stream")) return 'S';
    return strstr(c->content_type, "ndjson") ? 'N' : 0;
}

/* Split a streamed body into events: each event's payload span and its arrival time, in arrays
 * the caller frees. Returns how many. */
int lr_capture_events(const lr_capture_t *c, span_t **evp, double **msp)
{
    bool sse = lr_capture_stream_kind(c) == 'S';
    int max = 1 + (int)(c->body.len / 8);
    span_t *ev = *evp = calloc((size_t)max, sizeof *ev);
    double *ms = *msp = calloc((size_t)max, sizeof *ms);
    if (!ev || !ms) return 0;
    const char *p = c->body.data, *end = p ? p + c->body.len : p; /* no body: NULL, and NULL + 0 is UB */
    int n = 0, piece = 0;
    while (p && p < end && n < max) {
        const char *stop;
        if (sse) {
            const char *a = memmem(p, (size_t)(end - p), "\n\n", 2), *b = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
            stop = a && (!b || a < b) ? a + 2 : b ? b + 4 : end;
        } else {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            stop = nl ? nl + 1 : end;
        }
        span_t data = {NULL, 0};
        if (sse) {
            /* the data: lines of the event (one, in practice) */
            for (const char *l = p; l < stop;) {
                const char *le = memchr(l, '\n', (size_t)(stop - l));
                if (!le) le = stop;
                if (le - l >= 5 && !memcmp(l, "data:", 5)) {
                    const char *v = l + 5;
                    if (v < le && *v == ' ') v++;
                    const char *ve = le;
                    if (ve > v && ve[-1] == '\r') ve--;
                    data = (span_t){v, (size_t)(ve - v)};
                }
                l = le + 1;
            }
        } else {
            data = js_trim((span_t){p, (size_t)(stop - p)});
        }
        size_t at = (size_t)(stop - c->body.data);
        while (piece < c->npieces - 1 && c->ends[piece] < at) piece++;
        if (data.p && data.n && !(data.n == 6 && !memcmp(data.p, "[DONE]", 6))) {
            ev[n] = data;
            ms[n++] = c->npieces ? c->ends_ms[piece] : 0;
        }
        p = stop;
    }
    return n;
}

void lr_capture_finish(lr_capture_t *c)
{
    if (!c) return;
    lr_mode_t m = lr_mode();
    lr_usage_live(c);
    if (m == MODE_TRACE) { lr_trace_write(c); lr_capture_free(c); return; }
    if (c->error[0]) lr_error("upstream call %s %s failed (%s): reported, nothing recorded", c->method, c->url, c->error);
    else if ((m == MODE_RECORD || m == MODE_RECORD_IF_MISSING) && c->status && !(c->op != OP_NONE && lr_op_info(c->op)->local))
        c->op != OP_NONE ? lr_lsfile_write(c) : lr_raw_write(c); /* any other call: wire-level */
    lr_capture_free(c);
}
