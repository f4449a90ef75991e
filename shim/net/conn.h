/* One client connection of the responder, shared inside net/ by the modules that serve it:
 * server.c (the epoll loop that owns every connection), hello.c (what comes first: HELLO,
 * a ClientHello or HTTP), conn.c (HTTP/1.x: parse, answer, pace) and upstream.c (an answer
 * forwarded from the real API). Not for use outside net/; the interface is net/responder.h. */
#ifndef LR_CONN_H
#define LR_CONN_H
#include "base/util.h"
#include "engine/faults.h"
#include "engine/render.h"
#include "net/h2.h"
#include <pthread.h>
#include "net/http.h"
#include <stdbool.h>
#include <stddef.h>

typedef struct lr_conn {
    int fd;
    char host[160]; /* host[:port] the client connected to, for the Host-less and for URLs */
    char name[128]; /* the host alone: the certificate's name when TLS is terminated */
    const char *scheme;
    bool sniffed;   /* the first bytes told plain HTTP, hooked TLS (HELLO) or a ClientHello */
    size_t hello;   /* bytes of HELLO read */
    buf_t in, out;
    size_t out_off;
    /* settings, read on the application thread that made the connection: the loop thread
     * must not read the environment */
    size_t max_request;      /* LLMREPLAY_MAX_REQUEST_MB */
    const char *upstream_ca; /* LLMREPLAY_UPSTREAM_CA: the CA bundle upstream TLS is checked with */
    /* the request being read */
    bool have_head, sent_continue, head_chunked, expect_continue, keep_alive, head_only;
    long head_len;
    buf_t chunked_body;     /* a chunked body decoded so far: each byte once, not on every read */
    lr_dechunk_t dechunk;
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
    /* fault injection (conn_fault.c) */
    int client_fd;          /* the application's end, to reset the connection (-1: unknown) */
    unsigned long client_ino;
    bool tls_helper;        /* TLS terminated by the helper: c->fd carries its plaintext */
    lr_fplan_t fault;       /* the fault rule applied to the answer being written */
    double fault_pace;      /* the pacing in force (c->pace_ms only marks the connection as timed) */
    buf_t fault_head;       /* the head, held back until the fault lets it go */
    int fault_break;        /* LR_FS_RESET or LR_FS_EOF once the queued bytes are out; 0: none */
    bool fault_stuck;       /* stalled until the client gives up */
    lr_h2_t *h2;        /* the client spoke HTTP/2 (its preface): the session answers */
    bool helper;        /* its TLS went to the helper: c->fd is the helper's, not the pair's */
    bool one_chunk;     /* an unpaced stream goes out as one HTTP chunk */
    bool whole;         /* an answer written from its response's block (conn.c send_whole)... */
    size_t whole_off;   /* ...of which the body and the last chunk are sent up to here */
    int served;         /* HTTP/1 requests answered */
    /* Answering in the caller's thread (net/inline.c): the loop and a client's write hook
     * each hold lock while they touch the connection; refs counts the registry's reference
     * and those of hooks at work, the last one frees it; gone: dropped from the registry. */
    pthread_mutex_t lock;
    int refs;
    bool gone, inline_logged;
    unsigned long long id;
    bool proxy;         /* a proxy's connection: CONNECT and absolute-form are routed (net/proxy.c) */
    char hop[128];      /* …standing for the real proxy at hop:hop_port (the shim); "": llmreplay's own */
    int hop_port;
} lr_conn_t;

/* conn.c: the HTTP side */
lr_conn_t *lr_conn_new(int fd, const char *host, int port, const char *scheme);
void lr_conn_free(lr_conn_t *c);
/* Give up a reference taken by lr_server_get (or the registry's): the last one frees c. */
void lr_conn_unref(lr_conn_t *c);
/* Read what the client sent (after the first bytes were sniffed). */
void lr_conn_readable(lr_conn_t *c);
/* Answer what can be answered now: pipelined requests one after the other. */
void lr_conn_service(lr_conn_t *c);
/* Write what is queued; false when the connection is gone. */
bool lr_conn_flush(lr_conn_t *c);
/* The answer from recordings (or the miss, or the 404 for a path that is no LLM call), with
 * the fault rules applied: plan says what to do to it (engine/faults.h). */
lr_response_t *lr_conn_reply(const char *method, const char *url, const char *body, size_t len, lr_fplan_t *plan);

/* conn_h2.c: a connection that starts with the h2 preface. True when c speaks HTTP/2 (then it
 * was served), false for HTTP/1.x. */
bool lr_conn_h2_service(lr_conn_t *c);
/* When c's next paced HTTP/2 event is due (lr_now() seconds), -1 for none. */
double lr_conn_h2_due(const lr_conn_t *c);
static inline bool lr_conn_upstream_busy(const lr_conn_t *c) { return __atomic_load_n(&c->upstream, __ATOMIC_ACQUIRE) != 0; }

/* conn_fault.c: an answer under a fault rule. start takes the head (h); pump replaces conn.c's
 * pump while c->fault.on; false when the connection is gone. */
void lr_conn_fault_start(lr_conn_t *c, buf_t *h);
bool lr_conn_fault_pump(lr_conn_t *c);

/* hello.c: what comes first on a connection; false while HELLO is incomplete. */
bool lr_hello_sniff(lr_conn_t *c);

/* server.c: the loop's epoll set */
/* Watch c for what it waits for now (input unless EOF, output while want_out). */
void lr_server_arm(lr_conn_t *c);
/* Stop watching c's descriptor, then watch fd instead (TLS handed to the helper; -1 when
 * that failed: c is dead). */
void lr_server_unwatch(lr_conn_t *c);
void lr_server_watch(lr_conn_t *c, int fd);
/* An upstream worker finished with a connection: wake the loop. */
void lr_server_wake(void);
/* The registered connection p with this id, with a reference taken; NULL when it is gone
 * (or belongs to the process this one was forked from). */
lr_conn_t *lr_server_get(void *p, unsigned long long id);

/* upstream.c: answer from the real API (record, record-if-missing, live, trace); false when
 * no worker could be started. */
bool lr_upstream_forward(lr_conn_t *c, const char *body, size_t len);
/* The same for HTTP/2 stream id of c: false when no worker could be started. */
bool lr_upstream_h2(lr_conn_t *c, int32_t id, const lr_h2_req_t *q);
#endif
