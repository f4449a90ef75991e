/* Synthetic answers of the resolver hooks (sock/hook_dns.c) for intercepted names: addrinfo
 * lists (IPv4 and IPv6 as the hints ask, one allocation each, told apart from libc's in
 * freeaddrinfo) and hostents. Only real EAI_* codes are returned (Node aborts on others). */
#ifndef LR_RESOLVE_H
#define LR_RESOLVE_H
#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>

/* Should a lookup of name get a synthetic answer (one of the intercepted names)? */
bool lr_resolve_fakes(const char *name);
/* After the real getaddrinfo failed with rc: is node still to get a synthetic answer (a
 * "*:PORT" rule, and node is a name, not an address literal)? */
bool lr_resolve_fallback(const char *node, int rc);
/* getaddrinfo's answer for an intercepted node: 0 or an EAI_* code. */
int lr_resolve_addrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res);
/* freeaddrinfo of one of ours: true when ai was ours (and is freed). */
bool lr_resolve_free(struct addrinfo *ai);
/* gethostbyname*_r's answer for an intercepted name (af AF_INET or AF_INET6): 0 or ERANGE,
 * ENOMEM, with *herr set. */
int lr_resolve_hostent(const char *name, int af, struct hostent *he, char *buf, size_t len, struct hostent **result,
                       int *herr);
/* The non-reentrant form: per-thread storage, like glibc's own static buffers; NULL with
 * h_errno set. */
struct hostent *lr_resolve_hostent_static(const char *name, int af);
#endif
