/* The shared engine every hook calls: request in, response out. Hooks never match or render. */
#ifndef LR_ENGINE_H
#define LR_ENGINE_H
#include "engine/render.h"

/* Operation of an URL the shim answers, OP_NONE to let it pass. Cheap: no I/O, no index. */
lr_op_t lr_engine_intercepts(const char *url);
/* The answer to one request. Never NULL. Release with lr_response_free (no-op when cached). */
lr_response_t *lr_engine_serve(const char *method, const char *url, const char *body, size_t body_len);
/* Would this request be answered from a recording? (record-if-missing asks first) */
bool lr_engine_has(const char *method, const char *url, const char *body, size_t body_len);
/* Does this request go to the real API (record, live, trace; record-if-missing on a miss)? */
bool lr_engine_upstream(const char *method, const char *url, const char *body, size_t body_len);
/* A recording LLMREPLAY_ONLY re-recorded was written: remove its older copies. */
struct lr_capture;
void lr_engine_replaced(const struct lr_capture *c, const char *written);
/* Distinct host:port pairs the recordings were made against (the socket layer answers them).
 * Opens the recordings (or their index) on first use. */
const lr_hostport_t *lr_engine_hosts(int *n);
#endif
