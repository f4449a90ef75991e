/* Fault rules: the grammar, parsing, and the choice of the rule that fires for a request
 * (counters per rule, a seeded RNG per rule so that p= is reproducible with LLMREPLAY_SEED).
 * What a fired rule does to the bytes is fault_step.c; the provider's error bodies are
 * fault_body.c. */
#include "engine/faults.h"
#include "base/config.h"
#include "base/log.h"
#include "engine/engine.h"
#include "engine/fault_body.h"
#include "json/jspan.h"
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char lr_fault_grammar[] =
    "RULE is FIELD[:FIELD]... (rules separated by commas); selectors: an operation (chat, completions, "
    "embeddings, models, responses, messages, generate, ollama, or a name such as ollama.show), model=GLOB, path=GLOB, host=GLOB, nth=N, "
    "every=N, first=N, p=0..1; actions: status=CODE [retry-after=S], reset, reset-after=N, "
    "reset-after-bytes=N, stall, stall-after=N [stall-for=DUR], truncate, malformed[=N], error-after=N, "
    "delay=DUR, event-delay=DUR, jitter=DUR (DUR: 250, 250ms or 2s)";

typedef struct {
    char *text, *action; /* the rule as written; its actions alone, for the log */
    char *ops;           /* operation names and aliases, comma separated; NULL: any */
    char *model, *path, *host;
    long nth, every, first;
    double p;            /* < 0: no probability */
    int status, retry_after;
    lr_fplan_t plan;     /* the actions */
    unsigned long seen;  /* requests its selector matched */
    uint64_t rng;
} rule_t;

static pthread_mutex_t rules_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t rules_once = PTHREAD_ONCE_INIT;
static rule_t *rules;
static int nrules;

/* A fork while another thread decides leaves the child a usable lock. */
static void fork_prepare(void) { pthread_mutex_lock(&rules_lock); }
static void fork_release(void) { pthread_mutex_unlock(&rules_lock); }
__attribute__((constructor)) static void faults_init(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

/* Selector words beyond the operations' own names (ops.c): the Ollama call of the same kind
 * goes with the OpenAI one; "ollama" is every Ollama call. */
static const struct { const char *word, *names; } op_aliases[] = {
    {"chat", "chat,ollama.chat"},
    {"embeddings", "embeddings,ollama.embed,ollama.embeddings"},
    {"models", "models,ollama.tags"},
    {"generate", "ollama.generate"},
};

static bool op_word(const char *w, size_t n)
{
    if (n == 6 && !strncmp(w, "ollama", 6)) return true;
    for (size_t i = 0; i < sizeof op_aliases / sizeof *op_aliases; i++)
        if (strlen(op_aliases[i].word) == n && !strncmp(w, op_aliases[i].word, n)) return true;
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), w);
    return n < 63 && lr_op_named(name) != OP_NONE;
}

/* Does the selector word w name operation op? */
static bool op_selected(const char *w, size_t n, lr_op_t op)
{
    const char *name = lr_op_info(op)->name;
    if (n == 6 && !strncmp(w, "ollama", 6)) return !strncmp(name, "ollama.", 7);
    for (size_t i = 0; i < sizeof op_aliases / sizeof *op_aliases; i++)
        if (strlen(op_aliases[i].word) == n && !strncmp(w, op_aliases[i].word, n))
            return lr_list_has(op_aliases[i].names, name, strlen(name));
    return strlen(name) == n && !strncmp(w, name, n);
}

static bool add_op(rule_t *r, const char *w)
{
    if (!op_word(w, strlen(w))) return false;
    size_t had = r->ops ? strlen(r->ops) : 0;
    char *v = realloc(r->ops, had + strlen(w) + 2);
    if (!v) return false;
    snprintf(v + had, strlen(w) + 2, "%s%s", had ? "," : "", w);
    r->ops = v;
    return true;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uniform(uint64_t *s) { return (double)(splitmix(s) >> 11) * 0x1.0p-53; }

static bool parse_long(const char *v, long lo, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < lo || n > 1000000000L) return false;
    *out = n;
    return true;
}

/* 250, 250ms, 2s, 1.5s: milliseconds. */
static bool parse_dur(const char *v, double *ms)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || !(d >= 0) || d > 3.6e6) return false;
    if (!strcmp(end, "s")) d *= 1000;
    else if (*end && strcmp(end, "ms")) return false;
    *ms = d;
    return true;
}

