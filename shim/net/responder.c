/* The in-process HTTP/1.1 server behind swapped sockets: one thread, one epoll loop, every
 * connection non-blocking. It speaks as a careful server does (keep-alive, pipelining,
 * Content-Length and chunked bodies, 100-continue, HTTP/1.0, absolute-form targets) and
 * streams an answer one event per chunk, each written on its own. */
#include "net/responder.h"
#include "base/config.h"
#include "net/curl_rt.h"
#include "engine/engine.h"
#include "engine/record.h"
#include "net/http.h"
#include "base/log.h"
#include "base/real.h"
#include "net/tls_hello.h"
#include "net/tls_term.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)

typedef struct conn {
    int fd;
    char host[160]; /* host[:port] the client connected to, for the Host-less and for URLs */
    char name[128]; /* the host alone: the certificate's name when TLS is terminated */
    const char *scheme;
    bool sniffed;   /* the first bytes told plain HTTP, hooked TLS (HELLO) or a ClientHello */
    size_t hello;   /* bytes of HELLO read */
    buf_t in, out;
    size_t out_off;
    /* the request being read */
    bool have_head, sent_continue, head_chunked, expect_continue, keep_alive, head_only;
    long head_len;
    size_t content_length;
    char method[16];
    char *url;
    /* the answer being written */
    lr_response_t *resp;
    int next_ev;
    bool chunked, close_after;
    double pace_ms, due;
    bool want_out, closing, dead, eof;
    int minor;          /* HTTP/1.minor of the request being answered */
    buf_t fwd_headers;  /* its headers, for an upstream call */
    int upstream;       /* an upstream call owns the connection's output (atomic) */
} conn_t;

static pthread_mutex_t resp_lock = PTHREAD_MUTEX_INITIALIZER; /* startup and the registry */
static int epfd = -1;
static int wakefd = -1; /* upstream workers wake the loop when they are done */
static char wake_marker;
static pid_t owner; /* process whose thread runs the loop */
static conn_t **conns;
static int nconns, capconns;

/* Read once: the loop thread must not call getenv while application threads may setenv. */
static size_t max_request_bytes;
static size_t max_request(void) { return max_request_bytes; }
static const char *upstream_ca; /* LLMREPLAY_UPSTREAM_CA: the CA bundle upstream TLS is checked with */

static void arm(conn_t *c)
{
    /* after the client's EOF, reading is over: watching it would report readiness forever */
    struct epoll_event ev = {.events = (c->eof ? 0u : EPOLLIN | EPOLLRDHUP) | (c->want_out ? EPOLLOUT : 0u), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void drop(conn_t *c)
{
    pthread_mutex_lock(&resp_lock);
    for (int i = 0; i < nconns; i++)
        if (conns[i] == c) { conns[i] = conns[--nconns]; break; }
    pthread_mutex_unlock(&resp_lock);
    if (c->fd >= 0) { /* -1: a TLS connection the helper could not take */
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        lr_close(c->fd);
    }
    lr_response_free(c->resp);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->fwd_headers);
    free(c->url);
    free(c);
}

/* A connection can go only once no upstream worker writes to it. */
static void maybe_drop(conn_t *c)
{
    if (c->dead && !__atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) drop(c);
}

/* Write what is queued; false when the connection is gone. */
static bool flush(conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) { c->want_out = true; arm(c); }
            return true;
        }
        if (w <= 0) return false; /* EPIPE, ECONNRESET: the client went away mid-answer */
        c->out_off += (size_t)w;
    }
    c->out.len = c->out_off = 0;
    if (c->want_out) { c->want_out = false; arm(c); }
    return true;
}

