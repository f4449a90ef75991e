/* SHA-256 (FIPS 180-4), for llama-stack's recording file names. */
#ifndef LR_SHA256_H
#define LR_SHA256_H
#include <stddef.h>
void lr_sha256_hex(const void *data, size_t len, char out[65]);
#endif
