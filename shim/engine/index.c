#include "engine/index.h"
#include "base/real.h"
#include "base/config.h"
#include "base/fs.h"
#include "base/log.h"
#include "engine/ops.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char magic[8];
    uint32_t version, header_size;
    uint64_t file_size, checksum, key, meta_checksum; /* checksum: after the header; meta: dirs+bad */
    uint32_t ndirs, nrecs, nbad, rec_size, nhosts, pad;
    uint64_t ops_digest; /* the operation table it was made with */
    uint64_t dirs_off, recs_off, bad_off, hosts_off, strings_off, strings_size;
    double build_ms;
    uint64_t header_check; /* checksum of the header with this field 0: the offsets are trusted */
} header_t;

static uint64_t header_checksum(const header_t *h)
{
    header_t c = *h;
    c.header_check = 0;
    return lr_checksum(&c, sizeof c);
}

/* Every section where its type can be loaded from: inside the file, and aligned. */
static bool sections_ok(const header_t *h, uint64_t end)
{
    struct { uint64_t off, n, size, align; } sec[] = {
        {h->dirs_off, h->ndirs, sizeof(lr_ixdir_t), _Alignof(lr_ixdir_t)},
        {h->recs_off, h->nrecs, sizeof(lr_ixrec_t), _Alignof(lr_ixrec_t)},
        {h->bad_off, h->nbad, sizeof(lr_ixbad_t), _Alignof(lr_ixbad_t)},
        {h->hosts_off, h->nhosts, sizeof(lr_ixhost_t), _Alignof(lr_ixhost_t)},
        {h->strings_off, h->strings_size, 1, 1},
    };
    for (size_t i = 0; i < sizeof sec / sizeof *sec; i++)
        if (sec[i].off < sizeof *h || sec[i].off > end || sec[i].n > (end - sec[i].off) / sec[i].size ||
            sec[i].off % sec[i].align)
            return false;
    return h->strings_size > 0;
}

static const char MAGIC[8] = {'L', 'L', 'M', 'R', 'I', 'D', 'X', '\n'};

uint64_t lr_index_key(char *const *dirs, int n, const char *ignore)
{
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "v%d %zu %zu|", LR_INDEX_VERSION, sizeof(lr_ixrec_t), lr_max_file_bytes());
    for (int i = 0; i < n; i++) {
        char *abs = realpath(dirs[i], NULL);
        buf_adds(&b, abs ? abs : dirs[i]);
        buf_addc(&b, ':');
        free(abs);
    }
    buf_printf(&b, "|%s", ignore ? ignore : "");
    uint64_t k = lr_hash64(b.data, b.len, 42);
    buf_free(&b);
    return k;
}

char *lr_index_file(uint64_t key)
{
    if (!lr_cfg()->cache) return NULL;
    char dir[4096];
    if (!lr_cache_dir(dir, sizeof dir)) return NULL;
    size_t n = strlen(dir) + 40;
    char *f = malloc(n);
    if (f) snprintf(f, n, "%s/index-%016llx.bin", dir, (unsigned long long)key);
    return f;
}

void lr_index_close(lr_index_t *ix)
{
    if (!ix) return;
    if (ix->map) munmap(ix->map, ix->size);
    free(ix->path);
    free(ix);
}

#define BAD(...) do { snprintf(why, cap, __VA_ARGS__); goto fail; } while (0)

static bool str_ok(uint32_t off, uint64_t ssize) { return off < ssize; }

/* Checksum of the parts every process uses: directories, problems and their strings. */
static uint64_t meta_checksum(const lr_index_t *ix)
{
    uint64_t h = lr_checksum(ix->dirs, sizeof *ix->dirs * ix->ndirs) ^ lr_checksum(ix->bad, sizeof *ix->bad * ix->nbad) ^
                 (lr_checksum(ix->hosts, sizeof *ix->hosts * ix->nhosts) * 3);
    for (uint32_t i = 0; i < ix->nhosts; i++)
        if (ix->hosts[i].host < ix->strings_size) h = h * 31 + lr_hash64(lr_ixstr(ix, ix->hosts[i].host), strlen(lr_ixstr(ix, ix->hosts[i].host)), 0);
    for (uint32_t i = 0; i < ix->ndirs; i++)
        if (ix->dirs[i].path < ix->strings_size) h = h * 31 + lr_hash64(lr_ixstr(ix, ix->dirs[i].path), strlen(lr_ixstr(ix, ix->dirs[i].path)), 0);
    for (uint32_t i = 0; i < ix->nbad; i++) {
        if (ix->bad[i].path < ix->strings_size) h = h * 31 + lr_hash64(lr_ixstr(ix, ix->bad[i].path), strlen(lr_ixstr(ix, ix->bad[i].path)), 0);
        if (ix->bad[i].why < ix->strings_size) h = h * 31 + lr_hash64(lr_ixstr(ix, ix->bad[i].why), strlen(lr_ixstr(ix, ix->bad[i].why)), 0);
    }
    return h;
}

