/* What a test suite does with its recordings, per process: usage accounting for
 * `llmreplay run --report` (one JSON line per event, appended to the file run names in
 * LLMREPLAY__USAGE_FILE by every process of the run), the spend guard (LLMREPLAY_MAX_LIVE,
 * LLMREPLAY_ALLOW_MODELS), targeted re-recording (LLMREPLAY_ONLY) and VCR's `once` mode. */
#ifndef LR_USAGE_H
#define LR_USAGE_H
#include "engine/record.h"
#include "engine/render.h"

/* A recording answered a request. */
void lr_usage_served(const char *path);
/* A recording was written (record modes). */
void lr_usage_recorded(const char *path);
/* A miss: line is the miss-log object ("{...}\n"). */
void lr_usage_miss(const char *line, size_t n);
/* An upstream exchange finished: operation, model, status and tokens from its usage fields. */
void lr_usage_live(const lr_capture_t *c);

/* LLMREPLAY_ONLY: does a call of this test, operation, model and recording file match? */
bool lr_only_selects(const char *test_id, lr_op_t op, const char *model, const char *file);
/* May this call go upstream? Takes one of LLMREPLAY_MAX_LIVE's calls when it may; when not,
 * says so on stderr (naming the limit) and counts the refusal. */
bool lr_guard_admit(const char *method, const char *url, lr_op_t op, const char *model);
/* The refusal for a call over a limit now (no call is taken), NULL when none applies. */
lr_response_t *lr_guard_refusal(lr_op_t op, const char *model);
#endif
