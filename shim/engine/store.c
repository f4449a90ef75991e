#include "engine/store.h"
#include "base/real.h"
#include "base/config.h"
#include "engine/index.h"
#include "base/log.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uthash.h>

typedef struct lr_entry {
    uint64_t h1;
    lr_rec_t **recs; /* stable order: directory order, then path */
    int n, cap;
    UT_hash_handle hh;
} lr_entry_t;

typedef struct lr_counter {
    uint64_t key;
    unsigned n;
    UT_hash_handle hh;
} lr_counter_t;

struct lr_store {
    lr_entry_t *table;      /* built up front, or lazily from the index */
    lr_rec_t **all;         /* every recording in scan order (lazy with an index) */
    int nall;
    int nbad, nunsupported;
    char **dirs;
    int ndirs;
    lr_ignore_t ig;
    unsigned gen; /* a hash of ig's paths */
    double build_ms;
    lr_sdir_t *sdirs;       /* every directory scanned, to detect additions and removals */
    int nsdirs;
    lr_bad_t *badlist;
    int nbadlist;
    lr_hostport_t *hosts;   /* distinct destinations the recordings were made against */
    int nhosts;
    lr_index_t *ix;         /* the mapped index, or NULL */
    lr_rec_t **ixrecs;      /* materialized index records, by position */
    bool from_cache, all_ready, ix_corrupt;
    int64_t last_file_check_ms; /* when files were last checked for edits (lr_now, ms) */
    lr_counter_t *counters; /* answers given per request (and preferred subset) */
    pthread_mutex_t lock;   /* table (lazy part), ixrecs, all, counters */
};

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

static void add_sdir(lr_store_t *s, const char *path, int64_t mtime, int top)
{
    lr_sdir_t *v = realloc(s->sdirs, sizeof *v * (size_t)(s->nsdirs + 1));
    if (!v) return;
    s->sdirs = v;
    s->sdirs[s->nsdirs++] = (lr_sdir_t){strdup(path), mtime, top};
}

