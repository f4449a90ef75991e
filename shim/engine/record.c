#include "engine/record.h"
#include "base/real.h"
#include "json/cjson_rt.h"
#include "json/jspan.h"
#include "base/log.h"
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

lr_mode_t lr_mode(void) { return lr_cfg()->mode; }

lr_capture_t *lr_capture_new(const char *method, const char *url)
{
    lr_capture_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->method = strdup(method ? method : "POST");
    c->url = strdup(url ? url : "");
    c->op = lr_op_of_url(c->url);
    c->t_start = lr_now();
    return c;
}

void lr_capture_free(lr_capture_t *c)
{
    if (!c) return;
    free(c->method);
    free(c->url);
    buf_free(&c->req);
    buf_free(&c->req_headers);
    buf_free(&c->body);
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
    } else if (n > 13 && !strncasecmp(line, "content-type:", 13)) {
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
static void stored_body(const lr_capture_t *c, buf_t *out)
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

/* ---- the recording file ------------------------------------------------------------------ */

/* llama-stack records base_url + endpoint: for a client at https://host/v1 that is
 * https://host/v1/v1/chat/completions. Rebuild it so the file names match its own. */
static void llama_url(const lr_capture_t *c, buf_t *out)
{
    size_t plen;
    const char *path = lr_url_path(c->url, &plen);
    const char *ep = lr_op_info(c->op)->endpoint;
    const char *tail = ep;
    if (!strncmp(ep, "/v1/", 4)) tail = ep + 3;        /* "/chat/completions" */
    size_t tl = strlen(tail);
    size_t base = plen >= tl && !memcmp(path + plen - tl, tail, tl) ? plen - tl : plen;
    buf_add(out, c->url, (size_t)(path - c->url) + base);
    buf_adds(out, ep);
}

/* LLMREPLAY_NORMALIZE=1: llama-stack's normalization of ids, timestamps and durations, so
 * re-recording gives small diffs. Off by default: then a replay is byte for byte the live one. */
static const char *normalize_hash; /* the request hash, for "rec-<12 hex>" ids */

static void put_data(buf_t *o, span_t data)
{
    cJSON *j = lr_cfg()->normalize && js_kind(data) == '{' && lr_cjson() ? lr_json_parse(data.p, data.n) : NULL;
    if (!j) {
        if (js_valid(data)) js_minify(data, o);
        else lr_pyjson_str(data.p, data.n, o);
        return;
    }
    const cJSON *obj = J.GetObjectItemCaseSensitive(j, "object");
    bool model = cJSON_IsString(obj) && !strcmp(obj->valuestring, "model");
    char id[32];
    snprintf(id, sizeof id, "rec-%.12s", normalize_hash ? normalize_hash : "000000000000");
    struct { const char *k; cJSON *v; } rep[] = {
        {"id", model ? NULL : J.CreateString(id)}, {"created", model ? NULL : J.CreateNumber(0)},
        {"created_at", J.CreateString("1970-01-01T00:00:00.000000Z")}, {"total_duration", J.CreateNumber(0)},
        {"load_duration", J.CreateNumber(0)}, {"prompt_eval_duration", J.CreateNumber(0)}, {"eval_duration", J.CreateNumber(0)}};
    for (size_t i = 0; i < sizeof rep / sizeof rep[0]; i++) {
        const cJSON *cur = J.GetObjectItemCaseSensitive(j, rep[i].k);
        if (rep[i].v && cur && !cJSON_IsNull(cur)) {
            J.DeleteItemFromObjectCaseSensitive(j, rep[i].k);
            J.AddItemToObject(j, rep[i].k, rep[i].v);
        } else if (rep[i].v) {
            J.Delete(rep[i].v);
        }
    }
    char *txt = J.PrintUnformatted(j);
    buf_adds(o, txt ? txt : "null");
    J.free(txt);
    J.Delete(j);
}

static void add_item(buf_t *o, lr_op_t op, bool chunk, span_t data, bool first)
{
    if (!first) buf_adds(o, ",\n");
    buf_adds(o, "      {\"__type__\": ");
    const char *t = lr_op_type_name(op, chunk, data);
    lr_pyjson_str(t, strlen(t), o);
    buf_adds(o, ", \"__data__\": ");
    put_data(o, data);
    /* the event exactly as it came, when the compact form would differ (llama-stack ignores it) */
    if (js_valid(data) && !lr_cfg()->normalize) {
        buf_t m;
        buf_init(&m);
        js_minify(data, &m);
        if (m.len != data.n || memcmp(m.data, data.p, data.n)) {
            buf_adds(o, ", \"llmreplay_raw\": ");
            lr_pyjson_str(data.p, data.n, o);
        }
        buf_free(&m);
    }
    buf_addc(o, '}');
}

/* 'S' for an SSE answer, 'N' for NDJSON, 0 for a plain one. */
static char stream_kind(const lr_capture_t *c)
{
    if (strstr(c->content_type, "text/event-stream")) return 'S';
    return strstr(c->content_type, "ndjson") ? 'N' : 0;
}

/* Split a streamed body into events: each event's payload span and its arrival time, in arrays
 * the caller frees. Returns how many. */
static int split_events(const lr_capture_t *c, span_t **evp, double **msp)
{
    bool sse = stream_kind(c) == 'S';
    int max = 1 + (int)(c->body.len / 8);
    span_t *ev = *evp = calloc((size_t)max, sizeof *ev);
    double *ms = *msp = calloc((size_t)max, sizeof *ms);
    if (!ev || !ms) return 0;
    const char *p = c->body.data, *end = p + c->body.len;
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

/* dir/name, written durably and atomically (base/fs.c). */
static bool write_atomic(const char *dir, const char *name, const buf_t *text, char *why, size_t cap)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mkdir(dir, 0755);
    if (lr_write_atomic(path, 0644, text->data, text->len, NULL, 0)) return true;
    snprintf(why, cap, "%s: %s", path, strerror(errno));
    return false;
}

static void write_recording(const lr_capture_t *c)
{
    const char *dir = lr_cfg()->record_dir;
    if (!dir) { lr_error("LLMREPLAY_MODE=%s but neither LLMREPLAY_RECORD_DIR nor LLMREPLAY_DIR is set: nothing recorded", lr_mode_name(lr_mode())); return; }
    const char *tid = lr_cfg()->test_id;
    buf_t url, body, o;
    buf_init(&url);
    buf_init(&body);
    buf_init(&o);
    llama_url(c, &url);
    stored_body(c, &body);
    const char *model = "";
    char *modelbuf = NULL;
    span_t mv;
    if (js_kind((span_t){body.data, body.len}) == '{' && js_get((span_t){body.data, body.len}, "model", &mv) && js_kind(mv) == '"')
        model = modelbuf = js_strdup(mv);
    bool listing = lr_op_info(c->op)->listing;
    bool streaming = stream_kind(c) && c->status < 400;
    char hex[65], name[200];
    lr_llama_hash(c->method, url.data, (span_t){body.data, body.len}, listing ? NULL : tid, hex);
    normalize_hash = hex;
    /* the file: json.dump(indent=2)-like, with llama-stack's fields in its order */
    buf_adds(&o, "{\n  \"test_id\": ");
    if (tid) lr_pyjson_str(tid, strlen(tid), &o);
    else buf_adds(&o, "null");
    buf_adds(&o, ",\n  \"request\": {\n    \"method\": ");
    lr_pyjson_str(c->method, strlen(c->method), &o);
    buf_adds(&o, ",\n    \"url\": ");
    lr_pyjson_str(url.data, url.len, &o);
    buf_adds(&o, ",\n    \"headers\": {},\n    \"body\": ");
    buf_add(&o, body.data, body.len);
    buf_adds(&o, ",\n    \"endpoint\": ");
    lr_pyjson_str(lr_op_info(c->op)->endpoint, strlen(lr_op_info(c->op)->endpoint), &o);
    buf_adds(&o, ",\n    \"model\": ");
    lr_pyjson_str(model, strlen(model), &o);
    buf_adds(&o, "\n  },\n  \"response\": {\n    \"body\": ");
    span_t resp = {c->body.data ? c->body.data : "", c->body.len};
    char ids_digest[65] = "";
    if (c->status >= 400) {
        buf_adds(&o, "null,\n    \"is_streaming\": false,\n    \"is_exception\": true,\n    \"exception_data\": {\"category\": \"provider_sdk\", \"type\": \"APIStatusError\", \"status_code\": ");
        buf_printf(&o, "%d, \"message\": ", c->status);
        buf_t msg;
        buf_init(&msg);
        buf_printf(&msg, "Error code: %d - %.*s", c->status, (int)(resp.n < 2000 ? resp.n : 2000), resp.p);
        lr_pyjson_str(msg.data, msg.len, &o);
        buf_adds(&o, ", \"body\": ");
        if (js_kind(resp) == '{' && js_valid(resp)) js_minify(resp, &o);
        else if (resp.n) lr_pyjson_str(resp.p, resp.n, &o);
        else buf_adds(&o, "null");
        buf_adds(&o, "},\n    \"exception_message\": ");
        lr_pyjson_str(msg.data, msg.len, &o);
        buf_free(&msg);
    } else if (streaming) {
        span_t *ev;
        double *ms;
        int n = split_events(c, &ev, &ms);
        buf_adds(&o, "[\n");
        for (int i = 0; i < n; i++) add_item(&o, c->op, true, ev[i], i == 0);
        buf_adds(&o, "\n    ],\n    \"is_streaming\": true,\n    \"chunk_times_ms\": [");
        for (int i = 0; i < n; i++) buf_printf(&o, "%s%.1f", i ? ", " : "", ms[i]);
        buf_addc(&o, ']');
        free(ev);
        free(ms);
    } else if (lr_op_info(c->op)->record_items && js_kind(resp) == '{') {
        /* llama-stack keeps a model listing as the list of Model objects */
        span_t data;
        buf_adds(&o, "[\n");
        buf_t ids;
        buf_init(&ids);
        if (js_get(resp, lr_op_info(c->op)->record_items, &data)) {
            const char *pos = NULL;
            span_t item, id;
            for (int i = 0; js_next(data, &pos, &item); i++) {
                add_item(&o, c->op, false, item, i == 0);
                if (js_get(item, "id", &id)) { char *s = js_strdup(id); if (s) { buf_adds(&ids, s); buf_addc(&ids, '|'); } free(s); }
            }
        }
        buf_adds(&o, "\n    ],\n    \"is_streaming\": false");
        lr_sha256_hex(ids.data ? ids.data : "", ids.len, ids_digest);
        buf_free(&ids);
    } else {
        buf_adds(&o, "{\"__type__\": ");
        const char *t = lr_op_type_name(c->op, false, resp);
        lr_pyjson_str(t, strlen(t), &o);
        buf_adds(&o, ", \"__data__\": ");
        put_data(&o, resp);
        buf_adds(&o, "},\n    \"is_streaming\": false");
    }
    if (!streaming && resp.n && !lr_cfg()->normalize) {
        /* the exact bytes, when they are not the compact JSON a replay would rebuild from
         * __data__ (pretty-printed answers, non-JSON errors): llama-stack ignores the field */
        buf_t m;
        buf_init(&m);
        if (js_valid(resp)) js_minify(resp, &m);
        if (m.len != resp.n || memcmp(m.data, resp.p, resp.n)) {
            buf_adds(&o, ",\n    \"llmreplay_raw_body\": ");
            lr_pyjson_str(resp.p, resp.n, &o);
        }
        buf_free(&m);
    }
    buf_adds(&o, "\n  },\n  \"id_normalization_mapping\": {}\n}\n");
    if (ids_digest[0]) snprintf(name, sizeof name, "models-%s-%.8s.json", hex, ids_digest);
    else snprintf(name, sizeof name, "%s.json", hex);
    char why[4700];
    if (o.oom) lr_error("out of memory: the recording of %s %s was not written", c->method, c->url);
    else if (!write_atomic(dir, name, &o, why, sizeof why))
        lr_error("cannot write the recording of %s %s (%s); the program got its answer, nothing was recorded; "
                 "make LLMREPLAY_RECORD_DIR a writable directory", c->method, c->url, why);
    else lr_log(LR_INFO, "recorded %s %s -> %s/%s", c->method, c->url, dir, name);
    free(modelbuf);
    buf_free(&url);
    buf_free(&body);
    buf_free(&o);
}

/* One JSON line per exchange for LLMREPLAY_MODE=trace (llmreplay trace summarizes them). */
static void write_trace(const lr_capture_t *c)
{
    const char *path = lr_cfg()->trace_file;
    buf_t o;
    buf_init(&o);
    char host[160] = "";
    int port = 0;
    bool https;
    if (lr_url_hostport(c->url, host, sizeof host, &port, &https)) snprintf(host + strlen(host), sizeof host - strlen(host), ":%d", port);
    buf_printf(&o, "{\"time\":%.3f,\"pid\":%d,\"method\":", (double)time(NULL), (int)getpid());
    buf_json_str(&o, c->method, strlen(c->method));
    buf_adds(&o, ",\"url\":");
    buf_json_str(&o, c->url, strlen(c->url));
    buf_adds(&o, ",\"host\":");
    buf_json_str(&o, host, strlen(host));
    buf_adds(&o, ",\"endpoint\":");
    const char *ep = c->op ? lr_op_info(c->op)->endpoint : "";
    buf_json_str(&o, ep, strlen(ep));
    buf_printf(&o, ",\"status\":%d,\"ms\":%.1f,\"ttfb_ms\":%.1f,\"bytes_out\":%zu,\"bytes_in\":%zu",
               c->status, (lr_now() - c->t_start) * 1000, c->t_first, c->req.len, c->body.len);
    buf_adds(&o, ",\"request_headers\":{");
    bool first = true;
    for (const char *p = c->req_headers.data; p && *p;) {
        const char *e = strchr(p, '\n'), *colon = strchr(p, ':');
        if (!e) e = p + strlen(p);
        if (colon && colon < e) {
            const char *v = colon + 1;
            while (v < e && *v == ' ') v++;
            const char *ve = e;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            if (!first) buf_addc(&o, ',');
            first = false;
            buf_json_str(&o, p, (size_t)(colon - p));
            buf_addc(&o, ':');
            if (lr_secret_header(p, (size_t)(colon - p))) buf_adds(&o, "\"[REDACTED]\"");
            else buf_json_str(&o, v, (size_t)(ve - v));
        }
        p = *e ? e + 1 : e;
    }
    buf_adds(&o, "},\"request\":");
    buf_t body;
    buf_init(&body);
    stored_body(c, &body);
    span_t rb = {body.data, body.len};
    if (c->req.len && js_valid(rb)) js_minify(rb, &o);
    else buf_json_str(&o, c->req.data ? c->req.data : "", c->req.len);
    buf_free(&body);
    span_t resp = {c->body.data ? c->body.data : "", c->body.len};
    if (stream_kind(c) && c->body.len) {
        span_t *ev;
        double *ms;
        int n = split_events(c, &ev, &ms);
        buf_adds(&o, ",\"events\":[");
        for (int i = 0; i < n; i++) {
            if (i) buf_addc(&o, ',');
            if (js_valid(ev[i])) js_minify(ev[i], &o);
            else buf_json_str(&o, ev[i].p, ev[i].n);
        }
        buf_adds(&o, "],\"event_ms\":[");
        for (int i = 0; i < n; i++) buf_printf(&o, "%s%.1f", i ? "," : "", ms[i]);
        buf_addc(&o, ']');
        free(ev);
        free(ms);
    } else {
        buf_adds(&o, ",\"response\":");
        if (resp.n && js_valid(resp)) js_minify(resp, &o);
        else buf_json_str(&o, resp.p, resp.n < 65536 ? resp.n : 65536);
    }
    if (c->error[0]) {
        buf_adds(&o, ",\"error\":");
        buf_json_str(&o, c->error, strlen(c->error));
    }
    buf_adds(&o, "}\n");
    if (!o.oom && !lr_append_line(path, o.data, o.len)) lr_warn("cannot append to the trace %s: %s", path, strerror(errno));
    buf_free(&o);
}

void lr_capture_finish(lr_capture_t *c)
{
    if (!c) return;
    lr_mode_t m = lr_mode();
    if (m == MODE_TRACE) { write_trace(c); lr_capture_free(c); return; }
    if (c->error[0]) lr_error("upstream call %s %s failed (%s): reported, nothing recorded", c->method, c->url, c->error);
    else if ((m == MODE_RECORD || m == MODE_RECORD_IF_MISSING) && c->op != OP_NONE && c->status) write_recording(c);
    lr_capture_free(c);
}
