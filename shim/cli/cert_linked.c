/* The CLI's libcrypto in the cert.c function table (the CLI links -lcrypto; the shim never). */
#include "tls/cert_impl.h"

const lr_crypto_t *lr_crypto_linked(void)
{
#define LR_CRYPTO_LINK(f) .f = f,
    static const struct lr_crypto table = {LR_CRYPTO_FUNCS(LR_CRYPTO_LINK)};
    return &table;
}
