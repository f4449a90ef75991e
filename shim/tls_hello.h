/* The two-line handshake between a hooked TLS session and the responder. A session whose
 * handshake the shim skips sends HELLO where a ClientHello would go; the responder answers
 * ACK and then reads plaintext HTTP, which it knows came over "https". A peer that is not the
 * responder (a proxy, a real server) never answers ACK, so plaintext never reaches it. */
#ifndef LR_TLS_HELLO_H
#define LR_TLS_HELLO_H
#define LR_TLS_HELLO "\0llmreplay-tls 1\n"
#define LR_TLS_ACK "\0llmreplay-ack 1\n"
#define LR_TLS_HELLO_LEN 17
#endif
