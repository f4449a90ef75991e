/* What the write hooks cost a program that never talks to an LLM: N 64-byte write() calls to a
 * pipe drained by a second thread. Prints ns per write. Run with and without the shim
 * preloaded (scripts/bench_fast.py). usage: bench_write [N]   (default 1,000,000) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int fds[2];

static void *drain(void *arg)
{
    (void)arg;
    char b[65536];
    while (read(fds[0], b, sizeof b) > 0) {}
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char msg[64] = "a line of 64 bytes that some program writes to a pipe, again\n";
    pthread_t t;
    if (pipe(fds) != 0) { perror("bench_write"); return 1; }
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups of the reader: less noise */
    if (pthread_create(&t, NULL, drain, NULL) != 0) { perror("bench_write"); return 1; }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++)
        if (write(fds[1], msg, sizeof msg) != (ssize_t)sizeof msg) { perror("bench_write: write"); return 1; }
    clock_gettime(CLOCK_MONOTONIC, &b);
    close(fds[1]);
    pthread_join(t, NULL);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)(n ? n : 1);
    printf("{\"ns\": %.2f}\n", ns);
    return 0;
}
