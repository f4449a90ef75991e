/* A replay under a fault rule, with the results libcurl gives for the same server failure:
 * a reset is CURLE_RECV_ERROR ("Recv failure: Connection reset by peer"), a close mid-body
 * CURLE_PARTIAL_FILE, a stall CURLE_OPERATION_TIMEDOUT once the program's CURLOPT_TIMEOUT(_MS)
 * passes or below its CURLOPT_LOW_SPEED_LIMIT for CURLOPT_LOW_SPEED_TIME (with neither, it waits
 * as libcurl would: until the program gives up, e.g. from its progress callback). */
#include "curl/curl_layer.h"
#include <string.h>

static void fail(xfer_t *x, CURLcode rc)
{
    shadow_t *s = x->sh;
    if (rc == CURLE_RECV_ERROR) set_error(s, "Recv failure: Connection reset by peer");
    else if (rc == CURLE_PARTIAL_FILE && x->resp && !x->resp->stream)
        set_error(s, "transfer closed with %lld bytes remaining to read", (long long)x->resp->body_len - (long long)s->dl);
    else if (rc == CURLE_PARTIAL_FILE) set_error(s, "transfer closed with outstanding read data remaining");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        set_error(s, "Operation timed out after %ld milliseconds with %lld bytes received", s->timeout_ms, (long long)s->dl);
    x->result = rc;
    x->done = true;
    s->t_total = elapsed(s);
}

/* How the step ends the transfer (LR_FS_RESET, EOF, END), or false to go on. */
static bool ends(xfer_t *x, int how)
{
    if (how == LR_FS_RESET) fail(x, CURLE_RECV_ERROR);
    else if (how == LR_FS_EOF) fail(x, CURLE_PARTIAL_FILE);
    else if (how == LR_FS_END) { x->done = true; x->sh->t_total = elapsed(x->sh); }
    else return false;
    return true;
}

/* Wait until when, or until the program's timeout. */
static void wait_until(xfer_t *x, double when)
{
    shadow_t *s = x->sh;
    if (s->timeout_ms > 0 && when > s->t_start + (double)s->timeout_ms / 1000) when = s->t_start + (double)s->timeout_ms / 1000;
    x->due = when;
}

/* Deliver the open step's event; false while it is not done (paused or failed). */
static bool deliver(xfer_t *x)
{
    lr_event_t ev = {(char *)x->fstep.data, x->fstep.len};
    if (!send_event(x->sh, x, &ev)) {
        if (!x->paused) x->done = true;
        return false;
    }
    x->fstep_open = false;
    x->next++;
    if (!progress(x->sh, x)) { x->done = true; return false; }
    return true;
}

/* Inside a stall (or the delay before the head): true while it lasts. libcurl calls the progress
 * callback about once a second while nothing arrives, so a program can give up from there. */
static bool stalled(xfer_t *x)
{
    double now = lr_now();
    shadow_t *s = x->sh;
    if (!x->stall_until) return false;
    if (now >= x->stall_until) { x->stall_until = 0; return false; }
    if (!progress(s, x)) { x->done = true; return true; }
    /* nothing arrives: below any CURLOPT_LOW_SPEED_LIMIT, for CURLOPT_LOW_SPEED_TIME seconds */
    if (s->low_speed_limit > 0 && s->low_speed_time > 0 && now - x->stall_start >= (double)s->low_speed_time) {
        set_error(s, "Operation too slow. Less than %ld bytes/sec transferred the last %ld seconds", s->low_speed_limit,
                  s->low_speed_time);
        x->result = CURLE_OPERATION_TIMEDOUT;
        x->done = true;
        s->t_total = elapsed(s);
        return true;
    }
    double next = x->stall_until < now + 1 ? x->stall_until : now + 1;
    if (s->low_speed_limit > 0 && s->low_speed_time > 0 && x->stall_start + (double)s->low_speed_time < next)
        next = x->stall_start + (double)s->low_speed_time;
    wait_until(x, next);
    return true;
}

void xfer_fault_step(xfer_t *x)
{
    shadow_t *s = x->sh;
    if (s->timeout_ms > 0 && elapsed(s) * 1000 >= (double)s->timeout_ms) { fail(x, CURLE_OPERATION_TIMEDOUT); return; }
    if (stalled(x)) return;
    if (x->fstep_open) {
        if (!deliver(x) || ends(x, x->fstep.then)) return;
    } else {
        lr_fstep_t st;
        int i = x->next, k = lr_fault_step(&x->fault, x->resp, i, &st);
        if (k == LR_FS_STALL) {
            x->stall_start = lr_now();
            x->stall_until = st.wait_ms > 0 ? x->stall_start + st.wait_ms / 1000 : 1e300; /* 0: until the program gives up */
            stalled(x);
            return;
        }
        if (ends(x, k)) return;
        if (i < 0) {
            if (!progress(s, x) || !send_headers(s, x)) { x->done = true; return; }
            x->next = 0;
            return;
        }
        x->fstep = st;
        x->fstep_open = true;
        x->off = 0;
        if (!deliver(x) || ends(x, st.then)) return;
    }
    double gap = lr_fault_gap_ms(&x->fault, x->next);
    if (x->pace_ms != 0) gap += lr_event_gap_ms(x->resp, x->next, x->pace_ms);
    x->due = lr_now() + gap / 1000;
}
