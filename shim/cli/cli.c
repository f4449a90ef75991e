/* llmreplay: run a program with the shim, and inspect recording directories. */
#include "base/config.h"
#include "tls/cert.h"
#include "engine/engine.h"
#include "base/log.h"
#include "engine/index.h"
#include "engine/match.h"
#include "cli/tlsd.h"
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef LR_VERSION
#define LR_VERSION "0.1.0"
#endif

static const char *usage_main =
    "usage: llmreplay COMMAND [OPTIONS]\n"
    "\n"
    "Replay recorded LLM API answers (llama-stack recordings) to unmodified programs.\n"
    "\n"
    "commands:\n"
    "  run [-d DIR]... [--strict] [--mode M] -- CMD...  run CMD with the shim preloaded\n"
    "  ls [-d DIR]... [DIR...]                 one line per recording\n"
    "  check [-d DIR]... [DIR...]              validate recordings; exit 1 on any problem\n"
    "  explain [-d DIR]... REQUEST.json|-      which recording answers a request, or why none does\n"
    "  index [-d DIR]... [DIR...]              build the persistent index ahead of time\n"
    "  trace [-o FILE.jsonl] -- CMD...         run CMD live and log/summarize its HTTP exchanges\n"
    "  ca [--bundle]                           create llmreplay's local CA if needed, print its ca.pem\n"
    "\n"
    "Every command takes --help and --version. Environment: see README.md (LLMREPLAY_DIR, ...).\n";

static const char *usage_run =
    "usage: llmreplay run [-d DIR]... [--strict] [--ignore FIELDS] [--pace MS] [--mode MODE] [--record-dir DIR] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD with libllmreplay.so added to LD_PRELOAD (existing entries are kept).\n"
    "  -d, --dir DIR     recording directory (repeatable; sets LLMREPLAY_DIR, else it is inherited)\n"
    "  --strict          exit non-zero when any request had no recording, even if CMD succeeded\n"
    "  --ignore FIELDS   comma list of body fields left out of matching (LLMREPLAY_IGNORE)\n"
    "  --pace MS         space streamed events MS milliseconds apart (LLMREPLAY_PACE_MS)\n"
    "  --mode MODE       replay (default), record, record-if-missing, live or trace (LLMREPLAY_MODE)\n"
    "  --record-dir DIR  where recordings are written (LLMREPLAY_RECORD_DIR; default: the first -d)\n"
    "CMD trusts llmreplay's local CA, for the HTTPS llmreplay answers itself (Node, static TLS): run sets\n"
    "NODE_EXTRA_CA_CERTS to its ca.pem, and SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE to\n"
    "ca-bundle.pem (the system CAs plus llmreplay's); one already set names a copy of its file with\n"
    "llmreplay's CA appended (see llmreplay ca).\n"
    "Exit status: CMD's; with --strict and misses, CMD's if non-zero, else 3.\n";

static const char *usage_ls =
    "usage: llmreplay ls [-d DIR]... [DIR...]\n"
    "\n"
    "One line per recording: operation, model, stream or json, status, first words of the answer, file.\n";

static const char *usage_check =
    "usage: llmreplay check [-d DIR]... [DIR...]\n"
    "\n"
    "Load and render every recording; print each problem with its file. Exit 1 if there is any.\n";

static const char *usage_explain =
    "usage: llmreplay explain [-d DIR]... [--endpoint PATH] REQUEST.json|-\n"
    "\n"
    "REQUEST is a request object {\"method\",\"url\" or \"endpoint\",\"body\"}, a recording file, a line of\n"
    "LLMREPLAY_MISS_LOG, or (with --endpoint) a bare request body. Prints the recording that answers it,\n"
    "or the nearest one and the first difference. Exit 0 on a match, 1 on a miss, 2 on bad input.\n";

static int help_or_version(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 0; }
        if (!strcmp(argv[i], "--version")) { printf("llmreplay %s\n", LR_VERSION); return 0; }
    }
    return -1;
}

typedef struct {
    char **dirs;
    int n;
} dirs_t;

static void dirs_add(dirs_t *d, const char *p)
{
    char **v = realloc(d->dirs, sizeof *v * (size_t)(d->n + 1));
    if (!v) exit(2);
    d->dirs = v;
    d->dirs[d->n++] = strdup(p);
}

