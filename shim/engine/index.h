/* The persistent index: a binary snapshot of a store, mmap()ed and shared by every process
 * that replays from the same directories. It is trusted only after its checksum, bounds and
 * the modification times of every scanned directory have been verified. */
#ifndef LR_INDEX_H
#define LR_INDEX_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "engine/recording.h"

#define LR_INDEX_VERSION 7 /* 4: operations by name, the table's digest; 5: extra_body merged into keys; 6: the header's own checksum; 7: Gemini keys (model from the URL), raw HTTP recordings */

typedef struct {
    uint32_t path;   /* offset in the string blob */
    uint32_t flags;  /* 1: a top-level LLMREPLAY_DIR entry */
    int64_t mtime_ns; /* -1: did not exist */
} lr_ixdir_t;

typedef struct {
    uint64_t h1, h2;
    int64_t mtime_ns;
    uint64_t size;
    uint32_t path, model, test_id, host, op; /* string offsets; test_id 0: none; op: its name */
    uint32_t dir, order;
    uint16_t status, port;
    uint8_t streaming, exception;
    char method[12];
    uint64_t check; /* checksum of this record (check = 0) and its strings */
} lr_ixrec_t;

typedef struct {
    uint32_t path, why, unsupported, pad;
} lr_ixbad_t;

typedef struct {
    uint32_t host, port;
} lr_ixhost_t;

typedef struct lr_index {
    void *map;
    size_t size;
    const lr_ixdir_t *dirs;
    const lr_ixrec_t *recs; /* sorted by (h1, order) */
    const lr_ixbad_t *bad;
    const lr_ixhost_t *hosts;
    uint32_t nhosts;
    const char *strings;
    uint32_t ndirs, nrecs, nbad;
    double build_ms;
    char *path;
    uint64_t strings_size, full_checksum;
    int verified; /* 0 not yet, 1 whole file verified, -1 found corrupt */
} lr_index_t;

/* What an index holds, as plain arrays the store hands over. */
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
    lr_rec_t *const *recs; /* in scan order */
    int nrecs;
    const lr_sdir_t *dirs; /* every directory scanned */
    int ndirs;
    const lr_bad_t *bad;   /* files that could not be used */
    int nbad;
    const lr_hostport_t *hosts;
    int nhosts;
    double build_ms;
} lr_ixsrc_t;

/* Identity of an index: the directories (absolute), the ignore list, the format. */
uint64_t lr_index_key(char *const *dirs, int n, const char *ignore);
/* Where the index of key lives; NULL when the cache is off or has no home. */
char *lr_index_file(uint64_t key);
/* Open and verify the header, directory and problem lists; NULL with why[0] == 0 when there
 * is none, else why says what is wrong. Records are verified one by one when used. */
lr_index_t *lr_index_open(const char *path, uint64_t key, char *why, size_t cap);
void lr_index_close(lr_index_t *ix);
/* Is record i intact (checksum, bounds)? Check before use. */
bool lr_index_rec_ok(const lr_index_t *ix, uint32_t i);
/* The whole file against its checksum, and every record: done once, on a miss. */
bool lr_index_verify_all(lr_index_t *ix, char *why, size_t cap);
/* Are all scanned directories as they were? */
bool lr_index_dirs_fresh(const lr_index_t *ix);
/* Write src atomically (temporary file, then rename); false with errno on failure. */
bool lr_index_write(const lr_ixsrc_t *src, const char *path, uint64_t key);
static inline const char *lr_ixstr(const lr_index_t *ix, uint32_t off) { return ix->strings + off; }
#endif
