/* Unit tests of the responder's HTTP/1.x parser (shim/net/http.c), as jspan has them: input
 * ending at a guard page, every truncated prefix of valid heads and chunked bodies, chunked
 * bodies fed one byte at a time, malformed and mutated inputs.
 * One line per check, "ok NAME" or "not ok NAME: detail"; exit status 1 when any failed. */
#include "unit.h"
#include "net/http.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- reporting -------------------------------------------------------------------------- */

/* ---- guard pages ------------------------------------------------------------------------ */

/* Copy s[0..n) so that its last byte is the last readable one. */
static const char *guard_put(guard_t *g, const char *s, size_t n) { return guard_bytes(g, s, n); }

static guard_t G;

/* ---- request heads ---------------------------------------------------------------------- */

static const char *const heads[] = {
    "GET / HTTP/1.1\r\n\r\n",
    "GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nAccept: */*\r\n\r\n",
    "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:11434\r\nContent-Type: application/json\r\n"
    "Content-Length: 17\r\nAuthorization: Bearer sk-x\r\n\r\n",
    "POST /api/chat HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    "GET http://example.com:8000/v1/models?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",              /* empty lines before a request */
    "GET / HTTP/1.1\nHost: a\nX-Empty:\n\n",                 /* bare LF line ends */
    "HEAD /x HTTP/1.1\r\nX-Pad: \t value with spaces \t \r\nX-Tab:\tv\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
};
#define NHEADS (sizeof heads / sizeof heads[0])

static void test_head_fields(void)
{
    current = "http.head.fields";
    lr_http_req_t q;
    const char *h = heads[2];
    long n = lr_http_parse_head(guard_put(&G, h, strlen(h)), strlen(h), &q);
    size_t vl = 0;
    const char *v = lr_http_header(&q, "content-length", &vl);
    check(n == (long)strlen(h) && q.mlen == 4 && !memcmp(q.method, "POST", 4) && q.tlen == 20 &&
              !memcmp(q.target, "/v1/chat/completions", 20) && q.minor == 1 && q.nheaders == 4,
          "http.head.fields", "n %ld, method %.*s, target %.*s, minor %d, %d headers", n, (int)q.mlen, q.method,
          (int)q.tlen, q.target, q.minor, q.nheaders);
    check(v && vl == 2 && !memcmp(v, "17", 2), "http.head.header_case_insensitive", "Content-Length %.*s",
          (int)vl, v ? v : "");
    check(!lr_http_header(&q, "Content-Len", &vl) && !lr_http_header(&q, "X-Missing", &vl), "http.head.header_absent",
          "a header that is not there was found");

    h = heads[7];
    n = lr_http_parse_head(guard_put(&G, h, strlen(h)), strlen(h), &q);
    v = lr_http_header(&q, "X-Pad", &vl);
    check(n == (long)strlen(h) && v && vl == 17 && !memcmp(v, "value with spaces", 17), "http.head.value_trimmed",
          "n %ld, X-Pad '%.*s'", n, (int)vl, v ? v : "");
    h = heads[4];
    n = lr_http_parse_head(guard_put(&G, h, strlen(h)), strlen(h), &q);
    check(n > 0 && q.minor == 0 && q.tlen == strlen("http://example.com:8000/v1/models?x=1"), "http.head.http10_absolute_form", "n %ld, minor %d, target %.*s", n,
          q.minor, (int)q.tlen, q.target);
    h = heads[6];
    n = lr_http_parse_head(guard_put(&G, h, strlen(h)), strlen(h), &q);
    v = lr_http_header(&q, "X-Empty", &vl);
    check(n == (long)strlen(h) && v && vl == 0, "http.head.bare_lf_empty_value", "n %ld", n);
}

/* The whole head parses to its length, with a body or the next request after it too; every
 * strict prefix (its last byte the last readable one) asks for more. */
