/* Python-compatible JSON (engine/pyjson.c) and llama-stack's request hash: the input is the
 * body, or "URL\0body" for the hash. A valid body must dump; an invalid one must be refused. */
#include "engine/pyjson.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t ul, bl;
    const uint8_t *u = fz_field(d, n, 0, &ul), *b = fz_field(d, n, 1, &bl);
    span_t body = bl || memchr(d, 0, n) ? (span_t){(const char *)b, bl} : (span_t){(const char *)d, n};
    buf_t o;
    buf_init(&o);
    bool ok = lr_pyjson_dump(body, &o);
    if (ok != js_valid(body) && !o.oom) abort();
    buf_free(&o);
    buf_init(&o);
    lr_pyjson_str((const char *)d, n, &o);
    buf_free(&o);
    char *url = fz_str(u, ul), hex[65];
    lr_llama_hash("POST", url, body, n & 1 ? "tests/x.py::test_y" : NULL, hex);
    lr_llama_hash("GET", url, body, NULL, hex);
    if (strlen(hex) != 64) abort();
    free(url);
    return 0;
}
