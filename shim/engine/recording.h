/* One llama-stack recording file: what the index keeps of it, and how it is validated. */
#ifndef LR_RECORDING_H
#define LR_RECORDING_H
#include "engine/canon.h"
#include "engine/ops.h"
#include "json/jspan.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct lr_response;

/* A destination recordings were made against. */
typedef struct {
    char host[128];
    int port;
} lr_hostport_t;

typedef struct lr_rec {
    char *path;
    int dir;       /* index of the LLMREPLAY_DIR entry it came from: first entries win ties */
    lr_op_t op;
    char method[12];
    char host[128];
    int port;
    char *model;   /* may be "" */
    char *test_id; /* NULL when absent */
    bool streaming, exception;
    int status;    /* HTTP status it answers with */
    uint64_t size; /* the file as indexed: a change means the index is stale */
    int64_t mtime_ns;
    int order;     /* position in scan order (directory order, then path) */
    int64_t checked_ms; /* when the file was last found unchanged (lr_now, ms) */
    uint64_t h1, h2; /* match key: see lr_match_key() */
    struct lr_response *resp; /* rendered answer: built on first use, then shared read-only */
} lr_rec_t;

/* The "model" of a request body, "" when none: the one place that reads it. */
const char *lr_body_model(const cJSON *body);
/* Key of a request: class name, method (except for listings), canonical body. */
void lr_match_key(lr_op_t op, const char *method, const cJSON *body, const lr_ignore_t *ig,
                  uint64_t *h1, uint64_t *h2);

/* The body an OpenAI SDK sends for recorded arguments: extra_body merged, extra_headers and
 * extra_query dropped (in place). */
void lr_rec_sdk_to_wire(cJSON *body);
/* Parse a recording from its text. On failure returns NULL and writes a reason. */
lr_rec_t *lr_rec_parse(const char *path, const char *text, size_t len, const lr_ignore_t *ig,
                       char *why, size_t whycap);
/* Read and parse; reasons cover unreadable, huge, binary, truncated, malformed. */
lr_rec_t *lr_rec_load(const char *path, const lr_ignore_t *ig, char *why, size_t whycap);
void lr_rec_free(lr_rec_t *r);
/* Is the file still the one that was indexed (same size and mtime)? */
bool lr_rec_unchanged(const lr_rec_t *r);
/* The same, for serving: a file checked in the last 100 ms is not stat()ed again, so a hot
 * loop of replays costs no system call. */
bool lr_rec_fresh(lr_rec_t *r);
/* Re-read the recorded request body (for diagnostics); NULL when the file changed. */
cJSON *lr_rec_request_body(const lr_rec_t *r);
/* Apply id_normalization_mapping to a recording's text: a new buffer, or NULL when there is
 * nothing to apply or when *refused says why it cannot be (a hostile mapping's cost). */
char *lr_rec_apply_id_mapping(const char *text, size_t len, size_t *outlen, const char **refused);
size_t lr_max_file_bytes(void);
/* The "response" object of a recording's text, after one validating pass. */
bool lr_rec_response_span(const char *text, size_t len, span_t *resp);
#endif
