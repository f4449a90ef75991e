/* The HTTP/1.1 side of a responder connection: parse request heads and bodies, hand each
 * request to the engine (or upstream), write the answer, pace a stream. It speaks as a
 * careful server does (keep-alive, pipelining, Content-Length and chunked bodies,
 * 100-continue, HTTP/1.0, absolute-form targets) and streams an answer one event per chunk,
 * each written on its own. The loop that drives it is server.c. */
#include "net/conn.h"
#include "base/config.h"
#include "base/real.h"
#include "engine/engine.h"
#include "net/http.h"
#include "net/proxy.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_HEAD (64 * 1024)

bool lr_conn_flush(lr_conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = lr_send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) { c->want_out = true; lr_server_arm(c); }
            return true;
        }
        if (w <= 0) return false; /* EPIPE, ECONNRESET: the client went away mid-answer */
        c->out_off += (size_t)w;
    }
    c->out.len = c->out_off = 0;
    if (c->want_out) { c->want_out = false; lr_server_arm(c); }
    return true;
}

static void start_answer(lr_conn_t *c, lr_response_t *r)
{
    c->resp = r;
    c->next_ev = 0;
    c->whole = false;
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
    c->pace_ms = r->stream ? lr_pace_setting() : 0; /* -1: the recorded timing */
    c->due = 0;
    if (c->head_only) c->fault.on = false;
    if (c->fault.on) lr_conn_fault_start(c, &h); /* takes the head */
    else buf_add(&c->out, h.data, h.len);
    buf_free(&h);
    if (c->head_only) c->next_ev = r->nevents;
}

static void end_answer(lr_conn_t *c)
{
    c->one_chunk = c->whole = false;
    lr_response_free(c->resp);
    c->resp = NULL;
    if (c->close_after) c->closing = true;
}

/* An unpaced answer whose events are one block (lr_response_join): what is queued, the body
 * (one HTTP chunk when chunked) and the end of the chunks in one sendmsg, straight from the
 * shared response. What the socket does not take is sent from there when EPOLLOUT comes back
 * (never copied: a client that reads slowly costs no memory). *done: all of it is out. */
static bool send_whole(lr_conn_t *c, const lr_response_t *r, bool *done)
{
    *done = false;
    if (!c->whole) {
        if (c->chunked && r->body_len) {
            buf_addu(&c->out, r->body_len, 16);
            buf_adds(&c->out, "\r\n");
        }
        if (c->out.oom) return false; /* the head is not whole */
        c->whole = true;
        c->whole_off = 0;
    }
    const char *tail = !c->chunked ? "" : r->body_len ? "\r\n0\r\n\r\n" : "0\r\n\r\n";
    size_t tl = strlen(tail);
    for (;;) {
        struct iovec v[3];
        int k = 0;
        size_t off = c->whole_off, toff = off > r->body_len ? off - r->body_len : 0;
        if (c->out_off < c->out.len) v[k++] = (struct iovec){c->out.data + c->out_off, c->out.len - c->out_off};
        if (off < r->body_len) v[k++] = (struct iovec){r->body + off, r->body_len - off};
        if (toff < tl) v[k++] = (struct iovec){(char *)tail + toff, tl - toff};
        if (!k) break;
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)k};
        ssize_t w = lr_sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) { c->want_out = true; lr_server_arm(c); }
            return true; /* EPOLLOUT brings us back */
        }
        if (w <= 0) return false; /* EPIPE, ECONNRESET: the client went away mid-answer */
        size_t q = c->out.len - c->out_off, n = (size_t)w;
        if (n < q) { c->out_off += n; continue; }
        c->out.len = c->out_off = 0;
        c->whole_off += n - q;
    }
    if (c->want_out) { c->want_out = false; lr_server_arm(c); }
    c->whole = false;
    *done = true;
    return true;
}

/* Write what is due: an unpaced answer at once (send_whole), a paced one event by event, each
 * written on its own so a client sees them one by one. */
