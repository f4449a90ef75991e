/* The responder (net/server.c, net/conn.c, net/serve.c) fed raw bytes over a socketpair, as a client would send them:
 * the input is written, the client's side shut, and the answer read until the responder closes.
 * Not closing within 5 s is a finding (a hang). Inputs starting with a TLS record are skipped:
 * those go to the TLS helper, a separate program. */
#include "net/responder.h"
#include "fuzz.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("LLMREPLAY_DIR", fz_recdir(), 1);
    setenv("LLMREPLAY_CACHE", "off", 1);
    setenv("LLMREPLAY_MODE", "replay", 1);
    fz_quiet();
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n && d[0] == 0x16) return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) abort();
    if (!lr_responder_add(sv[1], "api.openai.com", 443, "http", -1, 0, NULL)) { close(sv[0]); return 0; }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    size_t off = 0, got = 0;
    bool shut = false;
    char buf[65536];
    double t0 = now();
    for (;;) {
        if (off == n && !shut) { shutdown(sv[0], SHUT_WR); shut = true; }
        struct pollfd p = {sv[0], POLLIN | (shut ? 0 : POLLOUT), 0};
        if (now() - t0 > 5) {
            fprintf(stderr, "fuzz_responder: no close 5 s after the input ended (%zu bytes sent, %zu read)\n", off, got);
            abort();
        }
        if (poll(&p, 1, 100) <= 0) continue;
        if (p.revents & POLLOUT && !shut) {
            ssize_t w = send(sv[0], d + off, n - off, MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && errno != EAGAIN) { off = n; }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(sv[0], buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
            if (r > 0) got += (size_t)r;
        }
    }
    close(sv[0]);
    return 0;
}
