#include "base/config.h"
#include "base/real.h"
#include "base/log.h"
#include "base/util.h"
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One row per variable: how it is parsed, its default and what it accepts. */
typedef enum { K_STR, K_MB, K_MS, K_ENUM, K_LAYERS, K_COUNT, K_REGEX, K_SEED } kind_t;

typedef struct {
    const char *name;
    kind_t kind;
    size_t off;          /* field of lr_config_t */
    const char *dflt;    /* as the user would write it; NULL: unset */
    const char *accepts; /* K_ENUM: "a|b|c" (position = value); others: text for messages */
    bool internal;       /* not shown by llmreplay config */
} setting_t;

#define F(f) offsetof(lr_config_t, f)
static const setting_t settings[] = {
    {"LLMREPLAY_LOG", K_ENUM, F(log_level), "warn", "quiet|error|warn|info|debug", false},
    {"LLMREPLAY_DIR", K_STR, F(dir), NULL, "directories or files, colon separated", false},
    {"LLMREPLAY_MODE", K_ENUM, F(mode), "replay", "replay|record|record-if-missing|live|trace|once|none|new_episodes|all", false},
    {"LLMREPLAY_LAYERS", K_LAYERS, F(layers), "curl,sockets,tls", "a comma list of curl, sockets, tls", false},
    {"LLMREPLAY_IGNORE", K_STR, F(ignore), NULL, "body fields, comma separated", false},
    {"LLMREPLAY_REDACT", K_STR, F(redact), NULL, "header names and body fields, comma separated", false},
    {"LLMREPLAY_MISS_LOG", K_STR, F(miss_log), NULL, "a file", false},
    {"LLMREPLAY_PACE_MS", K_MS, F(pace_ms), "0", "milliseconds, a number >= 0 such as 20 or 2.5", false},
    {"LLMREPLAY_PACE", K_ENUM, F(pace_recorded), NULL, "|recorded", false},
    {"LLMREPLAY_HOSTS", K_STR, F(hosts), NULL, "host, host:port, *:port, [v6]:port or *, comma separated", false},
    {"LLMREPLAY_EGRESS", K_ENUM, F(egress_deny), "allow", "allow|deny", false},
    {"LLMREPLAY_UPSTREAM_CA", K_STR, F(upstream_ca), NULL, "a CA bundle file", false},
    {"LLMREPLAY_MAX_REQUEST_MB", K_MB, F(max_request_bytes), "64", "megabytes, an integer >= 1", false},
    {"LLMREPLAY_MAX_FILE_MB", K_MB, F(max_file_bytes), "64", "megabytes, an integer >= 1", false},
    {"LLMREPLAY_RECORD_DIR", K_STR, F(record_dir), NULL, "a directory", false},
    {"LLMREPLAY_TEST_ID", K_STR, F(test_id), NULL, "a test id", false},
    {"LLMREPLAY_NORMALIZE", K_ENUM, F(normalize), "0", "0|1", false},
    {"LLMREPLAY_TRACE_FILE", K_STR, F(trace_file), "llmreplay-trace.jsonl", "a file", false},
    {"LLMREPLAY_CACHE", K_ENUM, F(cache), "on", "off|on", false},
    {"LLMREPLAY_CACHE_DIR", K_STR, F(cache_dir), NULL, "a directory", false},
    {"LLMREPLAY_BIN", K_STR, F(bin), NULL, "the llmreplay binary", false},
    {"LLMREPLAY_LIB", K_STR, F(lib), NULL, "libllmreplay.so", false},
    {"LLMREPLAY_FAULTS", K_STR, F(faults), NULL, "fault rules, comma separated (see README, Faults and timing)", false},
    {"LLMREPLAY_FAULT_LOG", K_STR, F(fault_log), NULL, "a file", false},
    {"LLMREPLAY_SEED", K_SEED, F(seed), NULL, "an integer >= 0", false},
    {"LLMREPLAY_SPEED", K_MS, F(speed), "1", "a factor >= 0 such as 2 or 0.5 (0: no pacing)", false},
    {"LLMREPLAY_MAX_LIVE", K_COUNT, F(max_live), NULL, "a number of calls, an integer >= 0", false},
    {"LLMREPLAY_ALLOW_MODELS", K_STR, F(allow_models), NULL, "model names or globs, comma separated", false},
    {"LLMREPLAY_ONLY", K_REGEX, F(only), NULL, "an extended regular expression", false},
    {"LLMREPLAY__STRICT_FILE", K_STR, F(strict_file), NULL, "a file", true},
    {"LLMREPLAY__FAULT_FILE", K_STR, F(fault_file), NULL, "a file", true},
    {"LLMREPLAY__RUN", K_STR, F(run), NULL, "1", true},
    {"LLMREPLAY__USAGE_FILE", K_STR, F(usage_file), NULL, "a file", true},
    {"LLMREPLAY__LIVE_FILE", K_STR, F(live_file), NULL, "a file", true},
};
#define NSET (sizeof settings / sizeof settings[0])

