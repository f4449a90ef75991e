/* HTTP/2 for the responder, with libnghttp2 loaded at run time (on the first h2 connection).
 * The session is pure bytes: the responder feeds what the client sent, takes what to write,
 * and answers each complete request (one callback per stream) with an engine response. */
#ifndef LR_H2_H
#define LR_H2_H
#include "engine/render.h"
#include "base/util.h"
#include <stdint.h>

typedef struct lr_h2 lr_h2_t;

typedef struct {
    const char *method, *url; /* url: scheme://authority/path */
    const char *body;
    size_t len;
    const char *headers; /* the end-to-end request headers, "name: value\n" each */
} lr_h2_req_t;

/* A complete request on stream id: answer with lr_h2_respond (at once or later). */
typedef void (*lr_h2_request_fn)(void *ud, int32_t id, const lr_h2_req_t *q);

/* Does the input start with the client preface? 1 yes, 0 no, -1 too short to tell. */
int lr_h2_preface(const char *p, size_t n);
/* A server session (SETTINGS queued); NULL with one error line when libnghttp2 cannot be
 * loaded. scheme and host ("host:port") make the URL when a request has no :authority. */
lr_h2_t *lr_h2_new(const char *scheme, const char *host, size_t max_body, lr_h2_request_fn fn, void *ud);
void lr_h2_free(lr_h2_t *h);
/* The client's bytes. False on a fatal protocol error: GOAWAY is queued, then close. */
bool lr_h2_feed(lr_h2_t *h, const char *p, size_t n);
/* Answer stream id (takes r). A stream goes out one event per DATA frame, paced. */
void lr_h2_respond(lr_h2_t *h, int32_t id, lr_response_t *r);
/* Append the frames that can go now to out, stopping past limit bytes. False on error. */
bool lr_h2_output(lr_h2_t *h, buf_t *out, size_t limit);
/* When the next paced event of some stream is due (lr_now() seconds), -1 for none. */
double lr_h2_due(const lr_h2_t *h);
/* Nothing left to say: the session is over, or (idle) no stream awaits an answer. */
bool lr_h2_over(lr_h2_t *h);
bool lr_h2_idle(const lr_h2_t *h);

/* An answer written by another thread (an upstream call): the responder's loop owns the
 * session, the worker only this object (reference counted: the stream may go first). */
typedef struct lr_h2_live lr_h2_live_t;
/* Loop thread: stream id's answer will come from a worker; wake() is called on each push. */
lr_h2_live_t *lr_h2_live(lr_h2_t *h, int32_t id, void (*wake)(void));
/* Worker thread: the status and headers ("Name: value\r\n" each), then data, then the end
 * (after which the worker must not touch it). push_data false: the client is gone. */
void lr_h2_live_head(lr_h2_live_t *l, int status, const char *headers, size_t len);
bool lr_h2_live_data(lr_h2_live_t *l, const char *p, size_t n);
void lr_h2_live_end(lr_h2_live_t *l);
#endif
