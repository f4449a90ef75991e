/* Every LLMREPLAY_* setting, read from the environment once into one immutable structure and
 * validated: a bad value gives one warning naming the variable, the value and what is
 * accepted, and the default is used. Nothing else in the shim reads LLMREPLAY_* variables, so
 * no thread (the responder's least of all) calls getenv while the program may call setenv. */
#ifndef LR_CONFIG_H
#define LR_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

/* MODE_ONCE (VCR's once) is resolved by lr_mode() to record or replay. */
typedef enum { MODE_REPLAY, MODE_RECORD, MODE_RECORD_IF_MISSING, MODE_LIVE, MODE_TRACE, MODE_ONCE } lr_mode_t;
enum { LR_LAYER_CURL = 1, LR_LAYER_SOCKETS = 2, LR_LAYER_TLS = 4 };

typedef struct {
    const char *dir;          /* LLMREPLAY_DIR: colon-separated directories, NULL when unset */
    const char *ignore;       /* LLMREPLAY_IGNORE */
    const char *redact;       /* LLMREPLAY_REDACT */
    const char *miss_log;     /* LLMREPLAY_MISS_LOG */
    const char *strict_file;  /* LLMREPLAY__STRICT_FILE: set by llmreplay run --strict */
    const char *run;          /* LLMREPLAY__RUN: set by llmreplay run (the CA variables are exported) */
    double pace_ms;           /* LLMREPLAY_PACE_MS */
    bool pace_recorded;       /* LLMREPLAY_PACE=recorded */
    int log_level;            /* LLMREPLAY_LOG, as LR_QUIET..LR_DEBUG */
    unsigned layers;          /* LLMREPLAY_LAYERS, LR_LAYER_* bits */
    const char *upstream_ca;  /* LLMREPLAY_UPSTREAM_CA */
    const char *bin;          /* LLMREPLAY_BIN */
    const char *hosts;        /* LLMREPLAY_HOSTS */
    bool egress_deny;         /* LLMREPLAY_EGRESS=deny */
    size_t max_request_bytes; /* LLMREPLAY_MAX_REQUEST_MB */
    lr_mode_t mode;           /* LLMREPLAY_MODE */
    const char *record_dir;   /* LLMREPLAY_RECORD_DIR, else the first LLMREPLAY_DIR entry */
    const char *test_id;      /* LLMREPLAY_TEST_ID */
    bool normalize;           /* LLMREPLAY_NORMALIZE=1 */
    const char *trace_file;   /* LLMREPLAY_TRACE_FILE */
    size_t max_file_bytes;    /* LLMREPLAY_MAX_FILE_MB */
    const char *lib;          /* LLMREPLAY_LIB (the CLI's) */
    bool cache;               /* LLMREPLAY_CACHE (off: no persistent index) */
    const char *cache_dir;    /* LLMREPLAY_CACHE_DIR, else $XDG_CACHE_HOME/llmreplay, else ~/.cache/llmreplay */
    const char *faults;       /* LLMREPLAY_FAULTS: fault rules (engine/faults.c parses them) */
    const char *fault_log;    /* LLMREPLAY_FAULT_LOG */
    const char *fault_file;   /* LLMREPLAY__FAULT_FILE: fired rules, for llmreplay run --strict */
    unsigned long long seed;  /* LLMREPLAY_SEED */
    bool seed_set;
    double speed;             /* LLMREPLAY_SPEED: pacing divided by it; 0: none */
    long max_live;            /* LLMREPLAY_MAX_LIVE: upstream calls allowed, -1 unlimited */
    const char *allow_models; /* LLMREPLAY_ALLOW_MODELS: globs, comma separated */
    const char *only;         /* LLMREPLAY_ONLY: extended regex (record: only matching calls go upstream) */
    const char *usage_file;   /* LLMREPLAY__USAGE_FILE: set by llmreplay run --report */
    const char *live_file;    /* LLMREPLAY__LIVE_FILE: run's live-call counter, shared by its processes */
} lr_config_t;

/* The settings of this process, read on first use (cheap: no I/O). Never NULL. */
const lr_config_t *lr_cfg(void);
/* Read the environment again (unit tests, and the CLI after it changed its own environment). */
void lr_config_reload(void);
static inline bool lr_layer_on(unsigned layer) { return (lr_cfg()->layers & layer) != 0; }
const char *lr_mode_name(lr_mode_t m);

/* Check one value as the shim would read it: false with the warning text in why. The CLI
 * validates its options with this before putting them in the child's environment. */
bool lr_config_check(const char *name, const char *value, char *why, size_t cap);
/* `llmreplay config`: each setting, its effective value and where it came from. */
void lr_config_print(int fd);
#endif
