/* A live non-LLM exchange as a recording in llama-stack's raw HTTP shape (request{test_id,
 * url, method, payload}, response{status, body, is_streaming}), extended so that any body
 * replays byte for byte: payload_encoding / body_encoding "text" or "base64" for bodies that are
 * not JSON, the content headers, chunk_times_ms for a stream. */
#include "engine/lsfile.h"
#include "engine/raw.h"
#include "engine/pyjson.h"
#include "base/config.h"
#include "base/log.h"
#include "base/sha256.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The URL without credential parameters in its query (Gemini's ?key=...). */
static void stored_url(const char *url, buf_t *out)
{
    const char *q = strchr(url, '?');
    if (!q) { buf_adds(out, url); return; }
    buf_add(out, url, (size_t)(q - url));
    size_t qn = strcspn(q + 1, "#");
    char sep = '?';
    for (size_t i = 0; i < qn;) {
        const char *p = q + 1 + i;
        size_t l = strcspn(p, "&#");
        if (l > qn - i) l = qn - i;
        size_t k = strcspn(p, "=&#");
        if (l && !(k <= l && (lr_list_has("key,api_key,api-key,apikey,access_token,x-goog-api-key", p, k) ||
                              lr_list_has(lr_cfg()->redact, p, k)))) {
            buf_addc(out, sep);
            buf_add(out, p, l);
            sep = '&';
        }
        i += l + 1;
    }
    buf_adds(out, q + 1 + qn);
}

/* A body as JSON (when it is), text or base64; *enc receives the encoding ("" for JSON). */
static void put_body(span_t b, bool json_ok, buf_t *o, const char **enc)
{
    *enc = "";
    if (json_ok && b.n && js_valid(b)) js_minify(b, o);
    else if (lr_raw_is_text(b.p, b.n)) { *enc = "text"; lr_pyjson_str(b.p, b.n, o); }
    else { *enc = "base64"; buf_addc(o, '"'); lr_b64_encode(b.p, b.n, o); buf_addc(o, '"'); }
}

/* A streamed text answer as its lines, with the arrival time of each event (as replay groups
 * them: SSE up to a blank line, else per line). */
static void put_lines(const lr_capture_t *c, bool sse, buf_t *o, buf_t *times)
{
    const char *p = c->body.data ? c->body.data : "", *end = p + c->body.len; /* an empty stream has no buffer */
    int piece = 0;
    bool first = true;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        buf_adds(o, first ? "\n      " : ",\n      ");
        lr_pyjson_str(p, (size_t)(le - p), o);
        bool blank = le == p || (le - p == 1 && *p == '\r');
        const char *next = nl ? nl + 1 : end;
        if (!sse || blank || next >= end) {
            size_t at = (size_t)(next - c->body.data);
            while (piece < c->npieces - 1 && c->ends[piece] < at) piece++;
            buf_printf(times, "%s%.1f", times->len ? ", " : "", c->npieces ? c->ends_ms[piece] : 0.0);
        }
        first = false;
        p = next;
    }
}

static void put_response(const lr_capture_t *c, buf_t *o)
{
    buf_printf(o, "  \"response\": {\n    \"status\": %d,\n    \"headers\": {", c->status);
    bool first = true;
    for (size_t i = 0; i < c->keep_headers.len;) {
        const char *name = c->keep_headers.data + i, *val = name + strlen(name) + 1;
        buf_adds(o, first ? "" : ", ");
        lr_pyjson_str(name, strlen(name), o);
        buf_adds(o, ": ");
        lr_pyjson_str(val, strlen(val), o);
        i = (size_t)(val + strlen(val) + 1 - c->keep_headers.data);
        first = false;
    }
    buf_adds(o, "},\n    \"body\": ");
    span_t body = {c->body.data ? c->body.data : "", c->body.len};
    char kind = lr_capture_stream_kind(c);
    bool json = strstr(c->content_type, "json") && !kind;
    bool stream = kind || (c->chunked && !json && c->body.len);
    buf_t times;
    buf_init(&times);
    const char *enc = "";
    if (stream && lr_raw_is_text(body.p, body.n)) {
        buf_addc(o, '[');
        put_lines(c, kind == 'S' || (!kind && !strncmp(body.p, "data:", body.n < 5 ? body.n : 5)), o, &times);
        buf_adds(o, "\n    ]");
        if (body.n && body.p[body.n - 1] != '\n') buf_adds(o, ",\n    \"llmreplay_no_final_newline\": true");
    } else if (stream) {
        enc = "base64";
        buf_addc(o, '[');
        for (int i = 0; i < c->npieces; i++) {
            size_t from = i ? c->ends[i - 1] : 0;
            buf_adds(o, i ? ",\n      \"" : "\n      \"");
            lr_b64_encode(body.p + from, c->ends[i] - from, o);
            buf_addc(o, '"');
            buf_printf(&times, "%s%.1f", i ? ", " : "", c->ends_ms[i]);
        }
        buf_adds(o, "\n    ]");
    } else {
        put_body(body, true, o, &enc);
        buf_t m;
        buf_init(&m);
        if (!*enc) js_minify(body, &m);
        if (!*enc && (m.len != body.n || memcmp(m.data, body.p, body.n))) { /* pretty-printed: the bytes too */
            buf_adds(o, ",\n    \"llmreplay_raw_body\": ");
            lr_pyjson_str(body.p, body.n, o);
        }
        buf_free(&m);
    }
    if (*enc) buf_printf(o, ",\n    \"body_encoding\": \"%s\"", enc);
    buf_printf(o, ",\n    \"is_streaming\": %s", stream ? "true" : "false");
    if (stream) buf_printf(o, ",\n    \"chunk_times_ms\": [%s]", times.data ? times.data : "");
    buf_free(&times);
    buf_adds(o, "\n  },\n  \"id_normalization_mapping\": {}\n}\n");
}

