/* Small shared helpers: growable byte buffers, file reading, env parsing. */
#ifndef LR_UTIL_H
#define LR_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "base/fs.h" /* files, as every layer needs them */

#define LR_HIDDEN __attribute__((visibility("hidden")))
#define LR_EXPORT __attribute__((visibility("default")))

typedef struct {
    char *data;
    size_t len, cap;
    bool oom; /* sticky: a failed allocation makes every later append a no-op */
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
bool buf_reserve(buf_t *b, size_t extra);
void buf_add(buf_t *b, const void *p, size_t n);
void buf_adds(buf_t *b, const char *s);
void buf_addc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in base 10 or 16, without printf (per-request paths) */
void buf_addu(buf_t *b, unsigned long long v, unsigned base);
/* Append s as a JSON string literal (quotes included). */
void buf_json_str(buf_t *b, const char *s, size_t n);
void buf_json_strz(buf_t *b, const char *s); /* s NUL-terminated */
/* Take ownership of the NUL-terminated contents. */
char *buf_steal(buf_t *b, size_t *len);

uint64_t lr_checksum(const void *p, size_t n);
uint64_t lr_hash64(const void *p, size_t n, uint64_t seed);
double lr_now(void); /* monotonic seconds */
void lr_sleep_ms(double ms);
/* The next token of a list separated by commas and/or spaces ("a, b,c"): false at the end.
 * The one tokenizer for every list setting and header list. */
bool lr_list_next(const char **p, const char **tok, size_t *len);
/* Is name[0..n) one of the list's tokens (ASCII case-insensitive)? */
bool lr_list_has(const char *list, const char *name, size_t n);
char *lr_strndup(const char *s, size_t n);
bool lr_has_suffix(const char *s, size_t n, const char *suffix);
/* The protocol to select from a TLS client's ALPN list (wire format): "http/1.1" when offered,
 * else "h2" when offered, else NULL. list receives the offered names, printable, for
 * LR_ALPN_REFUSED (host, list) when it is NULL. */
const char *lr_alpn_select(const unsigned char *p, unsigned n, char *list, size_t cap);
#define LR_ALPN_REFUSED \
    "a TLS client of %s offered only %s (ALPN); llmreplay answers HTTP/1.1 and h2 only: offer one of them in the client"
#endif