/* Directories from -d options and positional arguments, else LLMREPLAY_DIR. */
static int parse_dirs(int argc, char **argv, dirs_t *d, const char **endpoint, const char **positional)
{
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-d") || !strcmp(argv[i], "--dir")) && i + 1 < argc) dirs_add(d, argv[++i]);
        else if (!strncmp(argv[i], "--dir=", 6)) dirs_add(d, argv[i] + 6);
        else if (endpoint && !strcmp(argv[i], "--endpoint") && i + 1 < argc) *endpoint = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "llmreplay: unknown option %s (see --help)\n", argv[i]);
            return -1;
        } else if (positional) *positional = argv[i];
        else dirs_add(d, argv[i]);
    }
    if (!d->n) {
        char **v;
        int n = lr_split_dirs(lr_cfg()->dir, &v);
        for (int i = 0; i < n; i++) { dirs_add(d, v[i]); free(v[i]); }
        free(v);
    }
    if (!d->n) {
        fprintf(stderr, "llmreplay: no recording directory: pass -d DIR or set LLMREPLAY_DIR\n");
        return -1;
    }
    return 0;
}

/* ---- ls -------------------------------------------------------------------------------- */

static void add_text(buf_t *t, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring) buf_adds(t, v->valuestring);
}

/* The strings at a dotted path of a payload ("results.*.text": * is every array item). */
static void path_text(const cJSON *j, const char *path, size_t n, buf_t *t)
{
    if (!j || !n) { add_text(t, j); return; }
    const char *dot = memchr(path, '.', n);
    size_t l = dot ? (size_t)(dot - path) : n, rn = dot ? n - l - 1 : 0;
    const char *rest = dot ? dot + 1 : path + n;
    if (l == 1 && *path == '*') {
        for (const cJSON *c = cJSON_IsArray(j) ? j->child : NULL; c; c = c->next) path_text(c, rest, rn, t);
        return;
    }
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(l < sizeof key ? l : sizeof key - 1), path);
    if (cJSON_IsObject(j)) path_text(J.GetObjectItemCaseSensitive(j, key), rest, rn, t);
}

/* The human-readable text of one payload: the operation's own fields (its ls_text), then the
 * common ones: message/delta content, Ollama's response… */
static void payload_text(const cJSON *j, lr_op_t op, buf_t *t, int *nemb, int *dim, int *nmodels)
{
    const char *tok;
    size_t l;
    for (const char *p = lr_op_info(op)->ls_text; p && lr_list_next(&p, &tok, &l);) path_text(j, tok, l, t);
    const cJSON *choices = J.GetObjectItemCaseSensitive(j, "choices");
    for (const cJSON *c = cJSON_IsArray(choices) ? choices->child : NULL; c; c = c->next) {
        const cJSON *m = J.GetObjectItemCaseSensitive(c, "message");
        const cJSON *d = J.GetObjectItemCaseSensitive(c, "delta");
        add_text(t, J.GetObjectItemCaseSensitive(m ? m : d, "content"));
        add_text(t, J.GetObjectItemCaseSensitive(c, "text"));
    }
    add_text(t, J.GetObjectItemCaseSensitive(j, "response"));
    const cJSON *msg = J.GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsObject(msg)) add_text(t, J.GetObjectItemCaseSensitive(msg, "content"));
    if (cJSON_IsString(msg)) add_text(t, msg);
    const cJSON *type = J.GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(type) && strstr(type->valuestring, "output_text.delta")) add_text(t, J.GetObjectItemCaseSensitive(j, "delta"));
    const cJSON *delta = J.GetObjectItemCaseSensitive(j, "delta");
    if (cJSON_IsObject(delta)) add_text(t, J.GetObjectItemCaseSensitive(delta, "text"));
    const cJSON *content = J.GetObjectItemCaseSensitive(j, "content");
    for (const cJSON *c = cJSON_IsArray(content) ? content->child : NULL; c; c = c->next)
        add_text(t, J.GetObjectItemCaseSensitive(c, "text"));
    const cJSON *err = J.GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsObject(err)) add_text(t, J.GetObjectItemCaseSensitive(err, "message"));
    else add_text(t, err);
    const cJSON *data = J.GetObjectItemCaseSensitive(j, "data");
    for (const cJSON *c = cJSON_IsArray(data) ? data->child : NULL; c; c = c->next) {
        const cJSON *e = J.GetObjectItemCaseSensitive(c, "embedding");
        if (cJSON_IsArray(e)) { (*nemb)++; *dim = J.GetArraySize(e); }
        if (J.GetObjectItemCaseSensitive(c, "object") && cJSON_IsString(J.GetObjectItemCaseSensitive(c, "id"))) (*nmodels)++;
    }
    const cJSON *embs = J.GetObjectItemCaseSensitive(j, "embeddings");
    for (const cJSON *c = cJSON_IsArray(embs) ? embs->child : NULL; c; c = c->next) { (*nemb)++; *dim = J.GetArraySize(c); }
    const cJSON *emb = J.GetObjectItemCaseSensitive(j, "embedding");
    if (cJSON_IsArray(emb)) { (*nemb)++; *dim = J.GetArraySize(emb); }
    const cJSON *models = J.GetObjectItemCaseSensitive(j, "models");
    if (cJSON_IsArray(models)) *nmodels += J.GetArraySize(models);
    const cJSON *ver = J.GetObjectItemCaseSensitive(j, "version");
    if (cJSON_IsString(ver)) { buf_adds(t, "version "); add_text(t, ver); }
}

