/* The index of all recordings under the LLMREPLAY_DIR directories, keyed by match key. */
#ifndef LR_STORE_H
#define LR_STORE_H
#include "recording.h"
#include <uthash.h>

typedef struct lr_entry {
    uint64_t h1;
    lr_rec_t **recs; /* stable order: directory order, then path */
    int n, cap;
    UT_hash_handle hh;
} lr_entry_t;

typedef struct lr_counter {
    uint64_t key;
    unsigned n;
    UT_hash_handle hh;
} lr_counter_t;

typedef void (*lr_report_fn)(void *ctx, const char *path, const char *why, bool unsupported);

typedef struct lr_store {
    lr_entry_t *table;
    lr_rec_t **all;
    int nall;
    int nbad, nunsupported;
    char **dirs;
    int ndirs;
    lr_ignore_t ig;
    double build_ms;
    lr_counter_t *counters; /* answers given per request (and preferred subset) */
    pthread_mutex_t lock;   /* counters */
} lr_store_t;

/* Scan dirs recursively for *.json; problems go to report (or warnings when NULL). */
lr_store_t *lr_store_build(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx);
void lr_store_free(lr_store_t *s);
/* The process-wide store from LLMREPLAY_DIR / LLMREPLAY_IGNORE, built once on first use. */
lr_store_t *lr_store_global(void);
/* Lock or unlock the global store's counters (fork handlers); no-op before it exists. */
void lr_store_lock(bool lock);
/* Split a colon-separated directory list. */
int lr_split_dirs(const char *spec, char ***out);
/* How many times key was answered before; counts this one when advance. */
unsigned lr_store_count(lr_store_t *s, uint64_t key, bool advance);
lr_entry_t *lr_store_find(lr_store_t *s, uint64_t h1, uint64_t h2);
#endif
