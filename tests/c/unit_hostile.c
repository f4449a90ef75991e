/* Unit tests of what hostile or unusual input may cost (issue 17): each check failed, hung or
 * crashed (under ASan/UBSan) before its fix. One line per check, "ok NAME" or "not ok NAME:
 * detail"; exit status 1 when any failed. Run from the project root. */
#include "unit.h"
#include "engine/pyjson.h"
#include "engine/recording.h"
#include "engine/index.h"
#include "engine/engine.h"
#include "net/http.h"
#include "json/cjson_rt.h"
#include "base/fs.h"
#include "base/util.h"
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static span_t sp(const char *s) { return (span_t){s, strlen(s)}; }

/* The plain build can make reallocs above a size fail (the sanitizers have their own
 * allocator): above 256 bytes, the smallest buf_t, spares the short strings. */
#ifndef __SANITIZE_ADDRESS__
#define FAIL_REALLOC 1
static size_t fail_realloc_above; /* 0: never */
extern void *__libc_realloc(void *p, size_t n);
void *realloc(void *p, size_t n)
{
    if (fail_realloc_above && n > fail_realloc_above) return NULL;
    return __libc_realloc(p, n);
}
#endif

/* ---- pyjson: json.dumps(sort_keys=True) -------------------------------------------------- */

static void dump_is(const char *name, const char *in, const char *want)
{
    current = name;
    buf_t b;
    buf_init(&b);
    bool ok = lr_pyjson_dump(sp(in), &b);
    check(ok && b.data && !strcmp(b.data, want), name, "got '%s' (%d), want '%s'", b.data ? b.data : "", ok, want);
    buf_free(&b);
}

static void test_pyjson(void)
{
    /* the wanted strings are Python's json.dumps(json.loads(IN), sort_keys=True) */
    dump_is("pyjson.empty_object", "{}", "{}");
    dump_is("pyjson.empty_objects_nested", "{\"a\":{},\"b\":[{},{\"c\":{}}]}", "{\"a\": {}, \"b\": [{}, {\"c\": {}}]}");
    dump_is("pyjson.duplicate_keys_keep_the_last",
            "{\"b\":1,\"a\":2,\"b\":3,\"a\":{\"x\":1,\"y\":{},\"x\":[2]},\"ab\":0}",
            "{\"a\": {\"x\": [2], \"y\": {}}, \"ab\": 0, \"b\": 3}");
}

/* 100,000 keys in reverse order, every 100th repeated later with another value: 27 s before
 * (a linear scan per key), now one sort. */
static void test_pyjson_many_keys(void)
{
    const int n = 100000;
    current = "pyjson.100k_keys";
    buf_t in, want, got;
    buf_init(&in);
    buf_init(&want);
    buf_init(&got);
    buf_addc(&in, '{');
    for (int i = n - 1; i >= 0; i--) buf_printf(&in, "\"k%06d\":%d,", i, i);
    for (int i = 0; i < n; i += 100) buf_printf(&in, "\"k%06d\":%d%s", i, i + 1000000, i + 100 < n ? "," : "");
    buf_addc(&in, '}');
    buf_addc(&want, '{');
    for (int i = 0; i < n; i++) buf_printf(&want, "%s\"k%06d\": %d", i ? ", " : "", i, i % 100 ? i : i + 1000000);
    buf_addc(&want, '}');
    double t0 = now_s();
    bool ok = lr_pyjson_dump((span_t){in.data, in.len}, &got);
    double dt = now_s() - t0;
    check(ok && got.len == want.len && !memcmp(got.data, want.data, want.len), "pyjson.100k_keys",
          "wrong dump (%d, %zu bytes, want %zu)", ok, got.len, want.len);
    check(dt < 2.0, "pyjson.100k_keys_fast", "%.2f s for %zu bytes", dt, in.len);
    printf("# pyjson: 100,000 keys (%zu bytes) dumped in %.3f s\n", in.len, dt);
    buf_free(&in);
    buf_free(&want);
    buf_free(&got);
}

static void test_pyjson_realloc_fails(void)
{
#ifdef FAIL_REALLOC
    current = "pyjson.realloc_fails";
    buf_t b;
    buf_init(&b);
    fail_realloc_above = 256; /* the members' array (grown for a 9th), not the keys' buffers */
    bool ok = lr_pyjson_dump(sp("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}"), &b);
    fail_realloc_above = 0;
    check(!ok, "pyjson.realloc_fails", "a dump without memory for its members succeeded: '%s'", b.data ? b.data : "");
    buf_free(&b);
#endif
}

