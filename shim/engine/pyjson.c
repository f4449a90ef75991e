#include "engine/pyjson.h"
#include "engine/canon.h"
#include "engine/ops.h"
#include "base/sha256.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lr_pyjson_str(const char *s, size_t n, buf_t *out)
{
    static const char hex[] = "0123456789abcdef";
    buf_addc(out, '"');
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            switch (c) {
            case '"': buf_adds(out, "\\\""); break;
            case '\\': buf_adds(out, "\\\\"); break;
            case '\n': buf_adds(out, "\\n"); break;
            case '\r': buf_adds(out, "\\r"); break;
            case '\t': buf_adds(out, "\\t"); break;
            case '\b': buf_adds(out, "\\b"); break;
            case '\f': buf_adds(out, "\\f"); break;
            default:
                if (c < 0x20) { char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}; buf_add(out, e, 6); }
                else buf_addc(out, (char)c);
            }
            continue;
        }
        /* decode one UTF-8 sequence; ensure_ascii writes \uXXXX (surrogate pairs above U+FFFF) */
        unsigned cp = 0xFFFD;
        int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (len > 1 && p + len <= end) {
            cp = c & (0x3F >> (len - 1));
            for (int i = 1; i < len; i++) cp = cp << 6 | (p[i] & 0x3F);
        }
        p += len;
        unsigned units[2] = {cp, 0};
        int nu = 1;
        if (cp > 0xFFFF) { cp -= 0x10000; units[0] = 0xD800 + (cp >> 10); units[1] = 0xDC00 + (cp & 0x3FF); nu = 2; }
        for (int i = 0; i < nu; i++) buf_printf(out, "\\u%04x", units[i]);
    }
    buf_addc(out, '"');
}

void lr_pyrepr_float(double v, buf_t *out)
{
    if (v == 0) { buf_adds(out, signbit(v) ? "-0.0" : "0.0"); return; }
    /* the shortest digits that read back as v, as Python's repr() picks them */
    char tmp[64];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    if (prec == 17) snprintf(tmp, sizeof tmp, "%.16e", v);
    /* tmp: [-]d[.ddd]e±XX */
    bool neg = tmp[0] == '-';
    char *m = tmp + neg, *e = strchr(m, 'e');
    int exp = atoi(e + 1);
    char digits[32];
    int nd = 0;
    for (char *c = m; c < e; c++)
        if (*c != '.') digits[nd++] = *c;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    if (neg) buf_addc(out, '-');
    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            buf_adds(out, "0.");
            for (int i = 0; i < -exp - 1; i++) buf_addc(out, '0');
            buf_adds(out, digits);
        } else {
            for (int i = 0; i <= exp; i++) buf_addc(out, i < nd ? digits[i] : '0');
            buf_addc(out, '.');
            if (nd > exp + 1) buf_adds(out, digits + exp + 1);
            else buf_addc(out, '0');
        }
    } else {
        buf_addc(out, digits[0]);
        if (nd > 1) { buf_addc(out, '.'); buf_adds(out, digits + 1); }
        buf_printf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

typedef struct { char *key; size_t klen; span_t val; size_t at; } member_t;

/* By key, then by position: the last of equal keys ends its run. */
static int cmp_member(const void *a, const void *b)
{
    const member_t *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->klen != y->klen) return x->klen > y->klen ? 1 : -1;
    return (x->at > y->at) - (x->at < y->at);
}

static bool same_key(const member_t *x, const member_t *y)
{
    return x->klen == y->klen && !memcmp(x->key, y->key, x->klen);
}

static bool dump(span_t v, buf_t *out, int depth);

