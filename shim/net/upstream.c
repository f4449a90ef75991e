/* Going upstream for the responder (record, record-if-missing, live, trace): a worker thread
 * per request calls the real API through libcurl loaded at run time (net/curl_rt.c), passes
 * each piece to the client the moment it arrives, and hands the exchange to the capture.
 * On HTTP/1 the worker owns the connection's output while it runs (c->upstream); on HTTP/2 it
 * hands the answer to the loop (lr_h2_live), which frames it, and never touches the connection. */
#include "base/config.h"
#include "base/real.h"
#include "engine/record.h"
#include "net/conn.h"
#include "net/responder.h"
#include "net/curl_rt.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

typedef struct {
    lr_conn_t *c;       /* HTTP/1: the worker writes to the connection itself */
    lr_h2_live_t *live; /* HTTP/2: the loop frames what the worker hands it */
    char method[16], *url, *headers;
    bool head_only;
    const char *upstream_ca;
    char *body;
    size_t len;
    bool head_sent, chunked, client_gone;
    int status;
    buf_t head;
    lr_capture_t *cap;
} job_t;

/* Blocking write on the non-blocking client socket; false when the client is gone. */
static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = lr_send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            if (poll(&pf, 1, 30000) <= 0) return false;
            continue;
        }
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void job_free(job_t *j)
{
    free(j->url);
    free(j->headers);
    free(j->body);
    buf_free(&j->head);
    free(j);
}

static void job_head(job_t *j)
{
    if (j->head_sent) return;
    j->head_sent = true;
    if (j->live) {
        lr_h2_live_head(j->live, j->status ? j->status : 502, j->head.data ? j->head.data : "", j->head.len);
        return;
    }
    lr_conn_t *c = j->c;
    j->chunked = c->keep_alive && c->minor >= 1;
    buf_t h;
    buf_init(&h);
    buf_printf(&h, "HTTP/1.1 %d %s\r\n", j->status ? j->status : 502, lr_reason(j->status ? j->status : 502));
    buf_add(&h, j->head.data ? j->head.data : "", j->head.len);
    buf_adds(&h, j->chunked ? "Transfer-Encoding: chunked\r\n" : "Connection: close\r\n");
    buf_adds(&h, "\r\n");
    if (!send_all(c->fd, h.data, h.len)) j->client_gone = true;
    buf_free(&h);
}

static size_t up_header(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    size_t len = sz * n;
    lr_capture_header(j->cap, p, len);
    if (len > 5 && !strncmp(p, "HTTP/", 5)) {
        const char *sp = memchr(p, ' ', len);
        j->status = sp ? atoi(sp + 1) : 502;
        j->head.len = 0;
    } else if (len > 2) {
        /* pass end-to-end headers on; framing is the responder's own */
        static const char *skip[] = {"content-length:", "transfer-encoding:", "connection:", "keep-alive:", NULL};
        bool drop_it = false;
        for (int i = 0; skip[i]; i++) drop_it |= len >= strlen(skip[i]) && !strncasecmp(p, skip[i], strlen(skip[i]));
        if (!drop_it) buf_add(&j->head, p, len);
    }
    return len;
}

/* One piece of the answer to the client (a chunk on HTTP/1, DATA on HTTP/2). */
static bool job_send(job_t *j, const char *p, size_t n)
{
    if (j->client_gone || !n) return !j->client_gone;
    bool ok;
    if (j->live) {
        ok = lr_h2_live_data(j->live, p, n);
    } else {
        char pre[32];
        int pl = snprintf(pre, sizeof pre, "%zx\r\n", n);
        int fd = j->c->fd;
        ok = (!j->chunked || send_all(fd, pre, (size_t)pl)) && send_all(fd, p, n) && (!j->chunked || send_all(fd, "\r\n", 2));
    }
    if (!ok) j->client_gone = true;
    return ok;
}

static size_t up_body(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    size_t len = sz * n;
    if (j->status >= 100 && j->status < 200) return len;
    job_head(j);
    lr_capture_data(j->cap, p, len);
    /* each upstream piece goes to the client the moment it arrives: a recorded stream is
     * still a live stream for the program */
    return job_send(j, p, len) ? len : 0;
}

/* The request's headers as libcurl's list, without 100-continue. */
static struct curl_slist *request_headers(const lr_curl_t *C, const char *headers)
{
    struct curl_slist *hl = NULL;
    for (const char *p = headers; p && *p;) {
        const char *e = strchr(p, '\n');
        char *line = lr_strndup(p, e ? (size_t)(e - p) : strlen(p));
        if (line) { hl = C->slist_append(hl, line); free(line); }
        p = e ? e + 1 : p + strlen(p);
    }
    return C->slist_append(hl, "Expect:"); /* no 100-continue round trip upstream */
}

/* The upstream call itself; the failure, if any, is in j->cap->error. */
static CURLcode call_upstream(job_t *j)
{
    const lr_curl_t *C = lr_curl();
    if (!C) {
        snprintf(j->cap->error, sizeof j->cap->error, "libcurl cannot be loaded");
        return CURLE_FAILED_INIT;
    }
    CURL *h = C->easy_init();
    struct curl_slist *hl = request_headers(C, j->headers);
    C->easy_setopt(h, CURLOPT_URL, j->url);
    C->easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
    if (j->len || strcmp(j->method, "GET")) {
        C->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
        C->easy_setopt(h, CURLOPT_POSTFIELDS, j->body ? j->body : "");
    }
    if (j->head_only) C->easy_setopt(h, CURLOPT_NOBODY, 1L);
    C->easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    C->easy_setopt(h, CURLOPT_HEADERFUNCTION, up_header);
    C->easy_setopt(h, CURLOPT_HEADERDATA, j);
    C->easy_setopt(h, CURLOPT_WRITEFUNCTION, up_body);
    C->easy_setopt(h, CURLOPT_WRITEDATA, j);
    C->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    C->easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (j->upstream_ca) C->easy_setopt(h, CURLOPT_CAINFO, j->upstream_ca);
    CURLcode rc = C->easy_perform(h);
    if (rc != CURLE_OK && !j->client_gone)
        snprintf(j->cap->error, sizeof j->cap->error, "%s", C->easy_strerror(rc));
    if (j->client_gone) snprintf(j->cap->error, sizeof j->cap->error, "the client went away mid-answer");
    C->easy_cleanup(h);
    C->slist_free_all(hl);
    return rc;
}