/* ---- the index file's header -------------------------------------------------------------- */

static bool rewrite(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f) fclose(f);
    return ok;
}

/* An index (of one directory: the store is opaque) with one section offset moved by 4 bytes:
 * refused, and never used for a misaligned load (UBSan aborted the ASan build before the
 * checksum did). */
static void test_index_header(void)
{
    current = "index.header";
    char *dirs[] = {"examples/recordings"};
    lr_sdir_t d = {dirs[0], 1, 1};
    lr_ixsrc_t src = {.dirs = &d, .ndirs = 1};
    char path[] = "/tmp/llmreplay-ixhdr-XXXXXX";
    int fd = mkstemp(path);
    uint64_t key = lr_index_key(dirs, 1, NULL);
    if (fd >= 0) close(fd);
    if (!check(fd >= 0 && lr_index_write(&src, path, key), "index.header_written", "cannot write %s", path)) return;
    char why[256];
    lr_index_t *ix = lr_index_open(path, key, why, sizeof why);
    check(ix != NULL, "index.header_intact_opens", "%s", why);
    lr_index_close(ix);
    size_t n = 0;
    char *data = lr_read_file(path, 1 << 26, &n);
    uint32_t hs = 0;
    if (data && n >= 16) memcpy(&hs, data + 12, 4);
    /* dirs_off: the first 64-bit field equal to the header's size (the directories follow it) */
    size_t at = 0;
    for (size_t o = 16; data && o + 8 <= hs && o + 8 <= n && !at; o += 8) {
        uint64_t v;
        memcpy(&v, data + o, 8);
        if (v == hs) at = o;
    }
    if (check(at, "index.header_dirs_off_found", "header of %u bytes", hs)) {
        uint64_t v;
        memcpy(&v, data + at, 8);
        v += 4;
        memcpy(data + at, &v, 8);
        rewrite(path, data, n);
        ix = lr_index_open(path, key, why, sizeof why);
        check(!ix && strstr(why, "corrupt"), "index.header_moved_section_refused", "opened (%s)", why);
        lr_index_close(ix);
        /* the same with the header's checksum (its last 8 bytes, of the header with them 0) redone */
        memset(data + hs - 8, 0, 8);
        uint64_t c = lr_checksum(data, hs);
        memcpy(data + hs - 8, &c, 8);
        rewrite(path, data, n);
        ix = lr_index_open(path, key, why, sizeof why);
        check(!ix && strstr(why, "misaligned"), "index.header_misaligned_refused", "opened (%s)", why);
        lr_index_close(ix);
    }
    free(data);
    unlink(path);
}

/* ---- the miss cache --------------------------------------------------------------------- */

/* 20,000 distinct missed requests: the memory in use stays flat after the first few hundred
 * (it grew by every answer, message and name before). */
static void test_miss_cache_bounded(void)
{
    current = "engine.miss_cache";
    char body[128];
#ifndef __SANITIZE_ADDRESS__
    size_t base = 0, grown = 0; /* bytes in use (ASan's allocator has its own accounting) */
#endif
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}]}", i);
        lr_response_t *r = lr_engine_serve("POST", "http://localhost:8000/v1/chat/completions", body, (size_t)n);
        if (i == 0) check(r && r->status == 404, "engine.miss_cache_404", "status %d", r ? r->status : 0);
        lr_response_free(r);
#ifndef __SANITIZE_ADDRESS__
        if (i == 999) base = mallinfo2().uordblks;
        if (i == 19999) grown = mallinfo2().uordblks;
#endif
    }
    /* the first misses' answers are kept (shared), later ones are explained again each time */
    int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}]}", 0);
    lr_response_t *first = lr_engine_serve("POST", "http://localhost:8000/v1/chat/completions", body, (size_t)n);
    n = snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q%d\"}]}", 19999);
    lr_response_t *late = lr_engine_serve("POST", "http://localhost:8000/v1/chat/completions", body, (size_t)n);
    check(!first->owned && late->owned && late->status == 404, "engine.miss_cache_keeps_the_first", "first owned %d, late owned %d",
          first->owned, late->owned);
    lr_response_free(first);
    lr_response_free(late);