static void start_answer(conn_t *c, lr_response_t *r)
{
    c->resp = r;
    c->next_ev = 0;
    /* HTTP/1.0 has no chunked encoding: a stream then ends by closing the connection */
    c->chunked = r->stream && c->keep_alive && c->minor >= 1;
    if (r->stream && !c->chunked) c->close_after = true;
    if (!c->keep_alive) c->close_after = true;
    buf_t h;
    buf_init(&h);
    lr_render_head(r, &h, c->chunked);
    if (r->stream && !c->chunked && h.len >= 2) {
        /* no length and no chunking: drop the Content-Length line lr_render_head wrote */
        char *cl = strstr(h.data, "Content-Length: ");
        if (cl) {
            char *e = strstr(cl, "\r\n");
            memmove(cl, e + 2, (size_t)(h.data + h.len - (e + 2)) + 1);
            h.len -= (size_t)(e + 2 - cl);
        }
    }
    if (c->close_after && h.len >= 2) {
        h.len -= 2; /* reopen the head for one more header */
        buf_adds(&h, "Connection: close\r\n\r\n");
    }
    buf_add(&c->out, h.data, h.len);
    buf_free(&h);
    c->pace_ms = r->stream ? lr_pace_setting() : 0; /* -1: the recorded timing */
    c->due = 0;
    if (c->head_only) c->next_ev = r->nevents;
}

/* Queue events that are due; each is written on its own so a client sees them one by one. */
static bool pump(conn_t *c)
{
    while (c->resp) {
        lr_response_t *r = c->resp;
        if (c->next_ev < r->nevents) {
            if (c->pace_ms != 0 && c->next_ev > 0 && lr_now() < c->due) return flush(c);
            if (c->out.len - c->out_off > 256 * 1024) { /* a large backlog: let the client read first */
                if (!flush(c)) return false;
                if (c->want_out) return true; /* EPOLLOUT brings us back */
            }
            const lr_event_t *ev = &r->events[c->next_ev++];
            if (c->chunked) buf_printf(&c->out, "%zx\r\n", ev->len);
            buf_add(&c->out, ev->data, ev->len);
            if (c->chunked) buf_adds(&c->out, "\r\n");
            if (c->pace_ms != 0) {
                c->due = lr_now() + lr_event_gap_ms(r, c->next_ev, c->pace_ms) / 1000;
                if (!flush(c)) return false; /* paced: each event is written on its own */
            }
            /* unpaced, the whole stream is ready at once: one chunk per event, written together
             * (a client cannot tell, and it saves a wake-up per event) */
            continue;
        }
        if (c->chunked && !c->head_only) buf_adds(&c->out, "0\r\n\r\n");
        lr_response_free(r);
        c->resp = NULL;
        if (c->close_after) c->closing = true;
    }
    return flush(c);
}

/* Reply and close: for requests that cannot be read (400, 413). */
static void refuse(conn_t *c, int status, const char *msg)
{
    if (c->resp) { /* never a second answer inside the one being written: close after it */
        c->closing = true;
        c->in.len = 0;
        return;
    }
    c->keep_alive = false;
    c->head_only = false;
    lr_response_t *r = lr_render_error(OP_CHAT, status, "invalid_request_error", "llmreplay_bad_request", msg);
    if (r) start_answer(c, r);
    c->have_head = false;
    c->in.len = 0;
}

