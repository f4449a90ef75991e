/* llmreplay: the command table, --help/--version, the options every command shares, and
 * `llmreplay config`. Each command lives in its own file (run.c, trace.c, inspect.c, trust.c). */
#include "cli/cli.h"
#include "base/config.h"
#include "cli/tlsd.h"
#include "net/proxy.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef LR_VERSION
#define LR_VERSION "0.1.0"
#endif

static int cmd_tls_helper(int argc, char **argv) { return lr_tlsd_main(3); } /* started by the shim */

static const lr_command_t commands[] = {
    {"run", cmd_run, "run [-d DIR]... [--mode M] [--report F] -- CMD...  run CMD with the shim preloaded"},
    {"serve", cmd_serve, "serve [-d DIR]... [--listen A:P]         answer on a TCP port: a base URL and an HTTP(S) proxy"},
    {"ls", cmd_ls, "ls [-d DIR]... [DIR...]                 one line per recording"},
    {"check", cmd_check, "check [-d DIR]... [DIR...]              validate recordings; exit 1 on any problem"},
    {"explain", cmd_explain, "explain [-d DIR]... REQUEST.json|-      which recording answers a request, or why none does"},
    {"index", cmd_index, "index [-d DIR]... [DIR...]              build the persistent index ahead of time"},
    {"trace", cmd_trace, "trace [-o FILE.jsonl] -- CMD...         run CMD live and log/summarize its HTTP exchanges"},
    {"ca", cmd_ca, "ca [--bundle]                           create llmreplay's local CA if needed, print its ca.pem"},
    {"prune", cmd_prune, "prune [--dry-run] REPORT...             delete recordings unused in every report of run --report"},
    {"config", cmd_config, "config                                  the effective LLMREPLAY_* settings and their sources"},
    {"tls-helper", cmd_tls_helper, NULL},
};

static void usage_main(FILE *f)
{
    fputs("usage: llmreplay COMMAND [OPTIONS]\n"
          "\n"
          "Replay recorded LLM API answers (llama-stack recordings) to unmodified programs.\n"
          "\n"
          "commands:\n", f);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].summary) fprintf(f, "  %s\n", commands[i].summary);
    fputs("\n"
          "Directories: -d DIR, --dir DIR or --dir=DIR (repeatable), else LLMREPLAY_DIR.\n"
          "Every command takes --help and --version. Environment: see README.md and llmreplay config.\n", f);
}

int cli_help_or_version(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(usage, stdout); return 0; }
        if (!strcmp(argv[i], "--version")) { cli_print_version(); return 0; }
    }
    return -1;
}

int cli_dir_option(int end, char **argv, int *i, const char **val)
{
    const char *a = argv[*i];
    if (!strncmp(a, "--dir=", 6)) {
        *val = a + 6;
        if (**val) return 1;
        fprintf(stderr, "llmreplay: --dir= needs a directory (--dir=DIR)\n");
        return -1;
    }
    if (strcmp(a, "-d") && strcmp(a, "--dir")) return 0;
    /* "-d --strict" or "-d -- CMD" is a forgotten directory, not one named "--strict" */
    const char *next = *i + 1 < end ? argv[*i + 1] : NULL;
    if (!next || !*next || (next[0] == '-' && next[1])) {
        fprintf(stderr, "llmreplay: %s needs a directory (%s DIR)\n", a, a);
        return -1;
    }
    *val = next;
    ++*i;
    return 1;
}

int cli_dir_exists(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) return 0;
    if (errno == ENOENT || errno == ENOTDIR) fprintf(stderr, "llmreplay: %s: no such directory\n", path);
    else fprintf(stderr, "llmreplay: %s: %s\n", path, strerror(errno));
    return -1;
}

static void dirs_add(dirs_t *d, const char *p)
{
    char **v = realloc(d->dirs, sizeof *v * (size_t)(d->n + 1));
    char *s = strdup(p);
    if (!v || !s) { fprintf(stderr, "llmreplay: out of memory\n"); exit(2); }
    d->dirs = v;
    d->dirs[d->n++] = s;
}

void cli_dirs_free(dirs_t *d)
{
    for (int i = 0; i < d->n; i++) free(d->dirs[i]);
    free(d->dirs);
    d->dirs = NULL;
    d->n = 0;
}

int cli_parse_dirs(int argc, char **argv, dirs_t *d, const char **endpoint, const char **positional)
{
    for (int i = 1; i < argc; i++) {
        const char *val;
        int r = cli_dir_option(argc, argv, &i, &val);
        if (r < 0) return -1;
        if (r > 0) dirs_add(d, val);
        else if (endpoint && !strcmp(argv[i], "--endpoint") && i + 1 < argc) *endpoint = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "llmreplay: unknown option %s (see llmreplay %s --help)\n", argv[i], argv[0]);
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
    for (int i = 0; i < d->n; i++)
        if (cli_dir_exists(d->dirs[i])) return -1;
    return 0;
}

static const char *usage_config =
    "usage: llmreplay config\n"
    "\n"
    "Print every LLMREPLAY_* setting as the shim reads it from this environment: name, where the\n"
    "value came from (environment; default; invalid: the environment's value is not valid, so the\n"
    "default is used, and why), and the effective value. LLMREPLAY_* variables that are no setting\n"
    "are listed as unknown (a typo is ignored by the shim).\n";

int cmd_config(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_config);
    if (h >= 0) return h;
    if (argc > 1) {
        fprintf(stderr, "llmreplay: config takes no arguments, got %s (see llmreplay config --help)\n", argv[1]);
        return 2;
    }
    fflush(stdout);
    lr_config_print(1);
    return 0;
}

int main(int argc, char **argv)
{
    lr_proxy_disable_hops(); /* a client's configured proxy is answered in the shim only, never in llmreplay serve */
    if (argc < 2) { usage_main(stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) { usage_main(stdout); return 0; }
    if (!strcmp(c, "--version")) { cli_print_version(); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "llmreplay: unknown command %s (see llmreplay --help)\n\n", c);
    usage_main(stderr);
    return 2;
}
