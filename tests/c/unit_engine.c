/* Unit tests of the engine (jspan, canon, ops, recording, render, store, match).
 * One line per check, "ok NAME" or "not ok NAME: detail"; exit status 1 when any failed.
 * Run from the project root: the seed recording is read from ../shared/seed/. */
#include "unit.h"
#include "base/config.h"
#include "engine/canon.h"
#include "engine/keymemo.h"
#include "json/jspan.h"
#include "engine/match.h"
#include "engine/ops.h"
#include "engine/recording.h"
#include "engine/render.h"
#include "engine/store.h"
#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- reporting -------------------------------------------------------------------------- */

static bool check_str(const char *name, const char *got, const char *want)
{
    bool ok = got && !strcmp(got, want);
    return check(ok, name, "got '%s', want '%s'", got ? got : "(NULL)", want);
}

static bool check_has(const char *name, const char *hay, const char *needle)
{
    return check(hay && strstr(hay, needle), name, "'%s' does not contain '%s'", hay ? hay : "(NULL)", needle);
}

/* Test JSON written with single quotes (no escaping noise); returns a rotating static buffer. */
static const char *dq(const char *s)
{
    static char bufs[4][16384];
    static int k;
    char *b = bufs[k++ & 3];
    size_t i = 0;
    for (; s[i] && i < sizeof bufs[0] - 1; i++) b[i] = s[i] == '\'' ? '"' : s[i];
    b[i] = 0;
    return b;
}

static span_t sp(const char *s) { return (span_t){s, strlen(s)}; }

static char *span_dup(span_t s) { return lr_strndup(s.p, s.n); }

/* ---- files ------------------------------------------------------------------------------ */

static char tmp[256];

static const char *write_bytes(const char *name, const void *data, size_t n)
{
    static char path[4][512];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", tmp, name);
    for (char *s = strchr(p + strlen(tmp) + 1, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        mkdir(p, 0700); /* sub-directories of a name like "store/sub/c.json" */
        *s = '/';
    }
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(p); exit(2); }
    fclose(f);
    return p;
}

static const char *write_text(const char *name, const char *sq) { const char *t = dq(sq); return write_bytes(name, t, strlen(t)); }

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

/* A recording of one request; the response object is given whole. */
#define REC(method, url, endpoint, body, response) \
    "{'request':{'method':'" method "','url':'" url "','headers':{},'body':" body ",'endpoint':'" endpoint \
    "','model':'m1'},'response':" response "}"
#define CHAT_URL "http://localhost:8000/v1/chat/completions"

/* Rendered recordings are cached by the engine (owned == false): the test releases them. */
static void resp_free(lr_response_t *r)
{
    if (!r) return;
    for (int i = 0; i < r->nevents; i++) free(r->events[i].data);
    free(r->events);
    free(r->extra_headers);
    free(r);
}

/* ---- guard pages ------------------------------------------------------------------------ */

/* Copy s[0..n) so that its last byte is the last readable one. */
static span_t guard_put(guard_t *g, const char *s, size_t n) { return (span_t){guard_bytes(g, s, n), n}; }

/* Every prefix of s, at the end of a page: no read past it, and for a complete
 * object/array/string, no strict prefix of the value is valid. Returns failures. */
static int prefixes_valid(guard_t *g, const char *s, size_t n, char *why, size_t whycap)
{
    const char *vend = js_skip(s, s + n);
    size_t vlen = vend ? (size_t)(vend - s) : n;
    char k0 = js_kind((span_t){s, n});
    bool compound = k0 == '{' || k0 == '[' || k0 == '"';
    int bad = 0;
    for (size_t k = 0; k <= n; k++) {
        span_t p = guard_put(g, s, k);
        bool v = js_valid(p);
        const char *e = js_skip(p.p, p.p + p.n);
        if (e && e > p.p + p.n) { if (!bad++) snprintf(why, whycap, "js_skip past the end at prefix %zu", k); }
        if (compound && k < vlen && v) { if (!bad++) snprintf(why, whycap, "strict prefix of %zu bytes is valid", k); }
        if (vend && k == n && !v) { if (!bad++) snprintf(why, whycap, "the whole input is invalid"); }
    }
    return bad;
}

/* The other scanners on every prefix: they must stay inside it too. */
static void prefixes_scanners(guard_t *g, const char *s, size_t n)
{
    for (size_t k = 0; k <= n; k++) {
        span_t p = guard_put(g, s, k), v;
        (void)js_kind(p);
        (void)js_trim(p);
        (void)js_is_null(p);
        js_get(p, "zzz", &v);
        if (js_get(p, "b", &v)) (void)js_valid(v);
        const char *pos = NULL;
        span_t it;
        while (js_next(p, &pos, &it)) (void)js_valid(it);
        buf_t b;
        buf_init(&b);
        js_minify(p, &b);
        buf_free(&b);
        free(js_strdup(p));
    }
}

/* ---- jspan ------------------------------------------------------------------------------ */

static void test_jspan_valid(void)
{
    current = "jspan.valid";
    static const char *good[] = {
        "{}", "[]", "\"\"", "0", "-0", "-0.5e-3", "1E+10", "12.25", "1e5", "true", "false", "null",
        "\"a\\\\\"",                 /* "a\\" : the backslash is escaped, the quote closes */
        "\"a\\\"b\"",                /* "a\"b" */
        "\"a\\\\\\\"b\"",            /* "a\\\"b" : odd run before the inner quote */
        "[\"a\\\\\",1]",
        "\"\\u0001 \\n \\\" \\\\ \\/ \\u00e9\"",
        "{\"a\":[1,{\"b\":[[]]}],\"c\":{}}",
        "[[[[]]]]",
        " \n\t{ \"a\" : 1 , \"b\" : [ true , null ] } \r\n",
        "{\"\":\"\"}",
        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", /* raw UTF-8 is fine */
    };
    static const char *bad[] = {
        "", "   ", "-", "1.", ".5", "1e", "1e+", "+1", "--1", "0x10", "1.5.2", "tru", "nul", "True", "nulll",
        "\"a\\\"",                   /* "a\" : the only closing quote is escaped */
        "\"a\\\\\\\"",               /* "a\\\" */
        "[\"a\\\",1]",
        "\"abc",
        "{\"a\":1,}", "[1,2,]", "[,1]", "{,}", "[,]", "{\"a\"}", "{\"a\":}", "{a:1}", "[1 2]",
        "{\"a\":1 \"b\":2}", "{\"a\":1}}", "[1]]", "{} {}", "1 2", "{", "[", "{\"a\":[}", "[1}", "{\"a\":1]",
        "\"a\tb\"", "\"a\x01z\"", "\"a\nb\"", "\"a\x1f\"", "{\"k\x02\":1}",
    };
    char name[128];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        snprintf(name, sizeof name, "jspan.valid.good[%zu]", i);
        check(js_valid(sp(good[i])), name, "js_valid rejects '%s'", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(name, sizeof name, "jspan.valid.bad[%zu]", i);
        check(!js_valid(sp(bad[i])), name, "js_valid accepts '%s'", bad[i]);
    }

    /* js_skip stops right after the value; the caller sees the rest. */
    const char *s = "\"a\\\\\" ,2";
    check(js_skip(s, s + strlen(s)) == s + 5, "jspan.skip.end_after_string", "wrong end");
    s = "  -0.5e-3]";
    check(js_skip(s, s + strlen(s)) == s + 9, "jspan.skip.end_after_number", "wrong end");
    check(js_skip(NULL, NULL) == NULL, "jspan.skip.null", "accepted NULL");
    s = "\"a\" trailing";
    check(!js_valid(sp(s)), "jspan.valid.trailing_garbage", "accepted '%s'", s);
    /* A string span must end at its length, not at a NUL. */
    check(!js_valid((span_t){"\"ab\"", 3}), "jspan.valid.bounded_by_length", "read past n");
}

