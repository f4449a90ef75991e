/* The in-process HTTP server that answers swapped sockets from the engine. */
#ifndef LR_RESPONDER_H
#define LR_RESPONDER_H
#include <stdbool.h>

/* Serve the server end fd of a socketpair; host and port are where the client connected,
 * scheme is "http" (or "https" for TLS seen in plaintext). Starts the loop on first use (again
 * in a forked child). Takes ownership of fd. *conn and *id name the connection for
 * net/inline.c (lr_inline_write). */
bool lr_responder_add(int fd, const char *host, int port, const char *scheme, void **conn, unsigned long long *id);
#endif
