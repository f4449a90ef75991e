/* The socket layer's logic (the hooks are sock/hook_socket.c): a connect() to an intercepted
 * destination swaps the descriptor, in place, for one end of a socketpair served by the
 * responder; afterwards the descriptor still looks like a TCP socket (peer and local address,
 * TCP options, SO_DOMAIN…). Real functions come from base/real.h. */
#ifndef LR_SWAP_H
#define LR_SWAP_H
#include <stdbool.h>
#include <sys/socket.h>

/* connect(): swapped when sa is intercepted (EINPROGRESS for a non-blocking socket),
 * ECONNREFUSED under LLMREPLAY_EGRESS=deny, otherwise the real connect. */
int lr_swap_connect(int fd, const struct sockaddr *sa, socklen_t len);
/* The TCP view of a swapped descriptor: true when fd is one, with the call's result in *ret
 * (errno set as the kernel would); false: ask the real function. */
bool lr_swap_peername(int fd, struct sockaddr *sa, socklen_t *len, int *ret);
bool lr_swap_sockname(int fd, struct sockaddr *sa, socklen_t *len, int *ret);
bool lr_swap_getsockopt(int fd, int level, int opt, void *val, socklen_t *len, int *ret);
bool lr_swap_setsockopt(int fd, int level, int opt, const void *val, socklen_t len, int *ret);
#endif