/* Take the request head apart: target, length, encoding, expectations. */
static bool read_head(conn_t *c, const lr_http_req_t *q, long n)
{
    size_t vl;
    const char *v;
    c->head_len = n;
    c->have_head = true;
    c->sent_continue = false;
    snprintf(c->method, sizeof c->method, "%.*s", (int)(q->mlen < 15 ? q->mlen : 15), q->method);
    c->head_only = !strcmp(c->method, "HEAD");
    c->keep_alive = q->minor >= 1;
    c->minor = q->minor;
    c->fwd_headers.len = 0;
    for (int i = 0; i < q->nheaders; i++) {
        const lr_http_header_t *hd = &q->headers[i];
        static const char *hop = "host,content-length,transfer-encoding,connection,expect,keep-alive,proxy-connection,te,upgrade,accept-encoding";
        if (lr_list_has(hop, hd->name, hd->nlen)) continue;
        buf_add(&c->fwd_headers, hd->name, hd->nlen);
        buf_adds(&c->fwd_headers, ": ");
        buf_add(&c->fwd_headers, hd->value, hd->vlen);
        buf_addc(&c->fwd_headers, '\n');
    }
    if ((v = lr_http_header(q, "Connection", &vl))) {
        if (lr_http_has_token(v, vl, "close")) c->keep_alive = false;
        if (lr_http_has_token(v, vl, "keep-alive")) c->keep_alive = true;
    }
    c->head_chunked = false;
    c->content_length = 0;
    const char *te = lr_http_header(q, "Transfer-Encoding", &vl);
    if (te) {
        if (q->minor < 1 || !lr_http_has_token(te, vl, "chunked")) { refuse(c, 400, "llmreplay: unsupported Transfer-Encoding"); return false; }
        c->head_chunked = true;
    }
    if ((v = lr_http_header(q, "Content-Length", &vl))) {
        if (te) { refuse(c, 400, "llmreplay: both Content-Length and Transfer-Encoding"); return false; }
        size_t len = 0;
        if (!vl) { refuse(c, 400, "llmreplay: empty Content-Length"); return false; }
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9' || len > (SIZE_MAX - 9) / 10) { refuse(c, 400, "llmreplay: invalid Content-Length"); return false; }
            len = len * 10 + (size_t)(v[i] - '0');
        }
        if (len > max_request()) { refuse(c, 413, "llmreplay: request body too large (LLMREPLAY_MAX_REQUEST_MB)"); return false; }
        c->content_length = len;
    }
    c->expect_continue = (v = lr_http_header(q, "Expect", &vl)) && lr_http_has_token(v, vl, "100-continue");
    /* the URL the engine sees: absolute-form as given, origin-form under the Host header */
    buf_t u;
    buf_init(&u);
    if (q->tlen > 7 && (!strncasecmp(q->target, "http://", 7) || !strncasecmp(q->target, "https://", 8))) {
        buf_add(&u, q->target, q->tlen);
    } else {
        const char *h = lr_http_header(q, "Host", &vl);
        buf_printf(&u, "%s://", c->scheme);
        if (h && vl) buf_add(&u, h, vl);
        else buf_adds(&u, c->host);
        if (q->target[0] != '/') buf_addc(&u, '/');
        buf_add(&u, q->target, q->tlen);
    }
    free(c->url);
    c->url = buf_steal(&u, NULL);
    return true;
}

/* ---- going upstream: record, record-if-missing, live, trace ---------------------------- */

