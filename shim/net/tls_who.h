/* Hints for TLS clients whose library the shim does not hook (GnuTLS, NSS, Java). */
#ifndef LR_TLS_WHO_H
#define LR_TLS_WHO_H
/* From an application thread, before its connection is served: notes the TLS libraries mapped. */
void lr_tls_who_prepare(void);
/* At a handover to the TLS helper (any thread): one stderr line, for a client whose library
 * ignores the CA variables, naming it and the option that makes it trust llmreplay's CA. */
void lr_tls_who_hint(const char *host);
#endif
