#include "base/util.h"
#include "base/config.h"
#include "base/real.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void buf_init(buf_t *b) { memset(b, 0, sizeof *b); }
void buf_free(buf_t *b) { free(b->data); buf_init(b); }

bool buf_reserve(buf_t *b, size_t extra)
{
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { b->oom = true; return false; }
    b->data = d;
    b->cap = cap;
    return true;
}

void buf_add(buf_t *b, const void *p, size_t n)
{
    if (!buf_reserve(b, n)) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void buf_adds(buf_t *b, const char *s) { buf_add(b, s, strlen(s)); }
void buf_addc(buf_t *b, char c) { buf_add(b, &c, 1); }

void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { buf_add(b, tmp, (size_t)n); return; }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_addu(buf_t *b, unsigned long long v, unsigned base)
{
    char tmp[24], *e = tmp + sizeof tmp, *p = e;
    do { *--p = "0123456789abcdef"[v % base]; v /= base; } while (v);
    buf_add(b, p, (size_t)(e - p));
}

void buf_json_strz(buf_t *b, const char *s) { buf_json_str(b, s, strlen(s)); }

void buf_json_str(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    buf_addc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        buf_add(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_adds(b, "\\\""); break;
        case '\\': buf_adds(b, "\\\\"); break;
        case '\n': buf_adds(b, "\\n"); break;
        case '\r': buf_adds(b, "\\r"); break;
        case '\t': buf_adds(b, "\\t"); break;
        default: {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_add(b, e, 6);
        }
        }
    }
    buf_add(b, s + run, n - run);
    buf_addc(b, '"');
}

char *buf_steal(buf_t *b, size_t *len)
{
    if (b->oom) { buf_free(b); return NULL; }
    if (!b->data) buf_reserve(b, 0), b->data ? (void)(b->data[0] = 0) : (void)0;
    char *d = b->data;
    if (len) *len = b->len;
    buf_init(b);
    return d;
}



uint64_t lr_checksum(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x243f6a8885a308d3ULL ^ n, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h = (h << 31) | (h >> 33);
    }
    for (; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}


uint64_t lr_hash64(const void *p, size_t n, uint64_t seed)
{
    /* FNV-1a, then a final avalanche so short keys spread over the table. */
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ULL; }
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    return h;
}

double lr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void lr_sleep_ms(double ms)
{
    if (ms <= 0) return;
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

bool lr_list_next(const char **p, const char **tok, size_t *len)
{
    const char *s = *p;
    if (!s) return false;
    while (*s == ',' || *s == ' ' || *s == '\t') s++;
    if (!*s) { *p = s; return false; }
    size_t n = strcspn(s, ", \t");
    *tok = s;
    *len = n;
    *p = s + n;
    return true;
}

bool lr_list_has(const char *list, const char *name, size_t n)
{
    const char *tok;
    size_t l;
    for (const char *p = list; lr_list_next(&p, &tok, &l);)
        if (l == n && !strncasecmp(tok, name, n)) return true;
    return false;
}

char *lr_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

bool lr_has_suffix(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}



const char *lr_alpn_select(const unsigned char *p, unsigned n, char *list, size_t cap)
{
    bool h11 = false, h2 = false;
    size_t at = 0;
    list[0] = 0;
    for (unsigned i = 0; i < n && i + 1u + p[i] <= n; i += 1u + p[i]) {
        unsigned l = p[i];
        if (l == 8 && !memcmp(p + i + 1, "http/1.1", 8)) h11 = true;
        if (l == 2 && !memcmp(p + i + 1, "h2", 2)) h2 = true;
        if (at && at + 2 < cap) list[at++] = ',', list[at++] = ' ';
        for (unsigned k = 0; k < l && at + 1 < cap; k++) {
            unsigned char ch = p[i + 1 + k];
            list[at++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?'; /* the client's bytes, printable */
        }
        list[at] = 0;
    }
    /* HTTP/1.1 whenever offered: the plainer protocol, and what every client expects from us */
    return h11 ? "http/1.1" : h2 ? "h2" : NULL;
}
