/* HTTP request heads and chunked bodies (net/http.c), as the responder reads them: the head,
 * then the body after it either chunked or as it is; and the whole input as a chunked body,
 * at once and incrementally (growing prefixes, as bytes arrive), which must agree. */
#include "net/http.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    lr_http_req_t r;
    const char *p = (const char *)d;
    long h = lr_http_parse_head(p, n, &r);
    buf_t out;
    buf_init(&out);
    if (h > 0) {
        if ((size_t)h > n) abort();
        size_t vl;
        const char *te = lr_http_header(&r, "transfer-encoding", &vl);
        if (te) lr_http_has_token(te, vl, "chunked");
        const char *cn = lr_http_header(&r, "connection", &vl);
        if (cn) lr_http_has_token(cn, vl, "close");
        for (int i = 0; i < r.nheaders; i++)
            if (r.headers[i].name + r.headers[i].nlen > p + h || r.headers[i].value + r.headers[i].vlen > p + h) abort();
        lr_dechunk_t st = {0};
        long c = lr_http_dechunk(p + h, n - (size_t)h, &out, 1 << 20, &st);
        if (c > 0 && (size_t)c > n - (size_t)h) abort();
    }
    buf_free(&out);
    buf_init(&out);
    lr_dechunk_t st = {0};
    long c = lr_http_dechunk(p, n, &out, 4096, &st);
    if (c > 0 && ((size_t)c > n || out.len > 4096)) abort();
    /* the same bytes arriving in pieces of 1..16 bytes: same result, same body */
    buf_t inc;
    buf_init(&inc);
    lr_dechunk_t si = {0};
    long ci = -2;
    size_t step = n ? 1 + d[0] % 16 : 1;
    for (size_t have = step < n ? step : n;; have = have + step < n ? have + step : n) {
        ci = lr_http_dechunk(p, have, &inc, 4096, &si);
        if (ci != -2 || have == n) break;
    }
    if (ci != c || (c > 0 && (inc.len != out.len || (out.len && memcmp(inc.data, out.data, out.len))))) abort();
    buf_free(&inc);
    buf_free(&out);
    return 0;
}
