/* The match keys of recent requests, by their exact bytes: a client that sends the same
 * request again (a test suite's loop, a retry) skips parsing and canonicalising its body. */
#ifndef LR_KEYMEMO_H
#define LR_KEYMEMO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t h1, h2;
    bool body_invalid;
} lr_memo_key_t;

/* gen is a hash of the ignore list the key was made with (lr_store_generation): a key made
 * under another list is not returned. */
bool lr_keymemo_get(unsigned gen, const char *method, const char *url, const char *body, size_t len, lr_memo_key_t *out);
void lr_keymemo_put(unsigned gen, const char *method, const char *url, const char *body, size_t len, const lr_memo_key_t *k);
/* fork handlers */
void lr_keymemo_lock(bool lock);
#endif
