/* `llmreplay run`: the child's environment (LD_PRELOAD, LLMREPLAY_* from the options, the CA
 * variables), then fork, exec and wait, forwarding signals; --strict counts the misses. */
#include "cli/cli.h"
#include "base/config.h"
#include "base/util.h"
#include "cli/run_proxy.h"
#include "engine/faults.h"
#include "engine/record.h"
#include <dirent.h>
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

extern char **environ;

static const char *const usage_run =
    "usage: llmreplay run [-d DIR]... [--strict] [--proxy] [--ignore FIELDS] [--pace MS] [--speed X] [--mode MODE]\n"
    "                     [--record-dir DIR] [--report FILE] [--only REGEX] [--max-live N] [--allow-models GLOBS]\n"
    "                     [--fault RULE]... [--seed N] [--fault-log FILE] -- CMD [ARGS...]\n"
    "\n"
    "Run CMD with libllmreplay.so added to LD_PRELOAD (existing entries are kept).\n"
    "  -d, --dir DIR     recording directory (repeatable, also --dir=DIR; sets LLMREPLAY_DIR, else it is\n"
    "                    inherited); when replaying, each must exist\n"
    "  --strict          exit non-zero when any request had no recording (or a --fault rule never fired),\n"
    "                    even if CMD succeeded\n"
    "  --ignore FIELDS   comma list of body fields left out of matching (LLMREPLAY_IGNORE)\n"
    "  --pace MS         space streamed events MS milliseconds apart (LLMREPLAY_PACE_MS)\n"
    "  --speed X         replay streams with their recorded timing, X times as fast (0: no pacing; LLMREPLAY_SPEED)\n"
    "  --fault RULE      inject a fault, e.g. chat:nth=1:status=429 (repeatable; LLMREPLAY_FAULTS; see README)\n"
    "  --seed N          seed of the fault rules' p= draws, for a reproducible run (LLMREPLAY_SEED)\n"
    "  --fault-log FILE  append one JSON line per injected fault (LLMREPLAY_FAULT_LOG)\n"
    "  --mode MODE       replay (default), record, record-if-missing, live or trace (LLMREPLAY_MODE); VCR's\n"
    "                    names: none (replay), once (record if the directories hold no recording, else\n"
    "                    replay), new_episodes (record-if-missing), all (record)\n"
    "  --record-dir DIR  where recordings are written (LLMREPLAY_RECORD_DIR; default: the first -d)\n"
    "  --report FILE     write one JSON report of the run, all its processes: recordings served (and how\n"
    "                    often), misses, unused recordings, live calls with tokens, refused calls; print a\n"
    "                    summary line at exit (feed reports to llmreplay prune)\n"
    "  --only REGEX      with --mode record: only calls whose test id, operation, model or recording file\n"
    "                    matches go upstream and replace their recording; the others replay (LLMREPLAY_ONLY)\n"
    "  --max-live N      at most N upstream calls in the whole run; later ones are refused (LLMREPLAY_MAX_LIVE)\n"
    "  --allow-models G  upstream calls only for models matching these globs, comma separated\n"
    "                    (LLMREPLAY_ALLOW_MODELS)\n"
    "  --proxy           also start llmreplay's proxy for CMD (automatic for Go and static programs, which\n"
    "                    LD_PRELOAD cannot reach): HTTPS_PROXY/HTTP_PROXY name it, NO_PROXY keeps other entries\n"
    "Option values are checked as the shim reads them (also --pace=MS etc.); a bad one exits 2 at once.\n"
    "CMD trusts llmreplay's local CA, for the HTTPS llmreplay answers itself (Node, static TLS): run sets\n"
    "NODE_EXTRA_CA_CERTS to its ca.pem, and SSL_CERT_FILE, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE to\n"
    "ca-bundle.pem (the system CAs plus llmreplay's); one already set names a copy of its file with\n"
    "llmreplay's CA appended (see llmreplay ca). With a JDK (JAVA_HOME or java on PATH), JAVA_TOOL_OPTIONS\n"
    "names a PKCS12 trust store: the JDK's cacerts (or the trustStore already set there) plus the CA.\n"
    "Exit status: CMD's; with --strict and misses (or a fault rule that never fired), CMD's if non-zero, else 3.\n";

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

typedef struct {
    bool strict, proxy; /* --proxy: llmreplay's proxy for any CMD (cli/run_proxy.c) */
    const char *report; /* --report FILE */
    buf_t dirs;       /* the -d directories, absolute, colon separated */
    const char *mode; /* --mode, NULL: inherited */
    buf_t faults;     /* the --fault rules, comma separated */
    int first_cmd;    /* argv index of CMD */
} run_opts_t;