/* Where each value came from, for llmreplay config. */
typedef enum { FROM_DEFAULT, FROM_ENV, FROM_BAD } source_t;

static const lr_config_t *current;
static source_t sources[NSET];
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* Structures replaced by lr_config_reload, kept reachable (another thread may hold one). */
__attribute__((used)) static const lr_config_t *retired[32];
static unsigned nretired;

/* Position of v in "a|b|c" (an empty alternative matches ""), -1 when absent. */
static int enum_index(const char *accepts, const char *v)
{
    int i = 0;
    for (const char *p = accepts;; i++) {
        size_t l = strcspn(p, "|");
        if (strlen(v) == l && !strncmp(p, v, l)) return i;
        if (!p[l]) return -1;
        p += l + 1;
    }
}

static bool parse_layers(const char *v, unsigned *out)
{
    static const char *names[] = {"curl", "sockets", "tls"};
    unsigned bits = 0;
    const char *tok;
    size_t n;
    for (const char *p = v; lr_list_next(&p, &tok, &n);) {
        unsigned b = 0;
        for (unsigned i = 0; i < 3; i++)
            if (n == strlen(names[i]) && !strncmp(tok, names[i], n)) b = 1u << i;
        if (!b) return false;
        bits |= b;
    }
    *out = bits;
    return true;
}

/* Parse v for s into field (NULL: check only). */
static bool parse(const setting_t *s, const char *v, void *field)
{
    char *end;
    switch (s->kind) {
    case K_STR:
        if (field) *(const char **)field = strdup(v);
        return true;
    case K_MB: {
        long n = strtol(v, &end, 10);
        if (end == v || *end || n < 1 || n > (1L << 20)) return false;
        if (field) *(size_t *)field = (size_t)n << 20;
        return true;
    }
    case K_MS: {
        double d = strtod(v, &end);
        if (end == v || *end || !(d >= 0) || d > 3.6e6) return false;
        if (field) *(double *)field = d;
        return true;
    }
    case K_ENUM: {
        int i = enum_index(s->accepts, v);
        if (i < 0) return false;
        if (!field) return true;
        /* VCR's names: none = replay, new_episodes = record-if-missing, all = record */
        static const int vcr[] = {MODE_REPLAY, MODE_RECORD_IF_MISSING, MODE_RECORD};
        if (s->off == F(mode) && i > MODE_ONCE) i = vcr[i - MODE_ONCE - 1];
        if (s->off == F(log_level) || s->off == F(mode)) *(int *)field = i;
        else *(bool *)field = i != 0;
        return true;
    }
    case K_SEED: {
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v || *end || *v == '-') return false;
        if (field) { *(unsigned long long *)field = n; ((lr_config_t *)((char *)field - F(seed)))->seed_set = true; }
        return true;
    }
    case K_COUNT: {
        long n = strtol(v, &end, 10);
        if (end == v || *end || n < 0) return false;
        if (field) *(long *)field = n;
        return true;
    }
    case K_REGEX: {
        regex_t re;
        if (regcomp(&re, v, REG_EXTENDED | REG_NOSUB)) return false;
        regfree(&re);
        if (field) *(const char **)field = strdup(v);
        return true;
    }
    case K_LAYERS: {
        unsigned b;
        if (!parse_layers(v, &b)) return false;
        if (field) *(unsigned *)field = b;
        return true;
    }
    }
    return false;
}

static void accepted_text(const setting_t *s, char *out, size_t cap)
{
    if (s->kind != K_ENUM) { snprintf(out, cap, "%s", s->accepts); return; }
    size_t at = 0;
    out[0] = 0;
    for (const char *p = s->accepts; *p && at + 1 < cap;) {
        size_t l = strcspn(p, "|");
        if (l) at += (size_t)snprintf(out + at, cap - at, "%s%.*s", at ? ", " : "", (int)l, p);
        p += l + (p[l] ? 1 : 0);
    }
}

