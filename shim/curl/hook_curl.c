/* The libcurl layer: shadow each easy handle's options, and serve intercepted transfers from
 * the engine through the application's own callbacks, with libcurl's semantics. Everything
 * else goes to the real libcurl untouched. */
#include "curl/curl_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    CURLcode rc;
    IN_REAL_CURL(rc = real.easy_perform(h));
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
