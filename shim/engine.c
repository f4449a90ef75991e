#include "engine.h"
#include "log.h"
#include "match.h"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER; /* first render of a recording */
static pthread_mutex_t miss_lock = PTHREAD_MUTEX_INITIALIZER;   /* the set of reported misses */
static uint64_t *missed;
static size_t nmissed, capmissed;
static unsigned misses;

/* Take every engine lock around fork(), so a child forked mid-request can still serve. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&render_lock);
    pthread_mutex_lock(&miss_lock);
    lr_store_lock(true);
}
static void fork_release(void)
{
    lr_store_lock(false);
    pthread_mutex_unlock(&miss_lock);
    pthread_mutex_unlock(&render_lock);
}
__attribute__((constructor)) static void engine_init(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

lr_op_t lr_engine_intercepts(const char *url)
{
    if (!url) return OP_NONE;
    return lr_op_of_url(url);
}

unsigned lr_engine_misses(void) { return __atomic_load_n(&misses, __ATOMIC_RELAXED); }

static lr_response_t *cached_render(lr_rec_t *r)
{
    lr_response_t *resp = __atomic_load_n(&r->resp, __ATOMIC_ACQUIRE);
    if (resp) return resp;
    pthread_mutex_lock(&render_lock);
    if (!r->resp) __atomic_store_n(&r->resp, lr_render_recording(r), __ATOMIC_RELEASE);
    resp = r->resp;
    pthread_mutex_unlock(&render_lock);
    return resp;
}

/* True the first time a given request misses in this process: stderr gets one line each. */
static bool first_miss(uint64_t key)
{
    bool first = true;
    pthread_mutex_lock(&miss_lock);
    for (size_t i = 0; i < nmissed; i++)
        if (missed[i] == key) { first = false; break; }
    if (first && nmissed == capmissed) {
        size_t cap = capmissed ? capmissed * 2 : 16;
        uint64_t *v = realloc(missed, cap * sizeof *v);
        if (v) missed = v, capmissed = cap;
    }
    if (first && nmissed < capmissed) missed[nmissed++] = key;
    pthread_mutex_unlock(&miss_lock);
    return first;
}

static void append_line(const char *path, const buf_t *line)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) { lr_warn("cannot append to %s: %m", path); return; }
    ssize_t w = write(fd, line->data, line->len); /* O_APPEND + one write: whole lines */
    (void)w;
    close(fd);
}

static void log_miss(const lr_req_t *rq, const lr_nearest_t *n, const char *body, size_t blen, const char *msg)
{
    const char *logp = lr_getenv("LLMREPLAY_MISS_LOG"), *strict = lr_getenv("LLMREPLAY__STRICT_FILE");
    if (!logp && !strict) return;
    buf_t b;
    buf_init(&b);
    const char *model = "";
    const cJSON *mj = rq->body ? J.GetObjectItemCaseSensitive(rq->body, "model") : NULL;
    if (cJSON_IsString(mj) && mj->valuestring) model = mj->valuestring;
    buf_printf(&b, "{\"time\":%ld,\"pid\":%d,\"operation\":\"%s\",\"method\":", (long)time(NULL), (int)getpid(),
               lr_op_info(rq->op)->endpoint);
    buf_json_str(&b, rq->method ? rq->method : "POST", strlen(rq->method ? rq->method : "POST"));
    buf_adds(&b, ",\"url\":");
    buf_json_str(&b, rq->url, strlen(rq->url));
    buf_adds(&b, ",\"model\":");
    buf_json_str(&b, model, strlen(model));
    buf_adds(&b, ",\"body\":");
    if (rq->body && !rq->body_invalid) js_minify((span_t){body, blen}, &b);
    else buf_json_str(&b, body ? body : "", body ? blen : 0);
    buf_adds(&b, ",\"nearest\":");
    if (n->nearest) buf_json_str(&b, n->nearest->path, strlen(n->nearest->path));
    else buf_adds(&b, "null");
    buf_adds(&b, ",\"message\":");
    buf_json_str(&b, msg, strlen(msg));
    buf_adds(&b, "}\n");
    if (!b.oom) {
        if (logp) append_line(logp, &b);
        if (strict) append_line(strict, &b);
    }
    buf_free(&b);
}

lr_response_t *lr_engine_serve(const char *method, const char *url, const char *body, size_t body_len)
{
    static lr_response_t oom = {500, "Internal Server Error", "application/json", false, NULL, 0, 0, NULL, NULL, false};
    lr_req_t rq = {.op = lr_op_of_url(url), .method = method && *method ? method : "POST", .url = url};
    bool https;
    if (!lr_url_hostport(url, rq.host, sizeof rq.host, &rq.port, &https)) rq.host[0] = 0;
    if (!lr_cjson()) {
        lr_response_t *e = lr_render_error(rq.op, 500, "llmreplay_error", "llmreplay_unavailable",
                                           "llmreplay: libcjson.so.1 cannot be loaded; install libcjson1");
        return e ? e : &oom;
    }
    lr_store_t *s = lr_store_global();
    bool listing = lr_op_info(rq.op)->listing;
    if (!listing && body && body_len) {
        rq.body = lr_json_parse(body, body_len);
        rq.body_invalid = !rq.body;
    }
    for (int attempt = 0;; attempt++) {
        const lr_rec_t *hit = lr_match(s, &rq, true);
        /* A recording edited since it was indexed, or a miss while the directories changed:
         * rescan once, so edits, additions and removals are seen on the next call. */
        if (attempt == 0 && s && ((hit && !lr_rec_unchanged(hit)) || (!hit && lr_store_stale(s)))) {
            s = lr_store_global_refresh(s);
            continue;
        }
        if (!hit) break;
        if (rq.body) J.Delete(rq.body);
        lr_debug("%s %s -> %s", rq.method, url, hit->path);
        lr_response_t *r = cached_render((lr_rec_t *)hit);
        return r ? r : &oom;
    }
    __atomic_fetch_add(&misses, 1, __ATOMIC_RELAXED);
    lr_nearest_t near;
    lr_find_nearest(s, &rq, &near);
    buf_t msg;
    buf_init(&msg);
    lr_miss_message(&rq, &near, &msg);
    const char *m = msg.data ? msg.data : "llmreplay: no recording matches this request";
    uint64_t h1, h2;
    lr_match_key(rq.op, rq.method, rq.body, s ? &s->ig : NULL, &h1, &h2);
    if (rq.body_invalid) h1 ^= lr_hash64(body, body_len, 7);
    if (first_miss(h1)) lr_error("%s", m + strlen("llmreplay: "));
    log_miss(&rq, &near, body, body_len, m);
    lr_response_t *e = lr_render_error(rq.op, 404, "invalid_request_error", "llmreplay_no_recording", m);
    buf_free(&msg);
    if (rq.body) J.Delete(rq.body);
    return e ? e : &oom;
}
