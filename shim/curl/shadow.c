/* The shadow of each easy and multi handle: the options the application set, as the hooks
 * saw them, and the state of a replay in progress. */
#include "curl/curl_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- shadowed state of easy and multi handles ---------------------------------------- */

pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER; /* both tables below */
shadow_t *shadows;
mshadow_t *mshadows;

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
shadow_t *shadow_of(CURL *h, bool create)
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

void shadow_clear(shadow_t *s)
{
    free(s->url);
    free(s->custom);
    free(s->copied);
    free(s->eff_url);
    free(s->eff_method);
    CURL *h = s->h;
    /* h and hh belong to the table too: other threads' look-ups walk them (curl_easy_reset) */
    pthread_mutex_lock(&table_lock);
    UT_hash_handle hh = s->hh;
    memset(s, 0, sizeof *s);
    s->h = h;
    s->hh = hh;
    pthread_mutex_unlock(&table_lock);
    shadow_defaults(s);
}

mshadow_t *mshadow_of(CURLM *m, bool create)
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
void shadow_set(shadow_t *s, CURLoption opt, long lv, void *pv, curl_off_t ov)
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
    case CURLOPT_LOW_SPEED_LIMIT: s->low_speed_limit = lv; break;
    case CURLOPT_LOW_SPEED_TIME: s->low_speed_time = lv; break;
    default: break;
    }
}

shadow_t *shadow_dup(const shadow_t *o, CURL *h)
{
    shadow_t *s = shadow_of(h, true);
    if (!s) return NULL;
    pthread_mutex_lock(&table_lock); /* as in shadow_clear: h and hh are the table's */
    UT_hash_handle hh = s->hh;
    *s = *o;
    s->h = h;
    s->hh = hh;
    pthread_mutex_unlock(&table_lock);
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
