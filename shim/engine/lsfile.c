/* A live exchange as a llama-stack recording file: its fields in llama-stack's order, its file
 * name llama-stack's request hash, written atomically. */
#include "engine/lsfile.h"
#include "engine/usage.h"
#include "engine/engine.h"
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


/* llama-stack records base_url + endpoint: for a client at https://host/v1 that is
 * https://host/v1/v1/chat/completions. Rebuild it so the file names match its own. */
static void llama_url(const lr_capture_t *c, buf_t *out)
{
    if (lr_op_info(c->op)->google) { buf_adds(out, c->url); return; } /* the model is in it */
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
 * re-recording gives small diffs. Off by default: then a replay is byte for byte the live one.
 * hash is the request hash, for "rec-<12 hex>" ids. */
static void put_data(buf_t *o, span_t data, const char *hash)
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
    snprintf(id, sizeof id, "rec-%.12s", hash);
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

/* What a file is made of while it is written. */
typedef struct {
    const lr_capture_t *c;
    buf_t o;             /* the file's text */
    span_t resp;         /* the response body as received */
    char hex[65];        /* the request hash: the file name */
    char ids_digest[65]; /* model listings: digest of the model ids, part of the name */
} lsfile_t;

/* Raw bytes field (llama-stack ignores it) when the compact form would differ from them. */
static void raw_if_different(buf_t *o, const char *field, span_t data)
{
    buf_t m;
    buf_init(&m);
    if (js_valid(data)) js_minify(data, &m);
    if (m.len != data.n || memcmp(m.data, data.p, data.n)) {
        buf_adds(o, field);
        lr_pyjson_str(data.p, data.n, o);
    }
    buf_free(&m);
}

static void add_item(lsfile_t *f, bool chunk, span_t data, bool first)
{
    buf_t *o = &f->o;
    if (!first) buf_adds(o, ",\n");
    buf_adds(o, "      {\"__type__\": ");
    const char *t = lr_op_type_name(f->c->op, chunk, data);
    lr_pyjson_str(t, strlen(t), o);
    buf_adds(o, ", \"__data__\": ");
    put_data(o, data, f->hex);
    /* the event exactly as it came, when the compact form would differ (llama-stack ignores it) */
    if (js_valid(data) && !lr_cfg()->normalize) raw_if_different(o, ", \"llmreplay_raw\": ", data);
    buf_addc(o, '}');
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

/* "test_id" and "request", in llama-stack's order. */
static void put_request(lsfile_t *f, const char *tid, const buf_t *url, const buf_t *body)
{
    const lr_capture_t *c = f->c;
    buf_t *o = &f->o;
    const char *model = "";
    char *modelbuf = NULL;
    span_t mv, b = {body->data, body->len};
    if (js_kind(b) == '{' && js_get(b, "model", &mv) && js_kind(mv) == '"') model = modelbuf = js_strdup(mv);
    const char *ep = lr_op_info(c->op)->endpoint;
    char gmodel[256], *gep = NULL;
    if (lr_op_info(c->op)->google) { /* Google's: the path is the endpoint, the model in it */
        size_t plen;
        const char *path = lr_url_path(url->data, &plen);
        ep = gep = lr_strndup(path, plen);
        if (!ep) ep = "";
        if (lr_gemini_url_model(url->data, gmodel, sizeof gmodel)) model = gmodel;
    }
    buf_adds(o, "{\n  \"test_id\": ");
    if (tid) lr_pyjson_str(tid, strlen(tid), o);
    else buf_adds(o, "null");
    buf_adds(o, ",\n  \"request\": {\n    \"method\": ");
    lr_pyjson_str(c->method, strlen(c->method), o);
    buf_adds(o, ",\n    \"url\": ");
    lr_pyjson_str(url->data, url->len, o);
    buf_adds(o, ",\n    \"headers\": {},\n    \"body\": ");
    buf_add(o, body->data, body->len);
    buf_adds(o, ",\n    \"endpoint\": ");
    lr_pyjson_str(ep, strlen(ep), o);
    buf_adds(o, ",\n    \"model\": ");
    lr_pyjson_str(model, strlen(model), o);
    buf_adds(o, "\n  },\n  \"response\": {\n    \"body\": ");
    free(modelbuf);
    free(gep);
}

/* An upstream error: an exception recording, replayed with the same status and body. */
static void put_exception(lsfile_t *f)
{
    buf_t *o = &f->o;
    span_t resp = f->resp;
    int status = f->c->status;
    buf_adds(o, "null,\n    \"is_streaming\": false,\n    \"is_exception\": true,\n    \"exception_data\": {\"category\": \"provider_sdk\", \"type\": \"APIStatusError\", \"status_code\": ");
    buf_printf(o, "%d, \"message\": ", status);
    buf_t msg;
    buf_init(&msg);
    buf_printf(&msg, "Error code: %d - %.*s", status, (int)(resp.n < 2000 ? resp.n : 2000), resp.p);
    lr_pyjson_str(msg.data, msg.len, o);
    buf_adds(o, ", \"body\": ");
    if (js_kind(resp) == '{' && js_valid(resp)) js_minify(resp, o);
    else if (resp.n) lr_pyjson_str(resp.p, resp.n, o);
    else buf_adds(o, "null");
    buf_adds(o, "},\n    \"exception_message\": ");
    lr_pyjson_str(msg.data, msg.len, o);
    buf_free(&msg);
}

static void put_stream(lsfile_t *f)
{
    span_t *ev;
    double *ms;
    int n = lr_capture_events(f->c, &ev, &ms);
    buf_adds(&f->o, "[\n");
    for (int i = 0; i < n; i++) add_item(f, true, ev[i], i == 0);
    buf_adds(&f->o, "\n    ],\n    \"is_streaming\": true,\n    \"chunk_times_ms\": [");
    for (int i = 0; i < n; i++) buf_printf(&f->o, "%s%.1f", i ? ", " : "", ms[i]);
    buf_addc(&f->o, ']');
    free(ev);
    free(ms);
}

/* llama-stack keeps a model listing as the list of Model objects. */
static void put_listing(lsfile_t *f)
{
    span_t data;
    buf_adds(&f->o, "[\n");
    buf_t ids;
    buf_init(&ids);
    if (js_get(f->resp, lr_op_info(f->c->op)->record_items, &data)) {
        const char *pos = NULL;
        span_t item, id;
        for (int i = 0; js_next(data, &pos, &item); i++) {
            add_item(f, false, item, i == 0);
            if (js_get(item, "id", &id)) { char *s = js_strdup(id); if (s) { buf_adds(&ids, s); buf_addc(&ids, '|'); } free(s); }
        }
    }
    buf_adds(&f->o, "\n    ],\n    \"is_streaming\": false");
    lr_sha256_hex(ids.data ? ids.data : "", ids.len, f->ids_digest);
    buf_free(&ids);
}

static void put_plain(lsfile_t *f)
{
    buf_adds(&f->o, "{\"__type__\": ");
    const char *t = lr_op_type_name(f->c->op, false, f->resp);
    lr_pyjson_str(t, strlen(t), &f->o);
    buf_adds(&f->o, ", \"__data__\": ");
    put_data(&f->o, f->resp, f->hex);
    buf_adds(&f->o, "},\n    \"is_streaming\": false");
}

void lr_lsfile_write(const lr_capture_t *c)
{
    const char *dir = lr_cfg()->record_dir, *tid = c->test_id;
    if (!dir) { lr_error("LLMREPLAY_MODE=%s but neither LLMREPLAY_RECORD_DIR nor LLMREPLAY_DIR is set: nothing recorded", lr_mode_name(lr_mode())); return; }
    lsfile_t f = {.c = c, .resp = {c->body.data ? c->body.data : "", c->body.len}};
    buf_t url, body;
    buf_init(&url);
    buf_init(&body);
    buf_init(&f.o);
    llama_url(c, &url);
    lr_capture_stored_body(c, &body);
    bool listing = lr_op_info(c->op)->listing;
    bool streaming = lr_capture_stream_kind(c) && c->status < 400;
    lr_llama_hash(c->method, url.data, (span_t){body.data, body.len}, listing ? NULL : tid, f.hex);
    /* the file: json.dump(indent=2)-like, with llama-stack's fields in its order */
    put_request(&f, tid, &url, &body);
    if (c->status >= 400) put_exception(&f);
    else if (streaming) put_stream(&f);
    else if (lr_op_info(c->op)->record_items && js_kind(f.resp) == '{') put_listing(&f);
    else put_plain(&f);
    /* the exact bytes, when they are not the compact JSON a replay would rebuild from __data__
     * (pretty-printed answers, non-JSON errors): llama-stack ignores the field */
    if (!streaming && f.resp.n && !lr_cfg()->normalize) raw_if_different(&f.o, ",\n    \"llmreplay_raw_body\": ", f.resp);
    buf_adds(&f.o, "\n  },\n  \"id_normalization_mapping\": {}\n}\n");
    char name[200], why[4700];
    if (f.ids_digest[0]) snprintf(name, sizeof name, "models-%s-%.8s.json", f.hex, f.ids_digest);
    else snprintf(name, sizeof name, "%s.json", f.hex);
    if (f.o.oom) lr_error("out of memory: the recording of %s %s was not written", c->method, c->url);
    else if (!write_atomic(dir, name, &f.o, why, sizeof why))
        lr_error("cannot write the recording of %s %s (%s); the program got its answer, nothing was recorded; "
                 "make LLMREPLAY_RECORD_DIR a writable directory", c->method, c->url, why);
    else {
        lr_log(LR_INFO, "recorded %s %s -> %s/%s", c->method, c->url, dir, name);
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        lr_usage_recorded(path);
        if (lr_mode() == MODE_RECORD && lr_cfg()->only) lr_engine_replaced(c, path);
    }
    buf_free(&url);
    buf_free(&body);
    buf_free(&f.o);
}
