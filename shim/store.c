#include "store.h"
#include "log.h"
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **v;
    int n, cap;
} strvec_t;

static void sv_push(strvec_t *s, char *p)
{
    if (!p) return;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) { free(p); return; }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void scan(const char *dir, strvec_t *out, int depth)
{
    if (depth > 64) return; /* symlink loops */
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue; /* ., .., and hidden files such as editor swap files */
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s/%s", dir, e->d_name);
        unsigned char t = e->d_type;
        if (t == DT_UNKNOWN || t == DT_LNK) {
            struct stat st;
            t = stat(p, &st) ? DT_UNKNOWN : S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
        }
        if (t == DT_DIR) { scan(p, out, depth + 1); free(p); }
        else if (t == DT_REG && lr_has_suffix(p, strlen(p), ".json")) sv_push(out, p);
        else free(p);
    }
    closedir(d);
}

typedef struct {
    char **paths;
    lr_rec_t **recs;
    char (*why)[320];
    int n;
    int next; /* atomic work counter */
    const lr_ignore_t *ig;
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    for (;;) {
        int i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (i >= j->n) break;
        j->why[i][0] = 0;
        j->recs[i] = lr_rec_load(j->paths[i], j->ig, j->why[i], sizeof j->why[i]);
    }
    return NULL;
}

lr_entry_t *lr_store_find(lr_store_t *s, uint64_t h1, uint64_t h2)
{
    lr_entry_t *e = NULL;
    HASH_FIND(hh, s->table, &h1, sizeof h1, e);
    if (e && e->n && e->recs[0]->h2 != h2) return NULL; /* a 64-bit collision: treat as a miss */
    return e;
}

unsigned lr_store_count(lr_store_t *s, uint64_t key, bool advance)
{
    pthread_mutex_lock(&s->lock);
    lr_counter_t *c = NULL;
    HASH_FIND(hh, s->counters, &key, sizeof key, c);
    if (!c && advance && (c = calloc(1, sizeof *c))) {
        c->key = key;
        HASH_ADD(hh, s->counters, key, sizeof c->key, c);
    }
    unsigned n = c ? c->n : 0;
    if (c && advance) c->n++;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void insert(lr_store_t *s, lr_rec_t *r)
{
    lr_entry_t *e = NULL;
    HASH_FIND(hh, s->table, &r->h1, sizeof r->h1, e);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) return;
        e->h1 = r->h1;
        HASH_ADD(hh, s->table, h1, sizeof e->h1, e);
    }
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 2;
        lr_rec_t **v = realloc(e->recs, sizeof *v * (size_t)cap);
        if (!v) return;
        e->recs = v;
        e->cap = cap;
    }
    e->recs[e->n++] = r;
}

static void default_report(void *ctx, const char *path, const char *why, bool unsupported)
{
    (void)ctx;
    if (unsupported) lr_log(LR_INFO, "skipping %s: %s", path, why);
    else lr_warn("skipping recording %s: %s", path, why);
}

