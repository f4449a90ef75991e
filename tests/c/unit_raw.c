/* Unit tests of wire-level (raw) requests: the match key (query order, credentials, canonical
 * JSON, multipart parts whatever the boundary), base64 and text checks, and hostile queries and
 * multipart bodies placed at the end of a page followed by a guard page, so that any read past
 * the input crashes (and names the check). One line per check; exit 1 when any failed. */
#include "unit.h"
#include "base/config.h"
#include "engine/raw.h"
#include "engine/recording.h"
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- guard pages: the input's last byte is the last readable one ----------------------- */

static char *guard_put(guard_t *g, const void *s, size_t n) { return guard_bytes(g, s, n); }
/* A C string whose NUL is the last readable byte. */
static char *guard_str(guard_t *g, const char *s, size_t n)
{
    char *p = g->end - n - 1;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

typedef struct { uint64_t h1, h2; } key_t2;
static key_t2 key(const char *m, const char *url, const char *body, size_t n)
{
    key_t2 k;
    lr_raw_key(m, url, NULL, body, n, NULL, &k.h1, &k.h2);
    return k;
}
static bool same(key_t2 a, key_t2 b) { return a.h1 == b.h1 && a.h2 == b.h2; }

static const char MP1[] = "--AAA\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                          "--AAA\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                          "Content-Type: audio/wav\r\n\r\nRIFF\x00\x01\r\n--AAA--\r\n";
static const char MP2[] = "--zzzzzzzzzzzz42\r\ncontent-disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
                          "--zzzzzzzzzzzz42\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                          "Content-Type: audio/wav\r\n\r\nRIFF\x00\x01\r\n--zzzzzzzzzzzz42--\r\n";

static void test_keys(void)
{
    current = "raw.key";
    const char *u = "https://api.openai.com/v1/files?purpose=batch&limit=2";
    check(same(key("GET", u, "", 0), key("get", "http://other:1/v1/files?limit=2&purpose=batch", NULL, 0)),
          "raw.key_query_order_host_and_method_case", "differ");
    check(same(key("GET", u, "", 0), key("GET", "https://x/v1/files?key=SECRET&purpose=batch&&limit=2", NULL, 0)),
          "raw.key_credentials_and_empty_params_ignored", "differ");
    check(!same(key("GET", u, "", 0), key("GET", "https://x/v1/files?purpose=other&limit=2", NULL, 0)),
          "raw.key_query_values_count", "same");
    check(!same(key("GET", u, "", 0), key("POST", u, "", 0)), "raw.key_method_counts", "same");
    check(!same(key("GET", u, "", 0), key("GET", "https://x/v1/files/?purpose=batch&limit=2", NULL, 0)),
          "raw.key_path_counts", "same");
    const char *j1 = "{\"a\": 1, \"b\": [1.0, \"x\"]}", *j2 = "{\"b\":[1,\"x\"],\"a\":1e0}";
    check(same(key("POST", u, j1, strlen(j1)), key("POST", u, j2, strlen(j2))), "raw.key_canonical_json", "differ");
    check(same(key("GET", u, "{}", 2), key("GET", u, "", 0)), "raw.key_empty_object_is_no_body_on_get", "differ");
    check(same(key("POST", u, MP1, sizeof MP1 - 1), key("POST", u, MP2, sizeof MP2 - 1)),
          "raw.key_multipart_boundary_and_header_case_ignored", "differ");
    char mp3[sizeof MP1];
    memcpy(mp3, MP1, sizeof MP1);
    mp3[sizeof MP1 - 14] ^= 1; /* a byte of the file */
    check(!same(key("POST", u, MP1, sizeof MP1 - 1), key("POST", u, mp3, sizeof MP1 - 1)), "raw.key_multipart_part_bytes_count", "same");
    check(!same(key("POST", u, "ab\x00", 3), key("POST", u, "ab\x01", 3)), "raw.key_bytes_count", "same");
}

static void test_b64_text(void)
{
    current = "raw.b64";
    unsigned char all[256];
    for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
    bool ok = true;
    for (size_t n = 0; n <= 256 && ok; n++) {
        buf_t e, d;
        buf_init(&e);
        buf_init(&d);
        lr_b64_encode(all, n, &e);
        ok = lr_b64_decode(e.data ? e.data : "", e.len, &d) && d.len == n && (!n || !memcmp(d.data, all, n));
        buf_free(&e);
        buf_free(&d);
    }
    check(ok, "raw.b64_round_trip", "a length fails");
    buf_t d;
    buf_init(&d);
    check(!lr_b64_decode("ab$d", 4, &d), "raw.b64_bad_character_refused", "accepted");
    buf_free(&d);
    check(lr_raw_is_text("h\xc3\xa9llo\r\n\t", 9) && !lr_raw_is_text("a\0b", 3) && !lr_raw_is_text("\xc3", 1) &&
              !lr_raw_is_text("\xed\xa0\x80", 3) && !lr_raw_is_text("\xff", 1),
          "raw.text_check", "wrong");
}

/* Every prefix of each hostile input, as body and as URL, at the end of a page. */
static void test_hostile(void)
{
    guard_t g;
    if (!guard_init(&g, 1 << 20)) { check(false, "raw.guard", "mmap failed"); return; }
    static const char *bodies[] = {
        "--", "--\r\n", "--A\r\n", "--A\r\n\r\n", "--A\r\n\r\n--A", "--A\r\nX: y\r\n\r\nv\r\n--A", "--A\r\n\r\n\r\n--A--",
        "--A\r\nContent-Disposition: form-data\r\n\r\n\r\n--A\r\n\r\n--A--\r\n", "--A\nno crlf\n--A--", "--A\r\nno colon\r\n\r\nv\r\n--A--", "--A\r\nnocolon", "-- \r\n",
        "--AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
        "{\"a\":", "[[[[[[[[[[[[[[[[[[[[[[", "\"\\u", "\xff\xfe\x00", MP1,
    };
    current = "raw.hostile_bodies";
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        size_t n = i == sizeof bodies / sizeof *bodies - 1 ? sizeof MP1 - 1 : strlen(bodies[i]);
        for (size_t k = 0; k <= n; k++) {
            char *p = guard_put(&g, bodies[i], k);
            key_t2 a = key("POST", "http://h/x", p, k);
            (void)a;
        }
    }
    check(true, "raw.hostile_bodies", "%s", "");
    /* many parts, and a part that never ends */
    buf_t b;
    buf_init(&b);
    for (int i = 0; i < 20000; i++) buf_adds(&b, "--B\r\n\r\nx\r\n");
    char *p = guard_put(&g, b.data, b.len);
    (void)key("POST", "http://h/x", p, b.len);
    buf_free(&b);
    check(true, "raw.many_parts", "%s", "");
    static const char *urls[] = {
        "http://h/x?", "http://h/x?&&&&", "http://h/x?=&=&=", "http://h/x?a#", "http://h?a=1", "http://h", "h/x?a",
        "http://h/x?key", "http://h/x?key=", "http://h/x?%zz=%", "https://[::1]:9/x?b=2&a=1#frag?c", "?", "", "://",
    };
    current = "raw.hostile_urls";
    for (size_t i = 0; i < sizeof urls / sizeof *urls; i++)
        for (size_t k = 0; k <= strlen(urls[i]); k++) (void)key("GET", guard_str(&g, urls[i], k), "", 0);
    buf_init(&b);
    buf_adds(&b, "http://h/x?");
    for (int i = 0; i < 30000; i++) buf_printf(&b, "p%d=%d&", 30000 - i, i);
    (void)key("GET", guard_str(&g, b.data, b.len), "", 0);
    buf_free(&b);
    check(true, "raw.hostile_urls", "%s", "");
    current = "raw.hostile_text";
    for (size_t k = 0; k <= sizeof MP1 - 1; k++) (void)lr_raw_is_text(guard_put(&g, MP1, k), k);
    const char *b64 = "QUJDRA==\r\nRUZH";
    for (size_t k = 0; k <= strlen(b64); k++) {
        buf_t d;
        buf_init(&d);
        (void)lr_b64_decode(guard_put(&g, b64, k), k, &d);
        buf_free(&d);
    }
    check(true, "raw.hostile_text_and_b64", "%s", "");
    munmap(g.map, g.size);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    if (!lr_cjson()) { printf("not ok cjson: libcjson cannot be loaded\n"); return 1; }
    test_keys();
    test_b64_text();
    test_hostile();
    return failures ? 1 : 0;
}
