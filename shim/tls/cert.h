/* Certificates for intercepted TLS: a CA and leaf certificates issued on demand for a host
 * name. The code is written once against a table of libcrypto functions, so the shim can use
 * the libcrypto the host process already loaded (resolved with dlsym: its objects are handed
 * to the host's libssl) and the CLI its linked one. */
#ifndef LR_CERT_H
#define LR_CERT_H
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct lr_crypto lr_crypto_t;

/* The libcrypto already loaded in this process (never loads one), or NULL when it is absent
 * or lacks a function cert.c needs. */
const lr_crypto_t *lr_crypto_host(void);
/* The libcrypto the program is linked with (cert_linked.c, CLI only). */
const lr_crypto_t *lr_crypto_linked(void);

typedef struct lr_issuer lr_issuer_t;
/* A new CA (EC P-256 key and self-signed certificate) that lives in memory only. */
lr_issuer_t *lr_issuer_ephemeral(const lr_crypto_t *cr);
/* The persistent CA of dir: loaded, or created once (ca.pem, ca-key.pem mode 0600, and
 * ca-bundle.pem = the system bundle plus ca.pem). NULL with a message in err on failure. */
lr_issuer_t *lr_issuer_persistent(const lr_crypto_t *cr, const char *dir, char *err, size_t errcap);
/* The leaf certificate for name (a DNS or IP subjectAltName), issued on first use and cached;
 * borrowed, valid while the issuer lives. Thread-safe. NULL on failure. */
X509 *lr_issuer_leaf(lr_issuer_t *is, const char *name);
/* The private key of every leaf (one per issuer). */
EVP_PKEY *lr_issuer_leaf_key(lr_issuer_t *is);
X509 *lr_issuer_ca_cert(lr_issuer_t *is);
/* dest := the PEM file base (none when NULL), then ca: a trust file for variables such as
 * SSL_CERT_FILE, which replace a bundle instead of adding to it. Written (to a temporary file,
 * then renamed) only when older than either. False when a file cannot be read or dest cannot
 * be written. */
bool lr_trust_bundle(const char *base, const char *ca, const char *dest);
/* Frees the issuer with every leaf it issued (their borrowers must be done with them). */
void lr_issuer_free(lr_issuer_t *is);
#endif