/* An object with its keys sorted, as json.dumps(sort_keys=True) writes it. */
static bool dump_object(span_t v, buf_t *out, int depth)
{
    member_t *m = NULL;
    int n = 0, cap = 0;
    const char *p = v.p + 1, *end = v.p + v.n;
    bool ok = true;
    for (;;) {
        while (p < end && strchr(" \t\r\n,", *p)) p++;
        if (p >= end || *p == '}') break;
        const char *ke = js_skip(p, end);
        if (!ke) { ok = false; break; }
        span_t ks = {p, (size_t)(ke - p)};
        p = ke;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ':')) p++;
        const char *ve = js_skip(p, end);
        if (!ve) { ok = false; break; }
        if (n == cap) {
            int ncap = cap ? cap * 2 : 8;
            member_t *nm = realloc(m, sizeof *m * (size_t)ncap);
            if (!nm) { ok = false; break; }
            m = nm;
            cap = ncap;
        }
        char *key = js_strdup(ks);
        if (!key) { ok = false; break; }
        m[n] = (member_t){key, strlen(key), {p, (size_t)(ve - p)}, (size_t)n};
        n++;
        p = ve;
    }
    if (ok) {
        /* sorted once (n log n); a repeated key keeps its last value, as json.loads does */
        if (n > 1) qsort(m, (size_t)n, sizeof *m, cmp_member); /* {}: qsort(NULL, 0) is undefined */
        buf_addc(out, '{');
        bool first = true;
        for (int i = 0; i < n && ok; i++) {
            if (i + 1 < n && same_key(&m[i], &m[i + 1])) continue;
            if (!first) buf_adds(out, ", ");
            first = false;
            lr_pyjson_str(m[i].key, m[i].klen, out);
            buf_adds(out, ": ");
            ok = dump(m[i].val, out, depth + 1);
        }
        buf_addc(out, '}');
    }
    for (int i = 0; i < n; i++) free(m[i].key);
    free(m);
    return ok;
}

static bool dump(span_t v, buf_t *out, int depth)
{
    v = js_trim(v);
    if (!v.n || depth > 400) return false;
    char k = v.p[0];
    if (k == '{') return dump_object(v, out, depth);
    if (k == '[') {
        const char *pos = NULL;
        span_t item;
        buf_addc(out, '[');
        for (int i = 0; js_next(v, &pos, &item); i++) {
            if (i) buf_adds(out, ", ");
            if (!dump(item, out, depth + 1)) return false;
        }
        buf_addc(out, ']');
        return true;
    }
    if (k == '"') {
        char *s = js_strdup(v);
        if (!s) return false;
        size_t rn;
        char *r = lr_round_decimals(s, strlen(s), &rn);
        lr_pyjson_str(r ? r : s, r ? rn : strlen(s), out);
        free(r);
        free(s);
        return true;
    }
    if (k == 't' || k == 'f' || k == 'n') { buf_add(out, v.p, v.n); return true; }
    /* a number: ints keep their digits, floats go through round(x, 5) then repr() */
    if (memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) || memchr(v.p, 'E', v.n)) {
        char num[400], r5[400];
        snprintf(num, sizeof num, "%.*s", (int)(v.n < sizeof num - 1 ? v.n : sizeof num - 1), v.p);
        double d = strtod(num, NULL);
        if (isinf(d)) { buf_adds(out, d > 0 ? "Infinity" : "-Infinity"); return true; }
        snprintf(r5, sizeof r5, "%.5f", d);
        lr_pyrepr_float(strtod(r5, NULL), out);
        return true;
    }
    if (v.n == 2 && !memcmp(v.p, "-0", 2)) buf_addc(out, '0');
    else buf_add(out, v.p, v.n);
    return true;
}

bool lr_pyjson_dump(span_t v, buf_t *out) { return js_valid(v) && dump(v, out, 0); }

void lr_llama_hash(const char *method, const char *url, span_t body, const char *test_id, char out[65])
{
    size_t plen;
    const char *path = lr_url_path(url, &plen);
    buf_t b;
    buf_init(&b);
    /* keys in sorted order: body, endpoint, method, test_id */
    buf_adds(&b, "{\"body\": ");
    if (!body.p || !lr_pyjson_dump(body, &b)) buf_adds(&b, "{}");
    buf_adds(&b, ", \"endpoint\": ");
    lr_pyjson_str(path, plen, &b);
    buf_adds(&b, ", \"method\": ");
    char m[16];
    snprintf(m, sizeof m, "%s", method ? method : "POST");
    for (char *c = m; *c; c++) if (*c >= 'a' && *c <= 'z') *c = (char)(*c - 32);
    lr_pyjson_str(m, strlen(m), &b);
    if (!lr_op_hash_shared(path, plen)) {
        buf_adds(&b, ", \"test_id\": ");
        if (test_id) lr_pyjson_str(test_id, strlen(test_id), &b);
        else buf_adds(&b, "null");
    }
    buf_addc(&b, '}');
    lr_sha256_hex(b.data ? b.data : "", b.len, out);
    buf_free(&b);
}
