/* HTTP/2 sessions for the responder: nghttp2 in memory-buffer mode (mem_recv / mem_send), so
 * the responder keeps its one epoll loop and its own socket handling. libnghttp2 is loaded at
 * run time, when the first h2 connection appears; only its header is used at build time. */
#include "net/h2.h"
#include "base/log.h"
#include "base/real.h"
#include <dlfcn.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define MAX_FIELDS (64 * 1024) /* a request's header fields, as the HTTP/1 head limit */
#define F(name) __typeof__(&nghttp2_##name) name

static struct {
    F(session_callbacks_new);
    F(session_callbacks_del);
    F(session_callbacks_set_on_begin_headers_callback);
    F(session_callbacks_set_on_header_callback);
    F(session_callbacks_set_on_data_chunk_recv_callback);
    F(session_callbacks_set_on_frame_recv_callback);
    F(session_callbacks_set_on_stream_close_callback);
    F(session_server_new);
    F(session_del);
    F(session_mem_recv);
    F(session_mem_send);
    F(session_want_read);
    F(session_want_write);
    F(session_resume_data);
    F(session_terminate_session);
    F(session_get_stream_user_data);
    F(session_set_stream_user_data);
    F(submit_settings);
    F(submit_response);
    F(submit_rst_stream);
    F(strerror);
} ng;
static nghttp2_session_callbacks *cbs;
static bool loaded;
static pthread_once_t once = PTHREAD_ONCE_INIT;

typedef struct stream {
    int32_t id;
    struct stream *next;
    char method[16];
    buf_t path, authority, headers, body;
    bool too_big, answered;
    lr_response_t *resp;
    int next_ev;
    size_t ev_off;
    double pace_ms, due; /* due: when the next event may go (paced streams) */
    bool deferred;       /* nghttp2 waits for resume_data */
    lr_h2_live_t *live;
} stream_t;

struct lr_h2 {
    nghttp2_session *s;
    stream_t *streams;
    const char *scheme;
    char host[160];
    size_t max_body;
    lr_h2_request_fn fn;
    void *ud;
};

struct lr_h2_live {
    pthread_mutex_t mu;
    pthread_cond_t room;
    int refs;
    int status;
    buf_t head, data;
    size_t off;                        /* bytes of data already framed */
    bool have_head, ended, gone, submitted;
    void (*wake)(void);
};

static void live_put(lr_h2_live_t *l)
{
    pthread_mutex_lock(&l->mu);
    bool last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last) return;
    buf_free(&l->head);
    buf_free(&l->data);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->room);
    free(l);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud);
static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *ud);
static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *ud);
static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud);
static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud);

static void load(void)
{
    void *h = lr_dlopen_private("libnghttp2.so.14"); /* Node exports its own nghttp2, of another version */
    if (!h) {
        lr_error("an HTTP/2 client connected, and libnghttp2 cannot be loaded (%s); install it: apt-get install "
                 "libnghttp2-14, or make the client use HTTP/1.1", dlerror());
        return;
    }
#define SYM(f) if (!(*(void **)&ng.f = dlsym(h, "nghttp2_" #f))) goto missing
    SYM(session_callbacks_new); SYM(session_callbacks_del);
    SYM(session_callbacks_set_on_begin_headers_callback); SYM(session_callbacks_set_on_header_callback);
    SYM(session_callbacks_set_on_data_chunk_recv_callback); SYM(session_callbacks_set_on_frame_recv_callback);
    SYM(session_callbacks_set_on_stream_close_callback);
    SYM(session_server_new); SYM(session_del); SYM(session_mem_recv); SYM(session_mem_send);
    SYM(session_want_read); SYM(session_want_write); SYM(session_resume_data); SYM(session_terminate_session);
    SYM(session_get_stream_user_data); SYM(session_set_stream_user_data);
    SYM(submit_settings); SYM(submit_response); SYM(submit_rst_stream); SYM(strerror);
#undef SYM
    if (ng.session_callbacks_new(&cbs) != 0) return;
    ng.session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    ng.session_callbacks_set_on_header_callback(cbs, on_header);
    ng.session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    ng.session_callbacks_set_on_frame_recv_callback(cbs, on_frame);
    ng.session_callbacks_set_on_stream_close_callback(cbs, on_close);
    loaded = true;
    return;
missing:
    lr_error("the loaded libnghttp2 lacks %s; install libnghttp2-14 >= 1.52", dlerror());
}

int lr_h2_preface(const char *p, size_t n)
{
    size_t k = n < sizeof PREFACE - 1 ? n : sizeof PREFACE - 1;
    if (memcmp(p, PREFACE, k) != 0) return 0;
    return k == sizeof PREFACE - 1 ? 1 : -1;
}

/* ---- requests in ------------------------------------------------------------------------- */

