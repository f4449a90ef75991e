#include "engine/render.h"
#include "engine/raw.h"
#include "base/config.h"
#include "base/log.h"
#include "engine/gemini.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lr_reason(int s)
{
    switch (s) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return s < 300 ? "OK" : s < 500 ? "Client Error" : "Server Error";
    }
}

void lr_response_event(lr_response_t *r, buf_t *b)
{
    if (b->oom) { buf_free(b); return; }
    lr_event_t *ev = realloc(r->events, sizeof *ev * (size_t)(r->nevents + 1));
    if (!ev) { buf_free(b); return; }
    r->events = ev;
    size_t n;
    char *d = buf_steal(b, &n);
    if (!d) return;
    r->events[r->nevents++] = (lr_event_t){d, n};
    r->body_len += n;
}

/* The payload of a recorded object: __data__ of a {"__type__","__data__"} wrapper, else itself. */
static span_t payload(span_t item)
{
    span_t d, t;
    if (js_kind(item) == '{' && js_get(item, "__type__", &t) && js_get(item, "__data__", &d)) return d;
    return item;
}

/* The event's JSON text: the exact bytes when the recording kept them, else compact. */
static void put_json(span_t data, const char *raw, buf_t *b)
{
    if (raw) buf_adds(b, raw);
    else js_minify(data, b);
}

static void frame(lr_frame_t f, span_t data, const char *raw, buf_t *b)
{
    span_t type;
    switch (f) {
    case FRAME_SSE_DONE:
        buf_adds(b, "data: ");
        put_json(data, raw, b);
        buf_adds(b, "\n\n");
        break;
    case FRAME_SSE_EVENTS:
        if (js_kind(data) == '{' && js_get(data, "type", &type) && js_kind(type) == '"') {
            char *t = js_strdup(type);
            if (t && !strpbrk(t, "\r\n")) buf_printf(b, "event: %s\n", t);
            free(t);
        }
        buf_adds(b, "data: ");
        put_json(data, raw, b);
        buf_adds(b, "\n\n");
        break;
    case FRAME_NDJSON:
        put_json(data, raw, b);
        buf_addc(b, '\n');
        break;
    }
}

/* An error body in the operation's dialect; code NULL writes null. */
static void error_body(lr_op_t op, int status, const char *type, const char *code, const char *msg, buf_t *b)
{
    if (lr_op_info(op)->errors == ERR_GOOGLE) {
        lr_gemini_error_body(status, msg, b);
        return;
    }
    if (lr_op_info(op)->errors == ERR_OLLAMA) {
        buf_adds(b, "{\"error\":");
        buf_json_strz(b, msg);
        buf_addc(b, '}');
        return;
    }
    buf_adds(b, "{\"error\":{\"message\":");
    buf_json_strz(b, msg);
    buf_adds(b, ",\"type\":");
    buf_json_strz(b, type);
    buf_adds(b, ",\"param\":null,\"code\":");
    if (code) buf_json_strz(b, code);
    else buf_adds(b, "null");
    buf_adds(b, "}}");
}

/* Error body of an exception recording: the provider's own body when recorded. */
static void exception_body(lr_op_t op, int status, span_t resp, buf_t *b)
{
    span_t ed, eb, v;
    bool have_ed = js_get(resp, "exception_data", &ed) && js_kind(ed) == '{';
    if (have_ed && js_get(ed, "body", &eb) && js_kind(eb) == '{') { js_minify(eb, b); return; }
    if (have_ed && js_get(ed, "body", &eb) && js_kind(eb) == '"') { /* a non-JSON error body, as recorded */
        char *t = js_strdup(eb);
        if (t) { buf_adds(b, t); free(t); return; }
    }
    char *msg = NULL, *type = NULL;
    if (have_ed && js_get(ed, "message", &v) && js_kind(v) == '"') msg = js_strdup(v);
    if (!msg && js_get(resp, "exception_message", &v) && js_kind(v) == '"') msg = js_strdup(v);
    if (have_ed && js_get(ed, "type", &v) && js_kind(v) == '"') type = js_strdup(v);
    error_body(op, status, type ? type : "api_error", NULL, msg ? msg : "recorded error", b);
    free(msg);
    free(type);
}

