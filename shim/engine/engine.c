#include "engine/engine.h"
#include "base/real.h"
#include "base/config.h"
#include "base/log.h"
#include "engine/gemini.h"
#include "engine/keymemo.h"
#include "engine/match.h"
#include "engine/raw.h"
#include "engine/record.h"
#include "engine/testid.h"
#include "engine/usage.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER; /* first render of a recording */
static pthread_mutex_t miss_lock = PTHREAD_MUTEX_INITIALIZER;   /* the misses seen so far */

/* Take every engine lock around fork(), so a child forked mid-request can still serve. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&render_lock);
    pthread_mutex_lock(&miss_lock);
    lr_keymemo_lock(true);
    lr_store_lock(true);
}
static void fork_release(void)
{
    lr_store_lock(false);
    lr_keymemo_lock(false);
    pthread_mutex_unlock(&miss_lock);
    pthread_mutex_unlock(&render_lock);
}
__attribute__((constructor)) static void engine_init(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

const lr_hostport_t *lr_engine_hosts(int *n)
{
    lr_store_t *s = lr_store_global();
    *n = 0;
    return s ? lr_store_hosts(s, n) : NULL;
}

lr_op_t lr_engine_intercepts(const char *url)
{
    if (!url) return OP_NONE;
    return lr_op_of_url(url);
}

/* The request as the matcher sees it, but for its body (req_body). */
static void req_head(lr_req_t *rq, lr_op_t op, const char *method, const char *url, const char *body, size_t body_len)
{
    *rq = (lr_req_t){.op = op ? op : lr_op_of_url(url), .method = method && *method ? method : "POST", .url = url};
    bool https;
    if (!lr_url_hostport(url, rq->host, sizeof rq->host, &rq->port, &https)) rq->host[0] = 0;
    if (!rq->op) { /* any other call to an intercepted host: wire-level (engine/raw.c) */
        rq->op = lr_op_http();
        rq->raw = body ? body : "";
        rq->raw_len = body ? body_len : 0;
    }
}

/* The parsed body; the caller deletes rq->body. */
static void req_body(lr_req_t *rq, const char *body, size_t body_len)
{
    if (lr_op_is_raw(rq->op)) {
        if (body_len) rq->body = lr_json_parse(body, body_len); /* NULL: not JSON, matched by bytes */
        return;
    }
    if (!lr_op_info(rq->op)->listing && body && body_len) {
        rq->body = lr_json_parse(body, body_len);
        rq->body_invalid = !rq->body;
    }
    if (lr_op_info(rq->op)->google && !rq->body_invalid) { /* the model is in the URL */
        cJSON *g = lr_gemini_client_body(rq->url, rq->body);
        if (rq->body) J.Delete(rq->body);
        rq->body = g;
    }
}

static void req_init(lr_req_t *rq, const char *method, const char *url, const char *body, size_t body_len)
{
    req_head(rq, OP_NONE, method, url, body, body_len);
    req_body(rq, body, body_len);
}

/* req_init with the match key for s: a request seen before (the same bytes) takes its key
 * from the memo and is not parsed (in replay, where nothing else reads the body before a
 * miss: *parsed tells whether req_body is still to do). */
static void req_keyed(lr_req_t *rq, lr_store_t *s, lr_op_t op, const char *method, const char *url, const char *body,
                      size_t body_len, bool *parsed)
{
    req_head(rq, op, method, url, body, body_len);
    *parsed = true;
    if (!s) { req_body(rq, body, body_len); return; }
    unsigned gen = lr_store_generation(s);
    lr_memo_key_t k;
    if (lr_mode() == MODE_REPLAY && lr_keymemo_get(gen, rq->method, url, body, body_len, &k)) {
        *parsed = false;
    } else {
        req_body(rq, body, body_len);
        k.body_invalid = rq->body_invalid;
        k.h1 = k.h2 = 0;
        if (!k.body_invalid) lr_req_key(rq, lr_store_ignore(s), &k.h1, &k.h2);
        lr_keymemo_put(gen, rq->method, url, body, body_len, &k);
    }
    rq->body_invalid = k.body_invalid;
    rq->h1 = k.h1, rq->h2 = k.h2;
    rq->keyed = !k.body_invalid;
}

