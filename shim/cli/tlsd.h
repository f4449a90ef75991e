/* `llmreplay tls-helper`: terminates the TLS the shim hands over (protocol: tls_term.c). */
#ifndef LR_TLSD_H
#define LR_TLSD_H
#include "net/tls_term.h"
/* Serves the control socket ctl_fd until it closes and every connection is done. Forks once
 * first: the first process returns 0 at once when ready, 1 (having said why) when it cannot
 * work; the shim waits for exactly that process. */
int lr_tlsd_main(int ctl_fd);
#endif