/* The upstream never answered: say so, as a gateway would (502). */
static void answer_failure(job_t *j)
{
    char msg[600];
    snprintf(msg, sizeof msg, "llmreplay: upstream %s failed: %s (LLMREPLAY_MODE=%s)", j->url, j->cap->error, lr_mode_name(lr_mode()));
    buf_t b;
    buf_init(&b);
    buf_adds(&b, "{\"error\":{\"message\":");
    buf_json_strz(&b, msg);
    buf_adds(&b, ",\"type\":\"llmreplay_upstream_error\"}}");
    j->status = 502;
    j->head.len = 0;
    buf_adds(&j->head, "Content-Type: application/json\r\n");
    job_head(j);
    job_send(j, b.data, b.len);
    buf_free(&b);
}

/* Upstream exchanges still being finished (a plain answer's recording is written after the
 * client has its last byte): a program that exits at once must not lose them. */
static unsigned inflight; /* (atomic) */
static void inflight_child(void) { inflight = 0; } /* a forked child has no worker threads */
/* A destructor, not atexit: it runs after every exit handler, so a call one of them makes in
 * record mode is waited for too. */
__attribute__((destructor)) static void upstream_drain(void)
{
    for (int i = 0; i < 1000 && __atomic_load_n(&inflight, __ATOMIC_ACQUIRE) > 0; i++) lr_sleep_ms(5);
}
unsigned lr_responder_busy(void) { return __atomic_load_n(&inflight, __ATOMIC_ACQUIRE); } /* llmreplay serve waits for them */

static void *upstream_worker(void *arg)
{
    job_t *j = arg;
    lr_conn_t *c = j->c;
    lr_inside = 1; /* real DNS, real connect, real TLS: the network, not the hooks */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    CURLcode rc = call_upstream(j);
    if (!j->head_sent && !j->client_gone) {
        if (rc != CURLE_OK) answer_failure(j);
        else job_head(j);
    }
    lr_capture_finish(j->cap);
    __atomic_sub_fetch(&inflight, 1, __ATOMIC_RELEASE);
    if (j->live) {
        lr_h2_live_end(j->live); /* wakes the loop */
        job_free(j);
        return NULL;
    }
    if (j->chunked && !j->client_gone) send_all(c->fd, "0\r\n\r\n", 5);
    if (!j->chunked || j->client_gone) c->closing = true;
    job_free(j);
    __atomic_store_n(&c->upstream, 0, __ATOMIC_RELEASE);
    lr_server_wake();
    return NULL;
}

/* Registered with the first exchange, not in a constructor: a program that never goes
 * upstream pays nothing for it at start-up. */
static void drain_init(void) { pthread_atfork(NULL, NULL, inflight_child); }

static bool start_worker(job_t *j)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, drain_init);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    __atomic_add_fetch(&inflight, 1, __ATOMIC_RELEASE);
    bool ok = pthread_create(&th, &a, upstream_worker, j) == 0;
    if (!ok) __atomic_sub_fetch(&inflight, 1, __ATOMIC_RELEASE);
    pthread_attr_destroy(&a);
    return ok;
}

/* An upstream call for a request, with its own copy of what the worker needs. */
static job_t *job_new(const lr_conn_t *c, const char *method, const char *url, const char *headers, const char *body,
                      size_t len)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    snprintf(j->method, sizeof j->method, "%s", method);
    j->head_only = !strcmp(method, "HEAD");
    j->upstream_ca = c->upstream_ca;
    j->url = strdup(url);
    j->headers = strdup(headers ? headers : "");
    j->len = len;
    j->body = len ? lr_strndup(body, len) : NULL;
    j->cap = lr_capture_new(method, url);
    if (j->cap && len) buf_add(&j->cap->req, body, len);
    if (!j->cap || !j->url || !j->headers || (len && !j->body)) {
        lr_capture_free(j->cap);
        job_free(j);
        return NULL;
    }
    return j;
}

bool lr_upstream_forward(lr_conn_t *c, const char *body, size_t len)
{
    job_t *j = job_new(c, c->method, c->url, c->fwd_headers.data, body, len);
    if (!j) return false;
    j->c = c;
    __atomic_store_n(&c->upstream, 1, __ATOMIC_RELEASE);
    if (start_worker(j)) return true;
    __atomic_store_n(&c->upstream, 0, __ATOMIC_RELEASE);
    lr_capture_free(j->cap);
    job_free(j);
    return false;
}

bool lr_upstream_h2(lr_conn_t *c, int32_t id, const lr_h2_req_t *q)
{
    job_t *j = job_new(c, q->method, q->url, q->headers, q->body, q->len);
    if (!j) return false;
    if (!(j->live = lr_h2_live(c->h2, id, lr_server_wake)) || !start_worker(j)) {
        if (j->live) lr_h2_live_end(j->live); /* no worker: the stream gets a 502 */
        lr_capture_free(j->cap);
        job_free(j);
    }
    return true;
}