/* An answer the shim makes itself (an OAuth token exchange in replay). */
static lr_response_t *local_answer(void)
{
    lr_response_t *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    const char *t = lr_gemini_token_body();
    *o = (lr_response_t){.status = 200, .reason = "OK", .content_type = "application/json", .owned = true};
    o->extra_headers = strdup("Cache-Control: no-store\r\n");
    o->events = calloc(1, sizeof *o->events);
    char *d = o->events ? strdup(t) : NULL;
    if (d) { o->events[0] = (lr_event_t){d, strlen(t)}; o->nevents = 1; o->body_len = strlen(t); }
    if (!d || !o->extra_headers) { lr_response_free(o); return NULL; }
    return o;
}

/* The recording that answers rq. A recording edited since it was indexed, or a miss while the
 * directories changed: rescan once, so edits, additions and removals are seen on the next call. */
static const lr_rec_t *lookup(lr_store_t **s, const lr_req_t *rq, bool advance)
{
    const lr_rec_t *hit = lr_match(*s, rq, advance);
    if (*s && ((hit && !lr_rec_fresh((lr_rec_t *)hit)) || (!hit && lr_store_stale(*s)))) {
        *s = lr_store_global_refresh(*s);
        hit = lr_match(*s, rq, advance);
    }
    return hit;
}

bool lr_engine_has(const char *method, const char *url, const char *body, size_t body_len)
{
    if (!url || !lr_cjson()) return false;
    lr_req_t rq;
    req_init(&rq, method, url, body, body_len);
    lr_store_t *s = lr_store_global();
    const lr_rec_t *hit = lookup(&s, &rq, false);
    if (rq.body) J.Delete(rq.body);
    return hit != NULL;
}

static const char *model_of(const lr_req_t *rq)
{
    const cJSON *mj = rq->body ? J.GetObjectItemCaseSensitive(rq->body, "model") : NULL;
    return cJSON_IsString(mj) && mj->valuestring ? mj->valuestring : "";
}

/* Would this request go upstream, before the spend guard? record with LLMREPLAY_ONLY: only
 * the calls it selects (by test id, operation, model or the recording that answers now). */
static bool wants_upstream(lr_mode_t m, const lr_req_t *rq)
{
    if (m == MODE_REPLAY) return false;
    bool only = m == MODE_RECORD && lr_cfg()->only;
    if (m != MODE_RECORD_IF_MISSING && !only) return true;
    lr_store_t *s = lr_store_global();
    const lr_rec_t *hit = lookup(&s, rq, false);
    if (!only) return hit == NULL;
    char tid[1024];
    return lr_only_selects(lr_testid(tid, sizeof tid), rq->op, model_of(rq), hit ? hit->path : NULL);
}

bool lr_engine_upstream(const char *method, const char *url, const char *body, size_t body_len)
{
    lr_mode_t m = lr_mode();
    if (m == MODE_REPLAY || !url) return false;
    if (!lr_cjson()) return m != MODE_RECORD_IF_MISSING && !lr_cfg()->only && lr_guard_admit(method, url, lr_op_of_url(url), NULL);
    lr_req_t rq;
    req_init(&rq, method, url, body, body_len);
    bool up = wants_upstream(m, &rq) && lr_guard_admit(rq.method, url, rq.op, model_of(&rq));
    if (rq.body) J.Delete(rq.body);
    return up;
}

static lr_response_t *cached_render(lr_rec_t *r)
{
    lr_response_t *resp = __atomic_load_n(&r->resp, __ATOMIC_ACQUIRE);
    if (resp) return resp;
    pthread_mutex_lock(&render_lock);
    if (!r->resp) {
        lr_response_t *fresh = lr_render_recording(r);
        lr_response_join(fresh); /* shared from now on: joined before any connection sees it */
        __atomic_store_n(&r->resp, fresh, __ATOMIC_RELEASE);
    }
    resp = r->resp;
    pthread_mutex_unlock(&render_lock);
    return resp;
}

/* Misses seen in this process, by request: the explanation of the first MISS_KEEP distinct
 * ones is computed once (it reads candidate recordings) and kept; stderr gets one line per
 * distinct request among the last MISS_SEEN. Both bounded: a program that misses with ever
 * new requests does not grow. A kept answer is shared and never freed (a connection may be
 * writing it), so the kept ones are not evicted; later ones are the caller's to free. */
#define MISS_KEEP 256
#define MISS_SEEN 4096
typedef struct {
    uint64_t key;
    lr_response_t *resp;
    char *nearest, *message;
} miss_t;
static miss_t missed[MISS_KEEP];
static size_t nmissed;
static uint64_t seen[MISS_SEEN]; /* a ring of request keys, 0: free */
static size_t nseen;

