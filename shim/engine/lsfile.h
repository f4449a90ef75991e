/* Inside the engine: what the writers of a capture share (engine/capture.c), the llama-stack
 * recording file (engine/lsfile.c) and the trace line (engine/trace.c). */
#ifndef LR_LSFILE_H
#define LR_LSFILE_H
#include "engine/record.h"
#include "json/jspan.h"

/* 'S' for an SSE answer, 'N' for NDJSON, 0 for a plain one. */
char lr_capture_stream_kind(const lr_capture_t *c);
/* A streamed body's events: each payload span and its arrival time, in arrays the caller
 * frees. Returns how many. */
int lr_capture_events(const lr_capture_t *c, span_t **evp, double **msp);
/* The request body to store: LLMREPLAY_REDACT fields (top level or dotted) become "[REDACTED]". */
void lr_capture_stored_body(const lr_capture_t *c, buf_t *out);
/* Write the exchange as a llama-stack recording in the record directory. */
void lr_lsfile_write(const lr_capture_t *c);
/* Append the exchange to the trace file (LLMREPLAY_MODE=trace). */
void lr_trace_write(const lr_capture_t *c);
#endif