static stream_t *stream_of(lr_h2_t *h, int32_t id) { return ng.session_get_stream_user_data(h->s, id); }

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    lr_h2_t *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    stream_t *st = calloc(1, sizeof *st);
    if (!st) return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->id = f->hd.stream_id;
    st->next = h->streams;
    h->streams = st;
    ng.session_set_stream_user_data(s, st->id, st);
    return 0;
}

static bool is_hop(const uint8_t *name, size_t nl)
{
    /* framing and connection headers are the responder's own, as on HTTP/1 */
    static const char *hop[] = {"host", "content-length", "connection", "te", "accept-encoding", "expect", NULL};
    for (int i = 0; hop[i]; i++)
        if (strlen(hop[i]) == nl && !memcmp(hop[i], name, nl)) return true;
    return false;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *ud)
{
    stream_t *st = stream_of(ud, f->hd.stream_id);
    if (!st || f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* trailers: ignored */
    if (st->path.len + st->authority.len + st->headers.len + nl + vl > MAX_FIELDS) { st->too_big = true; return 0; }
    if (nl == 7 && !memcmp(name, ":method", 7)) snprintf(st->method, sizeof st->method, "%.*s", (int)(vl < 15 ? vl : 15), value);
    else if (nl == 5 && !memcmp(name, ":path", 5)) { st->path.len = 0; buf_add(&st->path, value, vl); }
    else if ((nl == 10 && !memcmp(name, ":authority", 10)) || (nl == 4 && !memcmp(name, "host", 4) && !st->authority.len)) {
        st->authority.len = 0;
        buf_add(&st->authority, value, vl);
    } else if (nl && name[0] != ':' && !is_hop(name, nl)) {
        buf_add(&st->headers, name, nl);
        buf_adds(&st->headers, ": ");
        buf_add(&st->headers, value, vl);
        buf_addc(&st->headers, '\n');
    }
    return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *p, size_t n, void *ud)
{
    lr_h2_t *h = ud;
    stream_t *st = stream_of(h, id);
    if (!st || st->too_big) return 0;
    if (st->body.len + n > h->max_body) { st->too_big = true; buf_free(&st->body); return 0; }
    buf_add(&st->body, p, n);
    return 0;
}

static void request(lr_h2_t *h, stream_t *st)
{
    if (st->answered) return;
    st->answered = true;
    if (st->too_big || st->body.oom || st->path.oom || !st->method[0] || !st->path.len) {
        const char *msg = st->too_big ? "llmreplay: request headers over 64 KiB or body too large (LLMREPLAY_MAX_REQUEST_MB)"
                                      : "llmreplay: malformed HTTP/2 request (no :method or :path)";
        lr_h2_respond(h, st->id, lr_render_error(OP_CHAT, st->too_big ? 413 : 400, "invalid_request_error",
                                                 "llmreplay_bad_request", msg));
        return;
    }
    buf_t u;
    buf_init(&u);
    buf_printf(&u, "%s://", h->scheme);
    if (st->authority.len) buf_add(&u, st->authority.data, st->authority.len);
    else buf_adds(&u, h->host);
    if (st->path.data[0] != '/') buf_addc(&u, '/');
    buf_add(&u, st->path.data, st->path.len);
    buf_addc(&u, 0);
    lr_h2_req_t q = {st->method, u.data, st->body.data, st->body.len, st->headers.data ? st->headers.data : ""};
    if (!u.oom) h->fn(h->ud, st->id, &q);
    else ng.submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    buf_free(&u);
    buf_free(&st->body);
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        stream_t *st = stream_of(ud, f->hd.stream_id);
        if (st) request(ud, st);
    }
    return 0;
}

static void stream_free(stream_t *st)
{
    buf_free(&st->path);
    buf_free(&st->authority);
    buf_free(&st->headers);
    buf_free(&st->body);
    lr_response_free(st->resp);
    if (st->live) {
        pthread_mutex_lock(&st->live->mu);
        st->live->gone = true; /* the worker stops at its next push */
        pthread_cond_broadcast(&st->live->room);
        pthread_mutex_unlock(&st->live->mu);
        live_put(st->live);
    }
    free(st);
}

/* A stream ends (answered, reset by the client, or the session going away). */
static int on_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    lr_h2_t *h = ud;
    for (stream_t **pp = &h->streams; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != id) continue;
        stream_t *st = *pp;
        *pp = st->next;
        ng.session_set_stream_user_data(s, id, NULL);
        stream_free(st);
        break;
    }
    return 0;
}

/* ---- answers out ------------------------------------------------------------------------- */

#define MAX_NV 48

typedef struct {
    nghttp2_nv nv[MAX_NV];
    size_t n;
    char status[8], length[24];
    char *lines; /* a lowercased copy of the extra header lines the entries point into */
} head_t;