#ifndef __SANITIZE_ADDRESS__
    check(grown < base + (1 << 20), "engine.miss_cache_bounded", "in use %zu bytes after 1,000 misses, %zu after 20,000", base, grown);
    printf("# engine: in use %zu bytes after 1,000 distinct misses, %zu after 20,000\n", base, grown);
#endif
}

/* ---- id_normalization_mapping --------------------------------------------------------- */

/* A recording whose text is `body` (a JSON value) with this mapping object. */
static void idmap_rec(buf_t *b, const char *body, const char *mapping)
{
    buf_printf(b, "{\"request\":{\"method\":\"POST\",\"url\":\"http://localhost:8000/v1/chat/completions\","
                  "\"endpoint\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\"}},"
                  "\"response\":{\"body\":%s,\"is_streaming\":false},\"id_normalization_mapping\":%s}", body, mapping);
}

/* Apply the mapping of the recording made of body and map (both freed; the recording is left
 * in rec): the result (*m, *n bytes), why it was refused, and the seconds it took. */
static double idmap_timed(buf_t *rec, buf_t *body, buf_t *map, char **m, size_t *n, const char **refused)
{
    idmap_rec(rec, body->data, map->data);
    buf_free(body);
    buf_free(map);
    double t0 = now_s();
    *n = 0;
    *m = lr_rec_apply_id_mapping(rec->data, rec->len, n, refused);
    return now_s() - t0;
}

/* A JSON string of n c's. */
static void quoted_run(buf_t *b, char c, int n)
{
    buf_addc(b, '"');
    for (int i = 0; i < n; i++) buf_addc(b, c);
    buf_addc(b, '"');
}

static void test_idmap_single_pass(void)
{
    current = "idmap.single_pass";
    buf_t b;
    buf_init(&b);
    /* chained, ID-ONE would become ID-TWO and then rec-2 */
    idmap_rec(&b, "{\"a\":\"ID-ONE\",\"b\":\"ID-TWO\"}", "{\"ID-TWO\":\"ID-ONE\",\"rec-2\":\"ID-TWO\"}");
    size_t n = 0;
    const char *refused;
    char *m = lr_rec_apply_id_mapping(b.data, b.len, &n, &refused);
    check(m && !refused && strstr(m, "{\"a\":\"ID-TWO\",\"b\":\"rec-2\"}"), "idmap.single_pass", "got '%s' (%s)",
          m ? m : "(NULL)", refused ? refused : "");
    free(m);
    buf_free(&b);
}

/* Issue 17's recording: `a` to 1,000 X, X to 1,000 Y, ...: 20 s and 4.6 GB when chained. */
static void test_idmap_blowup(void)
{
    current = "idmap.blowup";
    buf_t body, map, b;
    buf_init(&body);
    buf_init(&map);
    buf_init(&b);
    quoted_run(&body, 'a', 20000);
    const char *from = "aXYZW";
    buf_addc(&map, '{');
    for (int k = 0; k < 4; k++) {
        quoted_run(&map, from[k + 1], 1000);
        buf_printf(&map, ":\"%c\"%s", from[k], k < 3 ? "," : "}");
    }
    char *m;
    size_t n;
    const char *refused;
    double dt = idmap_timed(&b, &body, &map, &m, &n, &refused);
    check(!m && refused && strstr(refused, "twice as large"), "idmap.blowup_refused", "%zu bytes out of %zu (%s)", n, b.len,
          refused ? refused : "");
    check(dt < 1.0, "idmap.blowup_fast", "%.2f s", dt);
    printf("# idmap: %zu-byte hostile recording refused in %.3f s\n", b.len, dt);
    /* loading it says why, and the store names the file */
    char path[] = "/tmp/llmreplay-hostile-XXXXXX";
    int fd = mkstemp(path);
    check(fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len, "idmap.blowup_written", "cannot write %s", path);
    if (fd >= 0) close(fd);
    char why[320] = "";
    lr_rec_t *r = lr_rec_load(path, NULL, why, sizeof why);
    check(!r && strstr(why, "id_normalization_mapping") && strstr(why, "re-record"), "idmap.blowup_load_says_why", "why '%s'", why);
    lr_rec_free(r);
    unlink(path);
    free(m);
    buf_free(&b);
}

