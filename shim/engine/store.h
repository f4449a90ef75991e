/* The recordings under the LLMREPLAY_DIR directories, keyed by match key. Either built by
 * scanning and parsing every file, or opened from the persistent index, in which case a
 * recording is materialized only when a request needs it. */
#ifndef LR_STORE_H
#define LR_STORE_H
#include "engine/recording.h"

/* Opaque: its table, lock and lists are store.c's. */
typedef struct lr_store lr_store_t;

typedef void (*lr_report_fn)(void *ctx, const char *path, const char *why, bool unsupported);

typedef struct {
    int nall;            /* recordings */
    int nbad, nunsupported; /* files skipped: broken, or not an LLM call this shim serves */
    int ndirs;           /* LLMREPLAY_DIR entries */
    bool from_cache;     /* opened from the persistent index */
    double build_ms;
} lr_store_info_t;

/* Scan dirs recursively for *.json and parse everything; problems go to report (or warnings). */
lr_store_t *lr_store_build(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx);
/* The same set, from the persistent index when it is valid (trust_cache), else built and
 * written there. LLMREPLAY_CACHE=off: always built, nothing written. */
lr_store_t *lr_store_open(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx,
                          bool trust_cache);
void lr_store_free(lr_store_t *s);
/* Every recording, in scan order. */
lr_rec_t **lr_store_all(lr_store_t *s, int *n);
int lr_store_size(const lr_store_t *s);
/* Distinct host:port pairs of the recordings (for the socket layer). */
const lr_hostport_t *lr_store_hosts(const lr_store_t *s, int *n);
/* Has any directory or recording changed since the store was made? (stats every file) */
bool lr_store_stale(lr_store_t *s);
/* The process-wide store from LLMREPLAY_DIR / LLMREPLAY_IGNORE, made on first use. */
lr_store_t *lr_store_global(void);
/* Replace the global store by a fresh scan (after a change was detected); returns it. */
lr_store_t *lr_store_global_refresh(lr_store_t *stale);
/* Lock or unlock the global store (fork handlers); no-op before it exists. */
void lr_store_lock(bool lock);
/* Split a colon-separated directory list. */
int lr_split_dirs(const char *spec, char ***out);
/* How many times key was answered before; counts this one when advance. */
unsigned lr_store_count(lr_store_t *s, uint64_t key, bool advance);
/* The recordings with match key (h1, h2), in serving order; NULL (n = 0) when none. */
lr_rec_t *const *lr_store_find(lr_store_t *s, uint64_t h1, uint64_t h2, int *n);
lr_store_info_t lr_store_info(const lr_store_t *s);
/* The LLMREPLAY_IGNORE fields the store's keys were made with. */
const lr_ignore_t *lr_store_ignore(const lr_store_t *s);
/* A hash of the store's ignore list: stores with the same list make the same match keys. */
unsigned lr_store_generation(const lr_store_t *s);
/* Tell report about every file skipped (as when the store was made). */
void lr_store_report(const lr_store_t *s, lr_report_fn report, void *ctx);
#endif