static miss_t *miss_find(uint64_t key)
{
    for (size_t i = 0; i < nmissed; i++)
        if (missed[i].key == key) return &missed[i];
    return NULL;
}

/* Was this request missed recently? Remembers it if not. */
static bool miss_seen(uint64_t key)
{
    key |= 1; /* never 0 */
    for (size_t i = 0; i < MISS_SEEN && i < nseen; i++)
        if (seen[i] == key) return true;
    seen[nseen++ % MISS_SEEN] = key;
    return false;
}

/* Keep the answer when there is room (then it is shared); false: the caller frees it. */
static bool miss_add(uint64_t key, lr_response_t *resp, const char *nearest, const char *message)
{
    if (nmissed == MISS_KEEP) return false;
    char *n = nearest ? strdup(nearest) : NULL, *m = strdup(message);
    if (!m || (nearest && !n)) { free(n); free(m); return false; }
    resp->owned = false; /* kept for the next time this request misses */
    missed[nmissed++] = (miss_t){key, resp, n, m};
    return true;
}

static void append_line(const char *path, const buf_t *line)
{
    if (!lr_append_line(path, line->data, line->len)) lr_warn("cannot append to %s: %m", path);
}

static void log_miss(const lr_req_t *rq, const char *nearest, const char *body, size_t blen, const char *msg)
{
    const char *logp = lr_cfg()->miss_log, *strict = lr_cfg()->strict_file;
    if (!logp && !strict && !lr_cfg()->usage_file) return;
    buf_t b;
    buf_init(&b);
    const char *model = lr_body_model(rq->body);
    buf_printf(&b, "{\"time\":%ld,\"pid\":%d,\"operation\":\"%s\",\"method\":", (long)time(NULL), (int)getpid(),
               lr_op_info(rq->op)->endpoint);
    buf_json_strz(&b, rq->method ? rq->method : "POST");
    buf_adds(&b, ",\"url\":");
    buf_json_strz(&b, rq->url);
    buf_adds(&b, ",\"model\":");
    buf_json_strz(&b, model);
    buf_adds(&b, ",\"body\":");
    if (rq->body && !rq->body_invalid) js_minify((span_t){body, blen}, &b);
    else buf_json_str(&b, body ? body : "", body ? blen : 0);
    buf_adds(&b, ",\"nearest\":");
    if (nearest) buf_json_strz(&b, nearest);
    else buf_adds(&b, "null");
    buf_adds(&b, ",\"message\":");
    buf_json_strz(&b, msg);
    buf_adds(&b, "}\n");
    if (!b.oom) {
        lr_usage_miss(b.data, b.len);
        if (logp) append_line(logp, &b);
        if (strict) append_line(strict, &b);
    }
    buf_free(&b);
}

static lr_response_t *serve(lr_op_t op, const char *method, const char *url, const char *body, size_t body_len);

lr_response_t *lr_engine_serve(const char *method, const char *url, const char *body, size_t body_len)
{
    static lr_response_t oom = {.status = 500, .reason = "Internal Server Error", .content_type = "application/json"};
    lr_op_t op = lr_op_of_url(url);
    if (!lr_cjson()) {
        lr_response_t *e = lr_render_error(op, 500, "llmreplay_error", "llmreplay_unavailable",
                                           "llmreplay: libcjson.so.1 cannot be loaded; install libcjson1");
        return e ? e : &oom;
    }
    if (lr_op_info(op)->local) {
        lr_response_t *t = local_answer();
        return t ? t : &oom;
    }
    char *clean = lr_url_without_key(url); /* the Gemini API key never reaches a log or a file */
    if (clean) url = clean;
    lr_response_t *r = serve(op, method, url, body, body_len); /* a key in the query is not in the path */
    free(clean);
    return r;
}

