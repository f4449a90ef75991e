#include "json/jspan.h"
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 512

static const char *ws(const char *p, const char *end)
{
    /* pretty-printed recordings indent with long runs of spaces: eat them 8 at a time */
    for (;;) {
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w != 0x2020202020202020ULL) break;
            p += 8;
        }
        if (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) { p++; continue; }
        return p;
    }
}

/* Where the last failed scan stopped: at end means the input ran out (a truncated value). */
static __thread const char *fail_at;

static const char *bad(const char *p) { fail_at = p; return NULL; }

static int hexv(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Pointer to the first '"', '\\' or control byte in [p, end), or end: 16 bytes per step, since
 * strings are most of a recording's bytes. Loads stay inside the buffer. */
static const char *string_special(const char *p, const char *end)
{
    const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), ctl = _mm_set1_epi8(0x1F);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)),
                                 _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v)); /* v <= 0x1F */
        int mask = _mm_movemask_epi8(m);
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}
#else
static const char *string_special(const char *p, const char *end)
{
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20) p++;
    return p;
}
#endif

static const char *skip_string(const char *p, const char *end)
{
    p++; /* opening quote */
    for (;;) {
        p = string_special(p, end);
        if (p >= end) return bad(end);
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return bad(p);
        if (++p >= end) return bad(end); /* a backslash: one escape */
        switch (*p) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': p++; break;
        case 'u':
            for (int i = 1; i <= 4; i++) {
                if (p + i >= end) return bad(end);
                if (hexv(p[i]) < 0) return bad(p + i);
            }
            p += 5;
            break;
        default: return bad(p);
        }
    }
}

static const char *skip_number(const char *p, const char *end)
{
    if (p < end && *p == '-') p++;
    if (p >= end) return bad(end);
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return bad(p); /* no leading zeros */
    } else {
        if (*p < '1' || *p > '9') return bad(p);
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end) return bad(end);
        if (*p < '0' || *p > '9') return bad(p);
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end) return bad(end);
        if (*p < '0' || *p > '9') return bad(p);
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *lit(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w), have = (size_t)(end - p);
    if (have >= n) return memcmp(p, w, n) ? bad(p) : p + n;
    return memcmp(p, w, have) ? bad(p) : bad(end);
}

static const char *skip(const char *p, const char *end, int depth)
{
    p = ws(p, end);
    if (p >= end) return bad(end);
    if (depth > MAX_DEPTH) return bad(p);
    switch (*p) {
    case '"': return skip_string(p, end);
    case 't': return lit(p, end, "true");
    case 'f': return lit(p, end, "false");
    case 'n': return lit(p, end, "null");
    case '{': case '[': {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (obj) {
                p = ws(p, end);
                if (p >= end) return bad(end);
                if (*p != '"') return bad(p);
                if (!(p = skip_string(p, end))) return NULL;
                p = ws(p, end);
                if (p >= end) return bad(end);
                if (*p != ':') return bad(p);
                p++;
            }
            if (!(p = skip(p, end, depth + 1))) return NULL;
            p = ws(p, end);
            if (p >= end) return bad(end);
            if (*p == close) return p + 1;
            if (*p != ',') return bad(p);
            p++;
        }
    }
    default: return skip_number(p, end);
    }
}

const char *js_skip(const char *p, const char *end) { return p ? skip(p, end, 0) : NULL; }