static void test_head_prefixes(void)
{
    char name[64], why[256];
    for (size_t i = 0; i < NHEADS; i++) {
        const char *h = heads[i];
        size_t len = strlen(h);
        snprintf(name, sizeof name, "http.head.prefixes[%zu]", i);
        current = name;
        lr_http_req_t q;
        int bad = 0;
        for (size_t k = 0; k < len; k++) {
            long n = lr_http_parse_head(guard_put(&G, h, k), k, &q);
            if (n != -2 && !bad++) snprintf(why, sizeof why, "prefix of %zu bytes gave %ld, not -2", k, n);
        }
        long n = lr_http_parse_head(guard_put(&G, h, len), len, &q);
        if (n != (long)len && !bad++) snprintf(why, sizeof why, "the whole head gave %ld, not %zu", n, len);
        char more[1024];
        snprintf(more, sizeof more, "%s{\"a\":1}GET / HTTP/1.1\r\n", h);
        n = lr_http_parse_head(guard_put(&G, more, strlen(more)), strlen(more), &q);
        if (n != (long)len && !bad++) snprintf(why, sizeof why, "with bytes after it gave %ld, not %zu", n, len);
        check(!bad, name, "%d bad, first: %s", bad, why);
    }
}

static const char *const bad_heads[] = {
    " / HTTP/1.1\r\n\r\n",                    /* no method */
    "GET  / HTTP/1.1\r\n\r\n",                /* empty target */
    "GET /\r\n\r\n",                          /* HTTP/0.9 */
    "GET / HTTP/2.0\r\n\r\n",
    "GET / HTTP/1.x\r\n\r\n",
    "GET / HTTP/1.1 \r\n\r\n",
    "GET / HTTP/1.11\r\n\r\n",
    "GET / http/1.1\r\n\r\n",
    "G(T / HTTP/1.1\r\n\r\n",                 /* not a token */
    "GET /a\x01 HTTP/1.1\r\n\r\n",            /* control byte in the target */
    "GET /a\x7f HTTP/1.1\r\n\r\n",
    "GET / HTTP/1.1\r\nHost a\r\n\r\n",       /* no colon */
    "GET / HTTP/1.1\r\n: x\r\n\r\n",          /* empty name */
    "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    "GET / HTTP/1.1\r\nHost : a\r\n\r\n",     /* space before the colon */
    "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",     /* control byte in a value */
    "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
    "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
};
#define NBAD (sizeof bad_heads / sizeof bad_heads[0])

/* Malformed heads are refused; their prefixes are refused or incomplete, never a request. */
static void test_head_malformed(void)
{
    char name[64], why[256];
    for (size_t i = 0; i < NBAD; i++) {
        const char *h = bad_heads[i];
        size_t len = strlen(h);
        snprintf(name, sizeof name, "http.head.malformed[%zu]", i);
        current = name;
        lr_http_req_t q;
        int bad = 0;
        long n = lr_http_parse_head(guard_put(&G, h, len), len, &q);
        if (n != -1 && !bad++) snprintf(why, sizeof why, "gave %ld, not -1", n);
        for (size_t k = 0; k < len; k++) {
            n = lr_http_parse_head(guard_put(&G, h, k), k, &q);
            if (n != -1 && n != -2 && !bad++) snprintf(why, sizeof why, "prefix of %zu bytes gave %ld", k, n);
        }
        check(!bad, name, "%s: %s", h, why);
    }
}

/* 100 headers are accepted, the 101st is refused. */
static void test_head_many_headers(void)
{
    current = "http.head.max_headers";
    char buf[8192];
    for (int count = LR_HTTP_MAX_HEADERS; count <= LR_HTTP_MAX_HEADERS + 1; count++) {
        size_t o = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++) o += (size_t)snprintf(buf + o, sizeof buf - o, "X-%d: %d\r\n", i, i);
        o += (size_t)snprintf(buf + o, sizeof buf - o, "\r\n");
        lr_http_req_t q;
        long n = lr_http_parse_head(guard_put(&G, buf, o), o, &q);
        long want = count <= LR_HTTP_MAX_HEADERS ? (long)o : -1;
        check(n == want, count <= LR_HTTP_MAX_HEADERS ? "http.head.max_headers" : "http.head.too_many_headers",
              "%d headers gave %ld, want %ld", count, n, want);
    }
}