/* Summary of an answer: its first words, or what it holds. */
static void summarize(const lr_response_t *r, lr_op_t op, char *out, size_t cap)
{
    buf_t t;
    buf_init(&t);
    int nemb = 0, dim = 0, nmodels = 0;
    for (int i = 0; i < r->nevents; i++) {
        const char *p = r->events[i].data, *end = p + r->events[i].len;
        /* an event may be "event: x\ndata: {...}\n\n", "data: {...}\n\n" or "{...}\n" */
        const char *d = strstr(p, "data: ");
        if (d && d < end) p = d + 6;
        const char *e = memchr(p, '\n', (size_t)(end - p));
        cJSON *j = lr_json_parse(p, e ? (size_t)(e - p) : (size_t)(end - p));
        if (j) { payload_text(j, op, &t, &nemb, &dim, &nmodels); J.Delete(j); }
        if (t.len > 200) break;
    }
    if (nemb) snprintf(out, cap, "[%d embedding%s of %d dims]", nemb, nemb == 1 ? "" : "s", dim);
    else if (nmodels && !t.len) snprintf(out, cap, "[%d models]", nmodels);
    else {
        for (size_t i = 0; i < t.len; i++)
            if (t.data[i] == '\n' || t.data[i] == '\r' || t.data[i] == '\t') t.data[i] = ' ';
        size_t n = t.len;
        if (n > 60) {
            n = 60;
            while (n > 0 && ((unsigned char)t.data[n] & 0xC0) == 0x80) n--; /* whole UTF-8 characters */
        }
        snprintf(out, cap, "\"%.*s%s\"", (int)n, t.data ? t.data : "", n < t.len ? "…" : "");
    }
    buf_free(&t);
}

typedef struct {
    int problems, notes;
    bool print;
} report_t;

static void report_cb(void *ctx, const char *path, const char *why, bool unsupported)
{
    report_t *r = ctx;
    if (unsupported) r->notes++;
    else r->problems++;
    if (r->print) printf("%s: %s%s\n", path, unsupported ? "note: " : "", why);
}

/* The store for a command: the persistent index when it is current, checked file by file
 * (a CLI can afford the stats), else a fresh scan that also refreshes the index. */
static lr_store_t *cli_store(dirs_t *d, report_t *rep)
{
    report_t quiet = *rep;
    quiet.print = false;
    lr_store_t *s = lr_store_open(d->dirs, d->n, lr_ignore_env(), report_cb, &quiet, true);
    if (s && lr_store_info(s).from_cache && lr_store_stale(s)) {
        lr_store_free(s);
        s = lr_store_open(d->dirs, d->n, lr_ignore_env(), report_cb, rep, false);
    } else if (s) {
        lr_store_report(s, report_cb, rep);
    }
    return s;
}

static int cmd_ls(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_ls);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
    report_t rep = {0, 0, false};
    lr_store_t *s = cli_store(&d, &rep);
    if (!s) return 2;
    int nall;
    lr_rec_t **all = lr_store_all(s, &nall);
    for (int i = 0; i < nall; i++) {
        lr_rec_t *r = all[i];
        lr_response_t *resp = lr_render_recording(r);
        char sum[256] = "";
        if (resp) summarize(resp, r->op, sum, sizeof sum);
        printf("%-20s %-28s %-6s %3d  %s  %s\n", lr_op_info(r->op)->endpoint, *r->model ? r->model : "-",
               r->streaming ? "stream" : "json", r->status, sum, r->path);
        if (resp) { resp->owned = true; lr_response_free(resp); }
    }
    if (rep.problems || rep.notes)
        fprintf(stderr, "llmreplay: %d file(s) skipped; run llmreplay check for details\n", rep.problems + rep.notes);
    lr_store_free(s);
    return 0;
}

/* ---- check ----------------------------------------------------------------------------- */

static int cmd_check(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_check);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
    report_t rep = {0, 0, true};
    lr_store_t *s = cli_store(&d, &rep);
    if (!s) return 2;
    int streams = 0, nall;
    lr_rec_t **all = lr_store_all(s, &nall);
    for (int i = 0; i < nall; i++) {
        lr_rec_t *r = all[i];
        lr_response_t *resp = lr_render_recording(r);
        if (!resp || (!resp->rec)) { printf("%s: its answer cannot be rendered\n", r->path); rep.problems++; }
        else if (r->streaming && !resp->stream && !r->exception) {
            printf("%s: is_streaming is true but the body is not a list of chunks\n", r->path);
            rep.problems++;
        }
        streams += r->streaming;
        if (resp) { resp->owned = true; lr_response_free(resp); }
    }
    printf("%d recording%s (%d streamed), %d problem%s, %d unsupported\n", nall, nall == 1 ? "" : "s", streams,
           rep.problems, rep.problems == 1 ? "" : "s", rep.notes);
    lr_store_free(s);
    return rep.problems ? 1 : 0;
}

