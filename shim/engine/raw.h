/* Wire-level HTTP exchanges: every request to an intercepted host that is not a known LLM
 * operation, and llama-stack's raw HTTP recordings (request{url, method, payload}). They are
 * recordings of the operation row "http", matched by method, path, query (order ignored) and
 * body (canonical JSON, multipart by its parts, other bodies by their bytes), and answered
 * byte for byte with the recorded status and content headers. */
#ifndef LR_RAW_H
#define LR_RAW_H
#include "engine/match.h"
#include "engine/render.h"
#include "engine/record.h"

/* The "http" row of the operation table (OP_NONE when the table has none). */
lr_op_t lr_op_http(void);
static inline bool lr_op_is_raw(lr_op_t op) { return op != OP_NONE && op == lr_op_http(); }

/* Match key of a raw request: method, path, sorted query without credentials, body. json is
 * the parsed body when the caller has it (else the bytes are classified here). */
void lr_raw_key(const char *method, const char *url, const cJSON *json, const char *body, size_t len,
                const lr_ignore_t *ig, uint64_t *h1, uint64_t *h2);
/* The key of any request: raw ones as above, LLM operations by lr_match_key. */
void lr_req_key(const lr_req_t *rq, const lr_ignore_t *ig, uint64_t *h1, uint64_t *h2);

/* Fill r from a raw recording's request object and response span (llama-stack's raw HTTP
 * shape, or llmreplay's extension of it); false with a reason for a malformed one. */
bool lr_raw_parse(lr_rec_t *r, const cJSON *rq, span_t resp, const lr_ignore_t *ig, char *why, size_t cap);
/* Does the request object have llama-stack's raw HTTP shape (a "payload", no "endpoint")? */
bool lr_raw_shape(const cJSON *rq);

/* The answer of a raw recording into o (status already set); false with a reason. */
/* Its events are added to o; b receives its header lines. */
bool lr_raw_render(lr_response_t *o, const lr_rec_t *r, span_t resp, buf_t *b, char *why, size_t cap);
/* A recorded stream given as a list of text lines (llama-stack's raw streams): one event per
 * SSE event (lines up to a blank one) or per line. */
void lr_raw_stream_lines(lr_response_t *o, span_t list, bool sse, bool final_newline, buf_t *b);
/* The explanation of a raw miss: the nearest recording of the same method and path. */
void lr_raw_miss(lr_store_t *s, const lr_req_t *rq, buf_t *out, char **nearest);

/* "METHOD /path?query" of a raw recording (read from its file), for listings. */
bool lr_raw_target(const lr_rec_t *r, char *out, size_t cap);

/* Write a captured non-LLM exchange in llama-stack's raw HTTP shape. */
void lr_raw_write(const lr_capture_t *c);
/* Is the header one a raw recording keeps (content headers; never cookies or credentials)? */
bool lr_raw_keep_header(const char *name, size_t n);

/* base64 (RFC 4648, padding optional on input); decode is false on a bad character. */
void lr_b64_encode(const void *p, size_t n, buf_t *out);
bool lr_b64_decode(const char *s, size_t n, buf_t *out);
/* Is [p, p+n) valid UTF-8 text without NUL or other control bytes than tab, CR, LF? */
bool lr_raw_is_text(const char *p, size_t n);
/* The boundary of a multipart body, sniffed from its first line ("--BOUNDARY"). */
bool lr_multipart_boundary(const char *body, size_t len, const char **b, size_t *bn);
#endif
