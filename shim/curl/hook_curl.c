/* The libcurl layer: shadow each easy handle's options, and serve intercepted transfers from
 * the engine through the application's own callbacks, with libcurl's semantics. Everything
 * else goes to the real libcurl untouched. */
#include "base/config.h"
#include "engine/engine.h"
#include "engine/record.h"
#include "base/log.h"
#include "base/real.h"
/* The shim needs curl.h's plain prototypes, not its type-checking macros. */
#define CURL_DISABLE_TYPECHECK 1
#define CURL_DISABLE_DEPRECATION 1
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uthash.h>

/* ---- the real libcurl ---------------------------------------------------------------- */

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*getinfo_fn)(CURL *, CURLINFO, ...);
static struct {
    setopt_fn easy_setopt;
    CURLcode (*easy_perform)(CURL *);
    getinfo_fn easy_getinfo;
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURL *(*easy_duphandle)(CURL *);
    CURLcode (*easy_pause)(CURL *, int);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMcode (*multi_wait)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_timeout)(CURLM *, long *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLUcode (*url_get)(const CURLU *, CURLUPart, char **, unsigned int);
    void (*free)(void *);
} real;

static const char *const curl_libs[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl-nss.so.4", NULL};
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

/* Declared below; needed to detect resolution to ourselves. */
LR_EXPORT CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...);

static void resolve(void)
{
#define R(field, name) *(void **)&real.field = lr_real(name, NULL, curl_libs)
    *(void **)&real.easy_setopt = lr_real("curl_easy_setopt", (void *)curl_easy_setopt, curl_libs);
    R(easy_perform, "curl_easy_perform");
    R(easy_getinfo, "curl_easy_getinfo");
    R(easy_cleanup, "curl_easy_cleanup");
    R(easy_reset, "curl_easy_reset");
    R(easy_duphandle, "curl_easy_duphandle");
    R(easy_pause, "curl_easy_pause");
    R(multi_add_handle, "curl_multi_add_handle");
    R(multi_remove_handle, "curl_multi_remove_handle");
    R(multi_perform, "curl_multi_perform");
    R(multi_poll, "curl_multi_poll");
    R(multi_wait, "curl_multi_wait");
    R(multi_info_read, "curl_multi_info_read");
    R(multi_cleanup, "curl_multi_cleanup");
    R(multi_timeout, "curl_multi_timeout");
    R(multi_setopt, "curl_multi_setopt");
    R(multi_socket_action, "curl_multi_socket_action");
    R(url_get, "curl_url_get");
    R(free, "curl_free");
#undef R
    if (!real.easy_setopt || !real.easy_perform)
        lr_error("libcurl's functions cannot be found although a libcurl call was made; is libcurl loaded twice?");
}

static void curl_real(void) { pthread_once(&real_once, resolve); }

/* Set while the real curl_easy_perform runs: libcurl's own multi calls then pass straight
 * through. Not lr_inside: the program's traffic inside libcurl still meets the socket layer. */
static __thread int in_real_perform;

/* ---- shadowed state of easy and multi handles ---------------------------------------- */

