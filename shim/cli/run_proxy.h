/* `llmreplay run` for programs LD_PRELOAD cannot reach (Go, static binaries): a local proxy. */
#ifndef LR_CLI_PROXY_H
#define LR_CLI_PROXY_H
#include <stdbool.h>
/* Inspect cmd (a path or a name on PATH); warn about what LD_PRELOAD cannot reach; when it is a
 * Go or static program, or force (--proxy), start llmreplay's proxy on 127.0.0.1 in this
 * process and choose HTTPS_PROXY, HTTP_PROXY, NO_PROXY (and lower case) for the child.
 * Call after the other variables are set and before the fork. False when the proxy was needed
 * but could not start (the reason was printed); the child still runs. */
bool lr_run_proxy(const char *cmd, bool force);
/* In the child, before exec: set the variables lr_run_proxy chose. */
void lr_run_proxy_export(void);
/* After the child exited: let the proxy finish writing what it records (at most 10 s). */
void lr_run_proxy_finish(void);
#endif
