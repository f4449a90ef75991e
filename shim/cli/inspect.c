/* The commands that read recording directories: ls, check, explain, index. */
#include "cli/cli.h"
#include "base/config.h"
#include "base/log.h"
#include "engine/engine.h"
#include "engine/gemini.h"
#include "engine/index.h"
#include "engine/match.h"
#include "engine/raw.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
/* Dimensions of a vector: an array, or Google's {"values": [...]}; 0 when it is neither. */
static int vec_size(const cJSON *v)
{
    const cJSON *vals = cJSON_IsObject(v) ? J.GetObjectItemCaseSensitive(v, "values") : v;
    return cJSON_IsArray(vals) ? J.GetArraySize(vals) : 0;
}

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
    const cJSON *embs = J.GetObjectItemCaseSensitive(j, "embeddings"), *preds = J.GetObjectItemCaseSensitive(j, "predictions");
    for (const cJSON *c = cJSON_IsArray(embs) ? embs->child : NULL; c; c = c->next) { (*nemb)++; *dim = vec_size(c); }
    for (const cJSON *c = cJSON_IsArray(preds) ? preds->child : NULL; c; c = c->next)
        if (vec_size(J.GetObjectItemCaseSensitive(c, "embeddings"))) { (*nemb)++; *dim = vec_size(J.GetObjectItemCaseSensitive(c, "embeddings")); }
    const cJSON *emb = J.GetObjectItemCaseSensitive(j, "embedding");
    if (vec_size(emb)) { (*nemb)++; *dim = vec_size(emb); }
    const cJSON *models = J.GetObjectItemCaseSensitive(j, "models");
    if (cJSON_IsArray(models)) *nmodels += J.GetArraySize(models);
    const cJSON *ntok = J.GetObjectItemCaseSensitive(j, "totalTokens"); /* Gemini's countTokens */
    if (cJSON_IsNumber(ntok) && !J.GetObjectItemCaseSensitive(j, "candidates")) buf_printf(t, "[%d tokens]", (int)ntok->valuedouble);
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

int cmd_ls(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_ls);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (cli_parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
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
        char what[200];
        if (!lr_op_is_raw(r->op) || !lr_raw_target(r, what, sizeof what)) snprintf(what, sizeof what, "%s", lr_op_info(r->op)->endpoint);
        printf("%-20s %-28s %-6s %3d  %s  %s\n", what, *r->model ? r->model : "-",
               r->streaming ? "stream" : "json", r->status, sum, r->path);
        if (resp) { resp->owned = true; lr_response_free(resp); }
    }
    if (rep.problems || rep.notes)
        fprintf(stderr, "llmreplay: %d file(s) skipped; run llmreplay check for details\n", rep.problems + rep.notes);
    lr_store_free(s);
    return 0;
}

/* ---- check ----------------------------------------------------------------------------- */

int cmd_check(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_check);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (cli_parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
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

/* The request to explain: a file, or standard input for "-". */
static char *read_input(const char *input, size_t *len)
{
    if (strcmp(input, "-")) return lr_read_file(input, lr_max_file_bytes(), len);
    buf_t b;
    buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) buf_add(&b, chunk, n);
    return buf_steal(&b, len);
}

/* What explain says of req: the recording(s) that answer it (0), or why none does (1). */
static int explain_print(lr_store_t *s, const lr_req_t *rq, bool raw)
{
    const lr_rec_t *hit = lr_match(s, rq, false);
    if (hit) {
        printf("match: %s\n", hit->path);
        uint64_t h1, h2;
        lr_req_key(rq, lr_store_ignore(s), &h1, &h2);
        int n;
        lr_rec_t *const *recs = lr_store_find(s, h1, h2, &n);
        if (n > 1) {
            printf("%d recordings answer this request, in this order (the last one repeats):\n", n);
            for (int i = 0; i < n; i++) printf("  %d. %s\n", i + 1, recs[i]->path);
        }
        return 0;
    }
    lr_nearest_t n;
    buf_t m;
    buf_init(&m);
    char *near = NULL;
    if (raw) lr_raw_miss(s, rq, &m, &near);
    else { lr_find_nearest(s, rq, &n); lr_miss_message(rq, &n, &m); }
    printf("%s\n", m.data ? m.data : "no match");
    free(near);
    buf_free(&m);
    return 1;
}

