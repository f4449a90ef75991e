/* The providers' own error answers, for fault rules (engine-internal). */
#ifndef LR_FAULT_BODY_H
#define LR_FAULT_BODY_H
#include "engine/render.h"

/* status as the provider of op answers it: OpenAI's error object and x-ratelimit-* headers,
 * Anthropic's {"type":"error"} (529 overloaded_error), Ollama's {"error": "..."}; retry_after
 * in seconds (-1: the provider's usual). An owned response. */
lr_response_t *lr_fault_status_response(lr_op_t op, int status, int retry_after, const char *model);
/* The error event a provider sends in the middle of a stream of op (with its framing). */
void lr_fault_error_event(lr_op_t op, buf_t *out);
#endif
