/* What a real server would send for a recording (or for a miss): status, headers, and the
 * body as a list of events, one per stream chunk, so every layer can deliver a stream as one. */
#ifndef LR_RENDER_H
#define LR_RENDER_H
#include "recording.h"

typedef struct { char *data; size_t len; } lr_event_t;

typedef struct lr_response {
    int status;
    const char *reason;
    const char *content_type;
    bool stream;          /* deliver event by event (chunked on the wire) */
    lr_event_t *events;
    int nevents;
    size_t body_len;      /* sum of event lengths */
    char *extra_headers;  /* "Name: value\r\n" lines after the standard ones */
    const lr_rec_t *rec;  /* the recording served, NULL for a miss */
    bool owned;           /* freed by lr_response_free (misses); cached ones live on */
} lr_response_t;

/* Build the answer of a recording from its file; on failure an error response saying why. */
lr_response_t *lr_render_recording(const lr_rec_t *r);
/* The answer to a request that matched nothing: an OpenAI- (or Ollama-) shaped error. */
lr_response_t *lr_render_error(lr_op_t op, int status, const char *type, const char *code, const char *message);
void lr_response_free(lr_response_t *r);
const char *lr_reason(int status);
/* Serialize the status line and headers (HTTP/1.1); chunked when streaming. */
void lr_render_head(const lr_response_t *r, buf_t *out, bool chunked);
#endif