typedef size_t (*rw_cb)(char *, size_t, size_t, void *);
typedef int (*xferinfo_cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
typedef int (*progress_cb)(void *, double, double, double, double);
typedef int (*debug_cb)(CURL *, curl_infotype, char *, size_t, void *);

enum { M_GET, M_POST, M_PUT, M_HEAD };

typedef struct xfer xfer_t;

typedef struct shadow {
    CURL *h;
    char *url;
    CURLU *curlu;
    char *custom;
    int method;
    const char *postfields;
    char *copied; /* COPYPOSTFIELDS */
    curl_off_t copied_len;
    curl_off_t postsize;
    curl_off_t infilesize;
    rw_cb read_cb, write_cb, header_cb;
    void *read_data, *write_data, *header_data;
    bool header_data_set, include_header, nobody, failonerror, noprogress, verbose, mime;
    xferinfo_cb xferinfo;
    progress_cb progress;
    void *progress_data;
    debug_cb debug;
    void *debug_data;
    char *errorbuffer;
    long timeout_ms;
    struct curl_slist *headers; /* CURLOPT_HTTPHEADER (the application keeps it alive) */
    void *tee;                  /* an upstream transfer running in a multi handle */
    int in_cb;                  /* inside one of the application's callbacks for a replay */
    /* outcome of the last replayed transfer, for curl_easy_getinfo */
    bool replayed, https;
    long status;
    char *eff_url, *eff_method;
    const char *content_type;
    curl_off_t dl, ul, content_length;
    long header_size, request_size;
    double t_start, t_first, t_total;
    /* set while a replay runs inside a multi handle */
    xfer_t *xfer;
    CURLM *multi;
    UT_hash_handle hh;
} shadow_t;

struct xfer {
    shadow_t *sh;
    lr_response_t *resp;
    int next;       /* -1: headers not sent yet; then the index of the next event */
    size_t off;     /* bytes of that event already delivered (a paused write resumes there) */
    bool paused, done;
    double due;     /* pacing: when the next event may go */
    double pace_ms; /* LLMREPLAY_PACE_MS, read once per transfer */
    CURLcode result;
    char *body;     /* request body, kept for debug output */
    size_t body_len;
};

typedef struct mshadow {
    CURLM *m;
    shadow_t **active; /* replays not finished yet */
    int nactive, capactive;
    CURLMsg *msgs;     /* finished replays waiting for curl_multi_info_read */
    int nmsgs, capmsgs;
    CURLMsg out;       /* what info_read returned last: valid until the next call */
    void *timer_cb;    /* CURLMOPT_TIMERFUNCTION, to wake event-driven applications */
    void *timer_data;
    UT_hash_handle hh;
} mshadow_t;

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER; /* both tables below */
static shadow_t *shadows;
static mshadow_t *mshadows;

/* fork() while another thread holds the lock must not leave the child deadlocked. */
static void fork_prepare(void) { pthread_mutex_lock(&table_lock); }
static void fork_release(void) { pthread_mutex_unlock(&table_lock); }
__attribute__((constructor)) static void curl_layer_init(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

static void shadow_defaults(shadow_t *s)
{
    s->postsize = -1;
    s->infilesize = -1;
    s->noprogress = true;
    s->method = M_GET;
}

/* The shadow of h, created on first use. */
static shadow_t *shadow_of(CURL *h, bool create)
{
    shadow_t *s = NULL;
    pthread_mutex_lock(&table_lock);
    HASH_FIND_PTR(shadows, &h, s);
    if (!s && create && (s = calloc(1, sizeof *s))) {
        s->h = h;
        shadow_defaults(s);
        HASH_ADD_PTR(shadows, h, s);
    }
    pthread_mutex_unlock(&table_lock);
    return s;
}

static void shadow_clear(shadow_t *s)
{
    free(s->url);
    free(s->custom);
    free(s->copied);
    free(s->eff_url);
    free(s->eff_method);
    CURL *h = s->h;
    UT_hash_handle hh = s->hh;
    memset(s, 0, sizeof *s);
    s->h = h;
    s->hh = hh;
    shadow_defaults(s);
}

static mshadow_t *mshadow_of(CURLM *m, bool create)
{
    mshadow_t *ms = NULL;
    pthread_mutex_lock(&table_lock);
    HASH_FIND_PTR(mshadows, &m, ms);
    if (!ms && create && (ms = calloc(1, sizeof *ms))) {
        ms->m = m;
        HASH_ADD_PTR(mshadows, m, ms);
    }
    pthread_mutex_unlock(&table_lock);
    return ms;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Record what an option means for a replay. Called after the real libcurl accepted it. */
static void shadow_set(shadow_t *s, CURLoption opt, long lv, void *pv, curl_off_t ov)
{
    switch (opt) {
    case CURLOPT_URL: free(s->url); s->url = dup_or_null(pv); break;
    case CURLOPT_CURLU: s->curlu = pv; break;
    case CURLOPT_CUSTOMREQUEST: free(s->custom); s->custom = dup_or_null(pv); break;
    case CURLOPT_POST: s->method = lv ? M_POST : M_GET; break;
    case CURLOPT_HTTPGET: if (lv) { s->method = M_GET; s->nobody = false; } break;
    case CURLOPT_UPLOAD: case CURLOPT_PUT: s->method = lv ? M_PUT : M_GET; break;
    case CURLOPT_NOBODY: s->nobody = lv != 0; if (lv) s->method = M_HEAD; else if (s->method == M_HEAD) s->method = M_GET; break;
    case CURLOPT_POSTFIELDS:
        s->postfields = pv;
        free(s->copied);
        s->copied = NULL;
        s->method = M_POST;
        s->mime = false;
        break;
    case CURLOPT_COPYPOSTFIELDS: {
        free(s->copied);
        size_t n = s->postsize >= 0 ? (size_t)s->postsize : (pv ? strlen(pv) : 0);
        s->copied = malloc(n + 1);
        if (s->copied) {
            if (pv && n) memcpy(s->copied, pv, n);
            s->copied[n] = 0;
            s->postsize = (curl_off_t)n;
        }
        s->postfields = s->copied;
        s->copied_len = s->copied ? (curl_off_t)n : 0;
        s->method = M_POST;
        s->mime = false;
        break;
    }
    case CURLOPT_POSTFIELDSIZE: case CURLOPT_POSTFIELDSIZE_LARGE: {
        curl_off_t n = opt == CURLOPT_POSTFIELDSIZE ? (curl_off_t)lv : ov;
        if (s->copied && n > s->copied_len) { /* libcurl drops a copy that is now too short */
            free(s->copied);
            s->copied = NULL;
            s->postfields = NULL;
        }
        s->postsize = n;
        break;
    }
    case CURLOPT_INFILESIZE: s->infilesize = lv; break;
    case CURLOPT_INFILESIZE_LARGE: s->infilesize = ov; break;
    case CURLOPT_MIMEPOST: case CURLOPT_HTTPPOST: s->mime = pv != NULL; if (pv) s->method = M_POST; break;
    case CURLOPT_READFUNCTION: s->read_cb = (rw_cb)pv; break;
    case CURLOPT_READDATA: s->read_data = pv; break;
    case CURLOPT_WRITEFUNCTION: s->write_cb = (rw_cb)pv; break;
    case CURLOPT_WRITEDATA: s->write_data = pv; break;
    case CURLOPT_HEADERFUNCTION: s->header_cb = (rw_cb)pv; break;
    case CURLOPT_HEADERDATA: s->header_data = pv; s->header_data_set = pv != NULL; break;
    case CURLOPT_HEADER: s->include_header = lv != 0; break;
    case CURLOPT_FAILONERROR: s->failonerror = lv != 0; break;
    case CURLOPT_NOPROGRESS: s->noprogress = lv != 0; break;
    case CURLOPT_XFERINFOFUNCTION: s->xferinfo = (xferinfo_cb)pv; break;
    case CURLOPT_PROGRESSFUNCTION: s->progress = (progress_cb)pv; break;
    case CURLOPT_XFERINFODATA: s->progress_data = pv; break; /* same slot as PROGRESSDATA */
    case CURLOPT_DEBUGFUNCTION: s->debug = (debug_cb)pv; break;
    case CURLOPT_DEBUGDATA: s->debug_data = pv; break;
    case CURLOPT_VERBOSE: s->verbose = lv != 0; break;
    case CURLOPT_ERRORBUFFER: s->errorbuffer = pv; break;
    case CURLOPT_HTTPHEADER: s->headers = pv; break;
    case CURLOPT_TIMEOUT: s->timeout_ms = lv * 1000; break;
    case CURLOPT_TIMEOUT_MS: s->timeout_ms = lv; break;
    default: break;
    }
}

static shadow_t *shadow_dup(const shadow_t *o, CURL *h)
{
    shadow_t *s = shadow_of(h, true);
    if (!s) return NULL;
    UT_hash_handle hh = s->hh;
    *s = *o;
    s->h = h;
    s->hh = hh;
    s->url = dup_or_null(o->url);
    s->custom = dup_or_null(o->custom);
    s->eff_url = dup_or_null(o->eff_url);
    s->eff_method = dup_or_null(o->eff_method);
    s->xfer = NULL;
    s->multi = NULL;
    s->replayed = false; /* a new handle has done no transfer */
    s->tee = NULL;
    s->in_cb = 0;
    if (o->copied) {
        size_t n = (size_t)o->copied_len;
        s->copied = malloc(n + 1);
        if (s->copied) { memcpy(s->copied, o->copied, n); s->copied[n] = 0; }
        s->postfields = s->copied;
    }
    return s;
}

/* ---- running a replay ---------------------------------------------------------------- */

/* The URL of the next transfer, as libcurl would use it (CURLU wins over CURLOPT_URL). */
static char *transfer_url(shadow_t *s)
{
    if (s->curlu && real.url_get) {
        char *u = NULL;
        if (real.url_get(s->curlu, CURLUPART_URL, &u, 0) == CURLUE_OK && u) {
            char *d = strdup(u);
            real.free(u);
            return d;
        }
    }
    if (!s->url) return NULL;
    if (strstr(s->url, "://")) return strdup(s->url);
    size_t n = strlen(s->url) + 8;
    char *d = malloc(n);
    if (d) snprintf(d, n, "http://%s", s->url); /* libcurl's guess for a scheme-less URL */
    return d;
}

static const char *method_name(const shadow_t *s)
{
    if (s->custom) return s->custom;
    switch (s->method) {
    case M_POST: return "POST";
    case M_PUT: return "PUT";
    case M_HEAD: return "HEAD";
    default: return "GET";
    }
}

static void set_error(shadow_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(shadow_t *s, const char *fmt, ...)
{
    if (!s->errorbuffer) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errorbuffer, CURL_ERROR_SIZE, fmt, ap);
    va_end(ap);
}

/* Collect the request body the way libcurl would send it. */
static CURLcode request_body(shadow_t *s, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (s->postfields) {
        size_t n = s->postsize >= 0 ? (size_t)s->postsize : strlen(s->postfields);
        *out = malloc(n + 1);
        if (!*out) return CURLE_OUT_OF_MEMORY;
        memcpy(*out, s->postfields, n);
        (*out)[n] = 0;
        *len = n;
        return CURLE_OK;
    }
    if (s->method != M_POST && s->method != M_PUT) return CURLE_OK;
    if (s->mime) return CURLE_OK; /* multipart forms are not LLM JSON calls: no body to match */
    curl_off_t limit = s->method == M_POST ? s->postsize : s->infilesize;
    buf_t b;
    buf_init(&b);
    char chunk[16384];
    for (;;) {
        size_t want = sizeof chunk;
        if (limit >= 0 && (curl_off_t)b.len + (curl_off_t)want > limit) want = (size_t)(limit - (curl_off_t)b.len);
        if (!want) break;
        size_t got = s->read_cb ? s->read_cb(chunk, 1, want, s->read_data)
                                : fread(chunk, 1, want, s->read_data ? (FILE *)s->read_data : stdin);
        if (got == CURL_READFUNC_ABORT) { buf_free(&b); set_error(s, "operation aborted by callback"); return CURLE_ABORTED_BY_CALLBACK; }
        if (got == CURL_READFUNC_PAUSE || got > want) { buf_free(&b); set_error(s, "read function returned funny value"); return CURLE_READ_ERROR; }
        if (!got) break;
        buf_add(&b, chunk, got);
    }
    if (b.oom) { buf_free(&b); return CURLE_OUT_OF_MEMORY; }
    *out = buf_steal(&b, len);
    return CURLE_OK;
}

static void debug_out(shadow_t *s, curl_infotype t, const char *p, size_t n)
{
    if (!s->verbose) return;
    if (s->debug) { s->debug(s->h, t, (char *)p, n, s->debug_data); return; }
    if (t != CURLINFO_TEXT && t != CURLINFO_HEADER_IN && t != CURLINFO_HEADER_OUT) return;
    const char *pre = t == CURLINFO_TEXT ? "* " : t == CURLINFO_HEADER_IN ? "< " : "> ";
    fprintf(stderr, "%s%.*s", pre, (int)n, p);
}

static double elapsed(const shadow_t *s) { return lr_now() - s->t_start; }

/* Start a replay: build the request, ask the engine, reset the getinfo state. */
static xfer_t *xfer_start(shadow_t *s, CURLcode *err)
{
    *err = CURLE_OK;
    xfer_t *x = calloc(1, sizeof *x);
    char *url = transfer_url(s);
    if (!x || !url) { free(x); free(url); *err = CURLE_OUT_OF_MEMORY; return NULL; }
    x->sh = s;
    x->next = -1;
    s->t_start = lr_now();
    s->t_first = s->t_total = 0;
    s->dl = s->ul = 0;
    s->replayed = true;
    free(s->eff_url);
    free(s->eff_method);
    s->eff_url = url;
    s->eff_method = strdup(method_name(s));
    s->https = !strncasecmp(url, "https:", 6);
    s->status = 0;
    s->content_type = NULL;
    s->content_length = -1;
    s->header_size = 0;
    CURLcode rc = request_body(s, &x->body, &x->body_len);
    if (rc != CURLE_OK) { free(x); *err = rc; return NULL; }
    s->ul = (curl_off_t)x->body_len;
    x->resp = lr_engine_serve(s->eff_method, url, x->body, x->body_len);
    size_t plen;
    const char *path = lr_url_path(url, &plen);
    buf_t rq;
    buf_init(&rq);
    buf_printf(&rq, "%s %.*s HTTP/1.1\r\n\r\n", s->eff_method, (int)plen, path);
    s->request_size = (long)(rq.len + x->body_len);
    char info[512];
    int n = snprintf(info, sizeof info, "llmreplay: replaying %s %s from %s\n", s->eff_method, url,
                     x->resp->rec ? x->resp->rec->path : "(no recording: error answer)");
    debug_out(s, CURLINFO_TEXT, info, (size_t)(n < (int)sizeof info ? n : (int)sizeof info - 1));
    debug_out(s, CURLINFO_HEADER_OUT, rq.data, rq.len);
    if (x->body_len) debug_out(s, CURLINFO_DATA_OUT, x->body, x->body_len);
    buf_free(&rq);
    x->due = s->t_start;
    x->pace_ms = lr_pace_setting(); /* -1: the recorded timing */
    return x;
}

static void xfer_free(xfer_t *x)
{
    if (!x) return;
    lr_response_free(x->resp);
    free(x->body);
    free(x);
}

/* Progress callback as libcurl calls it; non-zero aborts. */
static bool progress(shadow_t *s, xfer_t *x)
{
    if (s->noprogress) return true;
    curl_off_t total = x->resp && !x->resp->stream ? (curl_off_t)x->resp->body_len : 0;
    int rc = 0;
    if (s->xferinfo) rc = s->xferinfo(s->progress_data, total, s->dl, 0, s->ul);
    else if (s->progress) rc = s->progress(s->progress_data, (double)total, (double)s->dl, 0, (double)s->ul);
    else return true;
    if (rc && !(s->xferinfo && rc == CURL_PROGRESSFUNC_CONTINUE)) {
        set_error(s, "Callback aborted");
        x->result = CURLE_ABORTED_BY_CALLBACK;
        return false;
    }
    return true;
}

static bool write_header(shadow_t *s, xfer_t *x, const char *line, size_t n)
{
    debug_out(s, CURLINFO_HEADER_IN, line, n);
    s->header_size += (long)n;
    rw_cb hcb = s->header_cb;
    void *hdata = s->header_data;
    if (!hcb && s->header_data_set) { /* libcurl: HEADERDATA alone sends headers to the write function */
        hcb = s->write_cb;
        if (!hcb) { size_t w = fwrite(line, 1, n, (FILE *)hdata); if (w != n) goto fail; }
    }
    if (hcb && hcb((char *)line, 1, n, hdata) != n) goto fail;
    if (s->include_header) {
        size_t w = s->write_cb ? s->write_cb((char *)line, 1, n, s->write_data)
                               : fwrite(line, 1, n, s->write_data ? (FILE *)s->write_data : stdout);
        if (w != n) goto fail;
    }
    return true;
fail:
    set_error(s, "Failed writing header");
    x->result = CURLE_WRITE_ERROR;
    return false;
}

static bool send_headers(shadow_t *s, xfer_t *x)
{
    lr_response_t *r = x->resp;
    s->status = r->status;
    s->content_type = r->content_type;
    s->content_length = r->stream ? -1 : (curl_off_t)r->body_len;
    s->t_first = x->pace_ms != 0 ? elapsed(s) : 0;
    if (s->failonerror && r->status >= 400) {
        set_error(s, "The requested URL returned error: %d", r->status);
        x->result = CURLE_HTTP_RETURNED_ERROR;
        return false;
    }
    buf_t h;
    buf_init(&h);
    lr_render_head(r, &h, r->stream);
    if (h.oom) { x->result = CURLE_OUT_OF_MEMORY; return false; }
    /* one callback per header line, as libcurl does */
    for (size_t i = 0; i < h.len;) {
        const char *e = memchr(h.data + i, '\n', h.len - i);
        size_t n = e ? (size_t)(e - (h.data + i)) + 1 : h.len - i;
        if (!write_header(s, x, h.data + i, n)) { buf_free(&h); return false; }
        i += n;
    }
    buf_free(&h);
    return true;
}

/* Deliver the rest of one event; false when the transfer stops (error or pause). */
static bool send_event(shadow_t *s, xfer_t *x, const lr_event_t *ev)
{
    while (x->off < ev->len) {
        /* libcurl never hands the write callback more than CURL_MAX_WRITE_SIZE at once */
        size_t n = ev->len - x->off;
        if (n > CURL_MAX_WRITE_SIZE) n = CURL_MAX_WRITE_SIZE;
        char *p = ev->data + x->off;
        size_t w = s->write_cb ? s->write_cb(p, 1, n, s->write_data)
                               : fwrite(p, 1, n, s->write_data ? (FILE *)s->write_data : stdout);
        if (w == CURL_WRITEFUNC_PAUSE) { x->paused = true; return false; }
        if (w != n) {
            set_error(s, "Failure writing output to destination");
            x->result = CURLE_WRITE_ERROR;
            return false;
        }
        debug_out(s, CURLINFO_DATA_IN, p, n);
        x->off += n;
        s->dl += (curl_off_t)n;
    }
    x->off = 0;
    return true;
}

/* Advance a replay by one step: the headers, or the next event. Sets x->done at the end. */
static void xfer_step_inner(xfer_t *x);

/* One step, marked as "inside the application's callbacks": libcurl refuses to remove or free
 * a handle from its own callbacks, and so does the shim (CURLM_RECURSIVE_API_CALL). */
static void xfer_step(xfer_t *x)
{
    x->sh->in_cb++;
    xfer_step_inner(x);
    x->sh->in_cb--;
}

static void xfer_step_inner(xfer_t *x)
{
    shadow_t *s = x->sh;
    if (x->done || x->paused) return;
    if (s->timeout_ms > 0 && x->pace_ms != 0 && elapsed(s) * 1000 > (double)s->timeout_ms) {
        set_error(s, "Operation timed out after %ld milliseconds with %lld bytes received", s->timeout_ms, (long long)s->dl);
        x->result = CURLE_OPERATION_TIMEDOUT;
        x->done = true;
        return;
    }
    if (x->next < 0) {
        if (!progress(s, x) || !send_headers(s, x)) { x->done = true; return; }
        x->next = 0;
        if (s->nobody || s->method == M_HEAD) x->next = x->resp->nevents;
    } else if (x->next < x->resp->nevents) {
        if (!send_event(s, x, &x->resp->events[x->next])) {
            if (!x->paused) x->done = true;
            return;
        }
        x->next++;
        if (!progress(s, x)) { x->done = true; return; }
        /* the clock is read only when pacing: an unpaced replay is a tight loop of callbacks */
        if (x->pace_ms != 0) x->due = lr_now() + lr_event_gap_ms(x->resp, x->next, x->pace_ms) / 1000;
    }
    if (x->next >= x->resp->nevents) {
        x->done = true;
        s->t_total = elapsed(s);
    }
}

static CURLcode xfer_finish(shadow_t *s, xfer_t *x)
{
    CURLcode rc = x->result;
    if (!s->t_total) s->t_total = elapsed(s);
    xfer_free(x);
    return rc;
}

/* Is this handle's next transfer one the shim answers? */
static bool intercepted(shadow_t *s)
{
    if (!s || lr_inside || in_real_perform || !lr_layer_on(LR_LAYER_CURL)) return false;
    if (s->curlu) {
        char *u = transfer_url(s);
        bool r = lr_engine_intercepts(u) != OP_NONE;
        free(u);
        return r;
    }
    return s->url && lr_engine_intercepts(s->url) != OP_NONE;
}

static CURLcode replay_easy(shadow_t *s)
{
    CURLcode rc;
    xfer_t *x = xfer_start(s, &rc);
    if (!x) return rc;
    s->xfer = x; /* lets curl_easy_pause reach it from the callbacks */
    while (!x->done) {
        if (x->paused) {
            /* Paused from the write callback: libcurl keeps calling the progress callback,
             * where the application may unpause. */
            if (!progress(s, x)) break;
            if (x->paused) { lr_sleep_ms(1); continue; }
        }
        if (x->pace_ms != 0 && x->next > 0) {
            double wait = x->due - lr_now();
            if (wait > 0) lr_sleep_ms(wait * 1000);
        }
        xfer_step(x);
    }
    s->xfer = NULL;
    return xfer_finish(s, x);
}

/* ---- multi handles -------------------------------------------------------------------- */

static void ms_push_msg(mshadow_t *ms, CURL *h, CURLcode rc)
{
    if (ms->nmsgs == ms->capmsgs) {
        int cap = ms->capmsgs ? ms->capmsgs * 2 : 8;
        CURLMsg *v = realloc(ms->msgs, sizeof *v * (size_t)cap);
        if (!v) return;
        ms->msgs = v;
        ms->capmsgs = cap;
    }
    CURLMsg m;
    memset(&m, 0, sizeof m);
    m.msg = CURLMSG_DONE;
    m.easy_handle = h;
    m.data.result = rc;
    ms->msgs[ms->nmsgs++] = m;
}

static void ms_drop(mshadow_t *ms, shadow_t *s)
{
    for (int i = 0; i < ms->nactive; i++)
        if (ms->active[i] == s) { ms->active[i] = ms->active[--ms->nactive]; break; }
    for (int i = 0; i < ms->nmsgs; i++)
        if (ms->msgs[i].easy_handle == s->h) {
            memmove(ms->msgs + i, ms->msgs + i + 1, sizeof *ms->msgs * (size_t)(ms->nmsgs - i - 1));
            ms->nmsgs--;
            i--;
        }
}

/* Run every replay of this multi that is due; one event per transfer per call, so the
 * application's loop sees a stream as a stream. Returns how many remain. */
static int ms_run(mshadow_t *ms)
{
    double now = lr_now();
    for (int i = 0; i < ms->nactive;) {
        shadow_t *s = ms->active[i];
        xfer_t *x = s->xfer;
        if (x && !x->done && !x->paused && (x->next <= 0 || x->due <= now)) {
            xfer_step(x);
            if (x->next == 0 && !x->done) xfer_step(x); /* headers and the first event together */
        }
        if (!x || x->done) {
            CURLcode rc = x ? xfer_finish(s, x) : CURLE_OUT_OF_MEMORY;
            s->xfer = NULL;
            ms->active[i] = ms->active[--ms->nactive];
            ms_push_msg(ms, s->h, rc);
            continue;
        }
        i++;
    }
    return ms->nactive;
}

/* Milliseconds until a replay in this multi has something to do (-1: none active). */
static long ms_due_ms(mshadow_t *ms)
{
    long best = -1;
    double now = lr_now();
    for (int i = 0; i < ms->nactive; i++) {
        xfer_t *x = ms->active[i]->xfer;
        if (!x) return 0;
        long ms_left = x->paused ? 1 : x->next <= 0 ? 0 : (long)((x->due - now) * 1000 + 0.999);
        if (ms_left < 0) ms_left = 0;
        if (best < 0 || ms_left < best) best = ms_left;
    }
    return best;
}

static void ms_wake(mshadow_t *ms)
{
    long due = ms_due_ms(ms);
    if (due >= 0 && ms->timer_cb)
        ((int (*)(CURLM *, long, void *))ms->timer_cb)(ms->m, due, ms->timer_data);
}

/* ---- going upstream (record, record-if-missing, live, trace) ---------------------------- */

/* The real transfer runs; these callbacks tee what libcurl delivers into the capture and hand
 * it to the application exactly as libcurl would have, so the program sees no difference. */
typedef struct {
    shadow_t *s;
    lr_capture_t *cap;
} tee_t;

static size_t tee_write(char *p, size_t sz, size_t n, void *ud)
{
    tee_t *t = ud;
    shadow_t *s = t->s;
    size_t len = sz * n;
    size_t w = s->write_cb ? s->write_cb(p, sz, n, s->write_data) : fwrite(p, sz, n, s->write_data ? (FILE *)s->write_data : stdout);
    if (w == len || (s->write_cb == NULL && w == n)) lr_capture_data(t->cap, p, len);
    return s->write_cb ? w : w * sz;
}

static size_t tee_header(char *p, size_t sz, size_t n, void *ud)
{
    tee_t *t = ud;
    shadow_t *s = t->s;
    size_t len = sz * n;
    lr_capture_header(t->cap, p, len);
    if (s->header_cb) return s->header_cb(p, sz, n, s->header_data);
    if (s->header_data_set) {
        if (s->write_cb) return s->write_cb(p, sz, n, s->header_data);
        return fwrite(p, sz, n, (FILE *)s->header_data) * sz;
    }
    return len;
}

static size_t tee_read(char *p, size_t sz, size_t n, void *ud)
{
    tee_t *t = ud;
    shadow_t *s = t->s;
    size_t r = s->read_cb ? s->read_cb(p, sz, n, s->read_data) : fread(p, sz, n, s->read_data ? (FILE *)s->read_data : stdin) * sz;
    if (r && r <= sz * n) buf_add(&t->cap->req, p, r);
    return r;
}

static void tee_install(shadow_t *s, tee_t *t)
{
    real.easy_setopt(s->h, CURLOPT_WRITEFUNCTION, tee_write);
    real.easy_setopt(s->h, CURLOPT_WRITEDATA, t);
    real.easy_setopt(s->h, CURLOPT_HEADERFUNCTION, tee_header);
    real.easy_setopt(s->h, CURLOPT_HEADERDATA, t);
    if (!s->postfields) {
        real.easy_setopt(s->h, CURLOPT_READFUNCTION, tee_read);
        real.easy_setopt(s->h, CURLOPT_READDATA, t);
    }
}

/* Put the application's own callbacks back (NULL restores libcurl's defaults). */
static void tee_remove(shadow_t *s)
{
    real.easy_setopt(s->h, CURLOPT_WRITEFUNCTION, s->write_cb);
    real.easy_setopt(s->h, CURLOPT_WRITEDATA, s->write_data ? s->write_data : (void *)stdout);
    real.easy_setopt(s->h, CURLOPT_HEADERFUNCTION, s->header_cb);
    real.easy_setopt(s->h, CURLOPT_HEADERDATA, s->header_data);
    if (!s->postfields) {
        real.easy_setopt(s->h, CURLOPT_READFUNCTION, s->read_cb);
        real.easy_setopt(s->h, CURLOPT_READDATA, s->read_data ? s->read_data : (void *)stdin);
    }
}

static int tees_in_multi; /* upstream transfers running inside multi handles (atomic) */

static tee_t *upstream_begin(shadow_t *s)
{
    char *url = transfer_url(s);
    tee_t *t = calloc(1, sizeof *t);
    if (!t || !url) { free(t); free(url); return NULL; }
    t->s = s;
    t->cap = lr_capture_new(method_name(s), url);
    free(url);
    if (!t->cap) { free(t); return NULL; }
    if (s->postfields) buf_add(&t->cap->req, s->postfields, s->postsize >= 0 ? (size_t)s->postsize : strlen(s->postfields));
    for (const struct curl_slist *l = s->headers; l; l = l->next)
        if (l->data) { buf_adds(&t->cap->req_headers, l->data); buf_addc(&t->cap->req_headers, '\n'); }
    tee_install(s, t);
    s->replayed = false;
    return t;
}

static void upstream_end(shadow_t *s, tee_t *t, CURLcode rc)
{
    tee_remove(s);
    long status = 0;
    real.easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (status) t->cap->status = (int)status;
    if (rc != CURLE_OK && rc != CURLE_HTTP_RETURNED_ERROR && !(rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK))
        snprintf(t->cap->error, sizeof t->cap->error, "libcurl error %d", (int)rc);
    if (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)
        snprintf(t->cap->error, sizeof t->cap->error, "the program stopped the transfer");
    lr_capture_finish(t->cap);
    free(t);
}

/* Does this transfer go upstream rather than replay? */
static bool goes_upstream(shadow_t *s)
{
    if (lr_mode() == MODE_REPLAY) return false; /* the common case: no URL copy */
    char *url = transfer_url(s);
    const char *body = s->postfields;
    size_t len = body ? (s->postsize >= 0 ? (size_t)s->postsize : strlen(body)) : 0;
    /* a read-callback body cannot be peeked at: with record-if-missing such requests go upstream */
    bool up = !url || lr_engine_upstream(method_name(s), url, body, len);
    free(url);
    return up;
}

static CURLcode upstream_easy(shadow_t *s, CURL *h)
{
    tee_t *t = upstream_begin(s);
    /* the real transfer must reach the real network, even to a host the socket layer answers */
    in_real_perform++;
    lr_inside++;
    CURLcode rc = real.easy_perform(h);
    lr_inside--;
    in_real_perform--;
    if (t) upstream_end(s, t, rc);
    return rc;
}

/* ---- exported hooks -------------------------------------------------------------------- */

LR_EXPORT CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    curl_real();
    if (!real.easy_setopt) return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, opt);
    long lv = 0;
    void *pv = NULL;
    curl_off_t ov = 0;
    CURLcode rc;
    /* The option number says the argument's type (see curl.h, CURLOPTTYPE_*). */
    if (opt < CURLOPTTYPE_OBJECTPOINT) { lv = va_arg(ap, long); rc = real.easy_setopt(h, opt, lv); }
    else if (opt < CURLOPTTYPE_OFF_T) { pv = va_arg(ap, void *); rc = real.easy_setopt(h, opt, pv); }
    else if (opt < CURLOPTTYPE_BLOB) { ov = va_arg(ap, curl_off_t); rc = real.easy_setopt(h, opt, ov); }
    else { pv = va_arg(ap, void *); rc = real.easy_setopt(h, opt, pv); }
    va_end(ap);
    if (rc == CURLE_OK && h) {
        shadow_t *s = shadow_of(h, true);
        if (s) shadow_set(s, opt, lv, pv, ov);
    }
    return rc;
}

LR_EXPORT CURLcode curl_easy_perform(CURL *h)
{
    curl_real();
    shadow_t *s = h ? shadow_of(h, false) : NULL;
    if (intercepted(s)) {
        if (s->xfer) return CURLE_RECURSIVE_API_CALL;
        if (goes_upstream(s)) return upstream_easy(s, h);
        return replay_easy(s);
    }
    /* trace: every HTTP exchange through libcurl is logged, LLM call or not */
    if (s && !in_real_perform && !lr_inside && lr_mode() == MODE_TRACE && s->url && !strncasecmp(s->url, "http", 4))
        return upstream_easy(s, h);
    if (s) s->replayed = false;
    if (!real.easy_perform) return CURLE_FAILED_INIT;
    in_real_perform++;
    CURLcode rc = real.easy_perform(h);
    in_real_perform--;
    return rc;
}

static CURLcode info_reply(shadow_t *s, CURLINFO info, void *arg)
{
    double total = s->t_total ? s->t_total : elapsed(s);
    double speed = total > 0 ? (double)s->dl / total : 0;
    switch (info) {
    case CURLINFO_RESPONSE_CODE: *(long *)arg = s->status; return CURLE_OK;
    case CURLINFO_HTTP_CONNECTCODE: case CURLINFO_OS_ERRNO: case CURLINFO_REDIRECT_COUNT:
    case CURLINFO_CONDITION_UNMET: case CURLINFO_SSL_VERIFYRESULT: case CURLINFO_NUM_CONNECTS:
    case CURLINFO_PROXYAUTH_AVAIL: case CURLINFO_HTTPAUTH_AVAIL:
        *(long *)arg = 0; return CURLE_OK;
    case CURLINFO_FILETIME: *(long *)arg = -1; return CURLE_OK;
    case CURLINFO_FILETIME_T: *(curl_off_t *)arg = -1; return CURLE_OK;
    case CURLINFO_RETRY_AFTER: *(curl_off_t *)arg = 0; return CURLE_OK;
    case CURLINFO_HTTP_VERSION: *(long *)arg = CURL_HTTP_VERSION_1_1; return CURLE_OK;
    case CURLINFO_PROTOCOL: *(long *)arg = s->https ? CURLPROTO_HTTPS : CURLPROTO_HTTP; return CURLE_OK;
    case CURLINFO_SCHEME: *(const char **)arg = s->https ? "HTTPS" : "HTTP"; return CURLE_OK;
    case CURLINFO_CONTENT_TYPE: *(const char **)arg = s->content_type; return CURLE_OK;
    case CURLINFO_EFFECTIVE_URL: *(const char **)arg = s->eff_url; return CURLE_OK;
    case CURLINFO_EFFECTIVE_METHOD: *(const char **)arg = s->eff_method; return CURLE_OK;
    case CURLINFO_REDIRECT_URL: *(const char **)arg = NULL; return CURLE_OK;
    case CURLINFO_PRIMARY_IP: case CURLINFO_LOCAL_IP: *(const char **)arg = "127.0.0.1"; return CURLE_OK;
    case CURLINFO_PRIMARY_PORT: *(long *)arg = s->https ? 443 : 80; return CURLE_OK;
    case CURLINFO_LOCAL_PORT: *(long *)arg = 0; return CURLE_OK;
    case CURLINFO_HEADER_SIZE: *(long *)arg = s->header_size; return CURLE_OK;
    case CURLINFO_REQUEST_SIZE: *(long *)arg = s->request_size; return CURLE_OK;
    case CURLINFO_SIZE_DOWNLOAD: *(double *)arg = (double)s->dl; return CURLE_OK;
    case CURLINFO_SIZE_DOWNLOAD_T: *(curl_off_t *)arg = s->dl; return CURLE_OK;
    case CURLINFO_SIZE_UPLOAD: *(double *)arg = (double)s->ul; return CURLE_OK;
    case CURLINFO_SIZE_UPLOAD_T: *(curl_off_t *)arg = s->ul; return CURLE_OK;
    case CURLINFO_CONTENT_LENGTH_DOWNLOAD: *(double *)arg = (double)s->content_length; return CURLE_OK;
    case CURLINFO_CONTENT_LENGTH_DOWNLOAD_T: *(curl_off_t *)arg = s->content_length; return CURLE_OK;
    case CURLINFO_CONTENT_LENGTH_UPLOAD: *(double *)arg = (double)s->ul; return CURLE_OK;
    case CURLINFO_CONTENT_LENGTH_UPLOAD_T: *(curl_off_t *)arg = s->ul; return CURLE_OK;
    case CURLINFO_SPEED_DOWNLOAD: *(double *)arg = speed; return CURLE_OK;
    case CURLINFO_SPEED_DOWNLOAD_T: *(curl_off_t *)arg = (curl_off_t)speed; return CURLE_OK;
    case CURLINFO_SPEED_UPLOAD: *(double *)arg = total > 0 ? (double)s->ul / total : 0; return CURLE_OK;
    case CURLINFO_SPEED_UPLOAD_T: *(curl_off_t *)arg = total > 0 ? (curl_off_t)((double)s->ul / total) : 0; return CURLE_OK;
    case CURLINFO_TOTAL_TIME: *(double *)arg = total; return CURLE_OK;
    case CURLINFO_TOTAL_TIME_T: *(curl_off_t *)arg = (curl_off_t)(total * 1e6); return CURLE_OK;
    case CURLINFO_STARTTRANSFER_TIME: *(double *)arg = s->t_first; return CURLE_OK;
    case CURLINFO_STARTTRANSFER_TIME_T: *(curl_off_t *)arg = (curl_off_t)(s->t_first * 1e6); return CURLE_OK;
    case CURLINFO_NAMELOOKUP_TIME: case CURLINFO_CONNECT_TIME: case CURLINFO_APPCONNECT_TIME:
    case CURLINFO_PRETRANSFER_TIME: case CURLINFO_REDIRECT_TIME:
        *(double *)arg = 0; return CURLE_OK;
    case CURLINFO_NAMELOOKUP_TIME_T: case CURLINFO_CONNECT_TIME_T: case CURLINFO_APPCONNECT_TIME_T:
    case CURLINFO_PRETRANSFER_TIME_T: case CURLINFO_REDIRECT_TIME_T:
        *(curl_off_t *)arg = 0; return CURLE_OK;
    default: return CURL_LAST; /* not ours: ask the real libcurl */
    }
}

LR_EXPORT CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    curl_real();
    va_list ap;
    va_start(ap, info);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    shadow_t *s = h ? shadow_of(h, false) : NULL;
    if (s && s->replayed && arg) {
        CURLcode rc = info_reply(s, info, arg);
        if (rc != CURL_LAST) return rc;
    }
    return real.easy_getinfo ? real.easy_getinfo(h, info, arg) : CURLE_FAILED_INIT;
}