/* Options that set one variable of the child, each value checked as the shim would read it. */
static const struct {
    const char *opt, *var, *what;
} env_opts[] = {
    {"--ignore", "LLMREPLAY_IGNORE", "FIELDS"},
    {"--pace", "LLMREPLAY_PACE_MS", "MS"},
    {"--mode", "LLMREPLAY_MODE", "MODE"},
    {"--record-dir", "LLMREPLAY_RECORD_DIR", "DIR"},
    {"--speed", "LLMREPLAY_SPEED", "X"},
    {"--seed", "LLMREPLAY_SEED", "N"},
    {"--fault-log", "LLMREPLAY_FAULT_LOG", "FILE"},
    {"--only", "LLMREPLAY_ONLY", "REGEX"},
    {"--max-live", "LLMREPLAY_MAX_LIVE", "N"},
    {"--allow-models", "LLMREPLAY_ALLOW_MODELS", "GLOBS"},
    {"--report", NULL, "FILE"},
};

/* argv[*i] as one of env_opts (--opt VALUE or --opt=VALUE): 1 set, 0 not one, -1 said why. */
static int env_option(int end, char **argv, int *i, run_opts_t *o)
{
    for (size_t k = 0; k < sizeof env_opts / sizeof env_opts[0]; k++) {
        size_t l = strlen(env_opts[k].opt);
        const char *a = argv[*i], *val;
        if (!strncmp(a, env_opts[k].opt, l) && a[l] == '=') val = a + l + 1;
        else if (!strcmp(a, env_opts[k].opt)) val = *i + 1 < end ? argv[++*i] : NULL;
        else continue;
        if (!val) {
            fprintf(stderr, "llmreplay: %s needs a value (%s %s)\n", env_opts[k].opt, env_opts[k].opt, env_opts[k].what);
            return -1;
        }
        char why[512];
        if (!env_opts[k].var) { o->report = val; return 1; } /* --report: for run itself */
        if (!lr_config_check(env_opts[k].var, val, why, sizeof why)) {
            const char *acc = strstr(why, "(accepted:");
            fprintf(stderr, "llmreplay: %s %s is not valid %s\n", env_opts[k].opt, val, acc ? acc : why);
            return -1;
        }
        if (!strcmp(env_opts[k].var, "LLMREPLAY_MODE")) o->mode = val;
        /* --speed scales the recorded timing, so it asks for it unless a fixed pace is set */
        if (!strcmp(env_opts[k].var, "LLMREPLAY_SPEED") && !getenv("LLMREPLAY_PACE_MS")) setenv("LLMREPLAY_PACE", "recorded", 1);
        setenv(env_opts[k].var, val, 1);
        return 1;
    }
    return 0;
}

/* --fault RULE / --fault=RULE: 1 taken, 0 not one, -1 said why. */
static int fault_option(int end, char **argv, int *i, run_opts_t *o)
{
    const char *a = argv[*i], *val;
    if (!strncmp(a, "--fault=", 8)) val = a + 8;
    else if (!strcmp(a, "--fault")) val = *i + 1 < end ? argv[++*i] : NULL;
    else return 0;
    char why[1200];
    if (!val) { fprintf(stderr, "llmreplay: --fault needs a rule (--fault RULE, e.g. --fault chat:nth=1:status=429)\n"); return -1; }
    if (!lr_fault_check(val, why, sizeof why)) { fprintf(stderr, "llmreplay: --fault: %s\n", why); return -1; }
    if (o->faults.len) buf_addc(&o->faults, ',');
    buf_adds(&o->faults, val);
    return 1;
}

/* The rules CMD gets: LLMREPLAY_FAULTS (checked: a bad one is refused) and the --fault ones. */
static int fault_env(run_opts_t *o)
{
    const char *env = getenv("LLMREPLAY_FAULTS");
    char why[1200];
    if (env && *env && !lr_faults_check(env, why, sizeof why)) {
        fprintf(stderr, "llmreplay: LLMREPLAY_FAULTS: %s\n", why);
        return 2;
    }
    if (!o->faults.len) return 0;
    buf_t all;
    buf_init(&all);
    if (env && *env) { buf_adds(&all, env); buf_addc(&all, ','); }
    buf_add(&all, o->faults.data, o->faults.len);
    setenv("LLMREPLAY_FAULTS", all.data, 1);
    buf_free(&all);
    return 0;
}

