/* The recordings under the LLMREPLAY_DIR directories, keyed by match key. Either built by
 * scanning and parsing every file, or opened from the persistent index, in which case a
 * recording is materialized only when a request needs it. */
#ifndef LR_STORE_H
#define LR_STORE_H
#include "engine/recording.h"
#include <pthread.h>
#include <uthash.h>

struct lr_index;

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

typedef struct {
    char *path;
    int64_t mtime_ns; /* -1: missing */
    int top;          /* a LLMREPLAY_DIR entry itself */
} lr_sdir_t;

typedef struct {
    char *path, *why;
    bool unsupported;
} lr_bad_t;

typedef struct {
    char host[128];
    int port;
} lr_hostport_t;

typedef void (*lr_report_fn)(void *ctx, const char *path, const char *why, bool unsupported);

typedef struct lr_store {
    lr_entry_t *table;      /* built up front, or lazily from the index */
    lr_rec_t **all;         /* every recording in scan order (lazy with an index) */
    int nall;
    int nbad, nunsupported;
    char **dirs;
    int ndirs;
    lr_ignore_t ig;
    double build_ms;
    lr_sdir_t *sdirs;       /* every directory scanned, to detect additions and removals */
    int nsdirs;
    lr_bad_t *badlist;
    int nbadlist;
    lr_hostport_t *hosts;   /* distinct destinations the recordings were made against */
    int nhosts;
    struct lr_index *ix;    /* the mapped index, or NULL */
    lr_rec_t **ixrecs;      /* materialized index records, by position */
    bool from_cache, all_ready, ix_corrupt;
    int64_t last_file_check_ms; /* when files were last checked for edits (lr_now, ms) */
    lr_counter_t *counters; /* answers given per request (and preferred subset) */
    pthread_mutex_t lock;   /* table (lazy part), ixrecs, all, counters */
} lr_store_t;

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
lr_entry_t *lr_store_find(lr_store_t *s, uint64_t h1, uint64_t h2);
#endif
