/* HTTP/2 on a responder connection: a client that starts with the h2 preface (prior
 * knowledge, or TLS whose ALPN selected h2) is served by an h2 session (net/h2.c) instead of
 * conn.c's HTTP/1.x; each stream is one request through the same engine or upstream. */
#include "net/conn.h"
#include "engine/engine.h"
#include <sys/socket.h>

static void on_request(void *ud, int32_t id, const lr_h2_req_t *q)
{
    lr_conn_t *c = ud;
    if (lr_engine_upstream(q->method, q->url, q->body, q->len) && lr_upstream_h2(c, id, q)) return;
    lr_fplan_t plan; /* HTTP/2 streams take a status= rule; the stream actions are HTTP/1's */
    lr_h2_respond(c->h2, id, lr_conn_reply(q->method, q->url, q->body, q->len, &plan));
    lr_fault_plan_free(&plan);
}

/* Is this connection HTTP/2? Asked while no HTTP/1 request is under way; -1: wait for more. */
static int detect(lr_conn_t *c)
{
    if (c->h2) return 1;
    if (c->resp || c->have_head || !c->in.len || lr_conn_upstream_busy(c)) return 0;
    int p = lr_h2_preface(c->in.data, c->in.len);
    if (p == 1 && !(c->h2 = lr_h2_new(c->scheme, c->host, c->max_request, on_request, c))) c->dead = true;
    if (p == -1 && c->eof) c->dead = true;
    return p;
}

bool lr_conn_h2_service(lr_conn_t *c)
{
    if (c->dead || !detect(c)) return false;
    if (!c->h2) return true; /* a preface not yet complete */
    if (c->in.len && !lr_h2_feed(c->h2, c->in.data, c->in.len)) c->closing = true;
    c->in.len = 0;
    for (;;) { /* the frames that can go, with no more than 256 KiB waiting for the client */
        size_t before = c->out.len;
        if (!lr_h2_output(c->h2, &c->out, c->out_off + 256 * 1024)) { c->dead = true; return true; }
        bool more = c->out.len > before;
        if (!lr_conn_flush(c)) { c->dead = true; return true; }
        if (c->want_out || !more) break;
    }
    if (c->out_off >= c->out.len && (c->closing || lr_h2_over(c->h2) || (c->eof && lr_h2_idle(c->h2)))) {
        shutdown(c->fd, SHUT_WR);
        c->dead = true;
    }
    return true;
}

double lr_conn_h2_due(const lr_conn_t *c) { return c->h2 ? lr_h2_due(c->h2) : -1; }