static void forget(CURL *h)
{
    shadow_t *s = NULL;
    pthread_mutex_lock(&table_lock);
    HASH_FIND_PTR(shadows, &h, s);
    if (s) HASH_DEL(shadows, s);
    pthread_mutex_unlock(&table_lock);
    if (!s) return;
    if (s->multi) { /* cleaned up while still in a multi: take it out of our queue too */
        mshadow_t *ms = mshadow_of(s->multi, false);
        if (ms) ms_drop(ms, s);
    }
    xfer_free(s->xfer);
    shadow_clear(s);
    free(s);
}

LR_EXPORT void curl_easy_cleanup(CURL *h)
{
    curl_real();
    shadow_t *cur = h ? shadow_of(h, false) : NULL;
    if (cur && cur->in_cb) { /* libcurl forbids it too; freeing now would pull the rug from the replay */
        lr_warn("curl_easy_cleanup called from inside a callback of the same handle: ignored");
        return;
    }
    if (h) forget(h);
    if (real.easy_cleanup) real.easy_cleanup(h);
}

LR_EXPORT void curl_easy_reset(CURL *h)
{
    curl_real();
    shadow_t *s = h ? shadow_of(h, false) : NULL;
    if (s && !s->xfer) shadow_clear(s);
    if (real.easy_reset) real.easy_reset(h);
}

