#include "engine/usage.h"
#include "engine/lsfile.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the usage file ------------------------------------------------------------------- */

static void put(buf_t *b)
{
    const char *f = lr_cfg()->usage_file;
    if (!b->oom && !lr_append_line(f, b->data, b->len)) lr_warn("cannot append to the usage report %s: %m", f);
    buf_free(b);
}

static void path_event(const char *kind, const char *path)
{
    if (!lr_cfg()->usage_file || !path) return;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"kind\":\"%s\",\"pid\":%d,\"file\":", kind, (int)getpid());
    buf_json_strz(&b, path);
    buf_adds(&b, "}\n");
    put(&b);
}

void lr_usage_served(const char *path) { path_event("served", path); }
void lr_usage_recorded(const char *path) { path_event("recorded", path); }

void lr_usage_miss(const char *line, size_t n)
{
    if (!lr_cfg()->usage_file || n < 2 || line[0] != '{') return;
    buf_t b;
    buf_init(&b);
    buf_adds(&b, "{\"kind\":\"miss\",");
    buf_add(&b, line + 1, n - 1);
    put(&b);
}

/* Tokens of one answer object: OpenAI (usage.prompt/completion_tokens), Anthropic and
 * responses (usage.input/output_tokens, also under "message" and "response"), Ollama
 * (prompt_eval_count, eval_count). */
static void tokens_of(span_t obj, long long *in, long long *out)
{
    span_t u, v;
    static const char *const wrap[] = {"message", "response"};
    for (int i = 0; i < 2; i++)
        if (js_get(obj, wrap[i], &v) && js_kind(v) == '{') tokens_of(v, in, out);
    if (js_get(obj, "usage", &u) && js_kind(u) == '{') {
        if (js_get(u, "prompt_tokens", &v) || js_get(u, "input_tokens", &v)) *in += strtoll(v.p, NULL, 10);
        if (js_get(u, "completion_tokens", &v) || js_get(u, "output_tokens", &v)) *out += strtoll(v.p, NULL, 10);
    }
    if (js_get(obj, "prompt_eval_count", &v)) *in += strtoll(v.p, NULL, 10);
    if (js_get(obj, "eval_count", &v)) *out += strtoll(v.p, NULL, 10);
}

static void live_tokens(const lr_capture_t *c, long long *in, long long *out)
{
    span_t body = {c->body.data ? c->body.data : "", c->body.len};
    if (!lr_capture_stream_kind(c)) {
        if (js_kind(body) == '{' && js_valid(body)) tokens_of(body, in, out);
        return;
    }
    span_t *ev;
    double *ms;
    int n = lr_capture_events(c, &ev, &ms);
    for (int i = 0; i < n; i++)
        if (js_kind(ev[i]) == '{' && js_valid(ev[i])) tokens_of(ev[i], in, out);
    free(ev);
    free(ms);
}

static char *model_of(span_t body)
{
    span_t m;
    return js_kind(body) == '{' && js_get(body, "model", &m) && js_kind(m) == '"' ? js_strdup(m) : NULL;
}

void lr_usage_live(const lr_capture_t *c)
{
    if (!lr_cfg()->usage_file || !c) return;
    long long in = 0, out = 0;
    live_tokens(c, &in, &out);
    char *model = model_of((span_t){c->req.data ? c->req.data : "", c->req.len});
    const char *ep = lr_op_info(c->op)->endpoint;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"kind\":\"live\",\"pid\":%d,\"method\":", (int)getpid());
    buf_json_strz(&b, c->method);
    buf_adds(&b, ",\"url\":");
    buf_json_strz(&b, c->url);
    buf_adds(&b, ",\"operation\":");
    buf_json_strz(&b, ep);
    buf_adds(&b, ",\"model\":");
    buf_json_strz(&b, model ? model : "");
    buf_adds(&b, ",\"test_id\":");
    if (c->test_id) buf_json_strz(&b, c->test_id);
    else buf_adds(&b, "null");
    buf_printf(&b, ",\"status\":%d,\"prompt_tokens\":%lld,\"completion_tokens\":%lld", c->status, in, out);
    if (c->error[0]) {
        buf_adds(&b, ",\"error\":");
        buf_json_strz(&b, c->error);
    }
    buf_adds(&b, "}\n");
    free(model);
    put(&b);
}

/* ---- LLMREPLAY_ONLY ------------------------------------------------------------------- */

static regex_t only_re;
static bool only_ok;
static pthread_once_t only_once = PTHREAD_ONCE_INIT;
static void only_compile(void) { only_ok = !regcomp(&only_re, lr_cfg()->only, REG_EXTENDED | REG_NOSUB); }

bool lr_only_selects(const char *test_id, lr_op_t op, const char *model, const char *file)
{
    if (!lr_cfg()->only) return true;
    pthread_once(&only_once, only_compile);
    if (!only_ok) return false; /* config.c accepts only valid expressions */
    const char *fields[] = {test_id, lr_op_info(op)->endpoint, model, file};
    for (int i = 0; i < 4; i++)
        if (fields[i] && *fields[i] && !regexec(&only_re, fields[i], 0, NULL, 0)) return true;
    return false;
}