typedef struct {
    conn_t *c;
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
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
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

static void job_head(job_t *j)
{
    if (j->head_sent) return;
    j->head_sent = true;
    conn_t *c = j->c;
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

static size_t up_body(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    size_t len = sz * n;
    if (j->status >= 100 && j->status < 200) return len;
    job_head(j);
    lr_capture_data(j->cap, p, len);
    char pre[32];
    int pl = snprintf(pre, sizeof pre, "%zx\r\n", len);
    /* each upstream piece goes to the client the moment it arrives: a recorded stream is
     * still a live stream for the program */
    if (j->client_gone || (j->chunked && !send_all(j->c->fd, pre, (size_t)pl)) || !send_all(j->c->fd, p, len) ||
        (j->chunked && !send_all(j->c->fd, "\r\n", 2))) {
        j->client_gone = true;
        return 0;
    }
    return len;
}

static void *upstream_worker(void *arg)
{
    job_t *j = arg;
    conn_t *c = j->c;
    lr_inside = 1; /* real DNS, real connect, real TLS: the network, not the hooks */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    const lr_curl_t *C = lr_curl();
    CURLcode rc = CURLE_FAILED_INIT;
    if (C) {
        CURL *h = C->easy_init();
        struct curl_slist *hl = NULL;
        for (const char *p = c->fwd_headers.data; p && *p;) {
            const char *e = strchr(p, '\n');
            char *line = lr_strndup(p, e ? (size_t)(e - p) : strlen(p));
            if (line) { hl = C->slist_append(hl, line); free(line); }
            p = e ? e + 1 : p + strlen(p);
        }
        hl = C->slist_append(hl, "Expect:"); /* no 100-continue round trip upstream */
        C->easy_setopt(h, CURLOPT_URL, c->url);
        C->easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
        if (j->len || strcmp(c->method, "GET")) {
            C->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->len);
            C->easy_setopt(h, CURLOPT_POSTFIELDS, j->body ? j->body : "");
        }
        if (c->head_only) C->easy_setopt(h, CURLOPT_NOBODY, 1L);
        C->easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        C->easy_setopt(h, CURLOPT_HEADERFUNCTION, up_header);
        C->easy_setopt(h, CURLOPT_HEADERDATA, j);
        C->easy_setopt(h, CURLOPT_WRITEFUNCTION, up_body);
        C->easy_setopt(h, CURLOPT_WRITEDATA, j);
        C->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        C->easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        if (upstream_ca) C->easy_setopt(h, CURLOPT_CAINFO, upstream_ca);
        rc = C->easy_perform(h);
        if (rc != CURLE_OK && !j->client_gone)
            snprintf(j->cap->error, sizeof j->cap->error, "%s", C->easy_strerror(rc));
        if (j->client_gone) snprintf(j->cap->error, sizeof j->cap->error, "the client went away mid-answer");
        C->easy_cleanup(h);
        C->slist_free_all(hl);
    } else {
        snprintf(j->cap->error, sizeof j->cap->error, "libcurl cannot be loaded");
    }
    if (!j->head_sent && !j->client_gone) {
        if (rc != CURLE_OK) { /* the upstream never answered: say so, as a gateway would */
            char msg[600];
            snprintf(msg, sizeof msg, "llmreplay: upstream %s failed: %s (LLMREPLAY_MODE=%s)", c->url, j->cap->error, lr_mode_name(lr_mode()));
            buf_t b;
            buf_init(&b);
            buf_adds(&b, "{\"error\":{\"message\":");
            buf_json_str(&b, msg, strlen(msg));
            buf_adds(&b, ",\"type\":\"llmreplay_upstream_error\"}}");
            j->status = 502;
            j->head.len = 0;
            buf_adds(&j->head, "Content-Type: application/json\r\n");
            job_head(j);
            if (j->chunked) { char pre[32]; int pl = snprintf(pre, sizeof pre, "%zx\r\n", b.len); send_all(c->fd, pre, (size_t)pl); }
            send_all(c->fd, b.data, b.len);
            if (j->chunked) send_all(c->fd, "\r\n", 2);
            buf_free(&b);
        } else {
            job_head(j);
        }
    }
    if (j->chunked && !j->client_gone) send_all(c->fd, "0\r\n\r\n", 5);
    if (!j->chunked || j->client_gone) c->closing = true;
    lr_capture_finish(j->cap);
    free(j->body);
    buf_free(&j->head);
    free(j);
    __atomic_store_n(&c->upstream, 0, __ATOMIC_RELEASE);
    uint64_t one = 1;
    ssize_t w = write(wakefd, &one, sizeof one);
    (void)w;
    return NULL;
}

static bool forward(conn_t *c, const char *body, size_t len)
{
    job_t *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->c = c;
    j->len = len;
    j->body = len ? lr_strndup(body, len) : NULL;
    j->cap = lr_capture_new(c->method, c->url);
    if (j->cap && len) buf_add(&j->cap->req, body, len);
    __atomic_store_n(&c->upstream, 1, __ATOMIC_RELEASE);
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool ok = j->cap && pthread_create(&th, &a, upstream_worker, j) == 0;
    pthread_attr_destroy(&a);
    if (!ok) {
        __atomic_store_n(&c->upstream, 0, __ATOMIC_RELEASE);
        lr_capture_free(j->cap);
        free(j->body);
        free(j);
    }
    return ok;
}

static void answer(conn_t *c, const char *body, size_t len)
{
    lr_response_t *r;
    if (lr_engine_upstream(c->method, c->url, body, len) && forward(c, body, len)) return;
    if (lr_engine_intercepts(c->url) == OP_NONE) {
        char msg[1024];
        snprintf(msg, sizeof msg,
                 "llmreplay: %s %.600s is not an LLM API call llmreplay replays; requests to an intercepted host never "
                 "reach the network (LLMREPLAY_HOSTS and the recordings' hosts are intercepted)",
                 c->method, c->url);
        r = lr_render_error(OP_CHAT, 404, "invalid_request_error", "llmreplay_not_an_llm_endpoint", msg);
    } else {
        r = lr_engine_serve(c->method, c->url, body, len);
    }
    if (r) start_answer(c, r);
    else refuse(c, 500, "llmreplay: out of memory");
}

/* Parse and answer as many complete requests as the input holds, one answer at a time. */
static void process(conn_t *c)
{
    while (!c->resp && !c->closing && c->in.len && !__atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) {
        if (!c->have_head) {
            lr_http_req_t q;
            long n = lr_http_parse_head(c->in.data, c->in.len, &q);
            if (n == -2) {
                if (c->in.len > MAX_HEAD) refuse(c, 413, "llmreplay: request head too large");
                return;
            }
            if (n < 0) { refuse(c, 400, "llmreplay: malformed HTTP request"); return; }
            if (n > MAX_HEAD) { refuse(c, 413, "llmreplay: request head too large"); return; }
            if (!read_head(c, &q, n)) return;
        }
        size_t avail = c->in.len - (size_t)c->head_len, consumed;
        buf_t body;
        buf_init(&body);
        if (c->head_chunked) {
            long r = lr_http_dechunk(c->in.data + c->head_len, avail, &body, max_request());
            if (r == -1) {
                bool big = body.len >= max_request() || avail > max_request();
                buf_free(&body);
                refuse(c, big ? 413 : 400, "llmreplay: malformed or too large chunked body");
                return;
            }
            if (r == -2) {
                buf_free(&body);
                goto need_more;
            }
            consumed = (size_t)c->head_len + (size_t)r;
        } else {
            if (avail < c->content_length) goto need_more;
            buf_add(&body, c->in.data + c->head_len, c->content_length);
            consumed = (size_t)c->head_len + c->content_length;
        }
        memmove(c->in.data, c->in.data + consumed, c->in.len - consumed);
        c->in.len -= consumed;
        c->have_head = false;
        answer(c, body.data, body.len);
        buf_free(&body);
        continue;
    need_more:
        if (c->expect_continue && !c->sent_continue) {
            buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            c->sent_continue = true;
        }
        return;
    }
}

static unsigned char ack[LR_TLS_ACK_LEN];
static pthread_once_t ack_once = PTHREAD_ONCE_INIT;
static void make_ack(void)
{
    memcpy(ack, LR_TLS_ACK_PREFIX, LR_TLS_ACK_PREFIX_LEN);
    unsigned char *secret = ack + LR_TLS_ACK_PREFIX_LEN;
    size_t n = LR_TLS_ACK_LEN - LR_TLS_ACK_PREFIX_LEN - 1;
    if (getrandom(secret, n, 0) != (ssize_t)n) {
        /* no getrandom (old kernel, seccomp): the kernel's 16 random bytes for this process
         * (AT_RANDOM), with the pid and time for a forked child's own secret */
        const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
        uint64_t seed = (uint64_t)getpid() ^ (uint64_t)(lr_now() * 1e9);
        uint64_t a = lr_hash64(r ? (const void *)r : (const void *)&seed, r ? 16 : sizeof seed, seed);
        uint64_t b = lr_hash64(r ? (const void *)r : (const void *)&a, r ? 16 : sizeof a, a);
        memcpy(secret, &a, 8);
        memcpy(secret + 8, &b, 8);
    }
    ack[LR_TLS_ACK_LEN - 1] = '\n';
}

const unsigned char *lr_responder_ack(void)
{
    pthread_once(&ack_once, make_ack);
    return ack;
}

/* What comes first on a connection: a hooked TLS session's HELLO (answer ACK: plaintext
 * follows), a real ClientHello from TLS the shim cannot hook (hand the ciphertext to the TLS
 * helper, go on with its plaintext), or plain HTTP. False while HELLO is incomplete. */
static bool sniff(conn_t *c)
{
    unsigned char b[LR_TLS_HELLO_LEN];
    if (c->hello == 0) {
        ssize_t n = recv(c->fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0) return true; /* EOF or error: the read below sees it */
        if (b[0] == 0x16) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            int fd = lr_tls_terminate(c->fd, c->name);
            c->fd = fd;
            c->sniffed = true;
            c->scheme = "https";
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
            if (fd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) c->dead = true;
            return false; /* the plaintext arrives on the new descriptor */
        }
        if (b[0] != 0) { c->sniffed = true; return true; }
    }
    ssize_t n = recv(c->fd, b, LR_TLS_HELLO_LEN - c->hello, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) { c->sniffed = true; return true; } /* EOF or error: the read below sees it */
    if (memcmp(b, LR_TLS_HELLO + c->hello, (size_t)n) != 0) {
        /* not HELLO after all: those bytes are the request's */
        buf_add(&c->in, LR_TLS_HELLO, c->hello);
        buf_add(&c->in, b, (size_t)n);
        c->sniffed = true;
        return true;
    }
    c->hello += (size_t)n;
    if (c->hello < LR_TLS_HELLO_LEN) return false;
    c->sniffed = true;
    c->scheme = "https";
    buf_add(&c->out, lr_responder_ack(), LR_TLS_ACK_LEN);
    if (!flush(c)) c->dead = true;
    return true;
}