static bool pump(lr_conn_t *c)
{
    if (c->fault.on && c->resp) return lr_conn_fault_pump(c);
    while (c->resp) {
        lr_response_t *r = c->resp;
        if (c->whole || (c->pace_ms == 0 && c->next_ev == 0 && r->body && !c->head_only)) {
            bool done;
            if (!send_whole(c, r, &done)) return false;
            if (!done) return true;
            c->next_ev = r->nevents;
            end_answer(c);
            continue;
        }
        if (c->next_ev < r->nevents) {
            if (c->pace_ms != 0 && c->next_ev > 0 && lr_now() < c->due) return lr_conn_flush(c);
            if (c->out.len - c->out_off > 256 * 1024) { /* a large backlog: let the client read first */
                if (!lr_conn_flush(c)) return false;
                if (c->want_out) return true; /* EPOLLOUT brings us back */
            }
            if (c->chunked && c->pace_ms == 0 && c->next_ev == 0 && r->body_len) {
                /* unpaced, the whole stream is ready at once: one HTTP chunk holds every event
                 * (chunk boundaries mean nothing in HTTP; a client parses one chunk fastest) */
                buf_addu(&c->out, r->body_len, 16);
                buf_adds(&c->out, "\r\n");
                c->one_chunk = true;
            }
            const lr_event_t *ev = &r->events[c->next_ev++];
            bool framed = c->chunked && !c->one_chunk && ev->len; /* an empty chunk would end the body */
            if (framed) { buf_addu(&c->out, ev->len, 16); buf_adds(&c->out, "\r\n"); }
            buf_add(&c->out, ev->data, ev->len);
            if (framed) buf_adds(&c->out, "\r\n");
            if (c->pace_ms != 0) {
                c->due = lr_now() + lr_event_gap_ms(r, c->next_ev, c->pace_ms) / 1000;
                if (!lr_conn_flush(c)) return false; /* paced: each event is written on its own */
            }
            continue; /* unpaced: written together, which saves a wake-up per event */
        }
        if (c->chunked && !c->head_only) buf_adds(&c->out, c->one_chunk ? "\r\n0\r\n\r\n" : "0\r\n\r\n");
        end_answer(c);
    }
    return lr_conn_flush(c);
}

/* Reply and close: for requests that cannot be read (400, 413). */
static void refuse(lr_conn_t *c, int status, const char *msg)
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

/* Headers a forwarded request does not carry (the upstream call sets its own). */
static bool hop_by_hop(const char *name, size_t n)
{
    static const char *const hop[] = {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive",
                                      "proxy-connection", "te", "upgrade", "accept-encoding"};
    for (size_t i = 0; i < sizeof hop / sizeof *hop; i++)
        if (strlen(hop[i]) == n && !strncasecmp(hop[i], name, n)) return true;
    return false;
}

/* Take the request head apart: target, length, encoding, expectations. */
static bool read_head(lr_conn_t *c, const lr_http_req_t *q, long n)
{
    size_t vl;
    const char *v;
    c->head_len = n;
    c->have_head = true;
    c->sent_continue = false;
    size_t ml = q->mlen < sizeof c->method - 1 ? q->mlen : sizeof c->method - 1;
    memcpy(c->method, q->method, ml);
    c->method[ml] = 0;
    c->head_only = !strcmp(c->method, "HEAD");
    c->keep_alive = q->minor >= 1;
    c->minor = q->minor;
    c->fwd_headers.len = 0;
    for (int i = 0; i < q->nheaders && lr_cfg()->mode != MODE_REPLAY; i++) { /* replay never forwards */
        const lr_http_header_t *hd = &q->headers[i];
        if (hop_by_hop(hd->name, hd->nlen)) continue;
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
    c->chunked_body.len = 0;
    c->dechunk = (lr_dechunk_t){0};
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
        if (len > c->max_request) { refuse(c, 413, "llmreplay: request body too large (LLMREPLAY_MAX_REQUEST_MB)"); return false; }
        c->content_length = len;
    }
    c->expect_continue = (v = lr_http_header(q, "Expect", &vl)) && lr_http_has_token(v, vl, "100-continue");
    /* the URL the engine sees: absolute-form as given, origin-form under the Host header */
    buf_t u;
    buf_init(&u);
    if (q->tlen > 7 && (!strncasecmp(q->target, "http://", 7) || !strncasecmp(q->target, "https://", 8))) {
        buf_add(&u, q->target, q->tlen);
    } else if (c->proxy && !c->hop[0] && lr_proxy_origin() && q->target[0] == '/') {
        buf_adds(&u, lr_proxy_origin()); /* llmreplay serve --upstream: a base URL's requests */
        buf_add(&u, q->target, q->tlen);
    } else {
        const char *h = lr_http_header(q, "Host", &vl);
        buf_adds(&u, c->scheme);
        buf_adds(&u, "://");
        if (h && vl) buf_add(&u, h, vl);
        else buf_adds(&u, c->host);
        if (q->target[0] != '/') buf_addc(&u, '/');
        buf_add(&u, q->target, q->tlen);
    }
    free(c->url);
    c->url = buf_steal(&u, NULL);
    return true;
}

