/* Canonical form and structural diff (engine/canon.c): "A\0B\0ignore-spec". The canonical
 * form must be stable (same text, same hash) and the diff of A with itself empty. */
#include "engine/canon.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (!lr_cjson()) abort();
    size_t al, bl, il;
    const uint8_t *a = fz_field(d, n, 0, &al), *b = fz_field(d, n, 1, &bl), *i = fz_field(d, n, 2, &il);
    char *spec = fz_str(i, il);
    lr_ignore_t ig;
    lr_ignore_parse(&ig, il ? spec : "temperature,messages.name");
    cJSON *ja = lr_json_parse((const char *)a, al), *jb = lr_json_parse((const char *)b, bl);
    buf_t c1, c2;
    buf_init(&c1);
    buf_init(&c2);
    lr_canon(ja, &ig, &c1);
    lr_canon(ja, &ig, &c2);
    if (c1.len != c2.len || (c1.len && memcmp(c1.data, c2.data, c1.len))) abort();
    if (lr_canon_hash(ja, &ig) != lr_canon_hash(ja, &ig)) abort();
    lr_diff_t df;
    if (ja) {
        lr_diff(ja, ja, &ig, &df);
        if (df.count != 0) abort();
    }
    lr_diff(ja, jb, &ig, &df);
    if (strnlen(df.path, sizeof df.path) == sizeof df.path || strnlen(df.mine, sizeof df.mine) == sizeof df.mine)
        abort();
    size_t rn;
    free(lr_round_decimals((const char *)a, al, &rn));
    J.Delete(ja);
    J.Delete(jb);
    buf_free(&c1);
    buf_free(&c2);
    lr_ignore_free(&ig);
    free(spec);
    return 0;
}
