#include "engine/testid.h"
#include "base/config.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char current[1024]; /* pytest's node id, "" when no test runs */

static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_release(void) { pthread_mutex_unlock(&lock); }
__attribute__((constructor)) static void testid_init(void) { pthread_atfork(fork_prepare, fork_release, fork_release); }

/* "tests/x.py::test_a[p] (call)" -> "tests/x.py::test_a[p]": the phase is not part of the id. */
void lr_testid_pytest(const char *value)
{
    size_t n = value ? strlen(value) : 0;
    if (n && value[n - 1] == ')') {
        const char *open = strrchr(value, '(');
        if (open && open > value && open[-1] == ' ') n = (size_t)(open - 1 - value);
    }
    if (n >= sizeof current) n = sizeof current - 1;
    pthread_mutex_lock(&lock);
    memcpy(current, value ? value : "", n);
    current[n] = 0;
    pthread_mutex_unlock(&lock);
}

const char *lr_testid(char *out, size_t cap)
{
    const char *fixed = lr_cfg()->test_id;
    if (fixed) return fixed;
    pthread_mutex_lock(&lock);
    snprintf(out, cap, "%s", current);
    pthread_mutex_unlock(&lock);
    return out[0] ? out : NULL;
}