static void test_jspan_depth(void)
{
    current = "jspan.depth";
    size_t big = 1000000;
    char *s = malloc(2 * big + 16);
    /* 512 levels are fine, 600 are refused, a million open brackets must not blow the stack. */
    memset(s, '[', 512);
    memset(s + 512, ']', 512);
    check(js_valid((span_t){s, 1024}), "jspan.depth.512_ok", "512 nested arrays rejected");
    memset(s, '[', 600);
    memset(s + 600, ']', 600);
    check(!js_valid((span_t){s, 1200}), "jspan.depth.600_rejected", "600 nested arrays accepted");
    memset(s, '[', big);
    check(!js_valid((span_t){s, big}), "jspan.depth.million_open", "accepted");
    size_t n = 0;
    for (size_t i = 0; i < 200000; i++) { memcpy(s + n, "{\"a\":", 5); n += 5; }
    check(!js_valid((span_t){s, n}), "jspan.depth.deep_objects", "accepted");
    span_t v;
    check(!js_get((span_t){s, n}, "b", &v), "jspan.depth.get_deep", "found a key in garbage");
    free(s);
}

static void test_jspan_access(void)
{
    current = "jspan.access";
    span_t v;
    const char *o = "{ \"mod\" : 1, \"model\":\"m\" ,\"n\":-1.5,\"nested\":{\"model\":\"inner\"},"
                    "\"s\":\"x\\\"y\",\"arr\":[1, 2], \"last\" : null }";
    struct { const char *key, *want; } cases[] = {
        {"mod", "1"}, {"model", "\"m\""}, {"n", "-1.5"}, {"nested", "{\"model\":\"inner\"}"},
        {"s", "\"x\\\"y\""}, {"arr", "[1, 2]"}, {"last", "null"},
    };
    char name[128];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(name, sizeof name, "jspan.get.%s", cases[i].key);
        if (check(js_get(sp(o), cases[i].key, &v), name, "key '%s' not found", cases[i].key)) {
            char *got = span_dup(v);
            check_str(name, got, cases[i].want);
            free(got);
        }
    }
    check(!js_get(sp(o), "zzz", &v), "jspan.get.absent", "found zzz");
    check(!js_get(sp(o), "mode", &v), "jspan.get.no_prefix_match", "'mode' matched a longer key");
    check(!js_get(sp(o), "inner", &v), "jspan.get.value_is_not_key", "a value matched as a key");
    check(!js_get(sp("[1,2]"), "a", &v), "jspan.get.not_object", "found a key in an array");
    /* A key that appears as a string value earlier must not confuse the scan. */
    if (check(js_get(sp("{\"a\":\"model\",\"model\":2}"), "model", &v), "jspan.get.key_after_value", "not found"))
        check(v.n == 1 && v.p[0] == '2', "jspan.get.key_after_value_value", "wrong value");

    const char *arr = "[ 1 , \"a,b\" , {\"x\":[1,2]} , [] ]";
    const char *want[] = {"1", "\"a,b\"", "{\"x\":[1,2]}", "[]"};
    const char *pos = NULL;
    int n = 0;
    bool same = true;
    while (js_next(sp(arr), &pos, &v)) {
        char *got = span_dup(v);
        if (n >= 4 || strcmp(got, want[n])) same = false;
        free(got);
        n++;
    }
    check(n == 4 && same, "jspan.next.items", "%d items, same=%d", n, same);
    pos = NULL;
    check(!js_next(sp("[ ]"), &pos, &v), "jspan.next.empty", "item in []");
    pos = NULL;
    check(!js_next(sp("{}"), &pos, &v), "jspan.next.not_array", "item in {}");

    check(js_kind(sp("  {\"a\":1}")) == '{' && js_kind(sp(" -1")) == '-' && js_kind(sp("  ")) == 0,
          "jspan.kind", "wrong kind");
    check(js_is_null(sp(" null ")) && !js_is_null(sp("nullx")) && js_is_true(sp("true\n")) && !js_is_true(sp("false")),
          "jspan.null_true", "wrong answer");
    span_t t = js_trim(sp(" \t[1]\r\n"));
    check(t.n == 3 && !memcmp(t.p, "[1]", 3), "jspan.trim", "got %zu bytes", t.n);
}

static void test_jspan_minify_strdup(void)
{
    current = "jspan.minify";
    buf_t b;
    buf_init(&b);
    js_minify(sp("{ \"a b\" : \"x  y , \\\" : [ ]\" ,\n\t\"c\" : [ 1 , 2 ] , \"d\":\"\\\\\" }"), &b);
    check_str("jspan.minify.outside_strings_only", b.data, "{\"a b\":\"x  y , \\\" : [ ]\",\"c\":[1,2],\"d\":\"\\\\\"}");
    buf_free(&b);
    js_minify(sp("[\"a\\\\\", \" b \"]"), &b);
    check_str("jspan.minify.backslash_run", b.data, "[\"a\\\\\",\" b \"]");
    buf_free(&b);

    current = "jspan.strdup";
    struct { const char *in, *want; } cases[] = {
        {"\"plain\"", "plain"},
        {"\"a\\nb\\tc\\r\\\"q\\\"\\\\\\/\"", "a\nb\tc\r\"q\"\\/"},
        {" \"caf\\u00e9\" ", "caf\xc3\xa9"},
        {"\"\\u20AC\"", "\xe2\x82\xac"},
        {"\"\\ud83d\\ude00!\"", "\xf0\x9f\x98\x80!"},
        {"\"raw \xc3\xa9\"", "raw \xc3\xa9"},
        {"\"\"", ""},
    };
    char name[128];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(name, sizeof name, "jspan.strdup[%zu]", i);
        char *got = js_strdup(sp(cases[i].in));
        check_str(name, got, cases[i].want);
        free(got);
    }
    check(js_strdup(sp("42")) == NULL, "jspan.strdup.not_string", "decoded a number");
    check(js_strdup(sp("\"\\u12\"")) == NULL, "jspan.strdup.short_u", "accepted a short \\u escape");
}

static void test_jspan_guard(void)
{
    current = "jspan.guard";
    static const char *inputs[] = {
        "{\"a\":\"x\\\"y\\\\\",\"b\":[1,-0.5e-3,true,false,null,{\"c\":[]}],\"d\":\"\\u00e9\\ud83d\\ude00\"}",
        "[[[\"a\\\\\\\"b\"]],{\"k\":{\"k\":{}}},\"\",0]",
        "  {\n  \"request\" : { \"body\" : [ 1 , 2.5E+3 ] },\n  \"response\": \"\\\\\"\n}\n",
        "\"a\\\\\\\\\"", "-0.5e-3", "true", "false", "null", "\"\\u00e9\"",
    };
    guard_t g;
    if (!check(guard_init(&g, 1 << 20), "jspan.guard.setup", "mmap: %s", strerror(errno))) return;
    char name[128], why[200];
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        snprintf(name, sizeof name, "jspan.guard.prefixes[%zu]", i);
        current = name;
        int bad = prefixes_valid(&g, inputs[i], strlen(inputs[i]), why, sizeof why);
        check(!bad, name, "%d bad prefixes, first: %s", bad, why);
        snprintf(name, sizeof name, "jspan.guard.scanners[%zu]", i);
        prefixes_scanners(&g, inputs[i], strlen(inputs[i]));
        check(true, name, "unreached");
    }
    /* Numbers and literals cut short: each prefix answers as the grammar says. */
    const char *num = "-0.5e-3";
    const bool numv[] = {false, false, true, false, true, false, false, true};
    bool same = true;
    for (size_t k = 0; k <= strlen(num); k++) same &= js_valid(guard_put(&g, num, k)) == numv[k];
    check(same, "jspan.guard.number_prefixes", "wrong verdict on a prefix of %s", num);

    /* A real recording: every prefix at the end of a page. */
    glob_t gl;
    current = "jspan.guard.seed";
    if (check(glob("../shared/seed/*.json", 0, NULL, &gl) == 0 && gl.gl_pathc > 0, "jspan.guard.seed_found",
              "no ../shared/seed/*.json (cwd must be the project root)")) {
        size_t n;
        char *text = lr_read_file(gl.gl_pathv[0], 1 << 20, &n);
        if (check(text && n > 1000, "jspan.guard.seed_read", "cannot read %s", gl.gl_pathv[0])) {
            int bad = prefixes_valid(&g, text, n, why, sizeof why);
            check(!bad, "jspan.guard.seed_prefixes", "%d bad prefixes, first: %s", bad, why);
            /* The span-based readers used by rendering, on the page-end copy. */
            span_t top = guard_put(&g, text, n), resp, body;
            bool got = js_get(top, "response", &resp) && js_get(resp, "body", &body) && js_kind(body) == '[';
            int items = 0;
            const char *pos = NULL;
            span_t it;
            while (got && js_next(body, &pos, &it)) items++;
            check(got && items > 1, "jspan.guard.seed_walk", "response.body walk found %d items", items);
        }
        free(text);
        globfree(&gl);
    }
    guard_free(&g);
}