/* ---- explain --------------------------------------------------------------------------- */

static int cmd_explain(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_explain);
    if (h >= 0) return h;
    dirs_t d = {0};
    const char *endpoint = NULL, *input = NULL;
    if (parse_dirs(argc, argv, &d, &endpoint, &input)) return 2;
    if (!input) { fprintf(stderr, "llmreplay: explain needs a request file or - (see --help)\n"); return 2; }
    size_t len = 0;
    char *text = NULL;
    if (!strcmp(input, "-")) {
        buf_t b;
        buf_init(&b);
        char chunk[65536];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) buf_add(&b, chunk, n);
        text = buf_steal(&b, &len);
    } else {
        text = lr_read_file(input, lr_max_file_bytes(), &len);
    }
    if (!text) { fprintf(stderr, "llmreplay: cannot read %s: %s\n", input, strerror(errno)); return 2; }
    if (!lr_cjson()) return 2;
    cJSON *j = lr_json_parse(text, len);
    if (!j) { fprintf(stderr, "llmreplay: %s is not valid JSON\n", input); return 2; }
    cJSON *rq = J.GetObjectItemCaseSensitive(j, "request");
    if (!cJSON_IsObject(rq)) rq = j;
    const cJSON *url = J.GetObjectItemCaseSensitive(rq, "url"), *ep = J.GetObjectItemCaseSensitive(rq, "endpoint");
    const cJSON *method = J.GetObjectItemCaseSensitive(rq, "method"), *body = J.GetObjectItemCaseSensitive(rq, "body");
    const char *target = endpoint ? endpoint
                       : cJSON_IsString(ep) && lr_op_of_endpoint(ep->valuestring) ? ep->valuestring
                       : cJSON_IsString(url) ? url->valuestring : NULL;
    if (endpoint) body = j;
    if (!target || !lr_op_of_endpoint(target)) {
        fprintf(stderr, "llmreplay: %s names no LLM endpoint: give \"url\" or \"endpoint\", or use --endpoint PATH\n", input);
        return 2;
    }
    lr_req_t req = {.op = lr_op_of_endpoint(target), .method = cJSON_IsString(method) ? method->valuestring : "POST",
                    .url = cJSON_IsString(url) ? url->valuestring : target, .body = (cJSON *)body};
    bool https;
    if (!lr_url_hostport(req.url, req.host, sizeof req.host, &req.port, &https)) req.host[0] = 0;
    report_t rep = {0, 0, false};
    lr_store_t *s = cli_store(&d, &rep);
    if (!s) return 2;
    const lr_rec_t *hit = lr_match(s, &req, false);
    int rc;
    if (hit) {
        printf("match: %s\n", hit->path);
        uint64_t h1, h2;
        lr_match_key(req.op, req.method, req.body, lr_store_ignore(s), &h1, &h2);
        int n;
        lr_rec_t *const *recs = lr_store_find(s, h1, h2, &n);
        if (n > 1) {
            printf("%d recordings answer this request, in this order (the last one repeats):\n", n);
            for (int i = 0; i < n; i++) printf("  %d. %s\n", i + 1, recs[i]->path);
        }
        rc = 0;
    } else {
        lr_nearest_t n;
        lr_find_nearest(s, &req, &n);
        buf_t m;
        buf_init(&m);
        lr_miss_message(&req, &n, &m);
        printf("%s\n", m.data ? m.data : "no match");
        buf_free(&m);
        rc = 1;
    }
    lr_store_free(s);
    J.Delete(j);
    free(text);
    return rc;
}

/* ---- index ----------------------------------------------------------------------------- */

static const char *usage_index =
    "usage: llmreplay index [-d DIR]... [DIR...]\n"
    "\n"
    "Build the persistent index of the recording directories now (e.g. in a CI step), so that the\n"
    "first replaying process does not pay for it. Prints counts, timing and the index file.\n";

static int cmd_index(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_index);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
    char *file = lr_index_file(lr_index_key(d.dirs, d.n, lr_ignore_env()));
    if (!file) { fprintf(stderr, "llmreplay: the index is disabled (LLMREPLAY_CACHE=off)\n"); return 2; }
    report_t rep = {0, 0, true};
    double t0 = lr_now();
    lr_store_t *s = lr_store_open(d.dirs, d.n, lr_ignore_env(), report_cb, &rep, false);
    double ms = (lr_now() - t0) * 1000;
    if (!s) return 2;
    struct stat st;
    long long size = stat(file, &st) == 0 ? (long long)st.st_size : -1;
    if (size < 0) fprintf(stderr, "llmreplay: could not write %s (is the cache directory writable?)\n", file);
    printf("indexed %d recordings (%d problems, %d unsupported) from %d director%s in %.1f ms\n", lr_store_size(s),
           lr_store_info(s).nbad, lr_store_info(s).nunsupported, d.n, d.n == 1 ? "y" : "ies", ms);
    if (size >= 0) printf("index: %s (%lld bytes)\n", file, size);
    lr_store_free(s);
    free(file);
    return size < 0 ? 1 : 0;
}

