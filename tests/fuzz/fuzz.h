/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): inputs are split into fields at
 * NUL bytes, the shim is kept quiet, and targets that need files use one private directory. */
#ifndef LR_FUZZ_H
#define LR_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include "base/config.h"

/* A NUL-terminated copy of the input (most parsers take C strings). */
static inline char *fz_str(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, d, n);
    s[n] = 0;
    return s;
}

/* Field i of the input (fields separated by NUL bytes); empty when there are fewer. */
static inline const uint8_t *fz_field(const uint8_t *d, size_t n, int i, size_t *len)
{
    const uint8_t *p = d, *end = d + n;
    for (; i > 0 && p < end; i--) {
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        p = z ? z + 1 : end;
    }
    const uint8_t *z = memchr(p, 0, (size_t)(end - p));
    *len = (size_t)((z ? z : end) - p);
    return p;
}

/* The recordings targets serve from: LR_FUZZ_DIR, else the examples and the seed (small files:
 * a miss reads every candidate). */
static inline const char *fz_recdir(void)
{
    const char *d = getenv("LR_FUZZ_DIR");
    return d && *d ? d : "examples/recordings:../shared/seed";
}

/* A private scratch directory in memory, holding only files; removed at exit. */
static char fz_dir[64];
static inline void fz_rm_scratch(void)
{
    DIR *d = opendir(fz_dir);
    struct dirent *e;
    char p[400];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, "..")))
            snprintf(p, sizeof p, "%s/%s", fz_dir, e->d_name), unlink(p);
    if (d) closedir(d);
    rmdir(fz_dir);
}
static inline const char *fz_scratch(void)
{
    if (!fz_dir[0]) {
        snprintf(fz_dir, sizeof fz_dir, "/dev/shm/lr-fuzz-XXXXXX");
        if (!mkdtemp(fz_dir)) { snprintf(fz_dir, sizeof fz_dir, "/tmp/lr-fuzz-XXXXXX"); if (!mkdtemp(fz_dir)) abort(); }
        atexit(fz_rm_scratch);
    }
    return fz_dir;
}

/* The shim reads its settings once (base/config.c): a target that sets LLMREPLAY_* variables
 * calls this after the last one. */
static inline void fz_quiet(void)
{
    setenv("LLMREPLAY_LOG", getenv("LR_FUZZ_LOG") ? getenv("LR_FUZZ_LOG") : "quiet", 1);
    lr_config_reload();
}
#endif