LR_EXPORT CURL *curl_easy_duphandle(CURL *h)
{
    curl_real();
    CURL *d = real.easy_duphandle ? real.easy_duphandle(h) : NULL;
    shadow_t *s = h ? shadow_of(h, false) : NULL;
    if (d && s) shadow_dup(s, d);
    return d;
}

LR_EXPORT CURLcode curl_easy_pause(CURL *h, int bitmask)
{
    curl_real();
    shadow_t *s = h ? shadow_of(h, false) : NULL;
    if (s && s->xfer) {
        s->xfer->paused = (bitmask & CURLPAUSE_RECV) != 0;
        return CURLE_OK;
    }
    return real.easy_pause ? real.easy_pause(h, bitmask) : CURLE_FAILED_INIT;
}

LR_EXPORT CURLMcode curl_multi_add_handle(CURLM *m, CURL *h)
{
    curl_real();
    shadow_t *s = h && !in_real_perform ? shadow_of(h, false) : NULL;
    if (m && s && !s->tee && ((intercepted(s) && goes_upstream(s)) ||
                              (!lr_inside && lr_mode() == MODE_TRACE && s->url && !strncasecmp(s->url, "http", 4)))) {
        /* upstream through the application's own multi handle: tee now, finish at DONE */
        s->tee = upstream_begin(s);
        if (s->tee) __atomic_fetch_add(&tees_in_multi, 1, __ATOMIC_RELAXED);
        CURLMcode rc = real.multi_add_handle(m, h);
        if (rc != CURLM_OK && s->tee) {
            upstream_end(s, s->tee, CURLE_FAILED_INIT);
            s->tee = NULL;
            __atomic_fetch_sub(&tees_in_multi, 1, __ATOMIC_RELAXED);
        }
        return rc;
    }
    if (!m || !intercepted(s)) {
        if (s) s->replayed = false; /* libcurl's own transfer: getinfo is libcurl's again */
        return real.multi_add_handle ? real.multi_add_handle(m, h) : CURLM_INTERNAL_ERROR;
    }
    if (s->multi) return CURLM_ADDED_ALREADY;
    mshadow_t *ms = mshadow_of(m, true);
    if (!ms) return CURLM_OUT_OF_MEMORY;
    if (ms->nactive == ms->capactive) {
        int cap = ms->capactive ? ms->capactive * 2 : 8;
        shadow_t **v = realloc(ms->active, sizeof *v * (size_t)cap);
        if (!v) return CURLM_OUT_OF_MEMORY;
        ms->active = v;
        ms->capactive = cap;
    }
    CURLcode err;
    s->xfer = xfer_start(s, &err);
    s->multi = m;
    ms->active[ms->nactive++] = s;
    if (!s->xfer) { ms->nactive--; ms_push_msg(ms, h, err); }
    ms_wake(ms);
    return CURLM_OK;
}

