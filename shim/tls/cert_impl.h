/* The libcrypto function table behind cert.h, shared by cert.c (the host's libcrypto, found
 * with dlsym) and cert_linked.c (the CLI's). Each entry is a real exported function, never
 * one of OpenSSL's macros (EVP_EC_gen, X509_get_notBefore...), so dlsym can find it. */
#ifndef LR_CERT_IMPL_H
#define LR_CERT_IMPL_H
#include "tls/cert.h"
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define LR_CRYPTO_FUNCS(X) \
    X(EVP_PKEY_Q_keygen) X(EVP_PKEY_free) X(EVP_sha256) \
    X(X509_new) X(X509_free) X(X509_set_version) X(X509_get_serialNumber) X(ASN1_STRING_set) X(RAND_bytes) \
    X(X509_getm_notBefore) X(X509_getm_notAfter) X(X509_time_adj_ex) \
    X(X509_get_subject_name) X(X509_NAME_add_entry_by_txt) X(X509_set_issuer_name) X(X509_set_pubkey) \
    X(X509V3_set_ctx) X(X509V3_EXT_conf_nid) X(X509_add_ext) X(X509_EXTENSION_free) X(X509_sign) \
    X(X509_check_private_key) \
    X(PEM_read_X509) X(PEM_write_X509) X(PEM_read_PrivateKey) X(PEM_write_PrivateKey) \
    X(ERR_set_mark) X(ERR_pop_to_mark) X(ERR_peek_last_error) X(ERR_error_string_n)

/* Each field has the exact type of the function it holds: the compiler checks every call. */
#define LR_CRYPTO_FIELD(f) __typeof__(f) *f;
struct lr_crypto {
    LR_CRYPTO_FUNCS(LR_CRYPTO_FIELD)
};
#endif
