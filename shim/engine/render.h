/* What a real server would send for a recording (or for a miss): status, headers, and the
 * body as a list of events, one per stream chunk, so every layer can deliver a stream as one. */
#ifndef LR_RENDER_H
#define LR_RENDER_H
#include "engine/recording.h"

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
    double *times_ms;     /* when each event arrived while recording (chunk_times_ms), or NULL */
    int ntimes;
    bool owned;           /* freed by lr_response_free (misses); cached ones live on */
    char *own_ctype;      /* content_type when it is the response's own (raw recordings) */
    char *body;           /* every event, back to back (lr_response_join), or NULL */
} lr_response_t;

/* Append b's contents as the response's next event (b is emptied). */
void lr_response_event(lr_response_t *r, buf_t *b);

/* Build the answer of a recording from its file; on failure an error response saying why. */
lr_response_t *lr_render_recording(const lr_rec_t *r);
/* The answer to a request that matched nothing: an OpenAI- (or Ollama-) shaped error. */
lr_response_t *lr_render_error(lr_op_t op, int status, const char *type, const char *code, const char *message);
void lr_response_free(lr_response_t *r);
/* Put the events in one block (r->body; each event then points into it), so an answer
 * written at once is one copy. Unchanged when there is no memory for it. */
void lr_response_join(lr_response_t *r);
/* Pacing before event i (i > 0): LLMREPLAY_PACE=recorded replays the recorded gaps when the
 * recording has them, else LLMREPLAY_PACE_MS (pace_ms). 0 for none. */
double lr_event_gap_ms(const lr_response_t *r, int i, double pace_ms);
/* The pacing in force: LLMREPLAY_PACE_MS, or -1 for LLMREPLAY_PACE=recorded. */
double lr_pace_setting(void);
const char *lr_reason(int status);
/* Serialize the status line and headers (HTTP/1.1); chunked when streaming. */
void lr_render_head(const lr_response_t *r, buf_t *out, bool chunked);
#endif
