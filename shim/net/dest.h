/* Which network destinations the socket layer answers: every host:port of the loaded
 * recordings plus LLMREPLAY_HOSTS; synthetic addresses for intercepted names; egress policy. */
#ifndef LR_DEST_H
#define LR_DEST_H
#include <stdbool.h>
#include <sys/socket.h>

/* Should a lookup of name be answered with a synthetic address (never the resolver)? */
bool lr_dest_fake_name(const char *name);
/* Is there a rule "*:PORT" (any host on a port)? Lookups that fail for real then fall back. */
bool lr_dest_any_host_rule(void);
/* Synthetic address of name for family (AF_INET or AF_INET6); port in network order. */
bool lr_dest_fake_addr(const char *name, int family, unsigned short port_be, struct sockaddr_storage *out, socklen_t *len);
/* Is a connect() to sa answered in-process? Then host (the name the client asked for, or the
 * rule's host for an address literal) and port describe the destination. */
bool lr_dest_intercepts(const struct sockaddr *sa, socklen_t len, char *host, size_t hostcap, int *port);
/* Is host:port (a name or a literal, as in a URL) a destination the shim answers? The
 * libcurl layer asks it for calls that are no LLM operation. */
bool lr_dest_names(const char *host, int port);
/* LLMREPLAY_EGRESS=deny: refuse this destination (not loopback, not intercepted)? Logs it once. */
bool lr_dest_egress_denied(const struct sockaddr *sa, socklen_t len);
/* "1.2.3.4:80" / "[::1]:80" for messages. */
void lr_dest_format(const struct sockaddr *sa, char *out, size_t cap);
#endif
