/* Running a replay through the application's callbacks with libcurl's semantics, for easy
 * handles and inside multi handles. */
#include "curl/curl_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include "net/dest.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- running a replay ---------------------------------------------------------------- */

/* The URL of the next transfer, as libcurl would use it (CURLU wins over CURLOPT_URL). */
char *transfer_url(shadow_t *s)
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

const char *method_name(const shadow_t *s)
{
    if (s->custom) return s->custom;
    switch (s->method) {
    case M_POST: return "POST";
    case M_PUT: return "PUT";
    case M_HEAD: return "HEAD";
    default: return "GET";
    }
}

void set_error(shadow_t *s, const char *fmt, ...)
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

/* Start a replay: build the request, ask the engine, reset the getinfo state. */
xfer_t *xfer_start(shadow_t *s, CURLcode *err)
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
    x->resp = lr_fault_serve(s->eff_method, url, x->body, x->body_len, &x->fault);
    if (s->nobody || s->method == M_HEAD) x->fault.on = false;
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

void xfer_free(xfer_t *x)
{
    if (!x) return;
    lr_response_free(x->resp);
    lr_fault_plan_free(&x->fault);
    free(x->body);
    free(x);
}

/* Progress callback as libcurl calls it; non-zero aborts. */
bool progress(shadow_t *s, xfer_t *x)
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

bool send_headers(shadow_t *s, xfer_t *x)
{
    lr_response_t *r = x->resp;
    s->status = r->status;
    s->content_type = r->content_type;
    s->content_length = r->stream ? -1 : (curl_off_t)r->body_len;
    s->t_first = x->pace_ms != 0 || x->fault.on ? elapsed(s) : 0;
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
bool send_event(shadow_t *s, xfer_t *x, const lr_event_t *ev)
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
    if (x->fault.on) { xfer_fault_step(x); return; }
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

/* An LLM operation, or any call to a host the shim answers (wire-level). A multipart form
 * (CURLOPT_MIMEPOST) cannot be read before libcurl sends it: with the socket layer on, the real
 * libcurl sends it there, where it is answered like any other request. */
static bool answers_url(const shadow_t *s, const char *u)
{
    if (!u) return false;
    if (lr_engine_intercepts(u) != OP_NONE) return true;
    char host[256];
    int port;
    bool https;
    if (s->mime && lr_layer_on(LR_LAYER_SOCKETS)) return false;
    return strstr(u, "://") && lr_url_hostport(u, host, sizeof host, &port, &https) && !strncasecmp(u, "http", 4) &&
           lr_dest_names(host, port);
}

/* Is this handle's next transfer one the shim answers? */
bool intercepted(shadow_t *s)
{
    if (!s || lr_inside || in_real_perform || !lr_layer_on(LR_LAYER_CURL)) return false;
    if (s->curlu) {
        char *u = transfer_url(s);
        bool r = answers_url(s, u);
        free(u);
        return r;
    }
    if (!s->url) return false;
    if (strstr(s->url, "://")) return answers_url(s, s->url);
    char *u = transfer_url(s);
    bool r = answers_url(s, u);
    free(u);
    return r;
}

CURLcode replay_easy(shadow_t *s)
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
        if ((x->pace_ms != 0 && x->next > 0) || x->fault.on) {
            double wait = x->due - lr_now();
            if (wait > 0) lr_sleep_ms(wait * 1000);
        }
        xfer_step(x);
    }
    s->xfer = NULL;
    return xfer_finish(s, x);
}

/* ---- multi handles -------------------------------------------------------------------- */

void ms_push_msg(mshadow_t *ms, CURL *h, CURLcode rc)
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

void ms_drop(mshadow_t *ms, shadow_t *s)
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
int ms_run(mshadow_t *ms)
{
    double now = lr_now();
    for (int i = 0; i < ms->nactive;) {
        shadow_t *s = ms->active[i];
        xfer_t *x = s->xfer;
        if (x && !x->done && !x->paused && ((x->next <= 0 && !x->fault.on) || x->due <= now)) {
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
long ms_due_ms(mshadow_t *ms)
{
    long best = -1;
    double now = lr_now();
    for (int i = 0; i < ms->nactive; i++) {
        xfer_t *x = ms->active[i]->xfer;
        if (!x) return 0;
        long ms_left = x->paused ? 1 : x->next <= 0 && !x->fault.on ? 0 : (long)((x->due - now) * 1000 + 0.999);
        if (ms_left < 0) ms_left = 0;
        if (best < 0 || ms_left < best) best = ms_left;
    }
    return best;
}

void ms_wake(mshadow_t *ms)
{
    long due = ms_due_ms(ms);
    if (due >= 0 && ms->timer_cb)
        ((int (*)(CURLM *, long, void *))ms->timer_cb)(ms->m, due, ms->timer_data);
}