/* A field without '=': an operation or a bare action. */
static bool bare_field(rule_t *r, const char *f, bool *action)
{
    if (add_op(r, f)) return true;
    *action = true;
    if (!strcmp(f, "reset")) r->plan.reset_head = true;
    else if (!strcmp(f, "truncate")) r->plan.truncate = true;
    else if (!strcmp(f, "stall")) r->plan.stall_head = true;
    else if (!strcmp(f, "malformed")) r->plan.malformed = 1;
    else return false;
    return true;
}

/* One key=value field; *action tells whether it is an action (for the log's action text). */
static bool kv_field(rule_t *r, const char *k, const char *v, bool *action, const char **bad)
{
    long n;
    *bad = "a bad value";
    if (!strcmp(k, "op")) {
        bool a = false;
        if (!bare_field(r, v, &a) || a) { *bad = "an unknown operation"; return false; }
        return true;
    }
    if (!strcmp(k, "model")) return (r->model = strdup(v)) != NULL;
    if (!strcmp(k, "path")) return (r->path = strdup(v)) != NULL;
    if (!strcmp(k, "host")) return (r->host = strdup(v)) != NULL;
    if (!strcmp(k, "nth")) return parse_long(v, 1, &r->nth);
    if (!strcmp(k, "every")) return parse_long(v, 1, &r->every);
    if (!strcmp(k, "first")) return parse_long(v, 1, &r->first);
    if (!strcmp(k, "p")) {
        char *end;
        r->p = strtod(v, &end);
        return end != v && !*end && r->p >= 0 && r->p <= 1;
    }
    *action = true;
    lr_fplan_t *p = &r->plan;
    if (!strcmp(k, "status")) { if (!parse_long(v, 400, &n) || n > 599) return false; r->status = (int)n; return true; }
    if (!strcmp(k, "retry-after")) { if (!parse_long(v, 0, &n)) return false; r->retry_after = (int)n; return true; }
    if (!strcmp(k, "reset-after")) { if (!parse_long(v, 0, &n)) return false; p->reset_after = (int)n; return true; }
    if (!strcmp(k, "reset-after-bytes")) return parse_long(v, 0, &p->reset_bytes);
    if (!strcmp(k, "stall-after")) { if (!parse_long(v, 0, &n)) return false; p->stall_after = (int)n; return true; }
    if (!strcmp(k, "stall-for")) return parse_dur(v, &p->stall_ms) && p->stall_ms > 0;
    if (!strcmp(k, "malformed")) { if (!parse_long(v, 1, &n)) return false; p->malformed = (int)n; return true; }
    if (!strcmp(k, "error-after")) { if (!parse_long(v, 0, &n)) return false; p->error_after = (int)n; return true; }
    if (!strcmp(k, "delay")) return parse_dur(v, &p->delay_ms);
    if (!strcmp(k, "event-delay")) return parse_dur(v, &p->event_ms);
    if (!strcmp(k, "jitter")) return parse_dur(v, &p->jitter_ms);
    *bad = "an unknown field";
    return false;
}

static void rule_free(rule_t *r)
{
    free(r->text); free(r->action); free(r->ops); free(r->model); free(r->path); free(r->host);
    memset(r, 0, sizeof *r);
}

/* Combinations that mean nothing: a status answers before any stream exists. */
static const char *conflict(const rule_t *r)
{
    const lr_fplan_t *p = &r->plan;
    bool stream = p->reset_head || p->stall_head || p->reset_after >= 0 || p->reset_bytes >= 0 || p->stall_after >= 0 ||
                  p->truncate || p->malformed || p->error_after >= 0;
    bool timing = p->delay_ms > 0 || p->event_ms > 0 || p->jitter_ms > 0;
    if (r->status && stream) return "status= cannot be combined with a stream action";
    if (!r->status && !stream && !timing) return "no action";
    if (r->retry_after >= 0 && !r->status) return "retry-after= needs status=";
    if (p->stall_ms > 0 && p->stall_after < 0 && !p->stall_head) return "stall-for= needs stall or stall-after=";
    if (p->stall_head && p->stall_after >= 0) return "stall and stall-after= are one stall each: use one";
    return NULL;
}

