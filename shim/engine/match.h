/* Choosing the recording that answers a request, and explaining a miss. */
#ifndef LR_MATCH_H
#define LR_MATCH_H
#include "engine/store.h"

typedef struct {
    lr_op_t op;
    const char *method;
    const char *url;
    cJSON *body; /* parsed request body, NULL when none */
    bool body_invalid;
    const char *raw;  /* the body's bytes: raw (non-LLM) requests are matched by them */
    size_t raw_len;
    char host[128];
    int port;
    bool keyed; /* h1, h2 hold its match key already */
    uint64_t h1, h2;
} lr_req_t;

/* The recording to serve, advancing the per-request counter; NULL on a miss. */
const lr_rec_t *lr_match(lr_store_t *s, const lr_req_t *rq, bool advance);

typedef struct {
    const lr_rec_t *nearest;
    lr_diff_t diff;
    int candidates; /* recordings of the same operation */
} lr_nearest_t;
void lr_find_nearest(lr_store_t *s, const lr_req_t *rq, lr_nearest_t *out);
/* One-paragraph explanation of a miss, naming what to do. */
void lr_miss_message(const lr_req_t *rq, const lr_nearest_t *n, buf_t *out);
#endif