LR_EXPORT CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h)
{
    curl_real();
    shadow_t *s = h && !in_real_perform ? shadow_of(h, false) : NULL;
    if (s && s->in_cb) return CURLM_RECURSIVE_API_CALL;
    if (s && s->multi && s->multi == m) {
        mshadow_t *ms = mshadow_of(m, false);
        if (ms) ms_drop(ms, s);
        xfer_free(s->xfer);
        s->xfer = NULL;
        s->multi = NULL;
        return CURLM_OK;
    }
    CURLMcode rc = real.multi_remove_handle ? real.multi_remove_handle(m, h) : CURLM_INTERNAL_ERROR;
    /* libcurl may have cancelled the application's timer: replays still running need it */
    mshadow_t *ms = m && !in_real_perform ? mshadow_of(m, false) : NULL;
    if (ms) ms_wake(ms);
    return rc;
}

LR_EXPORT CURLMcode curl_multi_perform(CURLM *m, int *running)
{
    curl_real();
    int r = 0;
    /* upstream transfers must reach the network, not the socket layer */
    int up = __atomic_load_n(&tees_in_multi, __ATOMIC_RELAXED) > 0;
    lr_inside += up;
    CURLMcode rc = real.multi_perform ? real.multi_perform(m, &r) : CURLM_INTERNAL_ERROR;
    lr_inside -= up;
    mshadow_t *ms = !in_real_perform && m ? mshadow_of(m, false) : NULL;
    if (ms) {
        r += ms_run(ms);
        if (rc == CURLM_BAD_HANDLE) rc = CURLM_OK;
    }
    if (running) *running = r;
    return rc;
}