static lr_response_t *serve(lr_op_t op, const char *method, const char *url, const char *body, size_t body_len)
{
    static lr_response_t oom = {.status = 500, .reason = "Internal Server Error", .content_type = "application/json"};
    lr_req_t rq;
    lr_store_t *s = lr_store_global();
    bool parsed;
    req_keyed(&rq, s, op, method, url, body, body_len, &parsed);
    static int told;
    /* said here, when an LLM call is served, not when some other name is resolved */
    if (s && !lr_store_info(s).ndirs && lr_mode() == MODE_REPLAY && !__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
        lr_warn("LLMREPLAY_DIR is not set: no recordings loaded; set it to your recordings directory (or use llmreplay run -d DIR)");
    /* a call that wanted to go upstream is here because the spend guard refused it */
    lr_response_t *refused = lr_mode() != MODE_REPLAY && wants_upstream(lr_mode(), &rq) ? lr_guard_refusal(rq.op, model_of(&rq)) : NULL;
    if (refused) {
        if (rq.body) J.Delete(rq.body);
        return refused;
    }
    const lr_rec_t *hit = lookup(&s, &rq, true);
    if (hit) {
        if (rq.body) J.Delete(rq.body);
        lr_debug("%s %s -> %s", rq.method, url, hit->path);
        lr_usage_served(hit->path);
        lr_response_t *r = cached_render((lr_rec_t *)hit);
        /* Google's embedding methods match as one: the answer in the shape the client asked */
        lr_response_t *a = r && hit->op != rq.op && lr_op_info(rq.op)->google ? lr_gemini_adapt(r, rq.op) : NULL;
        return a ? a : r ? r : &oom;
    }
    if (!parsed) req_body(&rq, body, body_len); /* a miss explains itself from the body */
    uint64_t h1 = rq.h1, h2 = rq.h2;
    if (!rq.keyed) lr_req_key(&rq, s ? lr_store_ignore(s) : NULL, &h1, &h2);
    if (rq.body_invalid) h1 ^= lr_hash64(body, body_len, 7);
    pthread_mutex_lock(&miss_lock);
    miss_t *known = miss_find(h1);
    lr_response_t *e = known ? known->resp : NULL;
    char *nearest = known && known->nearest ? strdup(known->nearest) : NULL;
    char *message = known ? strdup(known->message) : NULL;
    pthread_mutex_unlock(&miss_lock);
    if (!e) {
        buf_t msg;
        buf_init(&msg);
        bool raw = lr_op_is_raw(rq.op);
        if (raw) {
            lr_raw_miss(s, &rq, &msg, &nearest);
        } else {
            lr_nearest_t near;
            lr_find_nearest(s, &rq, &near);
            lr_miss_message(&rq, &near, &msg);
            nearest = near.nearest ? strdup(near.nearest->path) : NULL;
        }
        message = strdup(msg.data ? msg.data : "llmreplay: no recording matches this request");
        buf_free(&msg);
        e = message ? lr_render_error(rq.op, 404, "invalid_request_error",
                                      raw ? "llmreplay_not_an_llm_endpoint" : "llmreplay_no_recording", message) : NULL;
        pthread_mutex_lock(&miss_lock);
        bool kept = miss_find(h1) != NULL; /* by another thread, meanwhile */
        bool first = !kept && !miss_seen(h1);
        if (!kept && e) miss_add(h1, e, nearest, message); /* not kept: e stays the caller's */
        pthread_mutex_unlock(&miss_lock);
        if (first && message) lr_error("%s", message + strlen("llmreplay: "));
    }
    log_miss(&rq, nearest, body, body_len, message ? message : "llmreplay: no recording matches this request");
    free(message);
    free(nearest);
    if (rq.body) J.Delete(rq.body);
    return e ? e : &oom;
}

/* A call LLMREPLAY_ONLY sent upstream replaces its recording: other files of the same request
 * and test under the record directory (a renamed or older copy) would still compete with the
 * new one, so they go. Recordings of other tests, and other directories, are left alone. */
void lr_engine_replaced(const lr_capture_t *c, const char *written)
{
    const char *dir = lr_cfg()->record_dir;
    size_t dl = dir ? strlen(dir) : 0;
    if (!dl || !lr_cjson() || !c->req.len) return;
    lr_req_t rq;
    req_init(&rq, c->method, c->url, c->req.data, c->req.len);
    lr_store_t *s = lr_store_global();
    uint64_t h1, h2;
    lr_rec_t *const *recs = NULL;
    int n = 0;
    if (s && !rq.body_invalid) {
        lr_req_key(&rq, lr_store_ignore(s), &h1, &h2);
        recs = lr_store_find(s, h1, h2, &n);
    }
    for (int i = 0; recs && i < n; i++) {
        const lr_rec_t *r = recs[i];
        bool same_test = (!r->test_id && !c->test_id) || (r->test_id && c->test_id && !strcmp(r->test_id, c->test_id));
        if (!same_test || !strcmp(r->path, written) || strncmp(r->path, dir, dl) || r->path[dl] != '/') continue;
        if (unlink(r->path) == 0) lr_log(LR_INFO, "%s replaces %s (LLMREPLAY_ONLY)", written, r->path);
    }
    if (rq.body) J.Delete(rq.body);
}
