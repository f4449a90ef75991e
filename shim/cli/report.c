/* `llmreplay run --report FILE` and `llmreplay prune`. The processes of a run append one JSON
 * line per event to a usage file (engine/usage.c); at exit run folds them into one report:
 * which recordings served and how often, the misses, the recordings nothing used, the live
 * calls with their tokens, the calls the spend guard refused. prune deletes what every report
 * given calls unused. */
#include "cli/cli.h"
#include "base/config.h"
#include "base/util.h"
#include "json/cjson_rt.h"
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

/* ---- the run's scratch directory ---------------------------------------------------- */

static char rundir[PATH_MAX], usage_file[PATH_MAX + 16];

int cli_report_begin(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(rundir, sizeof rundir, "%s/llmreplay-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(rundir)) {
        fprintf(stderr, "llmreplay: cannot create a temporary directory in %s: %s; set TMPDIR\n", tmp ? tmp : "/tmp",
                strerror(errno));
        return 2;
    }
    char live[PATH_MAX + 16];
    snprintf(usage_file, sizeof usage_file, "%s/usage.jsonl", rundir);
    snprintf(live, sizeof live, "%s/live", rundir);
    setenv("LLMREPLAY__USAGE_FILE", usage_file, 1);
    setenv("LLMREPLAY__LIVE_FILE", live, 1);
    return 0;
}

static void rundir_remove(void)
{
    char p[PATH_MAX + 16];
    unlink(usage_file);
    snprintf(p, sizeof p, "%s/live", rundir);
    unlink(p);
    rmdir(rundir);
}

/* ---- folding the events ------------------------------------------------------------- */

typedef struct {
    char *file; /* absolute, resolved */
    unsigned served;
    bool recorded;
    UT_hash_handle hh;
} use_t;

typedef struct {
    use_t *uses;
    buf_t misses, live, refused; /* JSON array items, comma separated */
    unsigned nmiss, nlive, nrefused, nunused, nserved;
    long long tok_in, tok_out;
} fold_t;

