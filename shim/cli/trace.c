/* `llmreplay trace`: run a program live with every HTTP exchange logged, then a summary table. */
#include "cli/cli.h"
#include "base/util.h"
#include "json/cjson_rt.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int cmd_trace(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_trace);
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
        if (i < (sep < 0 ? argc : sep) && !strcmp(argv[i], "-o")) {
            if (i + 1 >= argc || !strcmp(argv[i + 1], "--")) {
                fprintf(stderr, "llmreplay: -o needs a file (-o FILE.jsonl)\n");
                free(args);
                return 2;
            }
            file = argv[++i];
            continue;
        }
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
    bool ran = false;
    int rc = cli_run(n, args, &ran);
    if (ran) trace_summary(abs);
    if (file == tmpl) unlink(tmpl);
    free(args);
    return rc;
}