lr_store_t *lr_store_build(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx)
{
    double t0 = lr_now();
    if (!report) report = default_report;
    lr_store_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    lr_ignore_parse(&s->ig, ignore_spec);
    s->dirs = calloc((size_t)ndirs + 1, sizeof *s->dirs);
    strvec_t paths = {0};
    int *dir_of = NULL;
    for (int d = 0; d < ndirs && s->dirs; d++) {
        s->dirs[s->ndirs++] = strdup(dirs[d]);
        struct stat st;
        if (stat(dirs[d], &st) != 0) {
            report(ctx, dirs[d], "recording directory does not exist (check LLMREPLAY_DIR / -d)", false);
            continue;
        }
        int before = paths.n;
        if (S_ISREG(st.st_mode)) sv_push(&paths, strdup(dirs[d])); /* a single file is fine too */
        else scan(dirs[d], &paths, 0);
        if (paths.n > before) qsort(paths.v + before, (size_t)(paths.n - before), sizeof(char *), cmp_str);
        if (paths.n == before)
            report(ctx, dirs[d], "recording directory holds no *.json recordings", false);
        int *nd = realloc(dir_of, sizeof(int) * (size_t)(paths.n ? paths.n : 1));
        if (!nd) break;
        dir_of = nd;
        for (int i = before; i < paths.n; i++) dir_of[i] = d;
    }
    job_t job = {paths.v, calloc((size_t)paths.n + 1, sizeof(lr_rec_t *)), calloc((size_t)paths.n + 1, sizeof *job.why),
                 paths.n, 0, &s->ig};
    if (job.recs && job.why) {
        /* Parsing is CPU-bound: a second thread halves the cold start of large sets. */
        pthread_t th;
        bool two = paths.n >= 256 && pthread_create(&th, NULL, worker, &job) == 0;
        worker(&job);
        if (two) pthread_join(th, NULL);
        s->all = calloc((size_t)paths.n + 1, sizeof *s->all);
        for (int i = 0; i < paths.n && s->all; i++) {
            lr_rec_t *r = job.recs[i];
            if (!r) {
                bool unsupported = !strncmp(job.why[i], "unsupported", 11);
                if (unsupported) s->nunsupported++;
                else s->nbad++;
                report(ctx, paths.v[i], job.why[i], unsupported);
                continue;
            }
            r->dir = dir_of[i];
            s->all[s->nall++] = r;
            insert(s, r);
        }
    }
    for (int i = 0; i < paths.n; i++) free(paths.v[i]);
    free(paths.v);
    free(job.recs);
    free(job.why);
    free(dir_of);
    s->build_ms = (lr_now() - t0) * 1000;
    lr_debug("indexed %d recordings (%d bad, %d unsupported) in %.1f ms", s->nall, s->nbad, s->nunsupported, s->build_ms);
    return s;
}

void lr_store_free(lr_store_t *s)
{
    if (!s) return;
    lr_entry_t *e, *tmp;
    HASH_ITER(hh, s->table, e, tmp) {
        HASH_DEL(s->table, e);
        free(e->recs);
        free(e);
    }
    lr_counter_t *c, *ctmp;
    HASH_ITER(hh, s->counters, c, ctmp) {
        HASH_DEL(s->counters, c);
        free(c);
    }
    pthread_mutex_destroy(&s->lock);
    for (int i = 0; i < s->nall; i++) lr_rec_free(s->all[i]);
    free(s->all);
    for (int i = 0; i < s->ndirs; i++) free(s->dirs[i]);
    free(s->dirs);
    lr_ignore_free(&s->ig);
    free(s);
}

int lr_split_dirs(const char *spec, char ***out)
{
    int n = 0;
    char **v = NULL;
    const char *p = spec ? spec : "";
    while (*p) {
        size_t l = strcspn(p, ":");
        if (l) {
            char **nv = realloc(v, sizeof *v * (size_t)(n + 1));
            if (!nv) break;
            v = nv;
            v[n++] = lr_strndup(p, l);
        }
        p += l;
        if (*p) p++;
    }
    *out = v;
    return n;
}

static lr_store_t *global;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void build_global(void)
{
    char **dirs;
    int n = lr_split_dirs(lr_getenv("LLMREPLAY_DIR"), &dirs);
    if (!n) lr_warn("LLMREPLAY_DIR is not set: no recordings loaded; set it to your recordings directory (or use llmreplay run -d DIR)");
    global = lr_store_build(dirs, n, lr_getenv("LLMREPLAY_IGNORE"), NULL, NULL);
    for (int i = 0; i < n; i++) free(dirs[i]);
    free(dirs);
}

void lr_store_lock(bool lock)
{
    static lr_store_t *held; /* the store locked by the prepare handler, if any */
    if (lock) {
        held = __atomic_load_n(&global, __ATOMIC_ACQUIRE);
        if (held) pthread_mutex_lock(&held->lock);
    } else if (held) {
        pthread_mutex_unlock(&held->lock);
        held = NULL;
    }
}

lr_store_t *lr_store_global(void)
{
    pthread_once(&global_once, build_global);
    return global;
}
