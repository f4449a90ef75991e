/* The persistent index (engine/index.c) from mutated bytes: written to a file, opened, every
 * record checked and read as the store reads it, then the whole file verified.
 * LR_FUZZ_SEED_OUT=FILE writes the index of the small store there (a seed) and exits. */
#include "engine/index.h"
#include "engine/ops.h"
#include "engine/store.h"
#include "fuzz.h"
#include <fcntl.h>

#define KEY 0x6c6c6d7265706c79ull

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("LLMREPLAY_CACHE", "off", 1);
    fz_quiet();
    const char *out = getenv("LR_FUZZ_SEED_OUT");
    if (!out) return 0;
    char **dirs;
    int nd = lr_split_dirs(fz_recdir(), &dirs);
    lr_store_t *s = lr_store_build(dirs, nd, NULL, NULL, NULL);
    bool ok = false;
    if (s) { /* the store's records, two directories, a problem file and a host */
        int nr;
        lr_rec_t **all = lr_store_all(s, &nr);
        lr_sdir_t sd[2] = {{dirs[0], 1, 1}, {(char *)"/nonexistent", -1, 0}};
        lr_bad_t bad = {(char *)"/x/bad.json", (char *)"not JSON", false};
        lr_hostport_t host = {"api.openai.com", 443};
        lr_ixsrc_t src = {all, nr, sd, 2, &bad, 1, &host, 1, 1.5};
        ok = lr_index_write(&src, out, KEY);
    }
    lr_store_free(s);
    for (int i = 0; i < nd; i++) free(dirs[i]);
    free(dirs);
    if (!ok) { fprintf(stderr, "fuzz_index: cannot write %s\n", out); exit(1); }
    exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[128];
    if (!path[0]) snprintf(path, sizeof path, "%s/index.bin", fz_scratch());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, d, n) != (ssize_t)n) abort();
    close(fd);
    char why[512];
    lr_index_t *ix = lr_index_open(path, KEY, why, sizeof why);
    if (!ix) return 0;
    size_t sum = 0;
    for (uint32_t i = 0; i < ix->nrecs; i++) {
        if (!lr_index_rec_ok(ix, i)) continue;
        const lr_ixrec_t *r = &ix->recs[i];
        sum += strlen(lr_ixstr(ix, r->path)) + strlen(lr_ixstr(ix, r->model)) + strlen(lr_ixstr(ix, r->host));
        if (r->test_id) sum += strlen(lr_ixstr(ix, r->test_id));
        if (!lr_op_info((lr_op_t)r->op)->endpoint) abort();
    }
    for (uint32_t i = 0; i < ix->ndirs; i++) sum += strlen(lr_ixstr(ix, ix->dirs[i].path));
    for (uint32_t i = 0; i < ix->nbad; i++) sum += strlen(lr_ixstr(ix, ix->bad[i].why));
    for (uint32_t i = 0; i < ix->nhosts; i++) sum += strlen(lr_ixstr(ix, ix->hosts[i].host));
    lr_index_dirs_fresh(ix);
    lr_index_verify_all(ix, why, sizeof why);
    lr_index_close(ix);
    return (int)(sum & 0);
}
