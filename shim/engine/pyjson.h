/* Python's json.dumps(sort_keys=True) over raw JSON text, byte for byte, with llama-stack's
 * hash normalization (floats rounded to 5 decimals, also long decimals inside strings): the
 * input of llama-stack's request hash, hence of its recording file names. */
#ifndef LR_PYJSON_H
#define LR_PYJSON_H
#include "json/jspan.h"

/* Append the normalized dump of the JSON value v; false if v is not valid JSON. */
bool lr_pyjson_dump(span_t v, buf_t *out);
/* A string as json.dumps writes it (ensure_ascii). */
void lr_pyjson_str(const char *s, size_t n, buf_t *out);
/* repr() of a float. */
void lr_pyrepr_float(double v, buf_t *out);
/* llama-stack's request hash: sha256 of json.dumps({"method","endpoint"(the URL's path),
 * "body", "test_id"}, sort_keys=True); test_id is left out for model listings. */
void lr_llama_hash(const char *method, const char *url, span_t body, const char *test_id, char out[65]);
#endif