/* Every request on an intercepted connection is the engine's: LLM operations, and any other
 * call wire-level (a miss on those is the 404 "llmreplay_not_an_llm_endpoint"), with the
 * fault rules applied (plan: engine/faults.h). */
lr_response_t *lr_conn_reply(const char *method, const char *url, const char *body, size_t len, lr_fplan_t *plan)
{
    return lr_fault_serve(method, url, body, len, plan);
}

static void answer(lr_conn_t *c, const char *body, size_t len)
{
    if (lr_engine_upstream(c->method, c->url, body, len) && lr_upstream_forward(c, body, len)) return;
    lr_response_t *r = lr_conn_reply(c->method, c->url, body, len, &c->fault);
    c->served++;
    if (r) start_answer(c, r);
    else refuse(c, 500, "llmreplay: out of memory");
}

/* Hand the connection to a pass-through (net/proxy.c): the responder is done with it. */
static void pass_on(lr_conn_t *c, const char *host, int port, size_t skip, bool tunnel)
{
    lr_server_unwatch(c);
    lr_proxy_splice(c->fd, host, port, c->in.data + skip, c->in.len - skip, tunnel);
    c->fd = -1;
    c->dead = true;
    c->in.len = 0;
}

/* On a proxy's connection: CONNECT, and absolute-form requests for hosts that are not
 * intercepted (net/proxy.c decides). True when the request was answered or handed on. */
static bool proxy_request(lr_conn_t *c, const lr_http_req_t *q)
{
    bool tunnel = !strcmp(c->method, "CONNECT");
    char host[120], why[600];
    int port;
    if (!tunnel && (q->tlen < 7 || strncasecmp(q->target, "http://", 7))) { /* a base URL's request */
        if (c->hop[0]) { pass_on(c, c->hop, c->hop_port, 0, false); return true; } /* not for us: the real proxy's */
        if (lr_cfg()->mode == MODE_REPLAY || lr_proxy_origin()) return false;
        refuse(c, 502, "llmreplay: a base-URL request outside replay mode needs llmreplay serve --upstream URL (where it goes)");
        return true;
    }
    if (!lr_proxy_target(q->target, q->tlen, !tunnel, host, sizeof host, &port)) {
        if (tunnel) refuse(c, 400, "llmreplay: CONNECT needs a host:port target");
        return tunnel;
    }
    lr_route_t r = lr_proxy_route(host, port, c->hop[0] != 0, why, sizeof why);
    if (r == LR_ROUTE_REFUSE) { refuse(c, 403, why); return true; }
    if (r == LR_ROUTE_PASS) {
        /* to the real proxy (the shim's, or this server's own HTTPS_PROXY) as sent, else directly */
        int hport = c->hop_port;
        bool hop = c->hop[0] || lr_proxy_chain(tunnel, host, c->hop, sizeof c->hop, &hport);
        pass_on(c, hop ? c->hop : host, hop ? hport : port, tunnel && !hop ? (size_t)c->head_len : 0, tunnel && !hop);
        return true;
    }
    if (!tunnel) return false; /* an intercepted host's plain HTTP: answered below */
    /* a tunnel to an intercepted host: answered here, then served as a new connection to it */
    memmove(c->in.data, c->in.data + c->head_len, c->in.len - (size_t)c->head_len);
    c->in.len -= (size_t)c->head_len;
    c->have_head = false;
    if (c->in.len) { refuse(c, 400, "llmreplay: the client sent data before the answer to its CONNECT"); return true; }
    buf_adds(&c->out, "HTTP/1.1 200 Connection established\r\n\r\n");
    c->proxy = false;
    c->hop[0] = 0;
    c->sniffed = false;
    c->hello = 0;
    c->scheme = "http";
    snprintf(c->name, sizeof c->name, "%s", host);
    if (strchr(host, ':')) snprintf(c->host, sizeof c->host, "[%s]:%d", host, port);
    else snprintf(c->host, sizeof c->host, "%s:%d", host, port);
    return true;
}