static use_t *use_of(fold_t *f, const char *path)
{
    char *abs = realpath(path, NULL);
    const char *k = abs ? abs : path;
    use_t *u;
    HASH_FIND_STR(f->uses, k, u);
    if (!u) {
        u = calloc(1, sizeof *u);
        if (!u) { free(abs); return NULL; }
        u->file = abs ? abs : strdup(path);
        HASH_ADD_KEYPTR(hh, f->uses, u->file, strlen(u->file), u);
    } else free(abs);
    return u;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = J.GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static double num(const cJSON *o, const char *k)
{
    const cJSON *v = J.GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void add_item(buf_t *list, const char *line, size_t n)
{
    if (list->len) buf_adds(list, ",\n    ");
    buf_add(list, line, n);
}

static void fold_line(fold_t *f, const char *line, size_t n)
{
    cJSON *o = lr_json_parse(line, n);
    const char *kind = o ? str(o, "kind") : NULL, *file = o ? str(o, "file") : NULL;
    if (!kind) { if (o) J.Delete(o); return; }
    use_t *u;
    if (!strcmp(kind, "served") && file && (u = use_of(f, file))) { u->served++; f->nserved++; }
    else if (!strcmp(kind, "recorded") && file && (u = use_of(f, file))) u->recorded = true;
    else if (!strcmp(kind, "miss")) { f->nmiss++; add_item(&f->misses, line, n); }
    else if (!strcmp(kind, "refused")) { f->nrefused++; add_item(&f->refused, line, n); }
    else if (!strcmp(kind, "live")) {
        f->nlive++;
        f->tok_in += (long long)num(o, "prompt_tokens");
        f->tok_out += (long long)num(o, "completion_tokens");
        add_item(&f->live, line, n);
    }
    J.Delete(o);
}

static void fold_file(fold_t *f, const char *path)
{
    size_t len;
    char *t = lr_read_file(path, (size_t)1 << 31, &len);
    for (char *p = t; p && p < t + len;) {
        char *nl = memchr(p, '\n', (size_t)(t + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(t + len - p);
        if (n) fold_line(f, p, n);
        p += n + 1;
    }
    free(t);
}

static int strcmp_ptr(const char *const *a, const char *const *b) { return strcmp(*a ? *a : "", *b ? *b : ""); }

/* ---- unused recordings -------------------------------------------------------------- */

/* Every *.json under path (hidden entries skipped, as the shim scans), not served or written. */
static void walk_unused(fold_t *f, const char *path, buf_t *out, int depth)
{
    struct stat st;
    if (depth > 32 || stat(path, &st) != 0) return;
    if (S_ISREG(st.st_mode)) {
        size_t l = strlen(path);
        if (l < 5 || strcmp(path + l - 5, ".json")) return;
        char *abs = realpath(path, NULL);
        use_t *u;
        HASH_FIND_STR(f->uses, abs ? abs : path, u);
        if (!u || (!u->served && !u->recorded)) {
            if (out->len) buf_adds(out, ",\n    ");
            buf_json_strz(out, abs ? abs : path);
            f->nunused++;
        }
        free(abs);
        return;
    }
    DIR *d = S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    if (!d) return;
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char **v = realloc(names, sizeof *v * (n + 1));
        if (!v) break;
        names = v;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, (int (*)(const void *, const void *))strcmp_ptr);
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_MAX];
        if (names[i]) { snprintf(sub, sizeof sub, "%s/%s", path, names[i]); walk_unused(f, sub, out, depth + 1); }
        free(names[i]);
    }
    free(names);
}

static int by_file(const use_t *a, const use_t *b) { return strcmp(a->file, b->file); }

static void write_report(fold_t *f, const char *dirs, buf_t *o)
{
    buf_adds(o, "{\n  \"dirs\": [");
    int nd = 0;
    for (const char *p = dirs ? dirs : ""; *p;) {
        size_t l = strcspn(p, ":");
        if (l) { buf_adds(o, nd++ ? ", " : ""); buf_json_str(o, p, l); }
        p += l + (p[l] == ':');
    }
    buf_adds(o, "],\n  \"served\": [");
    HASH_SORT(f->uses, by_file);
    bool first = true;
    for (use_t *u = f->uses; u; u = u->hh.next) {
        if (!u->served) continue;
        buf_adds(o, first ? "\n    " : ",\n    ");
        first = false;
        buf_adds(o, "{\"file\": ");
        buf_json_strz(o, u->file);
        buf_printf(o, ", \"count\": %u}", u->served);
    }
    buf_adds(o, first ? "],\n  \"recorded\": [" : "\n  ],\n  \"recorded\": [");
    first = true;
    for (use_t *u = f->uses; u; u = u->hh.next) {
        if (!u->recorded) continue;
        buf_adds(o, first ? "\n    " : ",\n    ");
        first = false;
        buf_json_strz(o, u->file);
    }
    buf_printf(o, "%s],\n  \"misses\": {\"count\": %u, \"requests\": [\n    ", first ? "" : "\n  ", f->nmiss);
    buf_add(o, f->misses.data, f->misses.len);
    buf_t unused;
    buf_init(&unused);
    for (const char *p = dirs ? dirs : ""; *p;) {
        size_t l = strcspn(p, ":");
        char *d = lr_strndup(p, l);
        if (d) walk_unused(f, d, &unused, 0);
        free(d);
        p += l + (p[l] == ':');
    }
    buf_adds(o, "]},\n  \"unused\": [\n    ");
    buf_add(o, unused.data, unused.len);
    buf_free(&unused);
    buf_printf(o, "],\n  \"live\": {\"count\": %u, \"prompt_tokens\": %lld, \"completion_tokens\": %lld, \"calls\": [\n    ",
               f->nlive, f->tok_in, f->tok_out);
    buf_add(o, f->live.data, f->live.len);
    buf_printf(o, "]},\n  \"refused\": {\"count\": %u, \"calls\": [\n    ", f->nrefused);
    buf_add(o, f->refused.data, f->refused.len);
    buf_adds(o, "]}\n}\n");
}

static void fold_free(fold_t *f)
{
    use_t *u, *t;
    HASH_ITER(hh, f->uses, u, t) { HASH_DEL(f->uses, u); free(u->file); free(u); }
    buf_free(&f->misses);
    buf_free(&f->live);
    buf_free(&f->refused);
}

int cli_report_end(const char *report, const char *dirs)
{
    fold_t f = {0};
    buf_init(&f.misses);
    buf_init(&f.live);
    buf_init(&f.refused);
    if (lr_cjson()) fold_file(&f, usage_file);
    rundir_remove();
    if (!report) { fold_free(&f); return 0; }
    buf_t o;
    buf_init(&o);
    write_report(&f, dirs, &o);
    unsigned nrec = 0;
    for (use_t *u = f.uses; u; u = u->hh.next) nrec += u->served > 0;
    int rc = 0;
    if (o.oom || !lr_write_atomic(report, 0644, o.data, o.len, NULL, 0)) {
        fprintf(stderr, "llmreplay: cannot write the report %s: %s; pass --report a writable path\n", report, strerror(errno));
        rc = 2;
    } else {
        fprintf(stderr, "llmreplay: %u served from %u recording%s, %u miss%s, %u unused, %u live call%s (%lld+%lld tokens), "
                "%u refused; report: %s\n", f.nserved, nrec, nrec == 1 ? "" : "s", f.nmiss, f.nmiss == 1 ? "" : "es",
                f.nunused, f.nlive, f.nlive == 1 ? "" : "s", f.tok_in, f.tok_out, f.nrefused, report);
    }
    buf_free(&o);
    fold_free(&f);
    return rc;
}

/* ---- prune --------------------------------------------------------------------------- */

static const char *const usage_prune =
    "usage: llmreplay prune [--dry-run] REPORT...\n"
    "\n"
    "Delete the recordings that are unused in every report given (llmreplay run --report FILE; one\n"
    "per parallel CI job), printing each file removed. A recording any report saw used, or that a\n"
    "report does not list (another directory), is kept. --dry-run prints what would be removed.\n";

/* Count, per file, the reports that list it as unused. */
static int read_unused(const char *report, use_t **set)
{
    size_t len;
    char *t = lr_read_file(report, (size_t)1 << 31, &len);
    cJSON *o = t ? lr_json_parse(t, len) : NULL;
    free(t);
    const cJSON *un = o ? J.GetObjectItemCaseSensitive(o, "unused") : NULL;
    if (!cJSON_IsArray(un)) {
        fprintf(stderr, "llmreplay: %s is not a report of llmreplay run --report (%s)\n", report, o ? "no \"unused\" list" : strerror(errno ? errno : EINVAL));
        if (o) J.Delete(o);
        return -1;
    }
    for (const cJSON *e = un->child; e; e = e->next) {
        if (!cJSON_IsString(e)) continue;
        use_t *u;
        HASH_FIND_STR(*set, e->valuestring, u);
        if (!u && (u = calloc(1, sizeof *u)) && (u->file = strdup(e->valuestring))) HASH_ADD_KEYPTR(hh, *set, u->file, strlen(u->file), u);
        if (u) u->served++; /* here: how many reports list it */
    }
    J.Delete(o);
    return 0;
}

int cmd_prune(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_prune);
    if (h >= 0) return h;
    bool dry = false;
    int nrep = 0, rc = 0;
    use_t *set = NULL;
    if (!lr_cjson()) return 2;
    for (int i = 1; i < argc && !rc; i++) {
        if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n")) dry = true;
        else if (argv[i][0] == '-' && argv[i][1]) { fprintf(stderr, "llmreplay: unknown prune option %s (see llmreplay prune --help)\n", argv[i]); rc = 2; }
        else if (read_unused(argv[i], &set)) rc = 2;
        else nrep++;
    }
    if (!rc && !nrep) { fprintf(stderr, "llmreplay: prune needs at least one report: llmreplay prune [--dry-run] REPORT...\n"); rc = 2; }
    HASH_SORT(set, by_file);
    unsigned removed = 0;
    for (use_t *u = set; u && !rc; u = u->hh.next) {
        if (u->served != (unsigned)nrep) continue;
        if (dry) { printf("would remove %s\n", u->file); removed++; continue; }
        if (unlink(u->file) == 0) { printf("removed %s\n", u->file); removed++; }
        else if (errno != ENOENT) fprintf(stderr, "llmreplay: cannot remove %s: %s\n", u->file, strerror(errno));
    }
    if (!rc) fprintf(stderr, "llmreplay: %s %u recording%s unused in all %d report%s\n", dry ? "would remove" : "removed", removed,
                     removed == 1 ? "" : "s", nrep, nrep == 1 ? "" : "s");
    use_t *u, *t;
    HASH_ITER(hh, set, u, t) { HASH_DEL(set, u); free(u->file); free(u); }
    return rc;
}