int cmd_explain(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_explain);
    if (h >= 0) return h;
    dirs_t d = {0};
    const char *endpoint = NULL, *input = NULL;
    if (cli_parse_dirs(argc, argv, &d, &endpoint, &input)) return 2;
    if (!input) { fprintf(stderr, "llmreplay: explain needs a request file or - (see --help)\n"); return 2; }
    size_t len = 0;
    char *text = read_input(input, &len);
    if (!text) { fprintf(stderr, "llmreplay: cannot read %s: %s\n", input, strerror(errno)); return 2; }
    if (!lr_cjson()) return 2;
    cJSON *j = lr_json_parse(text, len);
    if (!j) { fprintf(stderr, "llmreplay: %s is not valid JSON\n", input); return 2; }
    cJSON *rq = J.GetObjectItemCaseSensitive(j, "request");
    if (!cJSON_IsObject(rq)) rq = j;
    const cJSON *url = J.GetObjectItemCaseSensitive(rq, "url"), *ep = J.GetObjectItemCaseSensitive(rq, "endpoint");
    const cJSON *method = J.GetObjectItemCaseSensitive(rq, "method"), *body = J.GetObjectItemCaseSensitive(rq, "body");
    if (!body) body = J.GetObjectItemCaseSensitive(rq, "payload"); /* llama-stack's raw HTTP shape */
    const char *target = endpoint ? endpoint
                       : cJSON_IsString(ep) && lr_op_of_endpoint(ep->valuestring) ? ep->valuestring
                       : cJSON_IsString(url) ? url->valuestring : NULL;
    if (endpoint) body = j;
    else if (rq != j) lr_rec_sdk_to_wire((cJSON *)body); /* a recording: the request as it went out */
    /* any other call to an absolute URL is a raw (wire-level) request */
    bool raw = target && !lr_op_of_endpoint(target) && cJSON_IsString(url) && strstr(url->valuestring, "://");
    if (!target || (!raw && !lr_op_of_endpoint(target))) {
        fprintf(stderr, "llmreplay: %s names no LLM endpoint: give \"url\" or \"endpoint\", or use --endpoint PATH\n", input);
        return 2;
    }
    lr_req_t req = {.op = raw ? lr_op_http() : lr_op_of_endpoint(target),
                    .method = cJSON_IsString(method) ? method->valuestring : raw ? "GET" : "POST",
                    .url = cJSON_IsString(url) ? url->valuestring : target, .body = (cJSON *)body};
    buf_t rawbody;
    buf_init(&rawbody);
    const cJSON *enc = J.GetObjectItemCaseSensitive(rq, "payload_encoding");
    if (raw && cJSON_IsString(enc) && cJSON_IsString(body)) { /* a body recorded as bytes */
        if (!strcmp(enc->valuestring, "base64")) lr_b64_decode(body->valuestring, strlen(body->valuestring), &rawbody);
        else buf_adds(&rawbody, body->valuestring);
        req.body = NULL;
        req.raw = rawbody.data ? rawbody.data : "";
        req.raw_len = rawbody.len;
    }
    cJSON *gbody = NULL; /* Google's: the body as matched, with the model from the URL */
    if (lr_op_info(req.op)->google) {
        const cJSON *m = J.GetObjectItemCaseSensitive(rq, "model");
        req.body = gbody = lr_gemini_recorded_body(req.url, cJSON_IsString(m) ? m->valuestring : NULL, body);
    }
    bool https;
    if (!lr_url_hostport(req.url, req.host, sizeof req.host, &req.port, &https)) req.host[0] = 0;
    report_t rep = {0, 0, false};
    lr_store_t *s = cli_store(&d, &rep);
    if (!s) return 2;
    int rc = explain_print(s, &req, raw);
    buf_free(&rawbody);
    lr_store_free(s);
    if (gbody) J.Delete(gbody);
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

int cmd_index(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_index);
    if (h >= 0) return h;
    dirs_t d = {0};
    if (cli_parse_dirs(argc, argv, &d, NULL, NULL)) return 2;
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

