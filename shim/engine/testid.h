/* The test a request belongs to: LLMREPLAY_TEST_ID, else the node id of pytest's
 * PYTEST_CURRENT_TEST at the time of the request.
 *
 * PYTEST_CURRENT_TEST changes between tests, so it is no start-up setting, and the thread that
 * needs it (the socket layer's responder) must never read the environment while the program may
 * be changing it. The value is therefore pushed, not pulled: it is read once when the library
 * loads, and again on the program's own thread right after each setenv/putenv/unsetenv/clearenv
 * that may change it (sock/hook_env.c), into a copy here that any thread can read under a lock.
 * The program changes it before its next request leaves, so a request always sees its test. */
#ifndef LR_TESTID_H
#define LR_TESTID_H
#include <stdbool.h>
#include <stddef.h>

/* The environment's PYTEST_CURRENT_TEST changed (value NULL: removed). */
void lr_testid_pytest(const char *value);
/* The test id of a request made now, in out (cap bytes); NULL when there is none. */
const char *lr_testid(char *out, size_t cap);
#endif
