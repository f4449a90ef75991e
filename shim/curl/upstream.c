/* Going upstream (record, record-if-missing, live, trace): the real transfer runs with teed
 * callbacks. */
#include "curl/curl_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- going upstream (record, record-if-missing, live, trace) ---------------------------- */

/* The real transfer runs; these callbacks tee what libcurl delivers into the capture and hand
 * it to the application exactly as libcurl would have, so the program sees no difference. */
struct tee {
    shadow_t *s;
    lr_capture_t *cap;
};

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

int tees_in_multi;

tee_t *upstream_begin(shadow_t *s)
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

void upstream_end(shadow_t *s, tee_t *t, CURLcode rc)
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
bool goes_upstream(shadow_t *s)
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

CURLcode upstream_easy(shadow_t *s, CURL *h)
{
    tee_t *t = upstream_begin(s);
    /* the real transfer must reach the real network, even to a host the socket layer answers */
    CURLcode rc;
    IN_REAL_CURL(LR_OWN(rc = real.easy_perform(h)));
    if (t) upstream_end(s, t, rc);
    return rc;
}