/* Parse and answer as many complete requests as the input holds, one answer at a time. */
static void process(lr_conn_t *c)
{
    while (!c->resp && !c->closing && c->in.len && !lr_conn_upstream_busy(c)) {
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
            if (c->proxy && proxy_request(c, &q)) return;
        }
        size_t avail = c->in.len - (size_t)c->head_len, consumed;
        buf_t body;
        buf_init(&body);
        if (c->head_chunked) {
            long r = lr_http_dechunk(c->in.data + c->head_len, avail, &c->chunked_body, c->max_request, &c->dechunk);
            if (r == -1) {
                bool big = c->chunked_body.len >= c->max_request || avail > c->max_request;
                buf_free(&c->chunked_body);
                refuse(c, big ? 413 : 400, "llmreplay: malformed or too large chunked body");
                return;
            }
            if (r == -2) goto need_more;
            body = c->chunked_body; /* the request's now */
            buf_init(&c->chunked_body);
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

void lr_conn_readable(lr_conn_t *c)
{
    char tmp[65536];
    if (!c->sniffed && !lr_hello_sniff(c)) return;
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
            lr_server_arm(c);
            if (!c->resp && c->out_off >= c->out.len && !c->in.len) c->dead = true;
            break;
        }
        if (c->in.len + (size_t)n > c->max_request + MAX_HEAD) {
            refuse(c, 413, "llmreplay: request too large (LLMREPLAY_MAX_REQUEST_MB)");
            c->closing = true;
            c->eof = true; /* read no more */
            lr_server_arm(c);
            break;
        }
        buf_add(&c->in, tmp, (size_t)n);
    }
}

void lr_conn_service(lr_conn_t *c)
{
    if (lr_conn_h2_service(c)) return;
    while (!c->dead && !lr_conn_upstream_busy(c)) {
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
        if (c->resp || lr_conn_upstream_busy(c)) return; /* later */
        if (!had && c->in.len == before) return; /* nothing more to do until more bytes come */
    }
}

lr_conn_t *lr_conn_new(int fd, const char *host, int port, const char *scheme)
{
    lr_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->client_fd = -1;
    c->scheme = scheme;
    c->refs = 1; /* the registry's */
    pthread_mutex_init(&c->lock, NULL);
    c->max_request = lr_cfg()->max_request_bytes;
    c->upstream_ca = lr_cfg()->upstream_ca;
    snprintf(c->name, sizeof c->name, "%s", host);
    if (strchr(host, ':')) snprintf(c->host, sizeof c->host, "[%s]:%d", host, port);
    else snprintf(c->host, sizeof c->host, "%s:%d", host, port);
    return c;
}

void lr_conn_free(lr_conn_t *c)
{
    if (c->fd >= 0) lr_close(c->fd);
    lr_response_free(c->resp);
    lr_fault_plan_free(&c->fault);
    buf_free(&c->fault_head);
    lr_h2_free(c->h2);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->chunked_body);
    buf_free(&c->fwd_headers);
    free(c->url);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

void lr_conn_unref(lr_conn_t *c)
{
    if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0) lr_conn_free(c);
}
