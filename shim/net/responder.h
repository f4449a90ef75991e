/* The in-process HTTP server that answers swapped sockets from the engine. */
#ifndef LR_RESPONDER_H
#define LR_RESPONDER_H
#include <stdbool.h>

/* A connection of the responder, as the write hooks find it again (net/inline.c). */
typedef struct { void *conn; unsigned long long id; } lr_conn_ref_t;

/* Serve the server end fd of a socketpair; host and port are where the client connected,
 * scheme is "http" (or "https" for TLS seen in plaintext). Starts the loop on first use (again
 * in a forked child). Takes ownership of fd. client_fd and client_ino name the application's
 * end (its descriptor number and inode), which a fault rule's reset needs; -1 and 0: unknown.
 * ref (may be NULL) names the connection for net/inline.c (lr_inline_write). */
bool lr_responder_add(int fd, const char *host, int port, const char *scheme, int client_fd, unsigned long client_ino,
                      lr_conn_ref_t *ref);
/* The same for a proxy's client (llmreplay serve; or, with hop, the shim answering for the real
 * proxy hop:hop_port): CONNECT and absolute-form requests are routed by net/proxy.c. */
bool lr_responder_add_proxy(int fd, const char *host, int port, const char *hop, int hop_port, int client_fd,
                            unsigned long client_ino);
/* Upstream calls (record, live, trace) still running, their recordings not yet written. */
unsigned lr_responder_busy(void);
#endif
