/* Canonical form of a JSON request body, the key used to match requests to recordings.
 * Key order, whitespace and number spelling don't matter; floats compare as llama-stack rounds
 * them (5 decimals, also for long decimals inside strings); LLMREPLAY_IGNORE drops fields. */
#ifndef LR_CANON_H
#define LR_CANON_H
#include "json/cjson_rt.h"
#include "base/util.h"

typedef struct {
    char **paths; /* dotted field paths, array levels not counted: "messages.name" */
    int n;
} lr_ignore_t;

void lr_ignore_parse(lr_ignore_t *ig, const char *spec);
/* The fields left out of matching: LLMREPLAY_IGNORE, plus the body fields LLMREPLAY_REDACT keeps
 * off disk (a recording holds "[REDACTED]" there, so they cannot be compared). Static storage. */
const char *lr_ignore_env(void);
void lr_ignore_free(lr_ignore_t *ig);
/* llama-stack's rounding of long decimals inside a string (a new string). */
char *lr_round_decimals(const char *s, size_t n, size_t *outn);
/* Append the canonical text of j. */
void lr_canon(const cJSON *j, const lr_ignore_t *ig, buf_t *out);
/* Canonical hash of j (0 for NULL). */
uint64_t lr_canon_hash(const cJSON *j, const lr_ignore_t *ig);

/* Structural difference, for miss messages: count of differing leaves and the first one. */
typedef struct {
    int count;
    char path[256];
    char mine[160], theirs[160]; /* canonical values, truncated; "(absent)" when missing */
} lr_diff_t;
void lr_diff(const cJSON *req, const cJSON *rec, const lr_ignore_t *ig, lr_diff_t *d);
#endif
