/* The llmreplay command: what the command files share (main.c parses the common options). */
#ifndef LR_CLI_H
#define LR_CLI_H
#include "engine/store.h"
#include <stdbool.h>

/* A command: `llmreplay NAME ...` calls fn(argc, argv) with argv[0] == NAME. The usage text
 * starts "usage: llmreplay NAME" and is printed by --help. Adding a command is one row of the
 * table in main.c. */
typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary; /* the line of `llmreplay --help`; NULL: not listed */
} lr_command_t;

int cmd_run(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_ca(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_prune(int argc, char **argv);

/* report.c: the run's usage file and live-call counter (LLMREPLAY__USAGE_FILE,
 * LLMREPLAY__LIVE_FILE) in a fresh temporary directory: 0, or 2 having said why. */
int cli_report_begin(void);
/* After CMD: fold the usage file into the report (report NULL: only clean up), print the
 * one-line summary: 0, or 2 having said why. dirs: the recording directories, colon separated. */
int cli_report_end(const char *report, const char *dirs);
/* version.c: `llmreplay --version`: the version, and the libcurl, libssl and cJSON found. */
void cli_print_version(void);
int cmd_serve(int argc, char **argv);

/* --help/-h prints usage, --version the version (both exit 0): the status, else -1. */
int cli_help_or_version(int argc, char **argv, const char *usage);

/* A directory option at argv[*i] (argument end excluded): -d DIR, --dir DIR or --dir=DIR.
 * 1 with *val set and *i on its last word, 0 when argv[*i] is not one, -1 (said why) when the
 * directory is missing. */
int cli_dir_option(int end, char **argv, int *i, const char **val);
/* 0 when path exists, else -1 having said "llmreplay: PATH: no such directory". */
int cli_dir_exists(const char *path);

typedef struct {
    char **dirs;
    int n;
} dirs_t;

/* Directories from -d options and positional arguments, else LLMREPLAY_DIR, each checked to
 * exist; with endpoint, --endpoint PATH; with positional, the one positional argument.
 * -1 (said why) on a bad option or directory. */
int cli_parse_dirs(int argc, char **argv, dirs_t *d, const char **endpoint, const char **positional);
void cli_dirs_free(dirs_t *d);

/* run.c: cmd_run, and *ran set once CMD was started (trace summarizes only then). */
int cli_run(int argc, char **argv, bool *ran);
/* trust.c: llmreplay's CA (created on first use) in the child's CA variables, and LLMREPLAY_BIN. */
void cli_export_ca(void);
#endif