/* ---- run ------------------------------------------------------------------------------- */

static char *find_library(void)
{
    const char *env = lr_cfg()->lib;
    if (env) return strdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return NULL;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return NULL;
    *slash = 0;
    static const char *rel[] = {"libllmreplay.so", "../lib/llmreplay/libllmreplay.so", "../lib/libllmreplay.so"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", self, rel[i]);
        if (access(p, R_OK) == 0) return realpath(p, NULL);
    }
    return NULL;
}

static char *which(const char *cmd)
{
    if (strchr(cmd, '/')) return access(cmd, X_OK) == 0 ? strdup(cmd) : NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%.*s/%s", (int)l, path, cmd);
        if (l && access(p, X_OK) == 0) return strdup(p);
        path += l;
        if (*path) path++;
    }
    return NULL;
}

/* Say so when LD_PRELOAD cannot work for this program. */
static void warn_unhookable(const char *cmd)
{
    char *p = which(cmd);
    if (!p) return;
    struct stat st;
    if (stat(p, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
        fprintf(stderr, "llmreplay: warning: %s is setuid/setgid: the loader ignores LD_PRELOAD for it, nothing will be replayed\n", p);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    free(p);
    if (fd < 0) return;
    Elf64_Ehdr eh;
    if (read(fd, &eh, sizeof eh) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
        eh.e_ident[EI_CLASS] == ELFCLASS64) {
        bool interp = false;
        for (int i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (Elf64_Off)i * eh.e_phentsize)) != (ssize_t)sizeof ph) break;
            if (ph.p_type == PT_INTERP) interp = true;
        }
        if (!interp)
            fprintf(stderr, "llmreplay: warning: %s is statically linked: LD_PRELOAD has no effect on it, nothing will be replayed\n", cmd);
        /* Go programs make their own system calls: look for the Go build id note. */
        char blk[65536];
        ssize_t n = pread(fd, blk, sizeof blk, 0);
        if (n > 0 && memmem(blk, (size_t)n, "Go build", 8))
            fprintf(stderr, "llmreplay: warning: %s is a Go program: its HTTP client bypasses libc and libcurl, nothing will be replayed\n", cmd);
    }
    close(fd);
}

/* llmreplay's CA in the cache directory, created on first use; dir receives the directory. */
static bool ensure_ca(char *dir, size_t cap, char *err, size_t errcap)
{
    if (!lr_cache_dir(dir, cap)) {
        snprintf(err, errcap, "no cache directory for llmreplay's CA: set LLMREPLAY_CACHE_DIR to a writable directory");
        return false;
    }
    lr_issuer_t *is = lr_issuer_persistent(lr_crypto_linked(), dir, err, errcap);
    lr_issuer_free(is);
    return is != NULL;
}

/* dir/trust-HASH.pem: the file the user's variable names, plus llmreplay's CA. NULL if unreadable. */
static char *combined_trust(const char *dir, const char *user_file, const char *ca)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/trust-%016llx.pem", dir, (unsigned long long)lr_hash64(user_file, strlen(user_file), 7));
    return lr_trust_bundle(user_file, ca, path) ? strdup(path) : NULL;
}

/* CMD trusts the CA of the TLS helper: each CA variable names llmreplay's file when unset, or a
 * copy of the user's file with llmreplay's CA appended when set (the user's trust is kept).
 * And the shim finds the helper's binary. Set here, before the fork: this process only waits. */
static void export_ca(void)
{
    char dir[4096], err[1024], ca[4200], bundle[4200];
    if (ensure_ca(dir, sizeof dir, err, sizeof err)) {
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", dir);
        static const char *vars[] = {"NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"};
        for (size_t i = 0; i < 4; i++) {
            const char *mine = i == 0 ? ca : bundle, *user = getenv(vars[i]);
            if (!user || !*user) { if (access(mine, R_OK) == 0) setenv(vars[i], mine, 1); continue; }
            if (!strcmp(user, mine) || !strncmp(user, dir, strlen(dir))) continue; /* ours already */
            char *both = combined_trust(dir, user, ca);
            if (both) setenv(vars[i], both, 1);
            else fprintf(stderr, "llmreplay: warning: cannot read %s=%s, so llmreplay's CA is not added to it: clients "
                                 "whose TLS llmreplay terminates (Node, static TLS) will reject its certificate\n", vars[i], user);
            free(both);
        }
    } else {
        fprintf(stderr, "llmreplay: warning: %s; clients whose TLS llmreplay terminates (Node, static TLS) will reject "
                        "its certificate\n", err);
    }
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self)) setenv("LLMREPLAY_BIN", self, 0);
}

