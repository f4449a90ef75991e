#include "net/http.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool tchar(unsigned char c)
{
    switch (c) { /* RFC 9110's delimiters; a switch, not strchr: this runs for every byte of a head */
    case '"': case '(': case ')': case ',': case '/': case ':': case ';': case '<': case '=':
    case '>': case '?': case '@': case '[': case '\\': case ']': case '{': case '}':
        return false;
    default:
        return c > 0x20 && c < 0x7f;
    }
}

/* The end of the line starting at p (pointing at its CR or LF), or NULL if not complete. */
static const char *eol(const char *p, const char *end, const char **next)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return NULL;
    *next = nl + 1;
    return nl > p && nl[-1] == '\r' ? nl - 1 : nl;
}

long lr_http_parse_head(const char *buf, size_t len, lr_http_req_t *r)
{
    const char *p = buf, *end = buf + len, *next, *e;
    memset(r, 0, sizeof *r);
    /* tolerate empty lines before a request (RFC 9112 2.2) */
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    if (!(e = eol(p, end, &next))) return -2;
    r->method = p;
    while (p < e && tchar((unsigned char)*p)) p++;
    r->mlen = (size_t)(p - r->method);
    if (!r->mlen || p >= e || *p != ' ') return -1;
    r->target = ++p;
    while (p < e && *p != ' ') {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) return -1;
        p++;
    }
    r->tlen = (size_t)(p - r->target);
    if (!r->tlen || p >= e || *p != ' ') return -1;
    p++;
    if (e - p != 8 || memcmp(p, "HTTP/1.", 7) || !isdigit((unsigned char)p[7])) return -1;
    r->minor = p[7] - '0';
    p = next;
    for (;;) {
        if (!(e = eol(p, end, &next))) return -2;
        if (e == p) return (long)(next - buf); /* the empty line */
        if (*p == ' ' || *p == '\t') return -1;  /* obsolete line folding */
        if (r->nheaders == LR_HTTP_MAX_HEADERS) return -1;
        lr_http_header_t *h = &r->headers[r->nheaders++];
        h->name = p;
        while (p < e && tchar((unsigned char)*p)) p++;
        h->nlen = (size_t)(p - h->name);
        if (!h->nlen || p >= e || *p != ':') return -1;
        p++;
        while (p < e && (*p == ' ' || *p == '\t')) p++;
        const char *v = p, *ve = e;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (const char *c = v; c < ve; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) return -1;
        h->value = v;
        h->vlen = (size_t)(ve - v);
        p = next;
    }
}

const char *lr_http_header(const lr_http_req_t *r, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nheaders; i++)
        if (r->headers[i].nlen == n && !strncasecmp(r->headers[i].name, name, n)) {
            *vlen = r->headers[i].vlen;
            return r->headers[i].value;
        }
    return NULL;
}

bool lr_http_has_token(const char *v, size_t vlen, const char *token)
{
    size_t t = strlen(token);
    const char *p = v, *end = v + vlen;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t')) p++;
        const char *s = p;
        while (p < end && *p != ',') p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - s) == t && !strncasecmp(s, token, t)) return true;
    }
    return false;
}

/* A chunk-size or trailer line (e: its end): 1, 0 incomplete, -1 longer than 8 KB, refused
 * rather than searched again on every read. */
static int chunk_line(const char *p, const char *end, const char **e, const char **next)
{
    size_t n = (size_t)(end - p) < 8192 ? (size_t)(end - p) : 8192;
    if ((*e = eol(p, p + n, next))) return 1;
    return n == 8192 ? -1 : 0;
}

long lr_http_dechunk(const char *buf, size_t len, buf_t *out, size_t max, lr_dechunk_t *st)
{
    const char *p = buf + st->done, *end = buf + len, *next, *e;
    if (st->done > len) return -1;
    int l;
    while (!st->trailers) {
        if ((l = chunk_line(p, end, &e, &next)) <= 0) return l ? -1 : -2;
        /* chunk-size [; extensions] */
        size_t size = 0;
        const char *q = p;
        if (q == e || !isxdigit((unsigned char)*q)) return -1;
        while (q < e && isxdigit((unsigned char)*q)) {
            if (size > (max | 0xFFFF) >> 4) return -1; /* absurd size: refuse before it overflows */
            size = size * 16 + (size_t)(isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10));
            q++;
        }
        while (q < e && (*q == ' ' || *q == '\t')) q++;
        if (q < e && *q != ';') return -1;
        if (size == 0) { st->trailers = true; st->done = (size_t)(next - buf); p = next; break; }
        if (out->len + size > max) return -1;
        const char *data = next;
        if ((size_t)(end - data) < size + 1) return -2;
        if (!(e = eol(data + size, end, &next))) return -2;
        if (e != data + size) return -1; /* data must end exactly at CRLF */
        buf_add(out, data, size);
        p = next;
        st->done = (size_t)(p - buf);
    }
    /* trailers, then the empty line */
    for (;;) {
        if ((l = chunk_line(p, end, &e, &next)) <= 0) return l ? -1 : -2;
        if (e == p) return (long)(next - buf);
        p = next;
        st->done = (size_t)(p - buf);
    }
}