/* Shorten a poll/wait so replays due sooner are served on time. */
static int bounded_timeout(CURLM *m, int timeout_ms)
{
    mshadow_t *ms = !in_real_perform && m ? mshadow_of(m, false) : NULL;
    long due = ms ? ms_due_ms(ms) : -1;
    if (due < 0 && ms && ms->nmsgs) due = 0;
    return due >= 0 && due < timeout_ms ? (int)due : timeout_ms;
}

LR_EXPORT CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout_ms, int *numfds)
{
    curl_real();
    return real.multi_poll ? real.multi_poll(m, fds, n, bounded_timeout(m, timeout_ms), numfds) : CURLM_INTERNAL_ERROR;
}

LR_EXPORT CURLMcode curl_multi_wait(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout_ms, int *numfds)
{
    curl_real();
    return real.multi_wait ? real.multi_wait(m, fds, n, bounded_timeout(m, timeout_ms), numfds) : CURLM_INTERNAL_ERROR;
}

LR_EXPORT CURLMcode curl_multi_timeout(CURLM *m, long *timeout_ms)
{
    curl_real();
    CURLMcode rc = real.multi_timeout ? real.multi_timeout(m, timeout_ms) : CURLM_INTERNAL_ERROR;
    mshadow_t *ms = !in_real_perform && m ? mshadow_of(m, false) : NULL;
    long due = ms ? ms_due_ms(ms) : -1;
    if (rc == CURLM_OK && timeout_ms && due >= 0 && (*timeout_ms < 0 || due < *timeout_ms)) *timeout_ms = due;
    return rc;
}