static void nv_add(head_t *hd, const char *name, size_t nl, const char *value, size_t vl)
{
    if (hd->n == MAX_NV) return;
    hd->nv[hd->n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, NGHTTP2_NV_FLAG_NONE};
}

/* "Name: value\r\n" lines as h2 fields: lowercase names, no connection-specific ones. */
static void nv_lines(head_t *hd, const char *lines, size_t len)
{
    if (!lines || !len || !(hd->lines = lr_strndup(lines, len))) return;
    for (char *p = hd->lines, *end = hd->lines + len; p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        char *e = eol ? eol : end, *colon = memchr(p, ':', (size_t)(e - p));
        if (colon && colon > p) {
            for (char *q = p; q < colon; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
            char *v = colon + 1, *ve = e;
            while (v < ve && (*v == ' ' || *v == '\t')) v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) ve--;
            static const char *skip = ",connection,keep-alive,transfer-encoding,content-length,upgrade,proxy-connection,te,";
            char key[40];
            int kl = snprintf(key, sizeof key, ",%.*s,", (int)(colon - p < 32 ? colon - p : 32), p);
            if (kl > 0 && !strstr(skip, key)) nv_add(hd, p, (size_t)(colon - p), v, (size_t)(ve - v));
        }
        p = e + 1;
    }
}

static ssize_t read_events(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                           nghttp2_data_source *src, void *ud)
{
    stream_t *st = src->ptr;
    const lr_response_t *r = st->resp;
    if (st->next_ev >= r->nevents) { *flags |= NGHTTP2_DATA_FLAG_EOF; return 0; }
    if (st->ev_off == 0 && st->next_ev > 0 && st->pace_ms != 0 && lr_now() < st->due) {
        st->deferred = true; /* lr_h2_output resumes it when due */
        return NGHTTP2_ERR_DEFERRED;
    }
    /* one event per DATA frame (split only by the frame size or the client's window) */
    const lr_event_t *ev = &r->events[st->next_ev];
    size_t n = ev->len - st->ev_off < length ? ev->len - st->ev_off : length;
    memcpy(buf, ev->data + st->ev_off, n);
    st->ev_off += n;
    if (st->ev_off == ev->len) {
        st->ev_off = 0;
        st->next_ev++;
        if (st->pace_ms != 0) st->due = lr_now() + lr_event_gap_ms(r, st->next_ev, st->pace_ms) / 1000;
    }
    if (st->next_ev >= r->nevents) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

void lr_h2_respond(lr_h2_t *h, int32_t id, lr_response_t *r)
{
    stream_t *st = r ? stream_of(h, id) : NULL;
    if (!st || st->resp || st->live) { /* reset meanwhile, or no memory */
        lr_response_free(r);
        if (!r) ng.submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    st->resp = r;
    st->pace_ms = r->stream ? lr_pace_setting() : 0; /* -1: the recorded timing */
    head_t hd = {.n = 0};
    snprintf(hd.status, sizeof hd.status, "%d", r->status);
    nv_add(&hd, ":status", 7, hd.status, strlen(hd.status));
    nv_add(&hd, "content-type", 12, r->content_type, strlen(r->content_type));
    if (!r->stream) {
        snprintf(hd.length, sizeof hd.length, "%zu", r->body_len);
        nv_add(&hd, "content-length", 14, hd.length, strlen(hd.length));
    } else {
        nv_add(&hd, "cache-control", 13, "no-cache", 8);
    }
    nv_lines(&hd, r->extra_headers, r->extra_headers ? strlen(r->extra_headers) : 0);
    bool body = strcmp(st->method, "HEAD") && r->nevents > 0;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_events};
    ng.submit_response(h->s, id, hd.nv, hd.n, body ? &prd : NULL);
    free(hd.lines);
}

static ssize_t read_live(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    stream_t *st = src->ptr;
    lr_h2_live_t *l = st->live;
    pthread_mutex_lock(&l->mu);
    size_t n = l->data.len - l->off < length ? l->data.len - l->off : length;
    memcpy(buf, l->data.data + l->off, n);
    l->off += n;
    if (l->off == l->data.len) {
        l->data.len = l->off = 0;
        pthread_cond_broadcast(&l->room);
    }
    bool end = l->ended && !l->data.len;
    pthread_mutex_unlock(&l->mu);
    if (end) *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!n && !end) { st->deferred = true; return NGHTTP2_ERR_DEFERRED; }
    return (ssize_t)n;
}

