/* What the write hooks cost a program that never talks to an LLM: N 64-byte write() calls to a
 * pipe. Prints ns per write. Run with and without the shim preloaded (scripts/bench_fast.py).
 * One thread: the writes fill half of a 1 MiB pipe, untimed reads empty it, and so on, so no
 * reader thread's scheduling (which the shim does not touch) moves the figure.
 * usage: bench_write [N]   (default 1,000,000) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define BATCH 8192 /* 512 KiB of 64-byte writes: the pipe never fills */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char msg[64] = "a line of 64 bytes that some program writes to a pipe, again\n";
    static char b[1 << 16];
    int fds[2];
    if (pipe(fds) != 0 || fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) < (1 << 20)) { perror("bench_write: pipe"); return 1; }
    double spent = 0;
    for (long done = 0; done < n;) {
        long k = n - done < BATCH ? n - done : BATCH;
        double a = now_ns();
        for (long i = 0; i < k; i++)
            if (write(fds[1], msg, sizeof msg) != (ssize_t)sizeof msg) { perror("bench_write: write"); return 1; }
        spent += now_ns() - a;
        done += k;
        for (long left = k * (long)sizeof msg; left > 0;) {
            ssize_t r = read(fds[0], b, sizeof b);
            if (r <= 0) { perror("bench_write: read"); return 1; }
            left -= r;
        }
    }
    printf("{\"ns\": %.2f}\n", spent / (double)(n ? n : 1));
    return 0;
}
