/* A validating, allocation-free JSON scanner over raw text.
 * Recordings are mostly response bytes the shim only has to copy: scanning spans lets the
 * index skip them and lets rendering keep every number and escape exactly as recorded. */
#ifndef LR_JSPAN_H
#define LR_JSPAN_H
#include <stdbool.h>
#include <stddef.h>
#include "base/util.h"

typedef struct { const char *p; size_t n; } span_t;

/* Pointer just past the JSON value starting at p (leading whitespace allowed), or NULL. */
const char *js_skip(const char *p, const char *end);
/* True when s is exactly one JSON value, whitespace around it allowed. */
bool js_valid(span_t s);
/* Where the scan that just failed in this thread (js_fields, js_valid) stopped: s.n means the
 * input ended inside a value (a truncated document). */
long js_last_error(span_t s);
/* One validating pass over a whole document that must be an object: the values of keys
 * (first occurrence; .p NULL when absent). False when the document is not valid JSON. */
bool js_fields(span_t obj, const char *const *keys, span_t *out, int n);
span_t js_trim(span_t s);
char js_kind(span_t s); /* first byte of the trimmed value: '{', '[', '"', 't', 'f', 'n', or a digit/'-' */
/* Value of key in the object s (keys compared raw, which suffices for ASCII keys). */
bool js_get(span_t obj, const char *key, span_t *out);
/* Array iteration: start with *pos = NULL; false at the end. */
bool js_next(span_t arr, const char **pos, span_t *item);
/* Copy the value without insignificant whitespace. */
void js_minify(span_t s, buf_t *out);
bool js_is_null(span_t s);
bool js_is_true(span_t s);
/* Decode a JSON string value (escapes resolved) into a new NUL-terminated string. */
char *js_strdup(span_t s);
#endif
