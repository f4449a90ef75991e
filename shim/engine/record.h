/* Recording live exchanges: LLMREPLAY_MODE, the capture of one upstream exchange (as its bytes
 * arrive), and writing it as a llama-stack recording, atomically, secrets left out. */
#ifndef LR_RECORD_H
#define LR_RECORD_H
#include "engine/ops.h"
#include "base/config.h"
#include "base/util.h"

lr_mode_t lr_mode(void);

typedef struct lr_capture {
    lr_op_t op;
    char *method, *url;
    char *test_id;      /* the test that made the call (engine/testid.h), NULL when none */
    buf_t req;          /* request body as sent */
    buf_t req_headers;  /* "Name: value\r\n" lines as sent (trace only; redacted when logged) */
    int status;
    char content_type[128];
    buf_t keep_headers; /* "name\0value\0" pairs a raw recording keeps (engine/raw.h) */
    bool chunked;       /* the answer came with Transfer-Encoding: chunked */
    buf_t body;         /* response body as received */
    size_t *ends;       /* arrival of data: body length after each piece… */
    double *ends_ms;    /* …and when it arrived (ms after the request started) */
    int npieces, cappieces;
    double t_start, t_first;
    char error[256];    /* a transport failure: reported, never written */
} lr_capture_t;

lr_capture_t *lr_capture_new(const char *method, const char *url);
void lr_capture_data(lr_capture_t *c, const void *p, size_t n);
/* Parse a response header line (status line, Content-Type). */
void lr_capture_header(lr_capture_t *c, const char *line, size_t n);
/* Write the recording (record modes) and/or the trace line (trace mode); then free. */
void lr_capture_finish(lr_capture_t *c);
void lr_capture_free(lr_capture_t *c);
/* Is this header a secret (Authorization, api keys, cookies, org/project, LLMREPLAY_REDACT)? */
bool lr_secret_header(const char *name, size_t n);
#endif