static lr_response_t *fail(const lr_rec_t *r, const char *why)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "llmreplay: recording %s cannot be served: %s; fix or re-record it", r->path, why);
    lr_warn("recording %s cannot be served: %s", r->path, why);
    lr_response_t *e = lr_render_error(r->op, 500, "llmreplay_error", "recording_unreadable", msg);
    if (e) e->owned = false; /* cached like a good answer: the file is read once */
    return e;
}

/* A streamed recording: one event per chunk, then the end the framing wants. */
static void render_stream(lr_response_t *o, const lr_rec_t *r, span_t resp, span_t body, buf_t *b)
{
    lr_frame_t f = lr_op_info(r->op)->frame;
    o->stream = true;
    o->content_type = f == FRAME_NDJSON ? "application/x-ndjson" : "text/event-stream; charset=utf-8";
    const char *pos = NULL;
    span_t item;
    if (js_next(body, &pos, &item) && js_kind(item) == '"') {
        /* llama-stack's raw HTTP stream: the lines as they came */
        lr_raw_stream_lines(o, body, f != FRAME_NDJSON, true, b);
        return;
    }
    pos = NULL;
    while (js_next(body, &pos, &item)) {
        span_t rawspan;
        char *raw = js_kind(item) == '{' && js_get(item, "llmreplay_raw", &rawspan) && js_kind(rawspan) == '"'
                        ? js_strdup(rawspan) : NULL;
        buf_t w;
        buf_init(&w);
        span_t data = payload(item);
        if (!raw && lr_op_info(r->op)->google && lr_gemini_answer(data, &w)) data = (span_t){w.data, w.len};
        frame(f, data, raw, b);
        buf_free(&w);
        free(raw);
        lr_response_event(o, b);
    }
    span_t times;
    if (js_get(resp, "chunk_times_ms", &times) && js_kind(times) == '[') {
        const char *tpos = NULL;
        span_t t;
        o->times_ms = calloc((size_t)o->nevents + 1, sizeof *o->times_ms);
        while (o->times_ms && o->ntimes < o->nevents && js_next(times, &tpos, &t))
            o->times_ms[o->ntimes++] = strtod(js_trim(t).p, NULL);
    }
    if (r->exception) {
        /* The stream broke upstream: send what came, then the error, never a clean end. */
        buf_t e;
        buf_init(&e);
        exception_body(r->op, r->status, resp, &e);
        frame(f, (span_t){e.data ? e.data : "{}", e.len}, NULL, b);
        buf_free(&e);
        lr_response_event(o, b);
        o->status = 200;
        o->reason = "OK";
    } else if (f == FRAME_SSE_DONE) {
        buf_adds(b, "data: [DONE]\n\n");
        lr_response_event(o, b);
    }
}

/* A plain answer: the error, the body, or a listing recorded as a list, wrapped as the API does. */
static void render_plain(lr_response_t *o, const lr_rec_t *r, span_t resp, span_t body, bool have_body, buf_t *b)
{
    o->content_type = "application/json";
    if (r->exception) {
        exception_body(r->op, r->status, resp, b);
    } else if (!have_body) {
        buf_adds(b, "null");
    } else if (js_kind(body) == '[') {
        const char *pos = NULL, *wrap = lr_op_info(r->op)->list_wrap;
        span_t item;
        buf_adds(b, wrap ? wrap : "[");
        for (int i = 0; js_next(body, &pos, &item); i++) {
            if (i) buf_addc(b, ',');
            js_minify(payload(item), b);
        }
        buf_adds(b, wrap ? "]}" : "]");
    } else if (!(lr_op_info(r->op)->google && lr_gemini_answer(payload(body), b))) {
        js_minify(payload(body), b);
    }
    lr_response_event(o, b);
}

