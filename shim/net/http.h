/* A small, allocation-free HTTP/1.x request parser for the responder (picohttpparser-style:
 * returns bytes consumed, -1 for malformed input, -2 when more bytes are needed). */
#ifndef LR_HTTP_H
#define LR_HTTP_H
#include "base/util.h"
#include <stddef.h>

#define LR_HTTP_MAX_HEADERS 100

typedef struct {
    const char *name, *value;
    size_t nlen, vlen;
} lr_http_header_t;

typedef struct {
    const char *method, *target;
    size_t mlen, tlen;
    int minor; /* HTTP/1.minor */
    lr_http_header_t headers[LR_HTTP_MAX_HEADERS];
    int nheaders;
} lr_http_req_t;

/* Parse a request head (request line, headers, empty line) at the start of buf. */
long lr_http_parse_head(const char *buf, size_t len, lr_http_req_t *r);
/* Value of a header (case-insensitive name), NULL when absent. */
const char *lr_http_header(const lr_http_req_t *r, const char *name, size_t *vlen);
/* Does the comma-separated header value list contain token (case-insensitive)? */
bool lr_http_has_token(const char *v, size_t vlen, const char *token);
/* Where decoding a chunked body stopped (-2): zeroed, with out empty, for a new body. */
typedef struct {
    size_t done;   /* bytes of buf decoded into out (whole chunks) or, in trailers, read */
    bool trailers; /* the last chunk was seen */
} lr_dechunk_t;
/* Decode a chunked body at the start of buf into out, going on from where st says the last
 * call stopped (buf then starts with the same bytes): bytes consumed (through the trailers),
 * -1 malformed, -2 incomplete. Each byte is decoded once, however many calls it takes. */
long lr_http_dechunk(const char *buf, size_t len, buf_t *out, size_t max, lr_dechunk_t *st);
#endif