static void on_readable(conn_t *c)
{
    char tmp[65536];
    if (!c->sniffed && !sniff(c)) return;
    for (;;) {
        ssize_t n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) c->dead = true;
            break;
        }
        if (n == 0) {
            /* the client closed its side: answer what it sent (it may still read), then close */
            c->eof = true;
            arm(c);
            if (!c->resp && c->out_off >= c->out.len && !c->in.len) c->dead = true;
            break;
        }
        if (c->in.len + (size_t)n > max_request() + MAX_HEAD) {
            refuse(c, 413, "llmreplay: request too large (LLMREPLAY_MAX_REQUEST_MB)");
            c->closing = true;
            c->eof = true; /* read no more */
            arm(c);
            break;
        }
        buf_add(&c->in, tmp, (size_t)n);
    }
}

/* Answer what can be answered now: pipelined requests one after the other. */
static void service(conn_t *c)
{
    while (!c->dead && !__atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) {
        size_t before = c->in.len;
        bool had = c->resp != NULL;
        if (!c->resp) process(c);
        if (!pump(c)) { c->dead = true; return; }
        bool drained = !c->resp && c->out_off >= c->out.len;
        if (drained && (c->closing || (c->eof && !had && c->in.len == before))) {
            shutdown(c->fd, SHUT_WR); /* done: asked to close, or the client's input is over */
            c->dead = true;
            return;
        }
        if (c->closing && !c->resp) return;
        if (c->resp || __atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) return; /* later */
        if (!had && c->in.len == before) return; /* nothing more to do until more bytes come */
    }
}

