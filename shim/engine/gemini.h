/* Google's generateContent family (Gemini API and Vertex AI): the model taken from the URL
 * into the match key, llama-stack's Vertex recordings (the google-genai SDK's arguments and
 * objects) turned into the wire request and answer, Google's error shape, the OAuth token. */
#ifndef LR_GEMINI_H
#define LR_GEMINI_H
#include "engine/ops.h"
#include "engine/render.h"
#include "json/cjson_rt.h"
#include "json/jspan.h"

/* The model a Gemini or Vertex URL names (…/models/MODEL:verb), copied to out; false if none. */
bool lr_gemini_url_model(const char *url, char *out, size_t cap);
/* "publishers/google/models/M", "models/M" -> "M". */
const char *lr_gemini_short_model(const char *model);
/* The body a client sent, as it is matched: the URL's model folded in as "model", the SDKs'
 * defaults normalised. A new tree (NULL when out of memory). */
cJSON *lr_gemini_client_body(const char *url, const cJSON *body);
/* A recording's request body as it is matched: SDK arguments ({model, contents, config}, as
 * llama-stack records Vertex calls) become the wire body first. A new tree. */
cJSON *lr_gemini_recorded_body(const char *url, const char *model, const cJSON *body);
/* The wire JSON of a recorded answer that holds the SDK's object (snake_case, sdk_http_response):
 * camelCase, SDK-only members dropped; a listing's nextPageToken dropped too (one recording
 * answers every page). False (nothing written) when it is already wire JSON with no token. */
bool lr_gemini_answer(span_t payload, buf_t *out);
/* The answer for a client of embedding method want, from a recording of another one (they
 * match as one): the recorded vectors in want's shape. NULL when there is nothing to reshape. */
lr_response_t *lr_gemini_adapt(const lr_response_t *r, lr_op_t want);
/* Google's error body: {"error":{"code","message","status"}}. */
void lr_gemini_error_body(int status, const char *msg, buf_t *out);
/* The answer to an OAuth token exchange in replay: a fake bearer token. */
const char *lr_gemini_token_body(void);
/* A copy of url without its key= query parameter (the Gemini API key), or NULL if it has none. */
char *lr_url_without_key(const char *url);
#endif