/* A live answer: submit its head once the worker has it, resume its data when more came. */
static void live_poll(lr_h2_t *h, stream_t *st)
{
    lr_h2_live_t *l = st->live;
    pthread_mutex_lock(&l->mu);
    bool submit = l->have_head && !l->submitted, more = l->data.len > l->off || l->ended;
    head_t hd = {.n = 0};
    if (submit) {
        l->submitted = true;
        snprintf(hd.status, sizeof hd.status, "%d", l->status);
        nv_add(&hd, ":status", 7, hd.status, strlen(hd.status));
        nv_lines(&hd, l->head.data, l->head.len);
    }
    pthread_mutex_unlock(&l->mu);
    if (submit) {
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_live};
        ng.submit_response(h->s, st->id, hd.nv, hd.n, strcmp(st->method, "HEAD") ? &prd : NULL);
        free(hd.lines);
    } else if (st->deferred && more) {
        st->deferred = false;
        ng.session_resume_data(h->s, st->id);
    }
}

lr_h2_live_t *lr_h2_live(lr_h2_t *h, int32_t id, void (*wake)(void))
{
    stream_t *st = stream_of(h, id);
    lr_h2_live_t *l = st && !st->resp && !st->live ? calloc(1, sizeof *l) : NULL;
    if (!l) return NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->room, NULL);
    l->refs = 2; /* the stream's and the worker's */
    l->wake = wake;
    st->live = l;
    return l;
}

void lr_h2_live_head(lr_h2_live_t *l, int status, const char *headers, size_t len)
{
    pthread_mutex_lock(&l->mu);
    if (!l->have_head) {
        l->status = status;
        buf_add(&l->head, headers, len);
        l->have_head = true;
    }
    pthread_mutex_unlock(&l->mu);
    l->wake();
}

bool lr_h2_live_data(lr_h2_live_t *l, const char *p, size_t n)
{
    pthread_mutex_lock(&l->mu);
    while (!l->gone && l->data.len - l->off > (1u << 20)) pthread_cond_wait(&l->room, &l->mu); /* a slow client */
    bool ok = !l->gone;
    if (ok) buf_add(&l->data, p, n);
    pthread_mutex_unlock(&l->mu);
    if (ok) l->wake();
    return ok;
}

void lr_h2_live_end(lr_h2_live_t *l)
{
    pthread_mutex_lock(&l->mu);
    l->ended = true;
    if (!l->have_head) l->status = 502, l->have_head = true;
    pthread_mutex_unlock(&l->mu);
    l->wake();
    live_put(l);
}

/* ---- the session ------------------------------------------------------------------------- */

lr_h2_t *lr_h2_new(const char *scheme, const char *host, size_t max_body, lr_h2_request_fn fn, void *ud)
{
    pthread_once(&once, load);
    if (!loaded) return NULL;
    lr_h2_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->scheme = scheme;
    snprintf(h->host, sizeof h->host, "%s", host);
    h->max_body = max_body;
    h->fn = fn;
    h->ud = ud;
    nghttp2_settings_entry set[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256},
                                    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
    if (ng.session_server_new(&h->s, cbs, h) != 0) { free(h); return NULL; }
    ng.submit_settings(h->s, NGHTTP2_FLAG_NONE, set, 2);
    return h;
}

void lr_h2_free(lr_h2_t *h)
{
    if (!h) return;
    ng.session_del(h->s); /* calls no stream-close callbacks: the streams go here */
    while (h->streams) {
        stream_t *st = h->streams;
        h->streams = st->next;
        stream_free(st);
    }
    free(h);
}

bool lr_h2_feed(lr_h2_t *h, const char *p, size_t n)
{
    ssize_t r = ng.session_mem_recv(h->s, (const uint8_t *)p, n);
    if (r >= 0) return true;
    lr_debug("HTTP/2 session ended: %s", ng.strerror((int)r));
    ng.session_terminate_session(h->s, NGHTTP2_PROTOCOL_ERROR);
    return false;
}

bool lr_h2_output(lr_h2_t *h, buf_t *out, size_t limit)
{
    double now = lr_now();
    for (stream_t *st = h->streams; st; st = st->next) {
        if (st->live) live_poll(h, st);
        else if (st->deferred && st->resp && now >= st->due) {
            st->deferred = false;
            ng.session_resume_data(h->s, st->id);
        }
    }
    while (out->len < limit) {
        const uint8_t *p;
        ssize_t n = ng.session_mem_send(h->s, &p);
        if (n < 0) return false;
        if (n == 0) break;
        buf_add(out, p, (size_t)n);
    }
    return !out->oom;
}

double lr_h2_due(const lr_h2_t *h)
{
    double best = -1;
    for (const stream_t *st = h->streams; st; st = st->next)
        if (st->deferred && st->resp && (best < 0 || st->due < best)) best = st->due;
    return best;
}

bool lr_h2_over(lr_h2_t *h) { return !ng.session_want_read(h->s) && !ng.session_want_write(h->s); }

bool lr_h2_idle(const lr_h2_t *h)
{
    for (const stream_t *st = h->streams; st; st = st->next)
        if (st->resp || st->live) return false;
    return true;
}