/* A record's own checksum: its fields (check = 0) and the strings it points to. */
static uint64_t rec_checksum(const lr_index_t *ix, const lr_ixrec_t *r)
{
    lr_ixrec_t c = *r;
    c.check = 0;
    uint64_t h = lr_checksum(&c, sizeof c);
    uint32_t offs[5] = {r->path, r->model, r->test_id, r->host, r->op};
    for (int i = 0; i < 5; i++) {
        const char *str = lr_ixstr(ix, offs[i]);
        h = h * 31 + lr_hash64(str, strnlen(str, ix->strings_size - offs[i]), 0);
    }
    return h;
}

bool lr_index_rec_ok(const lr_index_t *ix, uint32_t i)
{
    if (i >= ix->nrecs) return false;
    const lr_ixrec_t *r = &ix->recs[i];
    uint64_t ss = ix->strings_size;
    if (!str_ok(r->path, ss) || !str_ok(r->model, ss) || !str_ok(r->test_id, ss) || !str_ok(r->host, ss) ||
        !str_ok(r->op, ss) || r->dir >= ix->ndirs || r->order >= ix->nrecs || !memchr(r->method, 0, sizeof r->method))
        return false;
    return rec_checksum(ix, r) == r->check && lr_op_named(lr_ixstr(ix, r->op)) != OP_NONE;
}

bool lr_index_verify_all(lr_index_t *ix, char *why, size_t cap)
{
    if (ix->verified) return ix->verified > 0;
    const char *body = (const char *)ix->map + sizeof(header_t);
    ix->verified = -1;
    if (lr_checksum(body, ix->size - sizeof(header_t)) != ix->full_checksum) BAD("checksum mismatch (corrupt)");
    for (uint32_t i = 0; i < ix->nrecs; i++)
        if (!lr_index_rec_ok(ix, i) || (i && ix->recs[i].h1 < ix->recs[i - 1].h1)) BAD("record %u is inconsistent (corrupt)", i);
    ix->verified = 1;
    return true;
fail:
    return false;
}