/* A copy of the connection list, to walk without the lock (only this thread drops entries). */
static conn_t **snapshot(int *k)
{
    pthread_mutex_lock(&resp_lock);
    *k = nconns;
    conn_t **list = nconns ? malloc(sizeof *list * (size_t)nconns) : NULL;
    if (list) memcpy(list, conns, sizeof *list * (size_t)nconns);
    pthread_mutex_unlock(&resp_lock);
    return list;
}

static int next_timeout(void)
{
    double now = lr_now(), best = -1;
    pthread_mutex_lock(&resp_lock);
    for (int i = 0; i < nconns; i++) {
        conn_t *c = conns[i];
        if (c->resp && c->pace_ms != 0 && c->next_ev < c->resp->nevents && !c->want_out) {
            double left = c->due - now;
            if (best < 0 || left < best) best = left;
        }
    }
    pthread_mutex_unlock(&resp_lock);
    if (best < 0) return -1;
    return best <= 0 ? 0 : (int)(best * 1000) + 1;
}

static void *loop(void *arg)
{
    (void)arg;
    lr_inside = 1; /* this thread's own calls never meet the hooks' interception */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* the host's signal handlers run in its own threads */
    struct epoll_event evs[64];
    for (;;) {
        int timeout = next_timeout();
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR) break;
        bool woken = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &wake_marker) {
                uint64_t v;
                ssize_t r = read(wakefd, &v, sizeof v);
                (void)r;
                woken = true;
                continue;
            }
            conn_t *c = evs[i].data.ptr;
            if (__atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) {
                /* the worker owns the output; keep reading pipelined input, notice hang-ups */
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP)) on_readable(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
            if ((evs[i].events & (EPOLLHUP | EPOLLERR)) && !(evs[i].events & EPOLLIN)) c->dead = true;
            service(c);
            maybe_drop(c);
        }
        if (woken) { /* an upstream answer finished: go on with its connection */
            int k;
            conn_t **list = snapshot(&k);
            for (int i = 0; list && i < k; i++) {
                if (__atomic_load_n(&list[i]->upstream, __ATOMIC_ACQUIRE)) continue;
                service(list[i]);
                maybe_drop(list[i]);
            }
            free(list);
        }
        if (timeout >= 0) { /* paced streams whose next event is due (none: no timeout) */
            int k;
            conn_t **list = snapshot(&k);
            double now = lr_now();
            for (int i = 0; list && i < k; i++) {
                conn_t *c = list[i];
                if (c->resp && c->pace_ms != 0 && c->due <= now && !c->want_out && !__atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE)) {
                    service(c);
                    maybe_drop(c);
                }
            }
            free(list);
        }
    }
    return NULL;
}

