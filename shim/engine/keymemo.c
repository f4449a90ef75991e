/* A direct-mapped table of 64 requests. The slot comes from a hash of a few bytes (method,
 * URL, length, both ends of the body: hashing all of it would cost what it saves); the bytes
 * are then compared whole, so a key is only ever returned for the very same request. The key
 * is a pure function of those bytes and the ignore list, so it never goes stale. Requests
 * over MAX_BODY are not kept (memory stays under 64 × (MAX_BODY + URL)). */
#include "engine/keymemo.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 64
#define MAX_BODY (16 * 1024)
#define MAX_URL 2048
#define ENDS 32

typedef struct {
    char *bytes; /* method NUL url NUL body */
    size_t len;  /* of bytes */
    unsigned gen;
    lr_memo_key_t key;
} slot_t;

static slot_t slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* A few multiplies over words: the slot only, the bytes are compared afterwards. */
static uint64_t mix(uint64_t h, const char *p, size_t n)
{
    uint64_t w;
    for (; n >= 8; p += 8, n -= 8) { memcpy(&w, p, 8); h = (h ^ w) * 0x9e3779b97f4a7c15ULL; h ^= h >> 29; }
    for (w = 0; n; n--) w = w << 8 | (unsigned char)p[n - 1];
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    return h ^ h >> 32;
}

static size_t which(unsigned gen, const char *method, const char *url, size_t ulen, const char *body, size_t len)
{
    uint64_t h = mix(gen ^ (uint64_t)len << 32, method, strlen(method));
    h = mix(h, url, ulen);
    if (len) {
        size_t e = len < ENDS ? len : ENDS;
        h = mix(h, body, e);
        h = mix(h, body + len - e, e);
    }
    return (size_t)(h % SLOTS);
}

static bool same(const slot_t *s, unsigned gen, const char *method, size_t mlen, const char *url, size_t ulen,
                 const char *body, size_t len)
{
    return s->bytes && s->gen == gen && s->len == mlen + ulen + len + 2 && !memcmp(s->bytes, method, mlen + 1) &&
           !memcmp(s->bytes + mlen + 1, url, ulen + 1) && (!len || !memcmp(s->bytes + mlen + ulen + 2, body, len));
}

static bool keepable(const char *method, const char *url, const char *body, size_t len, size_t *ulen)
{
    if (!method || !url || len > MAX_BODY || (len && !body)) return false;
    *ulen = strnlen(url, MAX_URL + 1);
    return *ulen <= MAX_URL;
}

bool lr_keymemo_get(unsigned gen, const char *method, const char *url, const char *body, size_t len, lr_memo_key_t *out)
{
    size_t ulen;
    if (!keepable(method, url, body, len, &ulen)) return false;
    slot_t *s = &slots[which(gen, method, url, ulen, body, len)];
    pthread_mutex_lock(&lock);
    bool hit = same(s, gen, method, strlen(method), url, ulen, body, len);
    if (hit) *out = s->key;
    pthread_mutex_unlock(&lock);
    return hit;
}

void lr_keymemo_put(unsigned gen, const char *method, const char *url, const char *body, size_t len, const lr_memo_key_t *k)
{
    size_t ulen;
    if (!keepable(method, url, body, len, &ulen)) return;
    size_t mlen = strlen(method);
    char *b = malloc(mlen + ulen + len + 2);
    if (!b) return; /* no memo: the key is computed again next time */
    memcpy(b, method, mlen + 1);
    memcpy(b + mlen + 1, url, ulen + 1);
    if (len) memcpy(b + mlen + ulen + 2, body, len);
    slot_t *s = &slots[which(gen, method, url, ulen, body, len)];
    pthread_mutex_lock(&lock);
    char *old = s->bytes;
    *s = (slot_t){b, mlen + ulen + len + 2, gen, *k};
    pthread_mutex_unlock(&lock);
    free(old);
}

void lr_keymemo_lock(bool l)
{
    if (l) pthread_mutex_lock(&lock);
    else pthread_mutex_unlock(&lock);
}