static pid_t child;
static void forward(int sig) { if (child > 0) kill(child, sig); }

static int cmd_run(int argc, char **argv)
{
    int sep = -1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--")) { sep = i; break; }
    int optend = sep < 0 ? argc : sep;
    int h = help_or_version(argc, argv, usage_run);
    if (h >= 0) return h;
    bool strict = false;
    buf_t dirs;
    buf_init(&dirs);
    int first_cmd = sep >= 0 ? sep + 1 : -1;
    for (int i = 1; i < optend; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < optend ? argv[i + 1] : NULL;
        if ((!strcmp(a, "-d") || !strcmp(a, "--dir")) && val) {
            char *abs = realpath(val, NULL); /* the program may chdir */
            if (dirs.len) buf_addc(&dirs, ':');
            buf_adds(&dirs, abs ? abs : val);
            free(abs);
            i++;
        } else if (!strcmp(a, "--strict")) strict = true;
        else if (!strcmp(a, "--ignore") && val) { setenv("LLMREPLAY_IGNORE", val, 1); i++; }
        else if (!strcmp(a, "--pace") && val) { setenv("LLMREPLAY_PACE_MS", val, 1); i++; }
        else if (!strcmp(a, "--mode") && val) {
            static const char *modes[] = {"replay", "record", "record-if-missing", "live", "trace"};
            bool ok = false;
            for (int k = 0; k < 5; k++) ok |= !strcmp(val, modes[k]);
            if (!ok) {
                fprintf(stderr, "llmreplay: unknown --mode %s (replay, record, record-if-missing, live, trace)\n", val);
                return 2;
            }
            setenv("LLMREPLAY_MODE", val, 1);
            i++;
        } else if (!strcmp(a, "--record-dir") && val) { setenv("LLMREPLAY_RECORD_DIR", val, 1); i++; } else if (sep < 0 && a[0] != '-') { first_cmd = i; break; }
        else { fprintf(stderr, "llmreplay: unknown run option %s (see llmreplay run --help)\n", a); return 2; }
    }
    if (first_cmd < 0 || first_cmd >= argc) {
        fprintf(stderr, "llmreplay: run needs a command: llmreplay run -d DIR -- CMD [ARGS...]\n");
        return 2;
    }
    char *lib = find_library();
    if (!lib) {
        fprintf(stderr, "llmreplay: cannot find libllmreplay.so next to the llmreplay binary; set LLMREPLAY_LIB\n");
        return 2;
    }
    if (dirs.len) setenv("LLMREPLAY_DIR", dirs.data, 1);
    else if (!lr_cfg()->dir && (!getenv("LLMREPLAY_MODE") || !strcmp(getenv("LLMREPLAY_MODE"), "replay")))
        fprintf(stderr, "llmreplay: warning: no -d DIR and no LLMREPLAY_DIR: every request will miss\n");
    buf_free(&dirs);
    const char *pre = getenv("LD_PRELOAD");
    if (!pre || !strstr(pre, lib)) {
        buf_t p;
        buf_init(&p);
        if (pre && *pre) { buf_adds(&p, pre); buf_addc(&p, ' '); }
        buf_adds(&p, lib);
        setenv("LD_PRELOAD", p.data, 1);
        buf_free(&p);
    }
    free(lib);
    warn_unhookable(argv[first_cmd]);
    export_ca();
    char strict_file[] = "/tmp/llmreplay-strict-XXXXXX";
    if (strict) {
        int fd = mkstemp(strict_file);
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot create a temporary file: %s\n", strerror(errno)); return 2; }
        close(fd);
        setenv("LLMREPLAY__STRICT_FILE", strict_file, 1);
    }
    fflush(NULL);
    child = fork();
    if (child < 0) { fprintf(stderr, "llmreplay: fork: %s\n", strerror(errno)); return 2; }
    if (child == 0) {
        execvp(argv[first_cmd], argv + first_cmd);
        fprintf(stderr, "llmreplay: cannot run %s: %s\n", argv[first_cmd], strerror(errno));
        _exit(127);
    }
    signal(SIGINT, forward);
    signal(SIGTERM, forward);
    signal(SIGHUP, forward);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (strict) {
        struct stat sb;
        int misses = 0;
        if (stat(strict_file, &sb) == 0 && sb.st_size > 0) {
            size_t len;
            char *t = lr_read_file(strict_file, (size_t)1 << 30, &len);
            for (size_t i = 0; t && i < len; i++) misses += t[i] == '\n';
            free(t);
        }
        unlink(strict_file);
        if (misses) {
            fprintf(stderr, "llmreplay: --strict: %d request%s had no recording (see the messages above)\n", misses,
                    misses == 1 ? "" : "s");
            if (!rc) rc = 3;
        }
    }
    return rc;
}