static bool parse_rule(const char *text, size_t len, rule_t *r, char *why, size_t cap)
{
    memset(r, 0, sizeof *r);
    r->p = -1;
    r->retry_after = -1;
    r->plan = (lr_fplan_t){.reset_after = -1, .reset_bytes = -1, .stall_after = -1, .error_after = -1};
    r->text = lr_strndup(text, len);
    buf_t act;
    buf_init(&act);
    const char *msg = NULL, *badf = NULL;
    char *copy = lr_strndup(text, len), *save = NULL;
    for (char *f = strtok_r(copy, ":", &save); f && !msg; f = strtok_r(NULL, ":", &save)) {
        bool action = false;
        char *eq = strchr(f, '=');
        bool ok;
        if (eq) { *eq = 0; ok = kv_field(r, f, eq + 1, &action, &msg); if (ok) msg = NULL; *eq = '='; }
        else { ok = bare_field(r, f, &action); if (!ok) msg = "an unknown field"; }
        if (!ok) { badf = f; break; }
        if (action) { if (act.len) buf_addc(&act, ':'); buf_adds(&act, f); }
    }
    if (!badf && !len) msg = "an empty rule";
    if (!badf && !msg) msg = conflict(r);
    if (msg) {
        if (badf) snprintf(why, cap, "fault rule '%s': '%s' is %s; %s", r->text, badf, msg, lr_fault_grammar);
        else snprintf(why, cap, "fault rule '%s': %s; %s", r->text, msg, lr_fault_grammar);
        free(copy);
        buf_free(&act);
        rule_free(r);
        return false;
    }
    free(copy);
    r->action = buf_steal(&act, NULL);
    return true;
}

bool lr_fault_check(const char *rule, char *why, size_t cap)
{
    rule_t r;
    if (!parse_rule(rule, strlen(rule), &r, why, cap)) return false;
    rule_free(&r);
    return true;
}

bool lr_faults_check(const char *list, char *why, size_t cap)
{
    const char *tok;
    size_t n;
    for (const char *p = list; lr_list_next(&p, &tok, &n);) {
        rule_t r;
        if (!parse_rule(tok, n, &r, why, cap)) return false;
        rule_free(&r);
    }
    return true;
}

/* The rules of LLMREPLAY_FAULTS, once; a bad one is said and left out. */
static void load_rules(void)
{
    const char *list = lr_cfg()->faults, *tok;
    size_t n;
    if (!list) return;
    uint64_t seed = lr_cfg()->seed_set ? lr_cfg()->seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    int cap = 0;
    for (const char *p = list; lr_list_next(&p, &tok, &n);) {
        rule_t r;
        char why[1200];
        if (!parse_rule(tok, n, &r, why, sizeof why)) { lr_error("LLMREPLAY_FAULTS: %s", why); continue; }
        if (nrules == cap) {
            cap = cap ? cap * 2 : 8;
            rule_t *v = realloc(rules, sizeof *v * (size_t)cap);
            if (!v) { rule_free(&r); break; }
            rules = v;
        }
        uint64_t s = seed + 0x632BE59BD9B4E019ull * (uint64_t)(nrules + 1);
        r.rng = splitmix(&s);
        rules[nrules++] = r;
    }
    if (nrules && !lr_cfg()->seed_set)
        lr_log(LR_INFO, "LLMREPLAY_SEED is not set: fault rules draw with seed %llu (set it to repeat this run)",
               (unsigned long long)seed);
}

/* The request as the selectors see it. */
typedef struct {
    lr_op_t op;
    char model[256], host[200];
    const char *path;
    size_t plen;
} freq_t;

static void describe(freq_t *q, const char *url, const char *body, size_t len)
{
    q->op = lr_op_of_url(url);
    q->path = lr_url_path(url, &q->plen);
    int port;
    bool https;
    char h[160];
    q->host[0] = 0;
    if (lr_url_hostport(url, h, sizeof h, &port, &https)) snprintf(q->host, sizeof q->host, "%s:%d", h, port);
    q->model[0] = 0;
    span_t m;
    if (body && len && js_get((span_t){body, len}, "model", &m) && js_kind(m) == '"') {
        char *s = js_strdup(m);
        if (s) snprintf(q->model, sizeof q->model, "%s", s);
        free(s);
    }
}

static bool host_matches(const char *glob, const char *hostport)
{
    if (!fnmatch(glob, hostport, 0)) return true;
    char h[200];
    snprintf(h, sizeof h, "%.*s", (int)strcspn(hostport, ":"), hostport); /* host alone, port ignored */
    if (hostport[0] == '[') snprintf(h, sizeof h, "%.*s", (int)strcspn(hostport, "]") + 1, hostport);
    return !fnmatch(glob, h, 0);
}