/* ---- the spend guard ------------------------------------------------------------------ */

static unsigned long live_here; /* calls taken by this process, when no run counts them */

/* Calls taken so far (take: one more, ours last): across every process of llmreplay run through
 * its counter file, where each call appends one byte (O_APPEND) and its rank is the offset its
 * own byte ends at, lock-free across threads and processes; else in this process. */
static unsigned long live_count(bool take)
{
    const char *f = lr_cfg()->live_file;
    int fd = f ? open(f, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        if (f) lr_warn("cannot open the live-call counter %s: %m; counting in this process only", f);
        return take ? __atomic_add_fetch(&live_here, 1, __ATOMIC_RELAXED) : __atomic_load_n(&live_here, __ATOMIC_RELAXED);
    }
    off_t at = take ? (lr_write(fd, "x", 1) == 1 ? lseek(fd, 0, SEEK_CUR) : -1) : lseek(fd, 0, SEEK_END);
    lr_close(fd);
    return at < 0 ? 0 : (unsigned long)at;
}

static bool model_allowed(const char *model)
{
    const char *globs = lr_cfg()->allow_models, *tok;
    size_t n;
    if (!globs || !model || !*model) return true; /* listings name no model */
    for (const char *p = globs; lr_list_next(&p, &tok, &n);) {
        char g[256];
        snprintf(g, sizeof g, "%.*s", (int)(n < 255 ? n : 255), tok);
        if (!fnmatch(g, model, 0)) return true;
    }
    return false;
}

/* The limit a call breaks, in why; false when none. take: the call goes ahead if it may. */
static bool over_limit(const char *model, bool take, char *why, size_t cap)
{
    const lr_config_t *c = lr_cfg();
    if (!model_allowed(model)) {
        snprintf(why, cap, "model \"%s\" is not in LLMREPLAY_ALLOW_MODELS=%s", model, c->allow_models);
        return true;
    }
    if (c->max_live < 0) return false;
    unsigned long n = live_count(take);
    if (take ? n <= (unsigned long)c->max_live : n < (unsigned long)c->max_live) return false;
    snprintf(why, cap, "LLMREPLAY_MAX_LIVE=%ld live calls were already made in this run", c->max_live);
    return true;
}

bool lr_guard_admit(const char *method, const char *url, lr_op_t op, const char *model)
{
    char why[400];
    if (!over_limit(model, true, why, sizeof why)) return true;
    lr_error("refused %s %s: %s; nothing was sent upstream (raise the limit, e.g. llmreplay run --max-live N, "
             "or --allow-models GLOB)", method ? method : "POST", url, why);
    if (lr_cfg()->usage_file) {
        const char *ep = lr_op_info(op)->endpoint;
        buf_t b;
        buf_init(&b);
        buf_printf(&b, "{\"kind\":\"refused\",\"pid\":%d,\"operation\":", (int)getpid());
        buf_json_strz(&b, ep);
        buf_adds(&b, ",\"model\":");
        buf_json_strz(&b, model ? model : "");
        buf_adds(&b, ",\"url\":");
        buf_json_strz(&b, url);
        buf_adds(&b, ",\"limit\":");
        buf_json_strz(&b, why);
        buf_adds(&b, "}\n");
        put(&b);
    }
    return false;
}

lr_response_t *lr_guard_refusal(lr_op_t op, const char *model)
{
    char why[400], msg[600];
    if (!over_limit(model, false, why, sizeof why)) return NULL;
    snprintf(msg, sizeof msg, "llmreplay: refused: %s; nothing was sent upstream", why);
    return lr_render_error(op, 403, "llmreplay_limit", "llmreplay_spend_guard", msg);
}

/* ---- VCR's once ----------------------------------------------------------------------- */

/* Is there a recording (a *.json file, hidden entries skipped) under path? */
static bool holds_json(const char *path, int depth)
{
    size_t l = strlen(path);
    if (l > 5 && !strcmp(path + l - 5, ".json")) return access(path, R_OK) == 0;
    DIR *d = depth < 16 ? opendir(path) : NULL;
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        found = holds_json(sub, depth + 1);
    }
    closedir(d);
    return found;
}

static lr_mode_t once_mode;
static pthread_once_t once_once = PTHREAD_ONCE_INIT;

/* once: record while the directories hold no recording yet, else replay; decided once per
 * process (llmreplay run decides it for all its processes). */
static void once_decide(void)
{
    const lr_config_t *c = lr_cfg();
    bool any = false;
    const char *dirs = c->dir ? c->dir : "";
    for (const char *p = dirs; *p && !any;) {
        size_t l = strcspn(p, ":");
        char d[4096];
        snprintf(d, sizeof d, "%.*s", (int)l, p);
        any = l && holds_json(d, 0);
        p += l + (p[l] == ':');
    }
    if (!any && c->record_dir) any = holds_json(c->record_dir, 0);
    once_mode = any ? MODE_REPLAY : MODE_RECORD;
}

lr_mode_t lr_mode(void)
{
    lr_mode_t m = lr_cfg()->mode;
    if (m != MODE_ONCE) return m;
    pthread_once(&once_once, once_decide);
    return once_mode;
}