/* ---- trace ----------------------------------------------------------------------------- */

static const char *usage_trace =
    "usage: llmreplay trace [-o FILE.jsonl] [run options] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD against the real APIs (LLMREPLAY_MODE=trace) and log every HTTP exchange it makes\n"
    "through libcurl, and every exchange with an intercepted host through its sockets: method, url,\n"
    "status, timings, request and response bodies, streams as events, secrets redacted. At exit,\n"
    "a table: requests per host, endpoint and model, tokens from usage fields, latency p50/p95,\n"
    "bytes, errors. -o keeps the log (JSON lines); without it a temporary file is used.\n";

typedef struct {
    char key[200];
    int n, errors;
    double ms[4096];
    int nms;
    long long bytes_in, bytes_out, prompt, completion;
} agg_t;

static agg_t *agg_find(agg_t *v, int *n, int cap, const char *key)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp(v[i].key, key)) return &v[i];
    if (*n >= cap) return NULL;
    memset(&v[*n], 0, sizeof v[*n]);
    snprintf(v[*n].key, sizeof v[*n].key, "%s", key);
    return &v[(*n)++];
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = o ? J.GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Tokens from an answer's usage fields (OpenAI, Anthropic, Ollama), streamed or not. */
static void tokens_of(const cJSON *obj, long long *p, long long *c)
{
    const cJSON *u = J.GetObjectItemCaseSensitive(obj, "usage");
    if (!cJSON_IsObject(u)) {
        const cJSON *m = J.GetObjectItemCaseSensitive(obj, "message"); /* anthropic message_start */
        u = cJSON_IsObject(m) ? J.GetObjectItemCaseSensitive(m, "usage") : NULL;
    }
    if (cJSON_IsObject(u)) {
        *p += (long long)(num(u, "prompt_tokens") + num(u, "input_tokens"));
        *c += (long long)(num(u, "completion_tokens") + num(u, "output_tokens"));
    }
    *p += (long long)num(obj, "prompt_eval_count");
    *c += (long long)num(obj, "eval_count");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(agg_t *a, double q)
{
    if (!a->nms) return 0;
    qsort(a->ms, (size_t)a->nms, sizeof a->ms[0], cmp_double);
    int i = (int)(q * (a->nms - 1) + 0.5);
    return a->ms[i];
}

static void trace_summary(const char *file)
{
    size_t len;
    char *t = lr_read_file(file, (size_t)1 << 30, &len);
    if (!t || !lr_cjson()) { fprintf(stderr, "llmreplay trace: no exchanges were logged\n"); free(t); return; }
    static agg_t hosts[64], eps[128];
    int nh = 0, ne = 0, total = 0, errors = 0;
    for (char *line = t; line && *line;) {
        char *nl = strchr(line, '\n');
        cJSON *j = lr_json_parse(line, nl ? (size_t)(nl - line) : strlen(line));
        line = nl ? nl + 1 : NULL;
        if (!j) continue;
        total++;
        const cJSON *h = J.GetObjectItemCaseSensitive(j, "host"), *ep = J.GetObjectItemCaseSensitive(j, "endpoint");
        const cJSON *rq = J.GetObjectItemCaseSensitive(j, "request");
        const cJSON *model = cJSON_IsObject(rq) ? J.GetObjectItemCaseSensitive(rq, "model") : NULL;
        int status = (int)num(j, "status");
        bool err = status >= 400 || status == 0 || J.GetObjectItemCaseSensitive(j, "error");
        errors += err;
        char ek[200];
        snprintf(ek, sizeof ek, "%s %s", cJSON_IsString(ep) && *ep->valuestring ? ep->valuestring : "(other)",
                 cJSON_IsString(model) ? model->valuestring : "-");
        agg_t *as[2] = {agg_find(hosts, &nh, 64, cJSON_IsString(h) ? h->valuestring : "?"), agg_find(eps, &ne, 128, ek)};
        long long p = 0, c = 0;
        const cJSON *resp = J.GetObjectItemCaseSensitive(j, "response"), *evs = J.GetObjectItemCaseSensitive(j, "events");
        if (cJSON_IsObject(resp)) tokens_of(resp, &p, &c);
        for (const cJSON *e = cJSON_IsArray(evs) ? evs->child : NULL; e; e = e->next)
            if (cJSON_IsObject(e)) tokens_of(e, &p, &c);
        for (int k = 0; k < 2; k++) {
            agg_t *a = as[k];
            if (!a) continue;
            a->n++;
            a->errors += err;
            if (a->nms < 4096) a->ms[a->nms++] = num(j, "ms");
            a->bytes_in += (long long)num(j, "bytes_in");
            a->bytes_out += (long long)num(j, "bytes_out");
            a->prompt += p;
            a->completion += c;
        }
        J.Delete(j);
    }
    free(t);
    fprintf(stderr, "\nllmreplay trace: %d exchange%s, %d error%s (log: %s)\n", total, total == 1 ? "" : "s", errors,
            errors == 1 ? "" : "s", file);
    fprintf(stderr, "%-40s %8s %6s %9s %9s %10s %10s\n", "host", "requests", "errors", "p50 ms", "p95 ms", "bytes in", "bytes out");
    for (int i = 0; i < nh; i++)
        fprintf(stderr, "%-40s %8d %6d %9.1f %9.1f %10lld %10lld\n", hosts[i].key, hosts[i].n, hosts[i].errors,
                pct(&hosts[i], 0.5), pct(&hosts[i], 0.95), hosts[i].bytes_in, hosts[i].bytes_out);
    fprintf(stderr, "%-50s %8s %6s %9s %9s %8s %8s\n", "endpoint model", "requests", "errors", "p50 ms", "p95 ms", "prompt", "complet.");
    for (int i = 0; i < ne; i++)
        fprintf(stderr, "%-50s %8d %6d %9.1f %9.1f %8lld %8lld\n", eps[i].key, eps[i].n, eps[i].errors, pct(&eps[i], 0.5),
                pct(&eps[i], 0.95), eps[i].prompt, eps[i].completion);
}

static int cmd_trace(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_trace);
    if (h >= 0) return h;
    int sep = -1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--")) { sep = i; break; }
    char tmpl[] = "/tmp/llmreplay-trace-XXXXXX";
    const char *file = NULL;
    char **args = calloc((size_t)argc + 1, sizeof *args);
    int n = 0;
    args[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (i < (sep < 0 ? argc : sep) && !strcmp(argv[i], "-o") && i + 1 < argc) { file = argv[++i]; continue; }
        args[n++] = argv[i];
    }
    if (!file) {
        int fd = mkstemp(tmpl);
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot create a temporary file\n"); return 2; }
        close(fd);
        file = tmpl;
    } else {
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644); /* a fresh log per run */
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot write %s: %s\n", file, strerror(errno)); return 2; }
        close(fd);
    }
    char abs[PATH_MAX];
    if (!realpath(file, abs)) snprintf(abs, sizeof abs, "%s", file);
    setenv("LLMREPLAY_MODE", "trace", 1);
    setenv("LLMREPLAY_TRACE_FILE", abs, 1);
    int rc = cmd_run(n, args);
    trace_summary(abs);
    if (file == tmpl) unlink(tmpl);
    free(args);
    return rc;
}