/* 3,000 distinct ids on 2 MB: 1.2 s when chained (one whole-text pass per entry). */
static void test_idmap_many_entries(void)
{
    current = "idmap.many_entries";
    buf_t body, map, b;
    buf_init(&body);
    buf_init(&map);
    buf_init(&b);
    buf_addc(&body, '[');
    for (int i = 0; i < 60000; i++) buf_printf(&body, "%s\"chatcmpl-%024d\"", i ? "," : "", i % 3000);
    buf_addc(&body, ']');
    buf_addc(&map, '{');
    for (int i = 0; i < 3000; i++) buf_printf(&map, "%s\"rec-%06d\":\"chatcmpl-%024d\"", i ? "," : "", i, i);
    buf_addc(&map, '}');
    char *m;
    size_t n;
    const char *refused;
    double dt = idmap_timed(&b, &body, &map, &m, &n, &refused);
    check(m && !refused && !strstr(m, "chatcmpl-") && strstr(m, "\"rec-002999\",\"rec-000000\""), "idmap.many_entries",
          "mapped %d (%s)", m != NULL, refused ? refused : "");
    check(dt < 1.0, "idmap.many_entries_fast", "%.2f s", dt);
    printf("# idmap: 3,000 entries on %zu bytes applied in %.3f s\n", b.len, dt);
    free(m);
    buf_free(&b);
}

/* Every entry alike in its first bytes (a one-byte original makes the hash one byte): the
 * comparisons are bounded, then the file refused. */
static void test_idmap_costly(void)
{
    current = "idmap.costly";
    buf_t body, map, b;
    buf_init(&body);
    buf_init(&map);
    buf_init(&b);
    quoted_run(&body, 'q', 200000);
    buf_addc(&map, '{');
    for (int i = 0; i < 3000; i++) buf_printf(&map, "\"r%d\":\"q%d\",", i, i);
    buf_adds(&map, "\"r\":\"q\"}"); /* last: each q is compared with every entry first */
    char *m;
    size_t n;
    const char *refused;
    double dt = idmap_timed(&b, &body, &map, &m, &n, &refused);
    check(!m && refused && strstr(refused, "costs too much"), "idmap.costly_refused", "%s", refused ? refused : "(applied)");
    check(dt < 1.0, "idmap.costly_fast", "%.2f s", dt);
    printf("# idmap: 3,000 entries alike on %zu bytes refused in %.3f s\n", b.len, dt);
    free(m);
    buf_free(&b);
}

/* ---- chunked request bodies ------------------------------------------------------------- */

/* Fed one byte more at a time, the decoder goes on where it stopped and ends as in one go. */
static void test_dechunk_incremental(void)
{
    current = "http.dechunk";
    const char *in = "5;ext=1\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    size_t n = strlen(in) - 4, max = 1 << 20;
    buf_t one, inc;
    buf_init(&one);
    buf_init(&inc);
    lr_dechunk_t st = {0};
    long r1 = lr_http_dechunk(in, strlen(in), &one, max, &st);
    st = (lr_dechunk_t){0};
    long r = -2;
    size_t calls = 0;
    for (size_t k = 1; k <= strlen(in) && r == -2; k++, calls++) r = lr_http_dechunk(in, k, &inc, max, &st);
    check(r1 == (long)n && r == (long)n && one.len == 12 && inc.len == 12 && !memcmp(inc.data, "hello world!", 12),
          "http.dechunk_incremental", "one go %ld '%.*s', byte by byte %ld '%.*s'", r1, (int)one.len, one.data ? one.data : "",
          r, (int)inc.len, inc.data ? inc.data : "");
    /* a chunk-size line that never ends is refused once it is longer than any real one */
    buf_t line;
    buf_init(&line);
    for (int i = 0; i < 9000; i++) buf_addc(&line, i ? ';' : '1');
    st = (lr_dechunk_t){0};
    inc.len = 0;
    check(lr_http_dechunk(line.data, line.len, &inc, max, &st) == -1, "http.dechunk_endless_line_refused", "not refused");
    buf_free(&line);
    buf_free(&one);
    buf_free(&inc);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines survive a crash */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    setenv("LLMREPLAY_LOG", "quiet", 1); /* the misses would say so, 20,000 times */
    unsetenv("LLMREPLAY_DIR");
    unsetenv("LLMREPLAY_MISS_LOG");
    test_pyjson();
    test_pyjson_many_keys();
    test_pyjson_realloc_fails();
    test_dechunk_incremental();
    test_idmap_single_pass();
    test_idmap_blowup();
    test_idmap_many_entries();
    test_idmap_costly();
    test_index_header();
    if (lr_cjson()) test_miss_cache_bounded();
    return failures ? 1 : 0;
}