/* --strict: the rules the shim never reported as fired (one line each in file). */
static int strict_faults(const char *file)
{
    size_t len = 0;
    char *fired = lr_read_file(file, (size_t)1 << 30, &len);
    const char *list = getenv("LLMREPLAY_FAULTS"), *tok;
    size_t n;
    int idle = 0;
    for (const char *p = list ? list : ""; lr_list_next(&p, &tok, &n);) {
        bool seen = false;
        for (const char *l = fired; l && *l && !seen; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
            seen = strcspn(l, "\n") == n && !strncmp(l, tok, n);
        if (!seen) { fprintf(stderr, "llmreplay: --strict: fault rule '%.*s' never fired\n", (int)n, tok); idle++; }
    }
    free(fired);
    unlink(file);
    return idle;
}

/* The options before CMD: 0, or 2 having said why. */
static int parse_run(int argc, char **argv, run_opts_t *o)
{
    int sep = -1;
    for (int i = 1; i < argc && sep < 0; i++)
        if (!strcmp(argv[i], "--")) sep = i;
    int end = sep < 0 ? argc : sep;
    o->first_cmd = sep >= 0 ? sep + 1 : -1;
    for (int i = 1; i < end; i++) {
        const char *val;
        int r = cli_dir_option(end, argv, &i, &val);
        if (r > 0) {
            char *abs = realpath(val, NULL); /* the program may chdir */
            if (o->dirs.len) buf_addc(&o->dirs, ':');
            buf_adds(&o->dirs, abs ? abs : val);
            free(abs);
            continue;
        }
        if (r == 0) r = env_option(end, argv, &i, o);
        if (r == 0) r = fault_option(end, argv, &i, o);
        if (r < 0) return 2;
        if (r > 0) continue;
        if (!strcmp(argv[i], "--strict")) o->strict = true;
        else if (!strcmp(argv[i], "--proxy")) o->proxy = true;
        else if (sep < 0 && argv[i][0] != '-') { o->first_cmd = i; break; }
        else { fprintf(stderr, "llmreplay: unknown run option %s (see llmreplay run --help)\n", argv[i]); return 2; }
    }
    if (o->first_cmd < 0 || o->first_cmd >= argc) {
        fprintf(stderr, "llmreplay: run needs a command: llmreplay run -d DIR -- CMD [ARGS...]\n");
        return 2;
    }
    return 0;
}

/* Does dir hold a *.json file at any depth (hidden entries skipped, as the scan does)? */
static bool holds_recording(const char *dir, int depth)
{
    DIR *d = depth < 32 ? opendir(dir) : NULL;
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(e->d_name);
        if (e->d_type == DT_REG && lr_has_suffix(e->d_name, n, ".json")) found = true;
        else if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            found = holds_recording(sub, depth + 1);
        }
    }
    closedir(d);
    return found;
}

/* Replay reads the -d directories, so a missing one is a mistake (the record modes create
 * it), and an empty one is worth a warning: every request to it will miss. */
static int check_dirs(const run_opts_t *o)
{
    bool replay = o->mode ? !strcmp(o->mode, "replay") || !strcmp(o->mode, "none") : lr_cfg()->mode == MODE_REPLAY;
    if (!replay) return 0;
    for (const char *p = o->dirs.data ? o->dirs.data : ""; *p;) {
        size_t l = strcspn(p, ":");
        char *d = lr_strndup(p, l);
        int r = cli_dir_exists(d);
        struct stat st;
        if (!r && stat(d, &st) == 0 && S_ISDIR(st.st_mode) && !holds_recording(d, 0))
            fprintf(stderr, "llmreplay: warning: %s holds no recording (*.json): every request will miss; "
                            "check the -d path\n", d);
        free(d);
        if (r) return -1;
        p += l + (p[l] == ':');
    }
    return 0;
}

/* The child's shim would repeat the warning this process gave for each bad LLMREPLAY_* value:
 * it gets the default the warning named instead. */
static void drop_bad_settings(void)
{
    char *bad[64];
    int n = 0;
    for (char **e = environ; *e && n < 64; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "LLMREPLAY_", 10)) continue;
        char *name = lr_strndup(*e, (size_t)(eq - *e)), why[512];
        if (!eq[1] || lr_config_check(name, eq + 1, why, sizeof why) || strstr(why, "is not a setting")) free(name);
        else bad[n++] = name;
    }
    for (int i = 0; i < n; i++) {
        /* as the warning said: a broken LLMREPLAY_ONLY selects no call, it does not select all */
        if (!strcmp(bad[i], "LLMREPLAY_ONLY")) setenv(bad[i], "a^", 1);
        else unsetenv(bad[i]);
        free(bad[i]);
    }
}

static void add_preload(const char *lib)
{
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, lib)) return;
    buf_t p;
    buf_init(&p);
    if (pre && *pre) { buf_adds(&p, pre); buf_addc(&p, ' '); }
    buf_adds(&p, lib);
    setenv("LD_PRELOAD", p.data, 1);
    buf_free(&p);
}