/* ---- canon ------------------------------------------------------------------------------ */

static char *canon_of(const char *sq, const lr_ignore_t *ig)
{
    const char *t = dq(sq);
    cJSON *j = lr_json_parse(t, strlen(t));
    if (!j) return strdup("(parse error)");
    buf_t b;
    buf_init(&b);
    lr_canon(j, ig, &b);
    J.Delete(j);
    return buf_steal(&b, NULL);
}

static void same_canon(const char *name, const char *a, const char *b, const lr_ignore_t *ig, bool want_same)
{
    char *x = canon_of(a, ig), *y = canon_of(b, ig);
    bool eq = !strcmp(x, y);
    check(eq == want_same && strcmp(x, "(parse error)"), name, "%s: '%s' vs '%s'", want_same ? "differ" : "equal", x, y);
    free(x);
    free(y);
}

static void test_canon(void)
{
    current = "canon";
    if (!check(lr_cjson() != NULL, "canon.cjson_loaded", "libcjson.so.1 not loadable")) return;
    same_canon("canon.key_order", "{'a':1,'b':{'y':2,'x':[1,{'q':1,'p':2}]}}", "{'b':{'x':[1,{'p':2,'q':1}],'y':2},'a':1}", NULL, true);
    same_canon("canon.whitespace", "{'a':[1,2],'b':'x y'}", " {\n 'a' : [ 1 ,\t2 ] ,'b' : 'x y' } ", NULL, true);
    same_canon("canon.number_1_1.0", "{'t':1}", "{'t':1.0}", NULL, true);
    same_canon("canon.number_1_1.00000", "{'t':1}", "{'t':1.00000}", NULL, true);
    same_canon("canon.number_1_1e0", "{'t':1}", "{'t':1e0}", NULL, true);
    same_canon("canon.number_10_1e1", "[10,-2]", "[1E1,-2.0]", NULL, true);
    same_canon("canon.negative_zero", "{'t':-0.0}", "{'t':0}", NULL, true);
    same_canon("canon.float_5_decimals", "{'t':0.123456}", "{'t':0.12346}", NULL, true);
    same_canon("canon.float_in_string", "{'q':'score 0.1234567'}", "{'q':'score 0.12346'}", NULL, true);
    same_canon("canon.negative_float_in_string", "['t=-1.234567;']", "['t=-1.23457;']", NULL, true);
    same_canon("canon.duplicate_key_last_wins", "{'a':1,'a':2}", "{'a':2}", NULL, true);
    same_canon("canon.diff_number", "{'t':1}", "{'t':2}", NULL, false);
    same_canon("canon.diff_float_6th_decimal", "{'t':0.12345}", "{'t':0.12346}", NULL, false);
    same_canon("canon.diff_string", "{'t':'a'}", "{'t':'b'}", NULL, false);
    same_canon("canon.diff_array_order", "{'t':[1,2]}", "{'t':[2,1]}", NULL, false);
    same_canon("canon.diff_missing_key", "{'t':1,'u':2}", "{'t':1}", NULL, false);
    same_canon("canon.diff_type", "{'t':1}", "{'t':'1'}", NULL, false);
    same_canon("canon.diff_short_decimal_in_string", "['v 1.5']", "['v 1.50']", NULL, false);
    same_canon("canon.diff_null_vs_absent", "{'t':null}", "{}", NULL, false);

    lr_ignore_t ig;
    lr_ignore_parse(&ig, " user , stream_options,,");
    check(ig.n == 2 && !strcmp(ig.paths[0], "user") && !strcmp(ig.paths[1], "stream_options"),
          "canon.ignore_parse", "%d paths", ig.n);
    same_canon("canon.ignore.top_level", "{'model':'m','user':'u1','stream_options':{'include_usage':true}}",
               "{'model':'m','user':'u2'}", &ig, true);
    same_canon("canon.ignore.only_top_level", "{'model':'m','metadata':{'user':'u1'}}", "{'model':'m','metadata':{'user':'u2'}}",
               &ig, false);
    same_canon("canon.ignore.others_kept", "{'model':'m','user':'u'}", "{'model':'n','user':'u'}", &ig, false);
    lr_ignore_free(&ig);
    lr_ignore_parse(&ig, "messages.name");
    same_canon("canon.ignore.dotted_in_array",
               "{'messages':[{'role':'user','content':'hi','name':'bob'},{'role':'assistant','content':'yo','name':'x'}]}",
               "{'messages':[{'role':'user','content':'hi'},{'role':'assistant','content':'yo','name':'y'}]}", &ig, true);
    same_canon("canon.ignore.dotted_not_top", "{'name':'a','messages':[]}", "{'name':'b','messages':[]}", &ig, false);
    same_canon("canon.ignore.dotted_content_kept", "{'messages':[{'content':'a','name':'x'}]}",
               "{'messages':[{'content':'b','name':'x'}]}", &ig, false);
    lr_ignore_free(&ig);

    /* Hash: equal canonical text, equal hash; NULL is 0. */
    const char *t1 = "{\"b\":1.0,\"a\":\"x\"}", *t2 = "{\"a\":\"x\",\"b\":1}";
    cJSON *j1 = lr_json_parse(t1, strlen(t1)), *j2 = lr_json_parse(t2, strlen(t2));
    check(lr_canon_hash(j1, NULL) == lr_canon_hash(j2, NULL) && lr_canon_hash(j1, NULL) != 0, "canon.hash_equal", "hashes differ");
    check(lr_canon_hash(NULL, NULL) == 0, "canon.hash_null", "not 0");
    J.Delete(j1);
    J.Delete(j2);

    /* lr_diff: counts and names the first differing leaf. */
    lr_diff_t d;
    const char *ra = dq("{'model':'m','messages':[{'role':'user','content':'hi'}],'temperature':0.5}");
    cJSON *a = lr_json_parse(ra, strlen(ra));
    const char *rb = dq("{'model':'m','messages':[{'role':'user','content':'hello'}],'temperature':0.5}");
    cJSON *b = lr_json_parse(rb, strlen(rb));
    lr_diff(a, b, NULL, &d);
    check(d.count == 1, "canon.diff.count_one", "count %d", d.count);
    check_str("canon.diff.nested_path", d.path, "messages[0].content");
    check_str("canon.diff.mine", d.mine, "\"hi\"");
    check_str("canon.diff.theirs", d.theirs, "\"hello\"");
    J.Delete(b);
    const char *rc = dq("{'model':'m','messages':[{'role':'user','content':'hi'}]}");
    b = lr_json_parse(rc, strlen(rc));
    lr_diff(a, b, NULL, &d);
    check(d.count == 1, "canon.diff.absent_count", "count %d", d.count);
    check_str("canon.diff.absent_path", d.path, "temperature");
    check_str("canon.diff.absent_mine", d.mine, "0.5");
    check_str("canon.diff.absent_theirs", d.theirs, "(absent)");
    lr_diff(b, a, NULL, &d);
    check_str("canon.diff.absent_in_request", d.mine, "(absent)");
    lr_ignore_parse(&ig, "temperature");
    lr_diff(a, b, &ig, &d);
    check(d.count == 0, "canon.diff.ignored_field", "count %d, path %s", d.count, d.path);
    lr_ignore_free(&ig);
    lr_diff(a, a, NULL, &d);
    check(d.count == 0, "canon.diff.identical", "count %d", d.count);
    J.Delete(b);
    const char *rd = dq("{'model':'n','messages':[{'role':'user','content':'hi'},{'role':'user','content':'more'}],'temperature':0.500001}");
    b = lr_json_parse(rd, strlen(rd));
    lr_diff(a, b, NULL, &d);
    check(d.count == 2, "canon.diff.count_two", "count %d (0.5 vs 0.500001 equal after rounding)", d.count);
    check_str("canon.diff.first_of_two", d.path, "messages[1]");
    J.Delete(b);
    J.Delete(a);
}