/* Every byte of every valid head replaced by a troublesome one: a result within the input or
 * an error, and no read past it. */
static void test_head_mutations(void)
{
    current = "http.head.mutations";
    static const unsigned char subst[] = {0, ' ', '\t', ':', '\r', '\n', 0x7f, 0xff, '/'};
    char m[1024];
    int bad = 0;
    char why[256] = "";
    for (size_t i = 0; i < NHEADS; i++) {
        size_t len = strlen(heads[i]);
        for (size_t at = 0; at < len; at++) {
            for (size_t s = 0; s < sizeof subst; s++) {
                memcpy(m, heads[i], len);
                m[at] = (char)subst[s];
                lr_http_req_t q;
                long n = lr_http_parse_head(guard_put(&G, m, len), len, &q);
                if ((n < -2 || n == 0 || n > (long)len) && !bad++)
                    snprintf(why, sizeof why, "head %zu, byte %zu = 0x%02x gave %ld", i, at, subst[s], n);
            }
        }
    }
    check(!bad, "http.head.mutations", "%d bad, first: %s", bad, why);
}

static void test_tokens(void)
{
    current = "http.tokens";
    const char *v = "keep-alive, Close ,\tupgrade";
    check(lr_http_has_token(v, strlen(v), "close") && lr_http_has_token(v, strlen(v), "KEEP-ALIVE") &&
              lr_http_has_token(v, strlen(v), "upgrade"),
          "http.tokens.found", "a token of '%s' was not found", v);
    const char *w = "closed, xclose, close-ish";
    check(!lr_http_has_token(w, strlen(w), "close") && !lr_http_has_token("", 0, "close") &&
              !lr_http_has_token(" , ,", 4, "close"),
          "http.tokens.whole_tokens_only", "a part of a token matched");
    /* the value ends at vlen, not at a NUL: "close" past it is not seen */
    check(!lr_http_has_token("a, close", 3, "close"), "http.tokens.bounded", "read past vlen");
}

/* ---- chunked bodies --------------------------------------------------------------------- */

typedef struct { const char *in, *body; } chunked_t;

