#include "base/log.h"
#include "base/config.h"
#include "base/util.h"
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Set by the config module (base/config.c) when it reads LLMREPLAY_LOG, before it warns. */
static int log_level = -1;

void lr_log_set_level(int l) { __atomic_store_n(&log_level, l, __ATOMIC_RELAXED); }

int lr_log_level(void)
{
    int l = __atomic_load_n(&log_level, __ATOMIC_RELAXED);
    if (l < 0) l = lr_cfg()->log_level;
    return l;
}

void lr_log(int level, const char *fmt, ...)
{
    if (level > lr_log_level()) return;
    int saved = errno; /* logging must never disturb the host's errno */
    char line[2048];
    int n = snprintf(line, sizeof line, "llmreplay: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    /* A line is never worth stalling the host (the responder thread logs misses): a stderr
     * pipe nobody reads gets 1 s once, then lines are dropped until it drains. */
    static int stuck;
    struct pollfd p = {STDERR_FILENO, POLLOUT, 0};
    int ready = poll(&p, 1, __atomic_load_n(&stuck, __ATOMIC_RELAXED) ? 0 : 1000);
    __atomic_store_n(&stuck, ready == 0, __ATOMIC_RELAXED);
    if (ready != 0) { /* writable, or poll failed: write as before */
        /* One write(2) keeps lines from concurrent threads and processes whole. */
        ssize_t w = syscall(SYS_write, STDERR_FILENO, line, len); /* not lr_write: logs may come from inside lr_libc() */
        (void)w;
    }
    errno = saved;
}
