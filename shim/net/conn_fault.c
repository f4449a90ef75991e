/* An answer under a fault rule, on the wire: the steps of engine/fault_step.c as a failing
 * server gives them. A reset is a real ECONNRESET on the client's socketpair end (a socket
 * closed with unread input resets its peer, so one byte is queued to it from the client's end
 * first); EOF is a close mid-body (in the middle of a chunk); a stall writes nothing, for a
 * time or until the client hangs up. Through terminated TLS the helper does the same to the
 * TLS side: it gets the client's end, passed with the last plaintext byte (cli/tlsd.c). */
#include "net/conn.h"
#include "base/real.h"
#include "base/util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

void lr_conn_fault_start(lr_conn_t *c, buf_t *h)
{
    buf_free(&c->fault_head);
    c->fault_head = *h;
    buf_init(h);
    c->fault_pace = c->pace_ms;
    c->pace_ms = 1; /* non-zero: the loop wakes the connection when c->due comes */
    c->due = 0;
    c->next_ev = -1; /* the head is the first step */
    c->fault_break = 0;
    c->fault_stuck = false;
}

/* The TLS helper resets the TLS side itself: it gets the client's end with a last byte. */
static void pass_to_helper(lr_conn_t *c, int d)
{
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cm;
    memset(&cm, 0, sizeof cm);
    struct iovec iov = {"!", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &d, sizeof d);
    ssize_t w = lr_libc()->sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
}

/* Make the client's next read after the queued bytes fail with ECONNRESET: the client's end
 * (checked by inode: the number may have been reused) sends us one byte we never read. */
static void arm_reset(lr_conn_t *c)
{
    if (c->client_fd < 0) {
        /* a real TCP client (llmreplay serve): closing with SO_LINGER 0 sends an RST */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        lr_libc()->setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        return;
    }
    int d = lr_fcntl(c->client_fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) return;
    struct stat st;
    if (fstat(d, &st) == 0 && (unsigned long)st.st_ino == c->client_ino) {
        if (c->tls_helper) pass_to_helper(c, d);
        else {
            ssize_t w = lr_send(d, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
            (void)w;
        }
    }
    lr_close(d);
}

/* End the connection as the fault says, once what is queued has gone out. */
static bool conn_break(lr_conn_t *c, int how)
{
    c->fault_break = how;
    if (!lr_conn_flush(c)) return false;
    if (c->out_off < c->out.len) return true; /* EPOLLOUT brings us back */
    if (how == LR_FS_RESET) arm_reset(c);
    lr_close(c->fd);
    c->fd = -1;
    return false; /* the connection is dead */
}

static void finish(lr_conn_t *c)
{
    if (c->chunked) buf_adds(&c->out, "0\r\n\r\n");
    lr_response_free(c->resp);
    c->resp = NULL;
    lr_fault_plan_free(&c->fault);
    c->fault.on = false;
    c->pace_ms = 0;
    if (c->close_after) c->closing = true;
}

static void put(lr_conn_t *c, int i, const lr_fstep_t *st)
{
    if (i < 0) { buf_add(&c->out, c->fault_head.data, c->fault_head.len); return; }
    if (c->chunked) buf_printf(&c->out, "%zx\r\n", st->chunk_len);
    buf_add(&c->out, st->data, st->len);
    if (c->chunked && st->len == st->chunk_len) buf_adds(&c->out, "\r\n");
}

bool lr_conn_fault_pump(lr_conn_t *c)
{
    lr_response_t *r = c->resp;
    if (c->fault_break) return conn_break(c, c->fault_break);
    while (c->resp) {
        if (c->fault_stuck && c->eof) return false; /* the client gave up */
        if (c->fault_stuck || lr_now() < c->due) return lr_conn_flush(c);
        if (c->out.len - c->out_off > 256 * 1024) {
            if (!lr_conn_flush(c)) return false;
            if (c->want_out) return true;
        }
        lr_fstep_t st;
        int i = c->next_ev, k = lr_fault_step(&c->fault, r, i, &st);
        if (k == LR_FS_STALL) {
            if (st.wait_ms <= 0) { c->fault_stuck = true; c->pace_ms = 0; return lr_conn_flush(c); }
            c->due = lr_now() + st.wait_ms / 1000;
            continue;
        }
        if (k == LR_FS_RESET || k == LR_FS_EOF) return conn_break(c, k);
        if (k == LR_FS_END) break;
        put(c, i, &st);
        c->next_ev++;
        if (st.then == LR_FS_RESET || st.then == LR_FS_EOF) return conn_break(c, st.then);
        if (st.then == LR_FS_END) break;
        double gap = lr_fault_gap_ms(&c->fault, c->next_ev);
        if (i >= 0 && c->fault_pace != 0) gap += lr_event_gap_ms(r, c->next_ev, c->fault_pace);
        if (gap > 0) {
            c->due = lr_now() + gap / 1000;
            if (!lr_conn_flush(c)) return false; /* each paced event is written on its own */
        }
    }
    if (c->resp) finish(c);
    return lr_conn_flush(c);
}
