/* The exchange between a hooked TLS session and the responder. A session whose handshake the
 * shim skips sends HELLO where a ClientHello would go; the responder answers ACK, then reads
 * plaintext HTTP, which it knows came over "https". ACK ends in 16 random bytes of this
 * process (lr_hello_ack), so no other peer (a proxy, a real server, the network) can answer
 * it, and plaintext never reaches one. */
#ifndef LR_HELLO_H
#define LR_HELLO_H
#include <stdbool.h>
#include <stddef.h>
#define LR_TLS_HELLO "\0llmreplay-tls 1\n"
#define LR_TLS_HELLO_LEN 17
#define LR_TLS_ACK_PREFIX "\0llmreplay-ack:" /* then the secret, then '\n' */
#define LR_TLS_ACK_PREFIX_LEN 15
#define LR_TLS_ACK_LEN 32
/* The process's ACK (the same in a forked child, which answers with its own responder):
 * made on first use, from any thread. */
const unsigned char *lr_hello_ack(void);
#endif