span_t js_trim(span_t s)
{
    const char *p = ws(s.p, s.p + s.n), *e = s.p + s.n;
    while (e > p && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
    return (span_t){p, (size_t)(e - p)};
}

bool js_valid(span_t s)
{
    const char *e = js_skip(s.p, s.p + s.n);
    if (!e) return false;
    if (ws(e, s.p + s.n) != s.p + s.n) { fail_at = ws(e, s.p + s.n); return false; }
    return true;
}

long js_last_error(span_t s)
{
    return fail_at && fail_at >= s.p && fail_at <= s.p + s.n ? (long)(fail_at - s.p) : (long)s.n;
}

char js_kind(span_t s)
{
    s = js_trim(s);
    return s.n ? s.p[0] : 0;
}

bool js_get(span_t obj, const char *key, span_t *out)
{
    const char *p = ws(obj.p, obj.p + obj.n), *end = obj.p + obj.n;
    size_t klen = strlen(key);
    if (p >= end || *p != '{') return false;
    p = ws(p + 1, end);
    while (p < end && *p == '"') {
        const char *ke = skip_string(p, end);
        if (!ke) return false;
        bool hit = (size_t)(ke - p) == klen + 2 && !memcmp(p + 1, key, klen);
        p = ws(ke, end);
        if (p >= end || *p != ':') return false;
        const char *vs = ws(p + 1, end), *ve = skip(vs, end, 1);
        if (!ve) return false;
        if (hit) { *out = (span_t){vs, (size_t)(ve - vs)}; return true; }
        p = ws(ve, end);
        if (p < end && *p == ',') p = ws(p + 1, end);
        else break;
    }
    return false;
}

bool js_fields(span_t obj, const char *const *keys, span_t *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = (span_t){NULL, 0};
    const char *p = ws(obj.p, obj.p + obj.n), *end = obj.p + obj.n;
    if (p >= end) { fail_at = end; return false; }
    if (*p != '{') { fail_at = p; return false; }
    p = ws(p + 1, end);
    if (p < end && *p == '}') return ws(p + 1, end) == end || (fail_at = ws(p + 1, end), false);
    for (;;) {
        if (p >= end) { fail_at = end; return false; }
        if (*p != '"') { fail_at = p; return false; }
        const char *ks = p, *ke = skip_string(p, end);
        if (!ke) return false;
        p = ws(ke, end);
        if (p >= end) { fail_at = end; return false; }
        if (*p != ':') { fail_at = p; return false; }
        const char *vs = ws(p + 1, end), *ve = skip(vs, end, 1);
        if (!ve) return false;
        size_t kl = (size_t)(ke - ks) - 2;
        for (int i = 0; i < n; i++)
            if (!out[i].p && strlen(keys[i]) == kl && !memcmp(ks + 1, keys[i], kl)) out[i] = (span_t){vs, (size_t)(ve - vs)};
        p = ws(ve, end);
        if (p >= end) { fail_at = end; return false; }
        if (*p == '}') break;
        if (*p != ',') { fail_at = p; return false; }
        p = ws(p + 1, end);
    }
    p = ws(p + 1, end);
    if (p != end) { fail_at = p; return false; }
    return true;
}

bool js_next(span_t arr, const char **pos, span_t *item)
{
    const char *end = arr.p + arr.n, *p;
    if (!*pos) {
        p = ws(arr.p, end);
        if (p >= end || *p != '[') return false;
        p = ws(p + 1, end);
    } else {
        p = ws(*pos, end);
        if (p >= end || *p != ',') return false;
        p = ws(p + 1, end);
    }
    if (p >= end || *p == ']') return false;
    const char *e = skip(p, end, 1);
    if (!e) return false;
    *item = (span_t){p, (size_t)(e - p)};
    *pos = e;
    return true;
}

void js_minify(span_t s, buf_t *out)
{
    const char *p = s.p, *end = s.p + s.n;
    if (!buf_reserve(out, s.n)) return;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            const char *e = skip_string(p, end);
            if (!e) e = end;
            buf_add(out, p, (size_t)(e - p));
            p = e;
        } else {
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') buf_addc(out, c);
            p++;
        }
    }
}

bool js_is_null(span_t s) { s = js_trim(s); return s.n == 4 && !memcmp(s.p, "null", 4); }
bool js_is_true(span_t s) { s = js_trim(s); return s.n == 4 && !memcmp(s.p, "true", 4); }

static void put_utf8(buf_t *b, unsigned cp)
{
    char u[4];
    if (cp < 0x80) { buf_addc(b, (char)cp); return; }
    if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); buf_add(b, u, 2); return; }
    if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63));
        buf_add(b, u, 3);
        return;
    }
    u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
    u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63));
    buf_add(b, u, 4);
}

static int read_u4(const char *p, const char *end)
{
    if (end - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexv(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

char *js_strdup(span_t s)
{
    s = js_trim(s);
    if (s.n < 2 || s.p[0] != '"') return NULL;
    buf_t b;
    buf_init(&b);
    const char *p = s.p + 1, *end = s.p + s.n - 1;
    while (p < end) {
        if (*p != '\\') { buf_addc(&b, *p++); continue; }
        if (++p >= end) break;
        char c = *p++;
        switch (c) {
        case 'n': buf_addc(&b, '\n'); break;
        case 't': buf_addc(&b, '\t'); break;
        case 'r': buf_addc(&b, '\r'); break;
        case 'b': buf_addc(&b, '\b'); break;
        case 'f': buf_addc(&b, '\f'); break;
        case 'u': {
            int cp = read_u4(p, end);
            if (cp < 0) { buf_free(&b); return NULL; }
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                int lo = read_u4(p + 2, end);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            put_utf8(&b, (unsigned)cp);
            break;
        }
        default: buf_addc(&b, c);
        }
    }
    return buf_steal(&b, NULL);
}