static void scan(lr_store_t *s, const char *dir, strvec_t *out, int depth)
{
    if (depth > 64) return; /* symlink loops */
    DIR *d = opendir(dir);
    if (!d) return;
    struct stat dst;
    if (fstat(dirfd(d), &dst) == 0 && depth > 0) add_sdir(s, dir, lr_mtime_ns(&dst), 0);
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
        if (t == DT_DIR) { scan(s, p, out, depth + 1); free(p); }
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

static lr_entry_t *entry_for(lr_store_t *s, uint64_t h1)
{
    lr_entry_t *e = NULL;
    HASH_FIND(hh, s->table, &h1, sizeof h1, e);
    if (!e && (e = calloc(1, sizeof *e))) {
        e->h1 = h1;
        HASH_ADD(hh, s->table, h1, sizeof e->h1, e);
    }
    return e;
}

static void entry_add(lr_entry_t *e, lr_rec_t *r)
{
    if (!e) return;
    if (e->n == e->cap) {
        int cap = e->cap ? e->cap * 2 : 2;
        lr_rec_t **v = realloc(e->recs, sizeof *v * (size_t)cap);
        if (!v) return;
        e->recs = v;
        e->cap = cap;
    }
    e->recs[e->n++] = r;
}

/* The recording at position i of the index, as a full lr_rec_t (made once). Lock held. */
static lr_rec_t *materialize(lr_store_t *s, uint32_t i)
{
    if (s->ixrecs[i]) return s->ixrecs[i];
    const lr_index_t *ix = s->ix;
    if (!lr_index_rec_ok(ix, i)) { s->ix_corrupt = true; return NULL; }
    const lr_ixrec_t *x = &ix->recs[i];
    lr_rec_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->path = strdup(lr_ixstr(ix, x->path));
    r->model = strdup(lr_ixstr(ix, x->model));
    r->test_id = x->test_id ? strdup(lr_ixstr(ix, x->test_id)) : NULL;
    snprintf(r->host, sizeof r->host, "%s", lr_ixstr(ix, x->host));
    snprintf(r->method, sizeof r->method, "%s", x->method);
    r->dir = (int)x->dir;
    r->order = (int)x->order;
    r->op = lr_op_named(lr_ixstr(ix, x->op)); /* by name: row numbers may differ between builds */
    r->port = x->port;
    r->status = x->status;
    r->streaming = x->streaming;
    r->exception = x->exception;
    r->h1 = x->h1;
    r->h2 = x->h2;
    r->size = x->size;
    r->mtime_ns = x->mtime_ns;
    if (!r->path || !r->model) { lr_rec_free(r); return NULL; }
    return s->ixrecs[i] = r;
}

lr_rec_t *const *lr_store_find(lr_store_t *s, uint64_t h1, uint64_t h2, int *n)
{
    *n = 0;
    lr_entry_t *e = NULL;
    pthread_mutex_lock(&s->lock);
    HASH_FIND(hh, s->table, &h1, sizeof h1, e);
    if (!e && s->ix) {
        /* binary search the index's sorted keys; equal keys are in scan order */
        const lr_ixrec_t *v = s->ix->recs;
        uint32_t lo = 0, hi = s->ix->nrecs;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (v[mid].h1 < h1) lo = mid + 1;
            else hi = mid;
        }
        if (lo < s->ix->nrecs && v[lo].h1 == h1) {
            e = entry_for(s, h1);
            for (uint32_t i = lo; i < s->ix->nrecs && v[i].h1 == h1; i++) {
                lr_rec_t *r = materialize(s, i);
                if (r) entry_add(e, r);
            }
            if (s->ix_corrupt) e = NULL; /* answer nothing from a damaged index: the miss rebuilds */
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (!e || !e->n || e->recs[0]->h2 != h2) return NULL; /* none, or a 64-bit collision: a miss */
    *n = e->n;
    return e->recs;
}

lr_rec_t **lr_store_all(lr_store_t *s, int *n)
{
    pthread_mutex_lock(&s->lock);
    if (s->ix && !s->all_ready && lr_index_verify_all(s->ix, (char[8]){0}, 8)) {
        lr_rec_t **all = calloc((size_t)s->ix->nrecs + 1, sizeof *all);
        if (all) {
            for (uint32_t i = 0; i < s->ix->nrecs; i++) {
                lr_rec_t *r = materialize(s, i);
                if (r && (uint32_t)r->order < s->ix->nrecs) all[r->order] = r;
            }
            int m = 0; /* drop holes left by allocation failures */
            for (uint32_t i = 0; i < s->ix->nrecs; i++)
                if (all[i]) all[m++] = all[i];
            free(s->all);
            s->all = all;
            s->nall = m;
            s->all_ready = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    *n = s->nall;
    return s->all;
}

int lr_store_size(const lr_store_t *s) { return s->ix ? (int)s->ix->nrecs : s->nall; }

lr_store_info_t lr_store_info(const lr_store_t *s)
{
    return (lr_store_info_t){lr_store_size(s), s->nbad, s->nunsupported, s->ndirs, s->from_cache, s->build_ms};
}

const lr_ignore_t *lr_store_ignore(const lr_store_t *s) { return &s->ig; }
unsigned lr_store_generation(const lr_store_t *s) { return s->gen; }

void lr_store_report(const lr_store_t *s, lr_report_fn report, void *ctx)
{
    for (int i = 0; i < s->nbadlist; i++) report(ctx, s->badlist[i].path, s->badlist[i].why, s->badlist[i].unsupported);
}

const lr_hostport_t *lr_store_hosts(const lr_store_t *s, int *n)
{
    *n = s->nhosts;
    return s->hosts;
}

static void add_host(lr_store_t *s, const char *host, int port)
{
    if (!host || !*host) return;
    for (int i = 0; i < s->nhosts; i++)
        if (s->hosts[i].port == port && !strcmp(s->hosts[i].host, host)) return;
    lr_hostport_t *v = realloc(s->hosts, sizeof *v * (size_t)(s->nhosts + 1));
    if (!v) return;
    s->hosts = v;
    snprintf(s->hosts[s->nhosts].host, sizeof s->hosts[s->nhosts].host, "%s", host);
    s->hosts[s->nhosts++].port = port;
}

static void default_report(void *ctx, const char *path, const char *why, bool unsupported)
{
    (void)ctx;
    if (unsupported) lr_log(LR_INFO, "skipping %s: %s", path, why);
    else lr_warn("skipping recording %s: %s", path, why);
}

static lr_store_t *store_new(char *const *dirs, int ndirs, const char *ignore_spec)
{
    lr_store_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    pthread_mutex_init(&s->lock, NULL);
    lr_ignore_parse(&s->ig, ignore_spec);
    uint64_t g = (uint64_t)s->ig.n;
    for (int i = 0; i < s->ig.n; i++) g = lr_hash64(s->ig.paths[i], strlen(s->ig.paths[i]) + 1, g);
    s->gen = (unsigned)g;
    s->dirs = calloc((size_t)ndirs + 1, sizeof *s->dirs);
    for (int d = 0; d < ndirs && s->dirs; d++) s->dirs[s->ndirs++] = strdup(dirs[d]);
    return s;
}

static void note_bad(lr_store_t *s, const char *path, const char *why, bool unsupported)
{
    lr_bad_t *v = realloc(s->badlist, sizeof *v * (size_t)(s->nbadlist + 1));
    if (!v) return;
    s->badlist = v;
    s->badlist[s->nbadlist++] = (lr_bad_t){strdup(path), strdup(why), unsupported};
    if (unsupported) s->nunsupported++;
    else s->nbad++;
}

lr_store_t *lr_store_build(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx)
{
    double t0 = lr_now();
    if (!report) report = default_report;
    lr_store_t *s = store_new(dirs, ndirs, ignore_spec);
    if (!s) return NULL;
    strvec_t paths = {0};
    int *dir_of = NULL;
    for (int d = 0; d < ndirs; d++) {
        struct stat st;
        if (stat(dirs[d], &st) != 0) {
            add_sdir(s, dirs[d], -1, 1);
            note_bad(s, dirs[d], "recording directory does not exist (check LLMREPLAY_DIR / -d)", false);
            continue;
        }
        add_sdir(s, dirs[d], lr_mtime_ns(&st), 1);
        int before = paths.n;
        if (S_ISREG(st.st_mode)) sv_push(&paths, strdup(dirs[d])); /* a single file is fine too */
        else scan(s, dirs[d], &paths, 0);
        if (paths.n > before) qsort(paths.v + before, (size_t)(paths.n - before), sizeof(char *), cmp_str);
        /* an empty directory is expected when recording into it */
        if (paths.n == before && lr_cfg()->mode != MODE_RECORD && lr_cfg()->mode != MODE_RECORD_IF_MISSING)
            note_bad(s, dirs[d], "recording directory holds no *.json recordings", false);
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
                note_bad(s, paths.v[i], job.why[i], !strncmp(job.why[i], "unsupported", 11));
                continue;
            }
            r->dir = dir_of[i];
            r->order = s->nall;
            add_host(s, r->host, r->port);
            s->all[s->nall++] = r;
            entry_add(entry_for(s, r->h1), r);
        }
    }
    s->all_ready = true;
    lr_store_report(s, report, ctx);
    for (int i = 0; i < paths.n; i++) free(paths.v[i]);
    free(paths.v);
    free(job.recs);
    free(job.why);
    free(dir_of);
    s->build_ms = (lr_now() - t0) * 1000;
    lr_debug("indexed %d recordings (%d bad, %d unsupported) in %.1f ms", s->nall, s->nbad, s->nunsupported, s->build_ms);
    return s;
}

static lr_store_t *from_index(lr_index_t *ix, char *const *dirs, int ndirs, const char *ignore_spec,
                              lr_report_fn report, void *ctx)
{
    lr_store_t *s = store_new(dirs, ndirs, ignore_spec);
    if (!s || !(s->ixrecs = calloc((size_t)ix->nrecs + 1, sizeof *s->ixrecs))) { lr_store_free(s); return NULL; }
    s->ix = ix;
    s->from_cache = true;
    s->build_ms = ix->build_ms;
    for (uint32_t i = 0; i < ix->ndirs; i++)
        add_sdir(s, lr_ixstr(ix, ix->dirs[i].path), ix->dirs[i].mtime_ns, (int)ix->dirs[i].flags);
    for (uint32_t i = 0; i < ix->nhosts; i++) add_host(s, lr_ixstr(ix, ix->hosts[i].host), (int)ix->hosts[i].port);
    for (uint32_t i = 0; i < ix->nbad; i++) {
        note_bad(s, lr_ixstr(ix, ix->bad[i].path), lr_ixstr(ix, ix->bad[i].why), ix->bad[i].unsupported);
        report(ctx, lr_ixstr(ix, ix->bad[i].path), lr_ixstr(ix, ix->bad[i].why), ix->bad[i].unsupported);
    }
    lr_debug("using index %s: %u recordings", ix->path, ix->nrecs);
    return s;
}

/* Hand the index writer plain arrays: it knows nothing of the store. */
static bool write_index(lr_store_t *s, const char *path, uint64_t key)
{
    int n;
    lr_rec_t **all = lr_store_all(s, &n);
    lr_ixsrc_t src = {all, n, s->sdirs, s->nsdirs, s->badlist, s->nbadlist, s->hosts, s->nhosts, s->build_ms};
    return lr_index_write(&src, path, key);
}

/* Lock the index file's build: of many processes starting at once, one builds, the others
 * wait and then map its result. A dead builder's lock goes with it. */
static int lock_build(const char *ixpath)
{
    size_t n = strlen(ixpath) + 8;
    char *lp = malloc(n);
    if (!lp) return -1;
    snprintf(lp, n, "%s.lock", ixpath);
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(lp);
    if (fd < 0) return -1;
    /* A POSIX record lock, not flock(): it belongs to the process, so a child forked during a
     * build neither inherits it nor waits on its own copy of it. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    for (int i = 0; i < 600; i++) { /* at most ~60 s, then build without the lock */
        if (lr_fcntl(fd, F_SETLK, &fl) == 0) return fd;
        if (errno != EACCES && errno != EAGAIN && errno != EINTR) break;
        lr_sleep_ms(100);
    }
    lr_close(fd);
    return -1;
}

lr_store_t *lr_store_open(char *const *dirs, int ndirs, const char *ignore_spec, lr_report_fn report, void *ctx,
                          bool trust_cache)
{
    if (!report) report = default_report;
    uint64_t key = lr_index_key(dirs, ndirs, ignore_spec);
    char *path = ndirs ? lr_index_file(key) : NULL;
    if (!path) return lr_store_build(dirs, ndirs, ignore_spec, report, ctx);
    char why[256];
    int lockfd = -1;
    for (int attempt = 0; trust_cache && attempt < 2; attempt++) {
        lr_index_t *ix = lr_index_open(path, key, why, sizeof why);
        if (ix && lr_index_dirs_fresh(ix)) {
            if (lockfd >= 0) lr_close(lockfd);
            lr_store_t *s = from_index(ix, dirs, ndirs, ignore_spec, report, ctx);
            if (s) { free(path); return s; }
        }
        lr_index_close(ix);
        if (why[0] && attempt == 0) lr_warn("index %s is unusable (%s); rebuilding it", path, why);
        if (attempt == 0 && (lockfd = lock_build(path)) < 0) break;
        /* with the lock held, look again: another process may have just built it */
    }
    if (lockfd < 0 && !trust_cache) lockfd = lock_build(path);
    lr_store_t *s = lr_store_build(dirs, ndirs, ignore_spec, report, ctx);
    if (s && !write_index(s, path, key))
        lr_log(LR_INFO, "cannot write index %s: %s (the cache is skipped)", path, strerror(errno));
    if (lockfd >= 0) lr_close(lockfd);
    free(path);
    return s;
}

bool lr_store_stale(lr_store_t *s)
{
    if (s->ix) {
        char why[256];
        pthread_mutex_lock(&s->lock);
        bool ok = !s->ix_corrupt && lr_index_verify_all(s->ix, why, sizeof why);
        pthread_mutex_unlock(&s->lock);
        if (!ok) {
            lr_warn("index %s is unusable (%s); rebuilding it", s->ix->path, s->ix_corrupt ? "a record is corrupt" : why);
            return true;
        }
    }
    for (int i = 0; i < s->nsdirs; i++) {
        struct stat st;
        int64_t m = stat(s->sdirs[i].path, &st) == 0 ? lr_mtime_ns(&st) : -1;
        if (m != s->sdirs[i].mtime_ns) return true;
    }
    /* Files edited in place leave their directory's mtime alone: stat them all, but at most
     * once a second, so a burst of misses against a large set stays cheap. */
    int64_t now = (int64_t)(lr_now() * 1000), last = __atomic_load_n(&s->last_file_check_ms, __ATOMIC_RELAXED);
    if (last && now - last < 1000) return false;
    __atomic_store_n(&s->last_file_check_ms, now, __ATOMIC_RELAXED);
    int n;
    lr_rec_t **all = lr_store_all(s, &n);
    for (int i = 0; i < n; i++)
        if (!lr_rec_unchanged(all[i])) return true;
    return false;
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
    if (s->ix) {
        for (uint32_t i = 0; i < s->ix->nrecs; i++) lr_rec_free(s->ixrecs[i]);
        lr_index_close(s->ix);
    } else {
        for (int i = 0; i < s->nall; i++) lr_rec_free(s->all[i]);
    }
    free(s->ixrecs);
    free(s->all);
    for (int i = 0; i < s->ndirs; i++) free(s->dirs[i]);
    free(s->dirs);
    for (int i = 0; i < s->nsdirs; i++) free(s->sdirs[i].path);
    free(s->sdirs);
    for (int i = 0; i < s->nbadlist; i++) { free(s->badlist[i].path); free(s->badlist[i].why); }
    free(s->badlist);
    free(s->hosts);
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
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER; /* one rescan at a time */

static lr_store_t *open_global(bool trust_cache)
{
    char **dirs;
    int n = lr_split_dirs(lr_cfg()->dir, &dirs);
    lr_store_t *s = lr_store_open(dirs, n, lr_ignore_env(), NULL, NULL, trust_cache);
    for (int i = 0; i < n; i++) free(dirs[i]);
    free(dirs);
    return s;
}

static void build_global(void) { __atomic_store_n(&global, open_global(true), __ATOMIC_RELEASE); }

lr_store_t *lr_store_global(void)
{
    pthread_once(&global_once, build_global);
    return __atomic_load_n(&global, __ATOMIC_ACQUIRE);
}

lr_store_t *lr_store_global_refresh(lr_store_t *stale)
{
    pthread_mutex_lock(&refresh_lock);
    lr_store_t *cur = __atomic_load_n(&global, __ATOMIC_ACQUIRE);
    if (cur == stale) { /* not already refreshed by another thread */
        lr_debug("recordings changed: rescanning");
        lr_store_t *fresh = open_global(false);
        if (fresh) {
            /* The old store stays allocated: other threads may still be serving from it. */
            __atomic_store_n(&global, fresh, __ATOMIC_RELEASE);
            cur = fresh;
        }
    }
    pthread_mutex_unlock(&refresh_lock);
    return cur;
}

void lr_store_lock(bool lock)
{
    static lr_store_t *held; /* the store locked by the prepare handler, if any */
    if (lock) {
        pthread_mutex_lock(&refresh_lock);
        held = __atomic_load_n(&global, __ATOMIC_ACQUIRE);
        if (held) pthread_mutex_lock(&held->lock);
    } else {
        if (held) pthread_mutex_unlock(&held->lock);
        held = NULL;
        pthread_mutex_unlock(&refresh_lock);
    }
}