/* llama-stack's name for it: sha256 of json.dumps({test_id, url, method, payload}, sort_keys). */
static void file_name(const char *method, const buf_t *url, const buf_t *payload, const char *tid, char hex[65])
{
    buf_t t, d;
    buf_init(&t);
    buf_init(&d);
    buf_adds(&t, "{\"method\":");
    lr_pyjson_str(method, strlen(method), &t);
    buf_adds(&t, ",\"payload\":");
    buf_add(&t, payload->data ? payload->data : "null", payload->data ? payload->len : 4);
    buf_adds(&t, ",\"test_id\":");
    if (tid) lr_pyjson_str(tid, strlen(tid), &t);
    else buf_adds(&t, "null");
    buf_adds(&t, ",\"url\":");
    lr_pyjson_str(url->data ? url->data : "", url->len, &t);
    buf_addc(&t, '}');
    if (!lr_pyjson_dump((span_t){t.data ? t.data : "{}", t.len}, &d)) buf_add(&d, t.data, t.len);
    lr_sha256_hex(d.data ? d.data : "", d.len, hex);
    buf_free(&t);
    buf_free(&d);
}

void lr_raw_write(const lr_capture_t *c)
{
    const char *dir = lr_cfg()->record_dir, *tid = lr_cfg()->test_id;
    if (!dir) { lr_error("LLMREPLAY_MODE=%s but neither LLMREPLAY_RECORD_DIR nor LLMREPLAY_DIR is set: nothing recorded", lr_mode_name(lr_mode())); return; }
    char method[16];
    snprintf(method, sizeof method, "%s", c->method);
    for (char *m = method; *m; m++) if (*m >= 'a' && *m <= 'z') *m = (char)(*m - 32);
    buf_t url, payload, o;
    buf_init(&url);
    buf_init(&payload);
    buf_init(&o);
    stored_url(c->url, &url);
    const char *penc = "";
    span_t req = {c->req.data ? c->req.data : "", c->req.len};
    if (!req.n) buf_adds(&payload, "null");
    else if (js_valid(req)) lr_capture_stored_body(c, &payload); /* LLMREPLAY_REDACT fields */
    else put_body(req, false, &payload, &penc);
    char hex[65];
    file_name(method, &url, &payload, tid, hex);
    buf_adds(&o, "{\n  \"test_id\": ");
    if (tid) lr_pyjson_str(tid, strlen(tid), &o);
    else buf_adds(&o, "null");
    buf_adds(&o, ",\n  \"request\": {\n    \"test_id\": ");
    if (tid) lr_pyjson_str(tid, strlen(tid), &o);
    else buf_adds(&o, "null");
    buf_adds(&o, ",\n    \"url\": ");
    lr_pyjson_str(url.data ? url.data : "", url.len, &o);
    buf_adds(&o, ",\n    \"method\": ");
    lr_pyjson_str(method, strlen(method), &o);
    buf_adds(&o, ",\n    \"payload\": ");
    buf_add(&o, payload.data, payload.len);
    if (*penc) buf_printf(&o, ",\n    \"payload_encoding\": \"%s\"", penc);
    buf_adds(&o, "\n  },\n");
    put_response(c, &o);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s.json", dir, hex);
    mkdir(dir, 0755);
    if (o.oom) lr_error("out of memory: the recording of %s %s was not written", c->method, c->url);
    else if (!lr_write_atomic(path, 0644, o.data, o.len, NULL, 0))
        lr_error("cannot write the recording of %s %s (%s: %s); the program got its answer, nothing was recorded; "
                 "make LLMREPLAY_RECORD_DIR a writable directory", c->method, c->url, path, strerror(errno));
    else lr_log(LR_INFO, "recorded %s %s -> %s", c->method, c->url, path);
    buf_free(&url);
    buf_free(&payload);
    buf_free(&o);
}