static const chunked_t chunked[] = {
    {"0\r\n\r\n", ""},
    {"5\r\nhello\r\n0\r\n\r\n", "hello"},
    {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
    {"A\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
    {"a;name=value\r\n0123456789\r\n0;last\r\n\r\n", "0123456789"},
    {"3  \r\nabc\r\n0\r\n\r\n", "abc"},
    {"4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"},
    {"2\r\nab\r\n0\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n", "ab"},
    {"2\nab\n0\n\n", "ab"},
    {"1F\r\n{\"model\":\"llama3.2:3b\",\"x\":[1]}\r\n0\r\n\r\n", "{\"model\":\"llama3.2:3b\",\"x\":[1]}"},
};
#define NCHUNKED (sizeof chunked / sizeof chunked[0])

/* One chunked body decoded from its start: out cleared, a fresh decode state. */
static long dechunk(const char *buf, size_t len, buf_t *out, size_t max)
{
    lr_dechunk_t st = {0};
    out->len = 0;
    return lr_http_dechunk(buf, len, out, max, &st);
}

/* The body decodes completely, with the next request after it too; every strict prefix asks
 * for more. */
static void test_chunked_prefixes(void)
{
    char name[64], why[256];
    buf_t out;
    buf_init(&out);
    for (size_t i = 0; i < NCHUNKED; i++) {
        const char *in = chunked[i].in;
        size_t len = strlen(in);
        snprintf(name, sizeof name, "http.chunked.prefixes[%zu]", i);
        current = name;
        int bad = 0;
        for (size_t k = 0; k < len; k++) {
            long n = dechunk(guard_put(&G, in, k), k, &out, 1 << 20);
            if (n != -2 && !bad++) snprintf(why, sizeof why, "prefix of %zu bytes gave %ld, not -2", k, n);
        }
        buf_adds(&out, "stale"); /* a fresh decode clears out first */
        long n = dechunk(guard_put(&G, in, len), len, &out, 1 << 20);
        size_t blen = strlen(chunked[i].body);
        if ((n != (long)len || out.len != blen || memcmp(out.data ? out.data : "", chunked[i].body, blen)) && !bad++)
            snprintf(why, sizeof why, "the whole body gave %ld and %zu bytes", n, out.len);
        char more[512];
        snprintf(more, sizeof more, "%sPOST / HTTP/1.1\r\n", in);
        n = dechunk(guard_put(&G, more, strlen(more)), strlen(more), &out, 1 << 20);
        if (n != (long)len && !bad++) snprintf(why, sizeof why, "with a request after it gave %ld, not %zu", n, len);
        check(!bad, name, "%d bad, first: %s", bad, why);
    }
    buf_free(&out);
}

/* As the responder reads it: the buffer grows one byte at a time, and the body is tried again
 * after each byte. Returns the buffer length at which it completed (0: never), -1 when a
 * partial buffer was refused. */
static long feed_bytewise(const char *in, size_t len, buf_t *out, size_t max)
{
    char *acc = malloc(len ? len : 1);
    if (!acc) return -1;
    long done = 0;
    lr_dechunk_t st = {0}; /* the incremental API: each call goes on where the last stopped */
    out->len = 0;
    for (size_t k = 1; k <= len && !done; k++) {
        acc[k - 1] = in[k - 1];
        long n = lr_http_dechunk(guard_put(&G, acc, k), k, out, max, &st);
        if (n == -1) { done = -1; break; }
        if (n >= 0) done = (long)k;
    }
    free(acc);
    return done;
}

static void test_chunked_bytewise(void)
{
    char name[64];
    buf_t out;
    buf_init(&out);
    for (size_t i = 0; i < NCHUNKED; i++) {
        snprintf(name, sizeof name, "http.chunked.bytewise[%zu]", i);
        current = name;
        const char *in = chunked[i].in;
        size_t len = strlen(in), blen = strlen(chunked[i].body);
        long at = feed_bytewise(in, len, &out, 1 << 20);
        check(at == (long)len && out.len == blen && !memcmp(out.data ? out.data : "", chunked[i].body, blen), name,
              "completed at %ld of %zu bytes with %zu body bytes", at, len, out.len);
    }
    /* a large body of many chunks, one byte at a time */
    current = "http.chunked.bytewise_large";
    buf_t big, want;
    buf_init(&big);
    buf_init(&want);
    for (int c = 0; c < 300; c++) {
        size_t sz = (size_t)(c * 7 % 41 + 1);
        buf_printf(&big, "%zx\r\n", sz);
        for (size_t b = 0; b < sz; b++) {
            char ch = (char)('a' + (c + (int)b) % 26);
            buf_addc(&big, ch);
            buf_addc(&want, ch);
        }
        buf_adds(&big, "\r\n");
    }
    buf_adds(&big, "0\r\n\r\n");
    long at = feed_bytewise(big.data, big.len, &out, 1 << 20);
    check(at == (long)big.len && out.len == want.len && !memcmp(out.data, want.data, want.len),
          "http.chunked.bytewise_large", "completed at %ld of %zu bytes with %zu of %zu body bytes", at, big.len,
          out.len, want.len);
    buf_free(&big);
    buf_free(&want);
    buf_free(&out);
}

static const char *const bad_chunked[] = {
    "\r\n",                                    /* no size */
    "x\r\n",                                   /* not hex */
    "-1\r\n",
    "5 x\r\nhello\r\n0\r\n\r\n",               /* junk after the size */
    "5\r\nhelloX\r\n0\r\n\r\n",                /* data longer than its size */
    "5\r\nhell\r\n\r\n0\r\n\r\n",              /* shorter: the CRLF is data, then junk */
    "5\r\nhello\r\r\n0\r\n\r\n",
    "ffffffffffffffffffffffff\r\n",            /* overflows */
    "100000000\r\n",                           /* absurdly large */
};
#define NBADCH (sizeof bad_chunked / sizeof bad_chunked[0])

static void test_chunked_malformed(void)
{
    char name[64], why[256];
    buf_t out;
    buf_init(&out);
    for (size_t i = 0; i < NBADCH; i++) {
        const char *in = bad_chunked[i];
        size_t len = strlen(in);
        snprintf(name, sizeof name, "http.chunked.malformed[%zu]", i);
        current = name;
        int bad = 0;
        long n = dechunk(guard_put(&G, in, len), len, &out, 1 << 20);
        if (n != -1 && !bad++) snprintf(why, sizeof why, "gave %ld, not -1", n);
        for (size_t k = 0; k < len; k++) {
            n = dechunk(guard_put(&G, in, k), k, &out, 1 << 20);
            if (n != -1 && n != -2 && !bad++) snprintf(why, sizeof why, "prefix of %zu bytes gave %ld", k, n);
        }
        check(!bad, name, "%s: %s", in, why);
    }
    /* over the limit, in one chunk or across several */
    current = "http.chunked.limit";
    const char *one = "5\r\nhello\r\n0\r\n\r\n", *two = "3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
    check(dechunk(guard_put(&G, one, strlen(one)), strlen(one), &out, 4) == -1 &&
              dechunk(guard_put(&G, two, strlen(two)), strlen(two), &out, 5) == -1 &&
              dechunk(guard_put(&G, two, strlen(two)), strlen(two), &out, 6) == (long)strlen(two),
          "http.chunked.limit", "a body over max was not refused, or one at max was");
    buf_free(&out);
}

/* Every byte of every valid chunked body replaced: a result within the input or an error. */
static void test_chunked_mutations(void)
{
    current = "http.chunked.mutations";
    static const unsigned char subst[] = {0, ' ', ';', '\r', '\n', 'f', '0', 0xff};
    char m[512];
    int bad = 0;
    char why[256] = "";
    buf_t out;
    buf_init(&out);
    for (size_t i = 0; i < NCHUNKED; i++) {
        size_t len = strlen(chunked[i].in);
        for (size_t at = 0; at < len; at++) {
            for (size_t s = 0; s < sizeof subst; s++) {
                memcpy(m, chunked[i].in, len);
                m[at] = (char)subst[s];
                long n = dechunk(guard_put(&G, m, len), len, &out, 1 << 20);
                if ((n < -2 || n == 0 || n > (long)len || (n > 0 && out.len > (size_t)n)) && !bad++)
                    snprintf(why, sizeof why, "body %zu, byte %zu = 0x%02x gave %ld", i, at, subst[s], n);
            }
        }
    }
    check(!bad, "http.chunked.mutations", "%d bad, first: %s", bad, why);
    buf_free(&out);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines survive a crash */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    if (!check(guard_init(&G, 64 * 1024), "http.guard.setup", "mmap failed")) return 1;
    test_head_fields();
    test_head_prefixes();
    test_head_malformed();
    test_head_many_headers();
    test_head_mutations();
    test_tokens();
    test_chunked_prefixes();
    test_chunked_bytewise();
    test_chunked_malformed();
    test_chunked_mutations();
    guard_free(&G);
    return failures ? 1 : 0;
}
