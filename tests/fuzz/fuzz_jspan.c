/* The JSON scanner (json/jspan.c): validation, error offsets, fields, iteration, minify and
 * string decoding, cross-checked: a valid document minifies to a valid one of the same kind. */
#include "json/jspan.h"
#include "fuzz.h"

static void walk(span_t v, int depth)
{
    if (depth > 8) return;
    if (js_kind(v) == '[') {
        const char *pos = NULL;
        span_t it;
        for (int i = 0; i < 64 && js_next(v, &pos, &it); i++) walk(it, depth + 1);
    } else if (js_kind(v) == '"') {
        free(js_strdup(v));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    span_t s = {(const char *)d, n};
    bool ok = js_valid(s);
    long off = ok ? 0 : js_last_error(s);
    if (off < 0 || off > (long)n) abort();
    const char *e = js_skip(s.p, s.p + n);
    if (e && (e < s.p || e > s.p + n)) abort();
    static const char *const keys[] = {"request", "response", "body", "model", "stream", "messages"};
    span_t f[6];
    if (js_kind(s) == '{' && js_fields(s, keys, f, 6)) {
        for (int i = 0; i < 6; i++)
            if (f[i].p) walk(f[i], 0);
        js_get(s, "model", &f[0]);
    }
    if (ok) {
        buf_t m;
        buf_init(&m);
        js_minify(s, &m);
        span_t ms = {m.data ? m.data : "", m.len};
        if (!m.oom && (!js_valid(ms) || js_kind(ms) != js_kind(s))) abort();
        walk(js_trim(s), 0);
        js_is_null(s);
        js_is_true(s);
        buf_free(&m);
    }
    return 0;
}