static void fork_prepare(void) { pthread_mutex_lock(&resp_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&resp_lock); }
static void fork_child(void)
{
    /* The loop thread did not come along. The child's copies of the server ends belong to the
     * parent's connections (which the parent keeps serving): close them and start afresh. */
    for (int i = 0; i < nconns; i++) lr_close(conns[i]->fd);
    nconns = 0;
    if (epfd >= 0) lr_close(epfd);
    if (wakefd >= 0) lr_close(wakefd);
    epfd = wakefd = -1;
    owner = 0;
    pthread_mutex_unlock(&resp_lock);
}
__attribute__((constructor)) static void responder_init(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

bool lr_responder_add(int fd, const char *host, int port, const char *scheme)
{
    if (!max_request_bytes) {
        max_request_bytes = lr_cfg()->max_request_bytes;
        upstream_ca = lr_cfg()->upstream_ca;
    }
    lr_tls_term_prepare();
    lr_responder_ack(); /* made now: a connection made before a fork is acknowledged alike */
    conn_t *c = calloc(1, sizeof *c);
    if (!c) return false;
    c->fd = fd;
    c->scheme = scheme;
    snprintf(c->name, sizeof c->name, "%s", host);
    if (strchr(host, ':')) snprintf(c->host, sizeof c->host, "[%s]:%d", host, port);
    else snprintf(c->host, sizeof c->host, "%s:%d", host, port);
    lr_fcntl(fd, F_SETFL, lr_fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
    pthread_mutex_lock(&resp_lock);
    bool ok = true;
    if (owner != getpid()) {
        epfd = epoll_create1(EPOLL_CLOEXEC);
        wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_marker};
        if (epfd >= 0 && wakefd >= 0) epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &wev);
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        ok = epfd >= 0 && pthread_create(&th, &a, loop, NULL) == 0;
        pthread_attr_destroy(&a);
        if (ok) owner = getpid();
        else lr_error("cannot start the in-process responder: %s", strerror(errno));
    }
    if (ok && nconns == capconns) {
        int cap = capconns ? capconns * 2 : 16;
        conn_t **v = realloc(conns, sizeof *v * (size_t)cap);
        if (v) conns = v, capconns = cap;
        else ok = false;
    }
    if (ok) conns[nconns++] = c;
    pthread_mutex_unlock(&resp_lock);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (ok && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) ok = false;
    if (!ok) {
        pthread_mutex_lock(&resp_lock);
        for (int i = 0; i < nconns; i++)
            if (conns[i] == c) { conns[i] = conns[--nconns]; break; }
        pthread_mutex_unlock(&resp_lock);
        free(c);
    }
    return ok;
}