static lr_config_t *read_env(source_t *src)
{
    lr_config_t *c = calloc(1, sizeof *c);
    if (!c) abort(); /* a few hundred bytes at start-up: nothing sensible is left to do */
    c->max_live = -1; /* unlimited unless LLMREPLAY_MAX_LIVE says otherwise */
    char msgs[NSET][400];
    int nmsgs = 0;
    for (size_t i = 0; i < NSET; i++) {
        const setting_t *s = &settings[i];
        void *field = (char *)c + s->off;
        if (s->dflt) parse(s, s->dflt, field);
        const char *v = getenv(s->name);
        src[i] = FROM_DEFAULT;
        if (!v || !*v) continue;
        if (parse(s, v, field)) { src[i] = FROM_ENV; continue; }
        char acc[200];
        accepted_text(s, acc, sizeof acc);
        /* a broken LLMREPLAY_ONLY selects no call: recording everything instead could be costly */
        bool none = s->kind == K_REGEX;
        snprintf(msgs[nmsgs++], sizeof msgs[0], "%s=%.60s is not valid (accepted: %s); using %s", s->name, v, acc,
                 s->dflt ? s->dflt : none ? "an expression no call matches" : "nothing");
        if (s->dflt) parse(s, s->dflt, field);
        if (none) *(const char **)field = strdup("a^"); /* never matches */
        src[i] = FROM_BAD;
    }
    /* Derived defaults. */
    if (!c->record_dir && c->dir) c->record_dir = lr_strndup(c->dir, strcspn(c->dir, ":"));
    if (!c->cache_dir) {
        const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
        char p[4096];
        if (x && *x) snprintf(p, sizeof p, "%s/llmreplay", x);
        else if (h && *h) snprintf(p, sizeof p, "%s/.cache/llmreplay", h);
        else p[0] = 0;
        if (p[0]) c->cache_dir = strdup(p);
    }
    lr_log_set_level(c->log_level); /* before the warnings, which depend on it */
    for (int i = 0; i < nmsgs; i++) lr_warn("%s", msgs[i]);
    return c;
}

static void load(void) { __atomic_store_n(&current, read_env(sources), __ATOMIC_RELEASE); }

const lr_config_t *lr_cfg(void)
{
    const lr_config_t *c = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
    if (c) return c;
    pthread_once(&once, load);
    return current;
}

void lr_config_reload(void)
{
    const lr_config_t *old = lr_cfg();
    pthread_mutex_lock(&reload_lock);
    retired[nretired++ % 32] = old;
    __atomic_store_n(&current, read_env(sources), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&reload_lock);
}

const char *lr_mode_name(lr_mode_t m)
{
    static const char *n[] = {"replay", "record", "record-if-missing", "live", "trace", "once"};
    return (unsigned)m < 6 ? n[m] : "?";
}

bool lr_config_check(const char *name, const char *value, char *why, size_t cap)
{
    for (size_t i = 0; i < NSET; i++) {
        if (strcmp(settings[i].name, name)) continue;
        if (parse(&settings[i], value, NULL)) return true;
        char acc[200];
        accepted_text(&settings[i], acc, sizeof acc);
        snprintf(why, cap, "%s=%s is not valid (accepted: %s)", name, value, acc);
        return false;
    }
    snprintf(why, cap, "%s is not a setting", name);
    return false;
}

static void put_line(int fd, const char *name, const char *source, const char *value, const char *note)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "%-26s %-11s %.300s%s%.400s%s\n", name, source, value ? value : "(unset)",
                     note ? "  (" : "", note ? note : "", note ? ")" : "");
    if (n <= 0) return;
    if ((size_t)n >= sizeof line) { n = sizeof line - 1; line[n - 1] = '\n'; }
    for (int i = 0; i < n - 1; i++)
        if ((unsigned char)line[i] < 0x20) line[i] = '?'; /* a value with a newline stays one line */
    ssize_t w = lr_write(fd, line, (size_t)n);
    (void)w;
}

/* One line per setting, aligned: name, source (environment, default, invalid), effective value,
 * and a note where the value needs one; then LLMREPLAY_* variables that are no setting. */
void lr_config_print(int fd)
{
    const lr_config_t *c = lr_cfg();
    for (size_t i = 0; i < NSET; i++) {
        const setting_t *s = &settings[i];
        if (s->internal) continue;
        const char *v = getenv(s->name);
        if (sources[i] == FROM_ENV) { put_line(fd, s->name, "environment", v, NULL); continue; }
        char note[400] = "";
        if (sources[i] == FROM_BAD) {
            char acc[200];
            accepted_text(s, acc, sizeof acc);
            snprintf(note, sizeof note, "%s=%.60s is not valid; accepted: %s", s->name, v ? v : "", acc);
        }
        const char *shown = s->dflt;
        if (s->off == F(record_dir) && c->record_dir) {
            shown = c->record_dir;
            if (!*note) snprintf(note, sizeof note, "the first LLMREPLAY_DIR entry");
        } else if (s->off == F(cache_dir) && c->cache_dir) {
            shown = c->cache_dir;
            if (!*note) snprintf(note, sizeof note, "$XDG_CACHE_HOME/llmreplay, else ~/.cache/llmreplay");
        }
        put_line(fd, s->name, sources[i] == FROM_BAD ? "invalid" : "default", shown, *note ? note : NULL);
    }
    extern char **environ;
    for (char **e = environ; *e; e++) {
        size_t l = strcspn(*e, "=");
        if (strncmp(*e, "LLMREPLAY_", 10) || l >= 64 || !(*e)[l]) continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)l, *e);
        bool known = false;
        for (size_t i = 0; i < NSET && !known; i++) known = !strcmp(settings[i].name, name);
        if (!known) put_line(fd, name, "unknown", *e + l + 1, "not a setting: ignored");
    }
}
