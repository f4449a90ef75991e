/* What every C unit test program shares: one line per check ("ok NAME" or "not ok NAME:
 * detail", the detail on one line), a crash handler that names the check that crashed, and
 * guard pages: an input whose last byte is the last readable one, so a read past it is a
 * SIGSEGV. Exit with `failures ? 1 : 0`. */
#ifndef LR_TEST_UNIT_H
#define LR_TEST_UNIT_H
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;
static const char *volatile current = "startup"; /* named by the crash handler */

/* Details go on the check's one line: control bytes are escaped, long text shortened. */
static inline void put_clean(const char *s, size_t max)
{
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    if (*s) fputs("...", stdout);
}

static inline bool check(bool ok, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool check(bool ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("ok %s\n", name);
        return true;
    }
    failures++;
    char d[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    printf("not ok %s: ", name);
    put_clean(d, 600);
    putchar('\n');
    return false;
}

static inline void on_crash(int sig)
{
    /* a guard page turns a read past the input into SIGSEGV: name the check */
    char line[512];
    int n = snprintf(line, sizeof line, "not ok %s: crashed with signal %d (read past the end of the input?)\n",
                     current, sig);
    ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
    (void)w;
    _exit(1);
}

typedef struct { char *map; size_t size; char *end; } guard_t; /* end: first unreadable byte */

static inline bool guard_init(guard_t *g, size_t maxlen)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), data = (maxlen + pg) / pg * pg;
    g->size = data + pg;
    g->map = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) return false;
    g->end = g->map + data;
    return mprotect(g->end, pg, PROT_NONE) == 0;
}

/* Copy s[0..n) so that its last byte is the last readable one. */
static inline char *guard_bytes(guard_t *g, const void *s, size_t n)
{
    memcpy(g->end - n, s, n);
    return g->end - n;
}

static inline void guard_free(guard_t *g) { munmap(g->map, g->size); }
#endif
