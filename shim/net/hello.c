/* What comes first on a responder connection, and the per-process secret that ends the
 * responder's ACK (net/hello.h). */
#include "net/hello.h"
#include "base/util.h"
#include "net/conn.h"
#include "net/tls_term.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

static unsigned char ack[LR_TLS_ACK_LEN];
static pthread_once_t ack_once = PTHREAD_ONCE_INIT;

static void make_ack(void)
{
    memcpy(ack, LR_TLS_ACK_PREFIX, LR_TLS_ACK_PREFIX_LEN);
    unsigned char *secret = ack + LR_TLS_ACK_PREFIX_LEN;
    size_t n = LR_TLS_ACK_LEN - LR_TLS_ACK_PREFIX_LEN - 1;
    if (getrandom(secret, n, 0) != (ssize_t)n) {
        /* no getrandom (old kernel, seccomp): the kernel's 16 random bytes for this process
         * (AT_RANDOM), with the pid and time for a forked child's own secret */
        const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
        uint64_t seed = (uint64_t)getpid() ^ (uint64_t)(lr_now() * 1e9);
        uint64_t a = lr_hash64(r ? (const void *)r : (const void *)&seed, r ? 16 : sizeof seed, seed);
        uint64_t b = lr_hash64(r ? (const void *)r : (const void *)&a, r ? 16 : sizeof a, a);
        memcpy(secret, &a, 8);
        memcpy(secret + 8, &b, 8);
    }
    ack[LR_TLS_ACK_LEN - 1] = '\n';
}

const unsigned char *lr_hello_ack(void)
{
    pthread_once(&ack_once, make_ack);
    return ack;
}

/* What comes first on a connection: a hooked TLS session's HELLO (answer ACK: plaintext
 * follows), a real ClientHello from TLS the shim cannot hook (hand the ciphertext to the TLS
 * helper, go on with its plaintext), or plain HTTP. False while HELLO is incomplete. */
bool lr_hello_sniff(lr_conn_t *c)
{
    unsigned char b[LR_TLS_HELLO_LEN];
    if (c->hello == 0) {
        ssize_t n = recv(c->fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0) return true; /* EOF or error: the read below sees it */
        if (b[0] == 0x16) {
            lr_server_unwatch(c); /* before the descriptor goes to the helper */
            int fd = lr_tls_terminate(c->fd, c->name);
            c->sniffed = true;
            c->helper = true;
            c->scheme = "https";
            c->tls_helper = true; /* a reset is the helper's: the client's end goes to it (conn_fault.c) */
            lr_server_watch(c, fd);
            return false; /* the plaintext arrives on the new descriptor */
        }
        if (b[0] != 0) { c->sniffed = true; return true; }
    }
    ssize_t n = recv(c->fd, b, LR_TLS_HELLO_LEN - c->hello, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n <= 0) { c->sniffed = true; return true; } /* EOF or error: the read below sees it */
    if (memcmp(b, LR_TLS_HELLO + c->hello, (size_t)n) != 0) {
        /* not HELLO after all: those bytes are the request's */
        buf_add(&c->in, LR_TLS_HELLO, c->hello);
        buf_add(&c->in, b, (size_t)n);
        c->sniffed = true;
        return true;
    }
    c->hello += (size_t)n;
    if (c->hello < LR_TLS_HELLO_LEN) return false;
    c->sniffed = true;
    c->scheme = "https";
    buf_add(&c->out, lr_hello_ack(), LR_TLS_ACK_LEN);
    if (!lr_conn_flush(c)) c->dead = true;
    return true;
}