lr_index_t *lr_index_open(const char *path, uint64_t key, char *why, size_t cap)
{
    why[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    lr_index_t *ix = calloc(1, sizeof *ix);
    if (!ix || fstat(fd, &st) < 0) { lr_close(fd); free(ix); return NULL; }
    ix->size = (size_t)st.st_size;
    if (ix->size < sizeof(header_t)) { lr_close(fd); snprintf(why, cap, "truncated (%zu bytes)", ix->size); free(ix); return NULL; }
    ix->map = mmap(NULL, ix->size, PROT_READ, MAP_SHARED, fd, 0);
    lr_close(fd);
    if (ix->map == MAP_FAILED) { ix->map = NULL; snprintf(why, cap, "cannot be mapped: %s", strerror(errno)); goto fail; }
    const header_t *h = ix->map;
    if (memcmp(h->magic, MAGIC, sizeof MAGIC)) BAD("not an llmreplay index");
    if (h->version != LR_INDEX_VERSION || h->header_size != sizeof *h || h->rec_size != sizeof(lr_ixrec_t))
        BAD("index format %u, this version writes %u", h->version, LR_INDEX_VERSION);
    if (h->key != key) BAD("index of other directories");
    if (h->ops_digest != lr_ops_digest()) BAD("made with another operation table");
    if (h->file_size != ix->size) BAD("truncated or extended (%zu bytes, header says %llu)", ix->size, (unsigned long long)h->file_size);
    /* the offsets are used before the body's checksums can be: the header has its own */
    if (header_checksum(h) != h->header_check) BAD("header checksum mismatch (corrupt)");
    if (!sections_ok(h, ix->size)) BAD("section out of bounds or misaligned (corrupt)");
    ix->dirs = (const lr_ixdir_t *)((const char *)ix->map + h->dirs_off);
    ix->recs = (const lr_ixrec_t *)((const char *)ix->map + h->recs_off);
    ix->bad = (const lr_ixbad_t *)((const char *)ix->map + h->bad_off);
    ix->hosts = (const lr_ixhost_t *)((const char *)ix->map + h->hosts_off);
    ix->nhosts = h->nhosts;
    ix->strings = (const char *)ix->map + h->strings_off;
    ix->ndirs = h->ndirs;
    ix->nrecs = h->nrecs;
    ix->nbad = h->nbad;
    ix->build_ms = h->build_ms;
    ix->strings_size = h->strings_size;
    ix->full_checksum = h->checksum;
    /* What every process reads (directories to check, problems to report) is verified now;
     * records are verified when a request uses them, the rest of the file on a miss. Opening
     * a 100,000-recording index thus touches a few pages, not all of them. */
    uint64_t ss = h->strings_size;
    /* bounds first: the checksum itself reads these strings */
    if (ix->strings[ss - 1] != 0) BAD("string table not terminated (corrupt)");
    for (uint32_t i = 0; i < ix->ndirs; i++)
        if (!str_ok(ix->dirs[i].path, ss)) BAD("directory name out of bounds (corrupt)");
    for (uint32_t i = 0; i < ix->nbad; i++)
        if (!str_ok(ix->bad[i].path, ss) || !str_ok(ix->bad[i].why, ss)) BAD("bad-file list corrupt");
    for (uint32_t i = 0; i < ix->nhosts; i++)
        if (!str_ok(ix->hosts[i].host, ss)) BAD("host list corrupt");
    if (meta_checksum(ix) != h->meta_checksum) BAD("checksum mismatch (corrupt)");
    ix->path = strdup(path);
    return ix;
fail:
    lr_index_close(ix);
    return NULL;
}

bool lr_index_dirs_fresh(const lr_index_t *ix)
{
    for (uint32_t i = 0; i < ix->ndirs; i++) {
        struct stat st;
        int64_t m = stat(lr_ixstr(ix, ix->dirs[i].path), &st) == 0 ? lr_mtime_ns(&st) : -1;
        if (m != ix->dirs[i].mtime_ns) return false;
    }
    return true;
}

/* String blob: offset 0 is the empty string, used for "none". */
static uint32_t addstr(buf_t *b, const char *s)
{
    uint32_t off = (uint32_t)b->len;
    buf_add(b, s ? s : "", strlen(s ? s : "") + 1);
    return off;
}

static int cmp_rec(const void *a, const void *b)
{
    const lr_ixrec_t *x = a, *y = b;
    if (x->h1 != y->h1) return x->h1 < y->h1 ? -1 : 1;
    return (int)x->order - (int)y->order;
}

/* The sections of an index, built from src: arrays whose strings are offsets in strings. */
typedef struct {
    lr_ixdir_t *dirs;
    lr_ixrec_t *recs;
    lr_ixbad_t *bad;
    lr_ixhost_t *hosts;
    buf_t strings;
} sections_t;

static void sections_free(sections_t *x)
{
    free(x->dirs);
    free(x->recs);
    free(x->bad);
    free(x->hosts);
    buf_free(&x->strings);
}

static lr_ixrec_t ixrec(const lr_rec_t *r, uint32_t order, buf_t *strings)
{
    lr_ixrec_t x = {.h1 = r->h1, .h2 = r->h2, .mtime_ns = r->mtime_ns, .size = r->size,
                    .path = addstr(strings, r->path), .model = addstr(strings, r->model),
                    .test_id = r->test_id ? addstr(strings, r->test_id) : 0, .host = addstr(strings, r->host),
                    .op = addstr(strings, lr_op_info(r->op)->name), .dir = (uint32_t)r->dir, .order = order,
                    .status = (uint16_t)r->status, .port = (uint16_t)r->port, .streaming = r->streaming,
                    .exception = r->exception};
    snprintf(x.method, sizeof x.method, "%s", r->method);
    return x;
}

static bool sections(const lr_ixsrc_t *src, sections_t *x)
{
    memset(x, 0, sizeof *x);
    buf_init(&x->strings);
    buf_addc(&x->strings, 0);
    x->dirs = calloc((size_t)src->ndirs + 1, sizeof *x->dirs);
    x->recs = calloc((size_t)src->nrecs + 1, sizeof *x->recs);
    x->bad = calloc((size_t)src->nbad + 1, sizeof *x->bad);
    x->hosts = calloc((size_t)src->nhosts + 1, sizeof *x->hosts);
    if (!x->dirs || !x->recs || !x->bad || !x->hosts) return false;
    buf_t *st = &x->strings;
    for (int i = 0; i < src->nhosts; i++)
        x->hosts[i] = (lr_ixhost_t){addstr(st, src->hosts[i].host), (uint32_t)src->hosts[i].port};
    for (int i = 0; i < src->ndirs; i++)
        x->dirs[i] = (lr_ixdir_t){addstr(st, src->dirs[i].path), (uint32_t)src->dirs[i].top, src->dirs[i].mtime_ns};
    for (int i = 0; i < src->nrecs; i++) x->recs[i] = ixrec(src->recs[i], (uint32_t)i, st);
    qsort(x->recs, (size_t)src->nrecs, sizeof *x->recs, cmp_rec);
    for (int i = 0; i < src->nbad; i++)
        x->bad[i] = (lr_ixbad_t){addstr(st, src->bad[i].path), addstr(st, src->bad[i].why), src->bad[i].unsupported, 0};
    return !st->oom && st->len <= UINT32_MAX;
}

/* Header and body of the file: sections laid out, then checksummed in their final place. */
static bool lay_out(const lr_ixsrc_t *src, const sections_t *x, uint64_t key, header_t *h, buf_t *body)
{
    *h = (header_t){.version = LR_INDEX_VERSION, .header_size = sizeof *h, .key = key, .rec_size = sizeof(lr_ixrec_t),
                    .ndirs = (uint32_t)src->ndirs, .nrecs = (uint32_t)src->nrecs, .nbad = (uint32_t)src->nbad,
                    .nhosts = (uint32_t)src->nhosts, .ops_digest = lr_ops_digest(), .build_ms = src->build_ms};
    memcpy(h->magic, MAGIC, sizeof MAGIC);
    h->dirs_off = sizeof *h;
    buf_add(body, x->dirs, sizeof *x->dirs * (size_t)src->ndirs);
    h->recs_off = sizeof *h + body->len;
    buf_add(body, x->recs, sizeof *x->recs * (size_t)src->nrecs);
    h->bad_off = sizeof *h + body->len;
    buf_add(body, x->bad, sizeof *x->bad * (size_t)src->nbad);
    h->hosts_off = sizeof *h + body->len;
    buf_add(body, x->hosts, sizeof *x->hosts * (size_t)src->nhosts);
    while (body->len % 8) buf_addc(body, 0);
    h->strings_off = sizeof *h + body->len;
    h->strings_size = x->strings.len;
    buf_add(body, x->strings.data, x->strings.len);
    if (body->oom) return false;
    h->file_size = sizeof *h + body->len;
    /* record checksums cover their strings: compute them against the final layout */
#define AT(off) (body->data + ((off) - sizeof *h))
    lr_index_t view = {.strings = AT(h->strings_off), .strings_size = h->strings_size,
                       .dirs = (const lr_ixdir_t *)(const void *)AT(h->dirs_off), .ndirs = h->ndirs,
                       .bad = (const lr_ixbad_t *)(const void *)AT(h->bad_off), .nbad = h->nbad,
                       .hosts = (const lr_ixhost_t *)(const void *)AT(h->hosts_off), .nhosts = h->nhosts};
    lr_ixrec_t *rv = (lr_ixrec_t *)(void *)AT(h->recs_off);
#undef AT
    for (uint32_t i = 0; i < h->nrecs; i++) rv[i].check = rec_checksum(&view, &rv[i]);
    h->meta_checksum = meta_checksum(&view);
    h->checksum = lr_checksum(body->data, body->len);
    h->header_check = header_checksum(h);
    return true;
}

bool lr_index_write(const lr_ixsrc_t *src, const char *path, uint64_t key)
{
    sections_t x;
    header_t h;
    buf_t body;
    buf_init(&body);
    bool ok = sections(src, &x) && lay_out(src, &x, key, &h, &body);
    if (!ok) errno = ENOMEM;
    else ok = lr_write_atomic(path, 0644, &h, sizeof h, body.data, body.len); /* old or new, never half */
    sections_free(&x);
    buf_free(&body);
    return ok;
}