static bool selects(const rule_t *r, const freq_t *q)
{
    if (r->ops) {
        bool any = false;
        const char *w;
        size_t n;
        for (const char *p = r->ops; !any && lr_list_next(&p, &w, &n);) any = op_selected(w, n, q->op);
        if (!any) return false;
    }
    if (r->model && fnmatch(r->model, q->model, 0)) return false;
    if (r->host && !host_matches(r->host, q->host)) return false;
    if (r->path) {
        char p[1024];
        snprintf(p, sizeof p, "%.*s", (int)q->plen, q->path);
        if (fnmatch(r->path, p, 0)) return false;
    }
    return true;
}

/* Count the request for every rule whose selector matches; the first that fires wins. */
static int decide(const freq_t *q, unsigned long *nth, uint64_t *jitter_seed)
{
    int chosen = -1;
    pthread_mutex_lock(&rules_lock);
    for (int i = 0; i < nrules; i++) {
        rule_t *r = &rules[i];
        if (!selects(r, q)) continue;
        unsigned long k = ++r->seen;
        bool fire = (!r->nth || k == (unsigned long)r->nth) && (!r->every || k % (unsigned long)r->every == 0) &&
                    (!r->first || k <= (unsigned long)r->first);
        if (r->p >= 0 && uniform(&r->rng) >= r->p) fire = false; /* drawn for every match: reproducible */
        if (fire && chosen < 0) { chosen = i; *nth = k; *jitter_seed = splitmix(&r->rng); }
    }
    pthread_mutex_unlock(&rules_lock);
    return chosen;
}

static void log_fault(const rule_t *r, unsigned long nth, const char *method, const char *url, const freq_t *q)
{
    lr_log(LR_INFO, "fault '%s' fired on %s %s (request %lu its selector matched): %s", r->text, method, url, nth,
           r->action);
    const char *logp = lr_cfg()->fault_log, *fired = lr_cfg()->fault_file;
    if (fired) {
        buf_t f;
        buf_init(&f);
        buf_printf(&f, "%s\n", r->text);
        if (f.oom || !lr_append_line(fired, f.data, f.len)) lr_warn("cannot append to %s: %m", fired);
        buf_free(&f);
    }
    if (!logp) return;
    buf_t b;
    buf_init(&b);
    buf_printf(&b, "{\"time\":%ld,\"pid\":%d,\"rule\":", (long)time(NULL), (int)getpid());
    buf_json_strz(&b, r->text);
    buf_printf(&b, ",\"n\":%lu,\"request\":{\"method\":", nth);
    buf_json_strz(&b, method);
    buf_adds(&b, ",\"url\":");
    buf_json_strz(&b, url);
    buf_printf(&b, ",\"operation\":\"%s\",\"model\":", lr_op_info(q->op)->name);
    buf_json_strz(&b, q->model);
    buf_adds(&b, "},\"action\":");
    buf_json_strz(&b, r->action);
    buf_adds(&b, "}\n");
    if (b.oom || !lr_append_line(logp, b.data, b.len)) lr_warn("cannot append to %s: %m", logp);
    buf_free(&b);
}

lr_response_t *lr_fault_serve(const char *method, const char *url, const char *body, size_t len, lr_fplan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    if (!lr_cfg()->faults) return lr_engine_serve(method, url, body, len);
    pthread_once(&rules_once, load_rules);
    freq_t q;
    describe(&q, url, body, len);
    unsigned long nth = 0;
    uint64_t js = 0;
    int i = decide(&q, &nth, &js);
    if (i < 0) return lr_engine_serve(method, url, body, len);
    const rule_t *r = &rules[i]; /* never changes after load_rules, but for its counters */
    log_fault(r, nth, method ? method : "POST", url, &q);
    *plan = r->plan;
    plan->on = true;
    plan->op = (int)q.op;
    plan->rng = js;
    if (r->status) {
        lr_response_t *e = lr_fault_status_response(q.op, r->status, r->retry_after, q.model);
        if (e) return e;
    }
    return lr_engine_serve(method, url, body, len);
}

void lr_fault_plan_free(lr_fplan_t *plan)
{
    free(plan->scratch);
    plan->scratch = NULL;
}
