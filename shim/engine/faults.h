/* Fault injection (LLMREPLAY_FAULTS, llmreplay run --fault): rules of a selector and actions,
 * parsed once; each request is matched against them (per-rule counters, a seeded RNG) and the
 * rule that fires gives a plan, which every layer applies to the answer its own way (socket
 * resets and stalls, libcurl's error codes). The plan itself is layer-neutral: what to send,
 * when, and how the answer ends. */
#ifndef LR_FAULTS_H
#define LR_FAULTS_H
#include "engine/render.h"
#include <stdbool.h>
#include <stdint.h>

/* What one fired rule does to one answer. Copied into the connection or transfer. */
typedef struct {
    bool on;            /* a rule fired */
    int op;             /* lr_op_t of the request: whose error shapes */
    bool reset_head;    /* reset before any byte of the answer */
    bool stall_head;    /* stall before any byte of the answer */
    int reset_after;    /* reset after this many events (-1: no) */
    long reset_bytes;   /* reset after this many body bytes (-1: no) */
    int stall_after;    /* stop after the head and this many events (-1: no) */
    double stall_ms;    /* for that long (0: until the client gives up) */
    bool truncate;      /* the last event cut in half, then the connection closes (EOF) */
    int malformed;      /* this event (1-based) is sent as broken JSON (0: no) */
    int error_after;    /* after this many events, the provider's error event ends the stream (-1) */
    double delay_ms;    /* before the first byte */
    double event_ms;    /* added before every event after the first */
    double jitter_ms;   /* plus a random 0..jitter_ms */
    uint64_t rng;       /* jitter draws */
    /* progress, kept by lr_fault_step */
    long sent;          /* body bytes handed out so far */
    bool stalled;       /* the stall happened (a timed one is over) */
    bool delayed;       /* the delay before the first byte is over */
    char *scratch;      /* a changed event (freed by lr_fault_plan_free) */
} lr_fplan_t;

/* The answer to one request with the fault rules applied: when a rule fires, *plan says what
 * to do (a status rule answers the provider's error itself, no recording is consumed), and it
 * is logged once (stderr at info, LLMREPLAY_FAULT_LOG). Without rules this is lr_engine_serve. */
lr_response_t *lr_fault_serve(const char *method, const char *url, const char *body, size_t len, lr_fplan_t *plan);
void lr_fault_plan_free(lr_fplan_t *plan);

/* The next step of an answer under a plan, at event i (-1: the head; r->nevents: the end).
 * LR_FS_SEND: send st->data/len (the event, or what replaces it), then st->then:
 *   LR_FS_SEND go on, LR_FS_RESET reset the connection, LR_FS_EOF close it (EOF mid-body),
 *   LR_FS_END end the body normally now;
 * LR_FS_RESET / LR_FS_EOF / LR_FS_END at once, without sending event i;
 * LR_FS_STALL: send nothing; wait st->wait_ms (0: forever), then ask again.
 * At i == -1, LR_FS_SEND means: send the head now (data NULL). */
enum { LR_FS_SEND, LR_FS_RESET, LR_FS_EOF, LR_FS_END, LR_FS_STALL };
typedef struct {
    const char *data;
    size_t len;
    size_t chunk_len; /* what a chunk header announces: more than len when cut mid-event */
    int then;
    double wait_ms;
} lr_fstep_t;
int lr_fault_step(lr_fplan_t *p, const lr_response_t *r, int i, lr_fstep_t *st);
/* Extra milliseconds before event i (i > 0): event-delay plus jitter. */
double lr_fault_gap_ms(lr_fplan_t *p, int i);

/* Parse one rule (the CLI checks --fault with this): false with why naming the rule. */
bool lr_fault_check(const char *rule, char *why, size_t cap);
/* Check a whole LLMREPLAY_FAULTS value (rules separated by commas). */
bool lr_faults_check(const char *list, char *why, size_t cap);
/* The accepted grammar, for messages. */
extern const char lr_fault_grammar[];
#endif