lr_response_t *lr_render_recording(const lr_rec_t *r)
{
    size_t len, mlen;
    char *text = lr_read_file(r->path, lr_max_file_bytes(), &len);
    if (!text) return fail(r, "the file can no longer be read");
    const char *refused;
    char *mapped = lr_rec_apply_id_mapping(text, len, &mlen, &refused);
    if (refused) { free(text); return fail(r, refused); }
    if (mapped) { free(text); text = mapped; len = mlen; }
    span_t resp, body, raw;
    if (!lr_rec_response_span(text, len, &resp)) { free(text); return fail(r, "it changed since it was indexed"); }
    lr_response_t *o = calloc(1, sizeof *o);
    if (!o) { free(text); return NULL; }
    o->rec = r;
    o->status = r->status;
    o->reason = lr_reason(o->status);
    bool have_body = js_get(resp, "body", &body) && !js_is_null(body);
    buf_t b;
    buf_init(&b);
    char why[200];
    if (lr_op_is_raw(r->op)) {
        if (!lr_raw_render(o, r, resp, &b, why, sizeof why)) {
            buf_free(&b);
            free(text);
            o->owned = true;
            lr_response_free(o);
            return fail(r, why);
        }
    } else if (r->streaming && have_body && js_kind(body) == '[') {
        render_stream(o, r, resp, body, &b);
    } else if (js_get(resp, "llmreplay_raw_body", &raw) && js_kind(raw) == '"' &&
               !(lr_op_info(r->op)->google && lr_op_info(r->op)->listing)) { /* Google's listings: one page */
        /* recorded by llmreplay: the bytes the client saw live */
        o->content_type = "application/json";
        char *t = js_strdup(raw);
        if (t) buf_adds(&b, t);
        free(t);
        lr_response_event(o, &b);
    } else {
        render_plain(o, r, resp, body, have_body, &b);
    }
    buf_printf(&b, "X-LLMReplay-Recording: %s\r\n", r->path);
    o->extra_headers = buf_steal(&b, NULL);
    free(text);
    return o;
}

lr_response_t *lr_render_error(lr_op_t op, int status, const char *type, const char *code, const char *message)
{
    lr_response_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->status = status;
    o->reason = lr_reason(status);
    o->content_type = "application/json";
    o->owned = true;
    buf_t b;
    buf_init(&b);
    error_body(op, status, type, code, message, &b);
    lr_response_event(o, &b);
    /* OpenAI SDKs honour x-should-retry: a miss is final, retrying only hides it. */
    o->extra_headers = strdup("x-should-retry: false\r\n");
    return o;
}

void lr_response_free(lr_response_t *r)
{
    if (!r || !r->owned) return;
    for (int i = 0; i < r->nevents && !r->body; i++) free(r->events[i].data);
    free(r->body);
    free(r->events);
    free(r->times_ms);
    free(r->extra_headers);
    free(r->own_ctype);
    free(r);
}

void lr_response_join(lr_response_t *r)
{
    if (!r || r->body || r->nevents < 1) return;
    char *b = malloc(r->body_len + 1), *p = b;
    if (!b) return;
    for (int i = 0; i < r->nevents; i++) {
        memcpy(p, r->events[i].data, r->events[i].len);
        free(r->events[i].data);
        r->events[i].data = p;
        p += r->events[i].len;
    }
    *p = 0;
    r->body = b;
}

double lr_pace_setting(void)
{
    if (lr_cfg()->speed == 0) return 0; /* LLMREPLAY_SPEED=0: as fast as possible */
    if (lr_cfg()->pace_recorded) return -1;
    return lr_cfg()->pace_ms;
}

double lr_event_gap_ms(const lr_response_t *r, int i, double pace_ms)
{
    if (i <= 0 || lr_cfg()->speed == 0) return 0;
    if (pace_ms < 0) {
        if (!r->times_ms || i >= r->ntimes) return 0;
        double g = r->times_ms[i] - r->times_ms[i - 1];
        return g > 0 ? g / lr_cfg()->speed : 0;
    }
    return pace_ms / lr_cfg()->speed;
}

void lr_render_head(const lr_response_t *r, buf_t *out, bool chunked)
{
    /* no printf: this runs for every answer */
    buf_adds(out, "HTTP/1.1 ");
    buf_addu(out, (unsigned)r->status, 10);
    buf_addc(out, ' ');
    buf_adds(out, r->reason);
    buf_adds(out, "\r\nContent-Type: ");
    buf_adds(out, r->content_type);
    if (chunked) {
        buf_adds(out, "\r\nTransfer-Encoding: chunked\r\n");
    } else {
        buf_adds(out, "\r\nContent-Length: ");
        buf_addu(out, r->body_len, 10);
        buf_adds(out, "\r\n");
    }
    if (r->stream) buf_adds(out, "Cache-Control: no-cache\r\n");
    if (r->extra_headers) buf_adds(out, r->extra_headers);
    buf_adds(out, "\r\n");
}
