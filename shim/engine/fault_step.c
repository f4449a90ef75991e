/* A fired fault rule applied to an answer, step by step, the same for every layer: which
 * bytes go out, where the stream stalls, and how it ends (reset, EOF mid-body, or an early
 * normal end after the provider's error event). Each layer turns the steps into what a real
 * server failure looks like there. */
#include "engine/faults.h"
#include "engine/fault_body.h"
#include <stdlib.h>
#include <string.h>

static bool is_done(const lr_event_t *e) { return e->len >= 12 && !memcmp(e->data, "data: [DONE]", 12); }

/* Index of the last event that carries content (before a final [DONE]); -1 when none. */
static int last_content(const lr_response_t *r)
{
    int n = r->nevents;
    return n > 0 && is_done(&r->events[n - 1]) ? n - 2 : n - 1;
}

static int send_whole(lr_fplan_t *p, const lr_event_t *e, lr_fstep_t *st)
{
    st->data = e->data;
    st->len = st->chunk_len = e->len;
    st->then = LR_FS_SEND;
    p->sent += (long)e->len;
    return LR_FS_SEND;
}

/* The event with its last '}' blanked: the framing and the length stay, the JSON does not parse. */
static int send_malformed(lr_fplan_t *p, const lr_event_t *e, lr_fstep_t *st)
{
    free(p->scratch);
    p->scratch = malloc(e->len + 1);
    if (!p->scratch) return send_whole(p, e, st);
    memcpy(p->scratch, e->data, e->len);
    size_t n = e->len;
    for (size_t k = n; k > 0; k--)
        if (p->scratch[k - 1] == '}') { p->scratch[k - 1] = ' '; break; }
    st->data = p->scratch;
    st->len = st->chunk_len = n;
    st->then = LR_FS_SEND;
    p->sent += (long)n;
    return LR_FS_SEND;
}

static int send_error_event(lr_fplan_t *p, lr_fstep_t *st)
{
    buf_t b;
    buf_init(&b);
    lr_fault_error_event((lr_op_t)p->op, &b);
    free(p->scratch);
    p->scratch = buf_steal(&b, &st->len);
    if (!p->scratch) return LR_FS_END;
    st->data = p->scratch;
    st->chunk_len = st->len;
    st->then = LR_FS_END;
    return LR_FS_SEND;
}

/* Part of an event, then the connection ends (then: RESET or EOF). */
static int send_part(lr_fplan_t *p, const lr_event_t *e, size_t n, int then, lr_fstep_t *st)
{
    st->data = e->data;
    st->len = n;
    st->chunk_len = e->len;
    st->then = then;
    p->sent += (long)n;
    return LR_FS_SEND;
}

static int head_step(lr_fplan_t *p, lr_fstep_t *st)
{
    if (p->delay_ms > 0 && !p->delayed) {
        p->delayed = true;
        st->wait_ms = p->delay_ms;
        return LR_FS_STALL;
    }
    if (p->stall_head && !p->stalled) {
        p->stalled = true;
        st->wait_ms = p->stall_ms;
        return LR_FS_STALL;
    }
    if (p->reset_head) return LR_FS_RESET;
    st->data = NULL;
    st->len = st->chunk_len = 0;
    st->then = LR_FS_SEND;
    return LR_FS_SEND;
}

int lr_fault_step(lr_fplan_t *p, const lr_response_t *r, int i, lr_fstep_t *st)
{
    memset(st, 0, sizeof *st);
    if (i < 0) return head_step(p, st);
    int n = r->nevents, last = last_content(r);
    /* a point past the answer's events falls on its end (before a final [DONE]) */
    int end_at = last + 1 < n ? last + 1 : n;
    if (p->stall_after >= 0 && !p->stalled && i == (p->stall_after < end_at ? p->stall_after : end_at)) {
        p->stalled = true;
        st->wait_ms = p->stall_ms;
        return LR_FS_STALL;
    }
    if (p->error_after >= 0 && r->stream && i == (p->error_after < end_at ? p->error_after : end_at))
        return send_error_event(p, st);
    if (p->reset_after >= 0) {
        if (!r->stream && i == 0 && p->reset_after > 0 && n > 0 && r->events[0].len > 1) /* a plain body: halfway */
            return send_part(p, &r->events[0], r->events[0].len / 2, LR_FS_RESET, st);
        if (i == (p->reset_after < end_at ? p->reset_after : end_at)) return LR_FS_RESET;
    }
    if (i >= n) return LR_FS_END;
    const lr_event_t *e = &r->events[i];
    if (p->truncate && i == (last >= 0 ? last : 0)) return send_part(p, e, e->len / 2, LR_FS_EOF, st);
    if (p->reset_bytes >= 0 && p->sent + (long)e->len >= p->reset_bytes)
        return send_part(p, e, (size_t)(p->reset_bytes - p->sent), LR_FS_RESET, st);
    if (p->malformed && i == p->malformed - 1) return send_malformed(p, e, st);
    return send_whole(p, e, st);
}

double lr_fault_gap_ms(lr_fplan_t *p, int i)
{
    if (i <= 0 || !p->on) return 0;
    double g = p->event_ms;
    if (p->jitter_ms > 0) {
        uint64_t z = (p->rng += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        g += p->jitter_ms * (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
    }
    return g;
}