/* The environment of CMD: 0, or 2 having said why. */
static int child_env(run_opts_t *o, const char *cmd)
{
    char *lib = find_library();
    if (!lib) {
        fprintf(stderr, "llmreplay: cannot find libllmreplay.so next to the llmreplay binary; set LLMREPLAY_LIB\n");
        return 2;
    }
    drop_bad_settings();
    if (o->dirs.len) setenv("LLMREPLAY_DIR", o->dirs.data, 1);
    else if (!lr_cfg()->dir && (!getenv("LLMREPLAY_MODE") || !strcmp(getenv("LLMREPLAY_MODE"), "replay")))
        fprintf(stderr, "llmreplay: warning: no -d DIR and no LLMREPLAY_DIR: every request will miss\n");
    add_preload(lib);
    free(lib);
    /* once is decided here, for every process of the run alike */
    lr_config_reload();
    if (lr_cfg()->mode == MODE_ONCE) setenv("LLMREPLAY_MODE", lr_mode_name(lr_mode()), 1);
    setenv("LLMREPLAY__RUN", "1", 1); /* the TLS helper's hints know the CA variables are set */
    cli_export_ca();
    return 0;
}

static pid_t child;
static void forward(int sig) { if (child > 0) kill(child, sig); }

/* Run argv, forward the signals a terminal or a CI runner sends, and return its status. */
static int spawn_wait(char **argv)
{
    fflush(NULL);
    child = fork();
    if (child < 0) { fprintf(stderr, "llmreplay: fork: %s\n", strerror(errno)); return 2; }
    if (child == 0) {
        lr_run_proxy_export();
        execvp(argv[0], argv);
        fprintf(stderr, "llmreplay: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    signal(SIGINT, forward);
    signal(SIGTERM, forward);
    signal(SIGHUP, forward);
    int st = 0;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {}
    lr_run_proxy_finish();
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* The shim appends a line per miss to the strict file; count them and remove it. */
static int strict_misses(const char *file)
{
    struct stat sb;
    int misses = 0;
    if (stat(file, &sb) == 0 && sb.st_size > 0) {
        size_t len;
        char *t = lr_read_file(file, (size_t)1 << 30, &len);
        for (size_t i = 0; t && i < len; i++) misses += t[i] == '\n';
        free(t);
    }
    unlink(file);
    return misses;
}

int cli_run(int argc, char **argv, bool *ran)
{
    int h = cli_help_or_version(argc, argv, usage_run);
    if (h >= 0) return h;
    run_opts_t o = {0};
    buf_init(&o.dirs);
    buf_init(&o.faults);
    int rc = parse_run(argc, argv, &o);
    if (!rc) rc = fault_env(&o);
    buf_free(&o.faults);
    if (!rc && check_dirs(&o)) rc = 2;
    if (!rc) rc = child_env(&o, argv[o.first_cmd]);
    buf_free(&o.dirs);
    if (rc) return rc;
    char strict_file[] = "/tmp/llmreplay-strict-XXXXXX";
    if (o.strict) {
        int fd = mkstemp(strict_file);
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot create a temporary file: %s\n", strerror(errno)); return 2; }
        close(fd);
        setenv("LLMREPLAY__STRICT_FILE", strict_file, 1);
    }
    char fault_file[] = "/tmp/llmreplay-faults-XXXXXX";
    bool check_faults = o.strict && getenv("LLMREPLAY_FAULTS") && *getenv("LLMREPLAY_FAULTS");
    if (check_faults) {
        int fd = mkstemp(fault_file);
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot create a temporary file: %s\n", strerror(errno)); return 2; }
        close(fd);
        setenv("LLMREPLAY__FAULT_FILE", fault_file, 1);
    }
    /* the report, and a spend guard shared by all processes, need the run's usage files */
    bool usage = o.report || getenv("LLMREPLAY_MAX_LIVE");
    if (usage && cli_report_begin()) return 2;
    lr_config_reload(); /* the proxy (Go, static programs) answers in this process, as the child would */
    lr_run_proxy(argv[o.first_cmd], o.proxy);
    rc = spawn_wait(argv + o.first_cmd);
    if (ran) *ran = true;
    if (usage) {
        const char *dirs = getenv("LLMREPLAY_DIR");
        int r = cli_report_end(o.report, dirs);
        if (r && !rc) rc = r;
    }
    int misses = o.strict ? strict_misses(strict_file) : 0;
    if (misses) {
        fprintf(stderr, "llmreplay: --strict: %d request%s had no recording (see the messages above)\n", misses,
                misses == 1 ? "" : "s");
        if (!rc) rc = 3;
    }
    if (check_faults && strict_faults(fault_file) && !rc) rc = 3;
    return rc;
}

int cmd_run(int argc, char **argv) { return cli_run(argc, argv, NULL); }