LR_EXPORT CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
    curl_real();
    mshadow_t *ms = !in_real_perform && m ? mshadow_of(m, false) : NULL;
    if (ms && ms->nmsgs) {
        ms->out = ms->msgs[0];
        memmove(ms->msgs, ms->msgs + 1, sizeof *ms->msgs * (size_t)(ms->nmsgs - 1));
        ms->nmsgs--;
        if (left) *left = ms->nmsgs;
        return &ms->out;
    }
    CURLMsg *msg = real.multi_info_read ? real.multi_info_read(m, left) : NULL;
    if (msg && msg->msg == CURLMSG_DONE) {
        shadow_t *s = shadow_of(msg->easy_handle, false);
        if (s && s->tee) {
            upstream_end(s, s->tee, msg->data.result);
            s->tee = NULL;
            __atomic_fetch_sub(&tees_in_multi, 1, __ATOMIC_RELAXED);
        }
    }
    return msg;
}

LR_EXPORT CURLMcode curl_multi_socket_action(CURLM *m, curl_socket_t sock, int ev, int *running)
{
    curl_real();
    int r = 0;
    CURLMcode rc = real.multi_socket_action ? real.multi_socket_action(m, sock, ev, &r) : CURLM_INTERNAL_ERROR;
    mshadow_t *ms = !in_real_perform && m ? mshadow_of(m, false) : NULL;
    if (ms) {
        r += ms_run(ms);
        ms_wake(ms);
    }
    if (running) *running = r;
    return rc;
}

