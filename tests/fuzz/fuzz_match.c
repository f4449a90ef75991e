/* Miss explanation (engine/match.c) on a small store: "METHOD\0URL\0BODY" is matched, and on a
 * miss compared with every candidate and explained in one message. */
#include "engine/match.h"
#include "fuzz.h"

static lr_store_t *store;
static char **dirs; /* the store's directories, kept for its life */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("LLMREPLAY_CACHE", "off", 1);
    fz_quiet();
    int nd = lr_split_dirs(fz_recdir(), &dirs);
    store = lr_store_build(dirs, nd, NULL, NULL, NULL);
    if (!store || !lr_store_size(store)) { fprintf(stderr, "fuzz_match: no recordings in %s\n", fz_recdir()); exit(1); }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    size_t ml, ul, bl;
    const uint8_t *m = fz_field(d, n, 0, &ml), *u = fz_field(d, n, 1, &ul), *b = fz_field(d, n, 2, &bl);
    char *method = fz_str(m, ml < 12 ? ml : 12), *url = fz_str(u, ul);
    lr_req_t rq = {.method = method, .url = url};
    rq.op = lr_op_of_url(url);
    if (rq.op == OP_NONE) rq.op = OP_CHAT;
    rq.body = bl ? lr_json_parse((const char *)b, bl) : NULL;
    rq.body_invalid = bl && !rq.body;
    lr_url_hostport(url, rq.host, sizeof rq.host, &rq.port, &(bool){false});
    const lr_rec_t *r = lr_match(store, &rq, false);
    if (!r) {
        lr_nearest_t near;
        lr_find_nearest(store, &rq, &near);
        buf_t msg;
        buf_init(&msg);
        lr_miss_message(&rq, &near, &msg);
        if (!msg.len || strncmp(msg.data, "llmreplay: ", 11)) abort();
        buf_free(&msg);
    }
    if (rq.body) J.Delete(rq.body);
    free(method);
    free(url);
    return 0;
}
