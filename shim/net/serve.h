/* llmreplay's own HTTP server and forward proxy on a TCP port: each accepted connection is
 * served by the responder (responder.c) as a proxy's client (proxy.c). */
#ifndef LR_SERVE_H
#define LR_SERVE_H
#include <stdbool.h>
#include <stddef.h>

/* Listen on spec ("HOST:PORT", "[V6]:PORT", "PORT"; port 0: any free one) and check that a
 * client can reach it. Returns the listening descriptor (close-on-exec) and, in bound,
 * "HOST:PORT" as bound; -1 with a one-line message in err. */
int lr_serve_listen(const char *spec, char *bound, size_t cap, char *err, size_t errcap);
/* Accept on lfd from a thread of its own (signals blocked), until the process ends. */
bool lr_serve_start(int lfd);
/* Connections accepted so far. */
unsigned long lr_serve_accepted(void);
#endif
