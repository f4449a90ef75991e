#include "base/log.h"
#include "base/util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int level_from_env(void)
{
    const char *v = lr_getenv("LLMREPLAY_LOG");
    if (!v) return LR_WARN;
    static const char *names[] = {"quiet", "error", "warn", "info", "debug"};
    for (int i = 0; i <= LR_DEBUG; i++)
        if (!strcmp(v, names[i])) return i;
    return LR_WARN;
}

int lr_log_level(void)
{
    static int level = -1; /* racy first read is harmless: every thread computes the same value */
    if (level < 0) level = level_from_env();
    return level;
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
    /* One write(2) keeps lines from concurrent threads and processes whole. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}