LR_EXPORT CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
    curl_real();
    va_list ap;
    va_start(ap, opt);
    CURLMcode rc;
    void *pv = NULL;
    if (opt < CURLOPTTYPE_OBJECTPOINT) rc = real.multi_setopt(m, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_OFF_T) { pv = va_arg(ap, void *); rc = real.multi_setopt(m, opt, pv); }
    else rc = real.multi_setopt(m, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    if (rc == CURLM_OK && (opt == CURLMOPT_TIMERFUNCTION || opt == CURLMOPT_TIMERDATA)) {
        mshadow_t *ms = mshadow_of(m, true);
        if (ms && opt == CURLMOPT_TIMERFUNCTION) ms->timer_cb = pv;
        if (ms && opt == CURLMOPT_TIMERDATA) ms->timer_data = pv;
    }
    return rc;
}

LR_EXPORT CURLMcode curl_multi_cleanup(CURLM *m)
{
    curl_real();
    mshadow_t *ms = NULL;
    if (m) {
        pthread_mutex_lock(&table_lock);
        HASH_FIND_PTR(mshadows, &m, ms);
        if (ms) HASH_DEL(mshadows, ms);
        pthread_mutex_unlock(&table_lock);
    }
    if (ms) {
        for (int i = 0; i < ms->nactive; i++) {
            xfer_free(ms->active[i]->xfer);
            ms->active[i]->xfer = NULL;
        }
        pthread_mutex_lock(&table_lock);
        for (shadow_t *s = shadows; s; s = s->hh.next)
            if (s->multi == m) s->multi = NULL;
        pthread_mutex_unlock(&table_lock);
        free(ms->active);
        free(ms->msgs);
        free(ms);
    }
    return real.multi_cleanup ? real.multi_cleanup(m) : CURLM_INTERNAL_ERROR;
}
