/* TLS the shim cannot hook (Node's built-in OpenSSL, static binaries) is terminated for real,
 * outside the host process: the `llmreplay tls-helper` process holds the TLS side and hands
 * the responder plaintext. The host never loads a second libssl. */
#ifndef LR_TLS_TERM_H
#define LR_TLS_TERM_H
/* Every control message to the helper starts so: "LRT1" + host + NUL, SCM_RIGHTS [TLS fd,
 * plaintext fd] (the helper is cli/tlsd.c). */
#define LR_TLSD_MAGIC "LRT1"
/* tls_fd is the responder's end of a swapped connection whose first bytes (still unread) are
 * a TLS ClientHello; host is the name the client connected to (the certificate's name when
 * the client sends no SNI). Starts the helper on first use (again after fork). Returns a
 * non-blocking, close-on-exec descriptor that carries the plaintext, or -1 after logging what
 * to do. Always takes ownership of tls_fd. */
int lr_tls_terminate(int tls_fd, const char *host);
/* Find the binary and copy the environment for the helper, from an application thread (the
 * responder's thread must not read the environment); once per process. */
void lr_tls_term_prepare(void);
#endif