/* ---- ops -------------------------------------------------------------------------------- */

static void test_ops(void)
{
    current = "ops";
    struct { const char *url; lr_op_t op; } cases[] = {
        {"https://api.openai.com/v1/chat/completions", OP_CHAT},
        {"http://localhost:11434/api/generate", OP_OLLAMA_GENERATE},
        {"http://localhost:11434/api/chat", OP_OLLAMA_CHAT},
        {"https://api.openai.com/v1/embeddings", OP_EMBEDDINGS},
        {"https://x.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=2024-02-01", OP_CHAT},
        {"https://x.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-02-01", OP_EMBEDDINGS},
        {"https://api.anthropic.com/v1/messages", OP_MESSAGES},
        {"https://api.openai.com/v1/responses", OP_RESPONSES},
        {"https://api.openai.com/v1/models", OP_MODELS},
        {"https://api.openai.com/v1/models/", OP_MODELS},
        {"https://api.openai.com/v1/completions", OP_COMPLETIONS},
        {"http://localhost:11434/api/tags", OP_OLLAMA_TAGS},
        {"http://localhost:8321/v1/openai/v1/chat/completions#frag", OP_CHAT},
        {"https://example.com/models", OP_NONE},
        {"https://api.github.com/repos/x/messages", OP_NONE},
        {"http://localhost/", OP_NONE},
        {"http://localhost", OP_NONE},
        {"http://localhost:11434/api/unknown", OP_NONE},
        {"https://example.com/search?q=/v1/models", OP_NONE},
    };
    char name[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(name, sizeof name, "ops.of_url[%s]", cases[i].url);
        lr_op_t got = lr_op_of_url(cases[i].url);
        check(got == cases[i].op, name, "got op %d (%s), want %d", got, lr_op_info(got)->endpoint, cases[i].op);
    }
    check(lr_op_of_endpoint("/chat/completions") == OP_CHAT, "ops.endpoint.old_chat", "wrong op");
    check(lr_op_of_endpoint("/v1/chat/completions") == OP_CHAT, "ops.endpoint.chat", "wrong op");
    check(lr_op_of_endpoint("/v1/openai/v1/models") == OP_MODELS, "ops.endpoint.openai_models", "wrong op");
    check(lr_op_of_endpoint("/api/generate") == OP_OLLAMA_GENERATE, "ops.endpoint.ollama", "wrong op");
    check(lr_op_of_endpoint("") == OP_NONE && lr_op_of_endpoint(NULL) == OP_NONE, "ops.endpoint.empty", "not OP_NONE");
    check(lr_op_of_endpoint("/v1/vector_stores") == OP_NONE, "ops.endpoint.unsupported", "not OP_NONE");
    check(lr_op_info(OP_MODELS)->listing && lr_op_info(OP_OLLAMA_TAGS)->listing && !lr_op_info(OP_CHAT)->listing,
          "ops.info.listing", "wrong listing flags");
    check(lr_op_info(OP_RESPONSES)->frame == FRAME_SSE_EVENTS && lr_op_info(OP_OLLAMA_GENERATE)->frame == FRAME_NDJSON &&
              lr_op_info(OP_CHAT)->frame == FRAME_SSE_DONE && lr_op_info((lr_op_t)999) == lr_op_info(OP_NONE),
          "ops.info.frames", "wrong frames");

    struct { const char *url, *host; int port; bool https; } hp[] = {
        {"http://[::1]:8000/v1/models", "::1", 8000, false},
        {"https://[::1]/v1/models", "::1", 443, true},
        {"https://user:pass@API.Example.com/v1/chat/completions", "api.example.com", 443, true},
        {"http://user@host:9000", "host", 9000, false},
        {"http://localhost/v1", "localhost", 80, false},
        {"HTTPS://h.example:8443?x=1", "h.example", 8443, true},
        {"http://h:/p", "h", 80, false},
    };
    for (size_t i = 0; i < sizeof hp / sizeof *hp; i++) {
        snprintf(name, sizeof name, "ops.hostport[%s]", hp[i].url);
        char host[128] = "?";
        int port = -1;
        bool https = !hp[i].https;
        bool ok = lr_url_hostport(hp[i].url, host, sizeof host, &port, &https);
        check(ok && !strcmp(host, hp[i].host) && port == hp[i].port && https == hp[i].https, name,
              "ok=%d host '%s' port %d https %d", ok, host, port, https);
    }
    char host[8];
    int port;
    bool https;
    check(!lr_url_hostport("/v1/models", host, sizeof host, &port, &https), "ops.hostport.no_scheme", "accepted");
    check(!lr_url_hostport("http://averyveryverylonghost/", host, sizeof host, &port, &https), "ops.hostport.too_long", "overflowed");
    check(!lr_url_hostport("http://[::1/x", host, sizeof host, &port, &https), "ops.hostport.unclosed_bracket", "accepted");
    size_t n;
    const char *p = lr_url_path("https://h/v1/models?x=1#y", &n);
    check(n == 10 && !strncmp(p, "/v1/models", n), "ops.url_path", "got '%.*s'", (int)n, p);
    p = lr_url_path("https://h", &n);
    check(n == 1 && *p == '/', "ops.url_path.none", "got '%.*s'", (int)n, p);
}

/* ---- recording + render ----------------------------------------------------------------- */

/* Load and render name; NULL (with a failed check) when the recording doesn't load. */
static lr_response_t *load_render(const char *tag, const char *path, lr_rec_t **rec)
{
    char why[320] = "", name[128];
    *rec = lr_rec_load(path, NULL, why, sizeof why);
    snprintf(name, sizeof name, "%s.loads", tag);
    if (!check(*rec != NULL, name, "%s", why)) return NULL;
    return lr_render_recording(*rec);
}

static void check_events(const char *tag, const lr_response_t *r, const char *const *want, int nwant)
{
    char name[128];
    snprintf(name, sizeof name, "%s.nevents", tag);
    check(r->nevents == nwant, name, "%d events, want %d", r->nevents, nwant);
    size_t total = 0;
    for (int i = 0; i < r->nevents && i < nwant; i++) {
        snprintf(name, sizeof name, "%s.event[%d]", tag, i);
        const char *w = dq(want[i]);
        check(r->events[i].len == strlen(w) && !memcmp(r->events[i].data, w, strlen(w)), name, "got '%.*s', want '%s'",
              (int)r->events[i].len, r->events[i].data, w);
    }
    for (int i = 0; i < r->nevents; i++) total += r->events[i].len;
    snprintf(name, sizeof name, "%s.body_len", tag);
    check(r->body_len == total, name, "body_len %zu, events sum %zu", r->body_len, total);
}