/* ---- ca -------------------------------------------------------------------------------- */

static const char *usage_ca =
    "usage: llmreplay ca [--bundle]\n"
    "\n"
    "Create llmreplay's local CA on first use, in the cache directory (LLMREPLAY_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/llmreplay or ~/.cache/llmreplay), and print the path of its certificate ca.pem: the\n"
    "HTTPS llmreplay answers itself (Node, static TLS) is signed by it. `llmreplay run` sets it up for CMD;\n"
    "elsewhere, e.g. NODE_EXTRA_CA_CERTS=$(llmreplay ca).\n"
    "  --bundle  print ca-bundle.pem instead: the system's CAs plus llmreplay's (for SSL_CERT_FILE)\n";

static int cmd_ca(int argc, char **argv)
{
    int h = help_or_version(argc, argv, usage_ca);
    if (h >= 0) return h;
    bool bundle = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bundle")) bundle = true;
        else { fprintf(stderr, "llmreplay: unknown ca option %s (see llmreplay ca --help)\n", argv[i]); return 2; }
    }
    char dir[4096], err[1024], path[4200];
    if (!ensure_ca(dir, sizeof dir, err, sizeof err)) { fprintf(stderr, "llmreplay: %s\n", err); return 1; }
    snprintf(path, sizeof path, "%s/%s", dir, bundle ? "ca-bundle.pem" : "ca.pem");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "llmreplay: cannot write %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)\n", path,
                strerror(errno));
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fputs(usage_main, stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) { fputs(usage_main, stdout); return 0; }
    if (!strcmp(c, "--version")) { printf("llmreplay %s\n", LR_VERSION); return 0; }
    if (!strcmp(c, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(c, "ls")) return cmd_ls(argc - 1, argv + 1);
    if (!strcmp(c, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(c, "explain")) return cmd_explain(argc - 1, argv + 1);
    if (!strcmp(c, "index")) return cmd_index(argc - 1, argv + 1);
    if (!strcmp(c, "trace")) return cmd_trace(argc - 1, argv + 1);
    if (!strcmp(c, "ca")) return cmd_ca(argc - 1, argv + 1);
    if (!strcmp(c, "tls-helper")) return lr_tlsd_main(3); /* started by the shim, not listed */
    fprintf(stderr, "llmreplay: unknown command %s\n\n%s", c, usage_main);
    return 2;
}