static void check_head(const char *tag, const lr_response_t *r, int status, const char *ctype, bool stream)
{
    char name[128];
    snprintf(name, sizeof name, "%s.status", tag);
    check(r->status == status, name, "status %d, want %d", r->status, status);
    snprintf(name, sizeof name, "%s.content_type", tag);
    check_str(name, r->content_type, ctype);
    snprintf(name, sizeof name, "%s.stream", tag);
    check(r->stream == stream, name, "stream %d", r->stream);
}

static void test_render(void)
{
    current = "render";
    lr_rec_t *rec;
    lr_response_t *r;

    /* Non-streaming chat, pretty-printed: the event is the compact __data__, strings untouched. */
    const char *path = write_text("chat.json",
        "{\n  'test_id': 'tests/unit::chat',\n  'request': {\n    'method': 'POST',\n"
        "    'url': 'http://LocalHost:8000/v1/chat/completions',\n    'headers': {},\n"
        "    'body': {'model': 'm1', 'messages': [{'role': 'user', 'content': 'hi'}]},\n"
        "    'endpoint': '/v1/chat/completions',\n    'model': 'm1'\n  },\n"
        "  'response': {\n    'body': {\n      '__type__': 'openai.types.chat.chat_completion.ChatCompletion',\n"
        "      '__data__': {\n        'id': 'rec-1',\n        'object': 'chat.completion',\n"
        "        'choices': [ { 'index': 0, 'message': { 'role': 'assistant', 'content': 'Hi ,  \\'there\\' : [ ]' } } ],\n"
        "        'usage': { 'total_tokens': 3, 'cost': 1.50 }\n      }\n    },\n    'is_streaming': false\n  }\n}\n");
    /* dq turned \' into \": the content is  Hi ,  "there" : [ ]  */
    if ((r = load_render("render.chat", path, &rec))) {
        check(rec->op == OP_CHAT && !rec->streaming && !rec->exception && rec->status == 200, "render.chat.rec_fields",
              "op %d streaming %d exception %d status %d", rec->op, rec->streaming, rec->exception, rec->status);
        check(!strcmp(rec->model, "m1") && !strcmp(rec->host, "localhost") && rec->port == 8000 &&
                  !strcmp(rec->method, "POST") && rec->test_id && !strcmp(rec->test_id, "tests/unit::chat"),
              "render.chat.rec_meta", "model '%s' host '%s' port %d test_id '%s'", rec->model, rec->host, rec->port,
              rec->test_id ? rec->test_id : "(NULL)");
        check_head("render.chat", r, 200, "application/json", false);
        const char *ev[] = {"{'id':'rec-1','object':'chat.completion','choices':[{'index':0,'message':{'role':'assistant',"
                            "'content':'Hi ,  \\'there\\' : [ ]'}}],'usage':{'total_tokens':3,'cost':1.50}}"};
        check_events("render.chat", r, ev, 1);
        check(r->rec == rec && r->extra_headers && strstr(r->extra_headers, "X-LLMReplay-Recording: ") &&
                  strstr(r->extra_headers, path),
              "render.chat.headers", "extra headers '%s'", r->extra_headers ? r->extra_headers : "(NULL)");
        buf_t h;
        buf_init(&h);
        lr_render_head(r, &h, false);
        check_has("render.chat.head", h.data, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ");
        buf_free(&h);
        /* The recorded body as cJSON, for miss diagnostics. */
        cJSON *body = lr_rec_request_body(rec);
        check(body && cJSON_IsString(J.GetObjectItemCaseSensitive(body, "model")), "render.chat.request_body", "not re-read");
        if (body) J.Delete(body);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* Streaming chat: one SSE event per chunk, then [DONE]. */
    path = write_text("stream.json", REC("POST", CHAT_URL, "/v1/chat/completions",
        "{'model':'m1','messages':[{'role':'user','content':'hi'}],'stream':true}",
        "{'body':[{'__type__':'openai.types.chat.chat_completion_chunk.ChatCompletionChunk','__data__':"
        "{'id':'rec-2','choices':[{'delta':{'content':'He'},'index':0}]}},"
        "{'__type__':'openai.types.chat.chat_completion_chunk.ChatCompletionChunk','__data__':"
        "{'id':'rec-2','choices':[{'delta':{'content':'llo'},'index':0}]}}],'is_streaming':true}"));
    if ((r = load_render("render.stream", path, &rec))) {
        check(rec->streaming, "render.stream.rec_streaming", "not streaming");
        check_head("render.stream", r, 200, "text/event-stream; charset=utf-8", true);
        const char *ev[] = {"data: {'id':'rec-2','choices':[{'delta':{'content':'He'},'index':0}]}\n\n",
                            "data: {'id':'rec-2','choices':[{'delta':{'content':'llo'},'index':0}]}\n\n",
                            "data: [DONE]\n\n"};
        check_events("render.stream", r, ev, 3);
        buf_t h;
        buf_init(&h);
        lr_render_head(r, &h, true);
        check_has("render.stream.head_chunked", h.data, "Transfer-Encoding: chunked\r\n");
        check(!strstr(h.data, "Content-Length"), "render.stream.head_no_length", "%s", h.data);
        buf_free(&h);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* Ollama /api/generate stream: NDJSON, no [DONE]. */
    path = write_text("ollama.json", REC("POST", "http://localhost:11434/api/generate", "/api/generate",
        "{'model':'llama3','prompt':'hi','stream':true}",
        "{'body':[{'__type__':'ollama._types.GenerateResponse','__data__':{'model':'llama3','response':'Hi','done':false}},"
        "{'__type__':'ollama._types.GenerateResponse','__data__':{'model':'llama3','response':'','done':true}}],"
        "'is_streaming':true}"));
    if ((r = load_render("render.ollama", path, &rec))) {
        check(rec->op == OP_OLLAMA_GENERATE && rec->port == 11434, "render.ollama.rec_op", "op %d", rec->op);
        check_head("render.ollama", r, 200, "application/x-ndjson", true);
        const char *ev[] = {"{'model':'llama3','response':'Hi','done':false}\n",
                            "{'model':'llama3','response':'','done':true}\n"};
        check_events("render.ollama", r, ev, 2);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* /v1/responses stream: named SSE events from each chunk's type, no [DONE]. */
    path = write_text("responses.json", REC("POST", "http://localhost:8000/v1/responses", "/v1/responses",
        "{'model':'m1','input':'hi','stream':true}",
        "{'body':[{'__type__':'openai.types.responses.ResponseTextDeltaEvent','__data__':"
        "{'type':'response.output_text.delta','delta':'Hi','sequence_number':1}},"
        "{'__type__':'openai.types.responses.ResponseCompletedEvent','__data__':"
        "{'type':'response.completed','sequence_number':2}}],'is_streaming':true}"));
    if ((r = load_render("render.responses", path, &rec))) {
        check_head("render.responses", r, 200, "text/event-stream; charset=utf-8", true);
        const char *ev[] = {
            "event: response.output_text.delta\ndata: {'type':'response.output_text.delta','delta':'Hi','sequence_number':1}\n\n",
            "event: response.completed\ndata: {'type':'response.completed','sequence_number':2}\n\n"};
        check_events("render.responses", r, ev, 2);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* /v1/models recorded as a list: wrapped as the API answers. */
    path = write_text("models.json", REC("GET", "http://localhost:8000/v1/models", "/v1/models", "{}",
        "{'body':[{'__type__':'openai.types.model.Model','__data__':{'id':'gpt-4o','object':'model'}},"
        "{'__type__':'openai.types.model.Model','__data__':{'id':'m1','object':'model'}}],'is_streaming':false}"));
    if ((r = load_render("render.models", path, &rec))) {
        check(rec->op == OP_MODELS && !strcmp(rec->method, "GET"), "render.models.rec", "op %d method %s", rec->op, rec->method);
        check_head("render.models", r, 200, "application/json", false);
        const char *ev[] = {"{'object':'list','data':[{'id':'gpt-4o','object':'model'},{'id':'m1','object':'model'}]}"};
        check_events("render.models", r, ev, 1);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* An exception with the provider's body: its status and that body. */
    path = write_text("exc_body.json", REC("POST", CHAT_URL, "/v1/chat/completions", "{'model':'m1','messages':[]}",
        "{'body':null,'is_streaming':false,'is_exception':true,"
        "'exception_data':{'status_code':429,'body':{ 'error' : { 'message' : 'slow down' } }}}"));
    if ((r = load_render("render.exception_body", path, &rec))) {
        check(rec->exception && rec->status == 429, "render.exception_body.rec", "exception %d status %d", rec->exception, rec->status);
        check_head("render.exception_body", r, 429, "application/json", false);
        check_str("render.exception_body.reason", r->reason, "Too Many Requests");
        const char *ev[] = {"{'error':{'message':'slow down'}}"};
        check_events("render.exception_body", r, ev, 1);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* An exception with only a message: an OpenAI-shaped error (status 500 by default). */
    path = write_text("exc_msg.json", REC("POST", CHAT_URL, "/v1/chat/completions", "{'model':'m1','messages':[1]}",
        "{'body':null,'is_streaming':false,'is_exception':true,'exception_data':{'message':'upstream \\'boom\\''}}"));
    if ((r = load_render("render.exception_msg", path, &rec))) {
        check_head("render.exception_msg", r, 500, "application/json", false);
        const char *ev[] = {"{'error':{'message':'upstream \\'boom\\'','type':'api_error','param':null,'code':null}}"};
        check_events("render.exception_msg", r, ev, 1);
        resp_free(r);
        lr_rec_free(rec);
    }
    path = write_text("exc_top.json", REC("POST", CHAT_URL, "/v1/chat/completions", "{'model':'m1','messages':[2]}",
        "{'body':null,'is_exception':true,'exception_message':'kaboom','exception_data':{'status_code':503}}"));
    if ((r = load_render("render.exception_message_field", path, &rec))) {
        check_head("render.exception_message_field", r, 503, "application/json", false);
        check(r->nevents == 1 && strstr(r->events[0].data, "\"message\":\"kaboom\""), "render.exception_message_field.body",
              "body '%s'", r->nevents ? r->events[0].data : "");
        resp_free(r);
        lr_rec_free(rec);
    }

    /* id_normalization_mapping (normalized -> original): clients see the normalized id. */
    path = write_text("idmap.json",
        "{'request':{'method':'POST','url':'" CHAT_URL "','body':{'model':'m1','messages':[3]},'endpoint':'/v1/chat/completions'},"
        "'response':{'body':{'__type__':'x','__data__':{'id':'chatcmpl-XYZ','object':'chat.completion'}},'is_streaming':false},"
        "'id_normalization_mapping':{'rec-abc':'chatcmpl-XYZ'}}");
    if ((r = load_render("render.id_mapping", path, &rec))) {
        const char *b = r->nevents ? r->events[0].data : "";
        check(strstr(b, "rec-abc") && !strstr(b, "chatcmpl-XYZ"), "render.id_mapping.body", "body '%s'", b);
        resp_free(r);
        lr_rec_free(rec);
    }
    const char *nomap = dq("{'a':1}");
    size_t ml;
    const char *refused;
    check(lr_rec_apply_id_mapping(nomap, strlen(nomap), &ml, &refused) == NULL, "render.id_mapping.none", "mapped without a mapping");

    /* A recording that vanished after indexing: a 500 saying so, not a crash. */
    path = write_text("gone.json", REC("POST", CHAT_URL, "/v1/chat/completions", "{'model':'m1','messages':[4]}",
                                       "{'body':{'id':'x'}}"));
    char why[320];
    rec = lr_rec_load(path, NULL, why, sizeof why);
    if (check(rec != NULL, "render.vanished.loads", "%s", why)) {
        unlink(path);
        r = lr_render_recording(rec);
        check(r && r->status == 500 && r->nevents == 1 && strstr(r->events[0].data, "cannot be served"),
              "render.vanished.error", "status %d", r ? r->status : -1);
        resp_free(r);
        lr_rec_free(rec);
    }

    /* A miss: OpenAI- or Ollama-shaped, owned by the caller. */
    r = lr_render_error(OP_CHAT, 404, "invalid_request_error", "llmreplay_no_recording", "no \"match\"");
    check(r && r->owned && r->status == 404 && r->nevents == 1 &&
              !strcmp(r->events[0].data, "{\"error\":{\"message\":\"no \\\"match\\\"\",\"type\":\"invalid_request_error\","
                                         "\"param\":null,\"code\":\"llmreplay_no_recording\"}}"),
          "render.error.openai", "body '%s'", r && r->nevents ? r->events[0].data : "");
    lr_response_free(r);
    r = lr_render_error(OP_OLLAMA_CHAT, 404, "t", "c", "nope");
    check(r && r->nevents == 1 && !strcmp(r->events[0].data, "{\"error\":\"nope\"}"), "render.error.ollama", "body '%s'",
          r && r->nevents ? r->events[0].data : "");
    lr_response_free(r);
}

static void test_load_failures(void)
{
    current = "recording.failures";
    struct { const char *name, *word; const char *data; size_t len; } cases[] = {
        {"empty.json", "empty", "", 0},
        {"truncated.json", "truncated", "{\"request\": {\"method\": \"POST\", \"body\": {\"model\": \"m\", \"n\": 1", 0},
        {"truncated_str.json", "truncated", "{\"request\": {\"method\": \"POST\", \"body\": {\"model\": \"gpt-", 0},
        {"truncated_nl.json", "truncated", "{\"request\": {\"method\": \"POST\",\n", 0},
        {"binary.json", "binary", "{\"request\"\0\0\0\x01\x02}", 16},
        {"array.json", "object", "[{\"request\":{}}]", 0},
        {"no_request.json", "request", "{\"response\":{\"body\":null}}", 0},
        {"no_response.json", "response", "{\"request\":{\"endpoint\":\"/v1/models\"}}", 0},
        {"garbage.json", "not valid JSON", "{\"request\": {} ]", 0},
        {"unsupported.json", "unsupported", "{\"request\":{\"endpoint\":\"/v1/vector_stores\",\"body\":{}},\"response\":{}}", 0},
    };
    char why[320], name[128];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].data);
        const char *p = write_bytes(cases[i].name, cases[i].data, n);
        why[0] = 0;
        lr_rec_t *r = lr_rec_load(p, NULL, why, sizeof why);
        snprintf(name, sizeof name, "recording.fail.%s", cases[i].name);
        check(!r && *why && strstr(why, cases[i].word), name, "rec %p, reason '%s' lacks '%s'", (void *)r, why, cases[i].word);
        lr_rec_free(r);
    }
    why[0] = 0;
    check(!lr_rec_load("/nonexistent/x.json", NULL, why, sizeof why) && strstr(why, "cannot read"),
          "recording.fail.missing_file", "reason '%s'", why);

    /* Over LLMREPLAY_MAX_FILE_MB: refused before reading, with the knob named. */
    size_t n = 2u << 20;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    const char *p = write_bytes("big.json", big, n);
    free(big);
    setenv("LLMREPLAY_MAX_FILE_MB", "1", 1); lr_config_reload();
    check(lr_max_file_bytes() == 1u << 20, "recording.max_file_bytes", "%zu", lr_max_file_bytes());
    why[0] = 0;
    lr_rec_t *r = lr_rec_load(p, NULL, why, sizeof why);
    check(!r && strstr(why, "larger") && strstr(why, "LLMREPLAY_MAX_FILE_MB"), "recording.fail.too_large", "reason '%s'", why);
    lr_rec_free(r);
    unsetenv("LLMREPLAY_MAX_FILE_MB"); lr_config_reload();
    check(lr_max_file_bytes() == 64u << 20, "recording.max_file_bytes_default", "%zu", lr_max_file_bytes());
}

/* ---- store + match ---------------------------------------------------------------------- */

typedef struct { int n, nunsupported; char paths[8][512], whys[8][320]; } reports_t;

static void collect(void *ctx, const char *path, const char *why, bool unsupported)
{
    reports_t *rp = ctx;
    if (rp->n < 8) {
        snprintf(rp->paths[rp->n], sizeof rp->paths[0], "%s", path);
        snprintf(rp->whys[rp->n], sizeof rp->whys[0], "%s", why);
    }
    rp->n++;
    rp->nunsupported += unsupported;
}

static const char *base(const lr_rec_t *r) { return r ? strrchr(r->path, '/') + 1 : "(miss)"; }

static lr_req_t request(lr_op_t op, const char *method, const char *url, const char *sq_body)
{
    lr_req_t rq = {.op = op, .method = method, .url = url};
    bool https;
    if (!lr_url_hostport(url, rq.host, sizeof rq.host, &rq.port, &https)) rq.host[0] = 0;
    if (sq_body) {
        const char *t = dq(sq_body);
        rq.body = lr_json_parse(t, strlen(t));
        rq.body_invalid = !rq.body;
    }
    return rq;
}

static void test_store_match(void)
{
    current = "store";
    unsetenv("LLMREPLAY_TEST_ID"); lr_config_reload(); /* it narrows the candidates */
#define BODY_A "{'model':'m1','messages':[{'role':'user','content':'hi'}],'temperature':0.5}"
    /* a and b: one request recorded twice (spelled differently); c: another request. */
    write_text("store/a.json", REC("POST", CHAT_URL, "/v1/chat/completions", BODY_A, "{'body':{'id':'A'}}"));
    write_text("store/b.json", REC("post", CHAT_URL, "/chat/completions",
                                   "{ 'temperature' : 0.50000, 'messages':[{'content':'hi','role':'user'}],'model':'m1'}",
                                   "{'body':{'id':'B'}}"));
    write_text("store/sub/c.json", REC("POST", CHAT_URL, "/v1/chat/completions",
                                       "{'model':'m1','messages':[{'role':'user','content':'other'}],'max_tokens':5}",
                                       "{'body':{'id':'C'}}"));
    write_text("store/models.json", REC("GET", "http://localhost:8000/v1/models", "/v1/models", "null",
                                        "{'body':[{'__type__':'M','__data__':{'id':'m1','object':'model'}}]}"));
    write_text("store/bad.json", "{'request': {'method': 'POST'");
    write_text("store/unsup.json", REC("POST", "http://localhost:8000/v1/files", "/v1/files", "{}", "{'body':{}}"));
    write_text("store/notes.txt", "not a recording");
    write_text("store/.hidden.json", "{}");

    char dir[300];
    snprintf(dir, sizeof dir, "%s/store", tmp);
    char *dirs[] = {dir};
    reports_t rp = {0};
    lr_store_t *s = lr_store_build(dirs, 1, NULL, collect, &rp);
    if (!check(s != NULL, "store.build", "NULL store")) return;
    lr_store_info_t si = lr_store_info(s);
    check(si.nall == 4 && si.nbad == 1 && si.nunsupported == 1, "store.build.counts", "nall %d nbad %d nunsupported %d",
          si.nall, si.nbad, si.nunsupported);
    check(rp.n == 2 && rp.nunsupported == 1, "store.report.count", "%d reports (%d unsupported)", rp.n, rp.nunsupported);
    bool bad_seen = false, unsup_seen = false;
    for (int i = 0; i < rp.n && i < 8; i++) {
        if (strstr(rp.paths[i], "bad.json") && strstr(rp.whys[i], "JSON")) bad_seen = true;
        if (strstr(rp.paths[i], "unsup.json") && strstr(rp.whys[i], "unsupported")) unsup_seen = true;
    }
    check(bad_seen && unsup_seen, "store.report.reasons", "first report: %s: %s", rp.paths[0], rp.whys[0]);

    /* The same request, spelled differently again: a, then b, then b repeats. */
    lr_req_t rq = request(OP_CHAT, "POST", CHAT_URL,
                          "{'messages':[{'role':'user','content':'hi'}],'model':'m1','temperature':5e-1}");
    check_str("store.match.peek_first", base(lr_match(s, &rq, false)), "a.json");
    check_str("store.match.first", base(lr_match(s, &rq, true)), "a.json");
    check_str("store.match.peek_second", base(lr_match(s, &rq, false)), "b.json");
    check_str("store.match.second", base(lr_match(s, &rq, true)), "b.json");
    check_str("store.match.last_repeats", base(lr_match(s, &rq, true)), "b.json");
    check_str("store.match.last_repeats_again", base(lr_match(s, &rq, true)), "b.json");
    /* Any host may answer; its own serving order starts at the first recording. */
    lr_req_t other = request(OP_CHAT, "POST", "https://api.openai.com/v1/chat/completions", NULL);
    other.body = rq.body;
    check_str("store.match.other_host", base(lr_match(s, &other, true)), "a.json");
    /* /v1/completions is matched with chat (llama-stack recorded chat there). */
    rq.op = OP_COMPLETIONS;
    check_str("store.match.completions_class", base(lr_match(s, &rq, false)), "b.json");
    rq.op = OP_CHAT;
    rq.method = "GET";
    check(lr_match(s, &rq, false) == NULL, "store.match.method_counts", "GET matched a POST recording");
    J.Delete(rq.body);

    /* Recording rendered from the store's entry. */
    rq = request(OP_CHAT, "POST", CHAT_URL, "{'model':'m1','messages':[{'role':'user','content':'other'}],'max_tokens':5.0}");
    const lr_rec_t *hit = lr_match(s, &rq, true);
    check_str("store.match.c_in_subdir", base(hit), "c.json");
    if (hit) {
        lr_response_t *r = lr_render_recording(hit);
        check(r && r->nevents == 1 && !strcmp(r->events[0].data, "{\"id\":\"C\"}"), "store.render_hit", "body '%s'",
              r && r->nevents ? r->events[0].data : "");
        resp_free(r);
    }
    J.Delete(rq.body);

    /* Misses: the nearest recording and the first difference. */
    lr_nearest_t near;
    rq = request(OP_CHAT, "POST", CHAT_URL, "{'model':'m1','messages':[{'role':'user','content':'bye'}],'temperature':0.5}");
    check(lr_match(s, &rq, true) == NULL, "store.miss.content", "matched");
    lr_find_nearest(s, &rq, &near);
    check_str("store.nearest.file", base(near.nearest), "a.json");
    check(near.diff.count == 1 && near.candidates == 3, "store.nearest.counts", "diff count %d, candidates %d",
          near.diff.count, near.candidates);
    check_str("store.nearest.path", near.diff.path, "messages[0].content");
    check_str("store.nearest.mine", near.diff.mine, "\"bye\"");
    check_str("store.nearest.theirs", near.diff.theirs, "\"hi\"");
    buf_t msg;
    buf_init(&msg);
    lr_miss_message(&rq, &near, &msg);
    check_has("store.miss_message.names_file", msg.data, "a.json");
    check_has("store.miss_message.names_path", msg.data, "first difference at messages[0].content");
    buf_free(&msg);
    J.Delete(rq.body);

    rq = request(OP_CHAT, "POST", CHAT_URL, "{'model':'m1','messages':[{'role':'user','content':'other'}],'max_tokens':6}");
    lr_find_nearest(s, &rq, &near);
    check_str("store.nearest.other_file", base(near.nearest), "c.json");
    check_str("store.nearest.other_path", near.diff.path, "max_tokens");
    check(!strcmp(near.diff.mine, "6") && !strcmp(near.diff.theirs, "5"), "store.nearest.other_values", "mine %s theirs %s",
          near.diff.mine, near.diff.theirs);
    J.Delete(rq.body);

    rq = request(OP_CHAT, "POST", CHAT_URL, "{'model':'m1','messages':[{'role':'user','content':'hi'}]}");
    lr_find_nearest(s, &rq, &near);
    check(near.nearest && !strcmp(near.diff.path, "temperature") && !strcmp(near.diff.theirs, "0.5") &&
              !strcmp(near.diff.mine, "(absent)"),
          "store.nearest.absent_field", "nearest %s path %s mine %s", base(near.nearest), near.diff.path, near.diff.mine);
    J.Delete(rq.body);

    rq = request(OP_EMBEDDINGS, "POST", "http://localhost:8000/v1/embeddings", "{'model':'e','input':'x'}");
    lr_find_nearest(s, &rq, &near);
    check(near.nearest == NULL && near.candidates == 0, "store.nearest.none_of_op", "nearest %s", base(near.nearest));
    buf_init(&msg);
    lr_miss_message(&rq, &near, &msg);
    check_has("store.miss_message.no_recording_of_op", msg.data, "no recording of /v1/embeddings");
    buf_free(&msg);
    J.Delete(rq.body);

    rq = request(OP_CHAT, "POST", CHAT_URL, NULL);
    rq.body_invalid = true;
    check(lr_match(s, &rq, true) == NULL, "store.miss.invalid_body", "matched");

    /* Listings match whatever the method and body. */
    rq = request(OP_MODELS, "GET", "http://localhost:8000/v1/models", NULL);
    check_str("store.listing.get", base(lr_match(s, &rq, true)), "models.json");
    rq = request(OP_MODELS, "POST", "http://127.0.0.1:9/v1/models", "{'x':1}");
    check_str("store.listing.any_method_body", base(lr_match(s, &rq, true)), "models.json");
    J.Delete(rq.body);
    lr_store_free(s);

    /* LLMREPLAY_IGNORE applies to recordings and requests alike. */
    rp = (reports_t){0};
    s = lr_store_build(dirs, 1, "temperature,max_tokens", collect, &rp);
    rq = request(OP_CHAT, "POST", CHAT_URL, "{'model':'m1','messages':[{'role':'user','content':'hi'}],'temperature':0.9}");
    check_str("store.ignore.match", base(lr_match(s, &rq, true)), "a.json");
    J.Delete(rq.body);
    lr_store_free(s);

    char **v;
    int n = lr_split_dirs("a::b:", &v);
    check(n == 2 && !strcmp(v[0], "a") && !strcmp(v[1], "b"), "store.split_dirs", "%d dirs", n);
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
#undef BODY_A
}

/* Missing and empty directories are reported, not fatal. */
static void test_store_dirs(void)
{
    current = "store.dirs";
    reports_t rp = {0};
    char empty[300], missing[300];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    mkdir(empty, 0700);
    snprintf(missing, sizeof missing, "%s/nope", tmp);
    char *dirs[] = {missing, empty};
    lr_store_t *s = lr_store_build(dirs, 2, NULL, collect, &rp);
    check(s && lr_store_info(s).nall == 0 && rp.n == 2 && strstr(rp.whys[0], "does not exist") && strstr(rp.whys[1], "no *.json"),
          "store.dirs_reported", "%d reports: %s / %s", rp.n, rp.whys[0], rp.whys[1]);
    lr_store_free(s);
}

/* Run fn in a child: a sanitizer abort there fails one check, and the parent goes on to its
 * own leak check. The child exits 42 when its checks failed: sanitizers exit 1. */
static void run_isolated(const char *name, void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        fflush(stdout);
        _exit(failures ? 42 : 0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) { check(false, name, "fork: %s", strerror(errno)); return; }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 42) failures++; /* its "not ok" lines are printed */
    else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        check(false, name, "died (%s %d): a sanitizer report or crash, see stderr",
              WIFSIGNALED(st) ? "signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* ---- per-request helpers: number formatting without printf, the key memo ---------------- */

static void test_buf_addu_keymemo(void)
{
    static const struct { unsigned long long v; unsigned base; const char *want; } n[] = {
        {0, 10, "0"}, {0, 16, "0"}, {9, 10, "9"}, {10, 16, "a"}, {8499, 16, "2133"}, {200, 10, "200"},
        {18446744073709551615ULL, 10, "18446744073709551615"}, {18446744073709551615ULL, 16, "ffffffffffffffff"}};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
        buf_t b;
        buf_init(&b);
        buf_adds(&b, "x");
        buf_addu(&b, n[i].v, n[i].base);
        char want[40];
        snprintf(want, sizeof want, "x%s", n[i].want);
        char name[64];
        snprintf(name, sizeof name, "util.buf_addu_%s_base%u", n[i].want, n[i].base);
        check_str(name, b.data, want);
        buf_free(&b);
    }
    /* exact bytes only: the same length and ends with another middle, another method, URL,
     * ignore list, or a body over the limit are not found */
    char a[200], c[200];
    memset(a, 'a', sizeof a - 1), a[sizeof a - 1] = 0;
    memcpy(c, a, sizeof c);
    c[100] = 'c';
    lr_memo_key_t k = {11, 22, false}, got = {0};
    lr_keymemo_put(5, "POST", "http://h/v1/chat/completions", a, strlen(a), &k);
    check(lr_keymemo_get(5, "POST", "http://h/v1/chat/completions", a, strlen(a), &got) && got.h1 == 11 && got.h2 == 22,
          "keymemo.same_bytes_found", "h1 %llu h2 %llu", (unsigned long long)got.h1, (unsigned long long)got.h2);
    check(!lr_keymemo_get(5, "POST", "http://h/v1/chat/completions", c, strlen(c), &got), "keymemo.middle_differs", "found");
    check(!lr_keymemo_get(5, "PUT", "http://h/v1/chat/completions", a, strlen(a), &got), "keymemo.method_differs", "found");
    check(!lr_keymemo_get(5, "POST", "http://h/v1/completions", a, strlen(a), &got), "keymemo.url_differs", "found");
    check(!lr_keymemo_get(6, "POST", "http://h/v1/chat/completions", a, strlen(a), &got), "keymemo.ignore_list_differs", "found");
    check(!lr_keymemo_get(5, "POST", "http://h/v1/chat/completions", a, strlen(a) - 1, &got), "keymemo.length_differs", "found");
    char *big = malloc(20000);
    if (big) {
        memset(big, 'b', 20000);
        lr_keymemo_put(5, "POST", "http://h/x", big, 20000, &k);
        check(!lr_keymemo_get(5, "POST", "http://h/x", big, 20000, &got), "keymemo.large_body_not_kept", "found");
        free(big);
    }
    lr_keymemo_put(5, "GET", "http://h/v1/models", NULL, 0, &k);
    check(lr_keymemo_get(5, "GET", "http://h/v1/models", NULL, 0, &got), "keymemo.no_body", "not found");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines survive a crash */
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    setenv("LLMREPLAY_LOG", "error", 1); lr_config_reload(); /* the vanished-recording check warns on purpose */
    unsetenv("LLMREPLAY_IGNORE"); lr_config_reload();
    unsetenv("LLMREPLAY_MAX_FILE_MB"); lr_config_reload();
    snprintf(tmp, sizeof tmp, "%s/llmreplay-unit-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }

    test_jspan_valid();
    test_jspan_depth();
    test_jspan_access();
    test_jspan_minify_strdup();
    test_jspan_guard();
    test_canon();
    test_ops();
    test_buf_addu_keymemo();
    if (lr_cjson()) {
        test_render();
        test_load_failures();
        test_store_match();
        run_isolated("store.dirs_reported", test_store_dirs);
    }

    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return failures ? 1 : 0;
}
