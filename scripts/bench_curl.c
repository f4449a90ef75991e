/* Benchmark helper for scripts/bench.sh: performs the same POST N times with curl_easy_perform
 * on one reused easy handle (so a real server is reached over one keep-alive connection) and
 * prints the cost per request. The write callback only counts bytes.
 *
 * usage: bench_curl URL BODYFILE N [WARMUP]
 * output (one line on stdout):
 *   requests=N warmup=W status=S bytes_per_request=B connections=C total_s=T us_per_request=U vmhwm_kb=K
 * (C: new TCP connections over the whole run, warm-up included, 0 when the shim answers;
 * K: this process's peak RSS in KiB, from VmHWM in /proc/self/status)
 * Exit status: 0 when every request returned 200 with the same number of body bytes,
 * 1 otherwise (the first failure is described on stderr), 2 on bad usage. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    *(size_t *)ud += sz * n;
    return sz * n;
}

/* Peak RSS of this process image in KiB (VmHWM: the high-water mark of the memory map made by
 * execve, so unlike ru_maxrss it does not include the parent's size when that parent vforked
 * us, as Python's subprocess does). -1 if unknown. */
static long vmhwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) { kb = atol(line + 6); break; }
    fclose(f);
    return kb;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return NULL; }
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)*len + 1);
    if (!b || fread(b, 1, (size_t)*len, f) != (size_t)*len) { fclose(f); free(b); return NULL; }
    b[*len] = 0;
    fclose(f);
    return b;
}

/* One request; returns 0 on success and sets *bytes to the body size received. */
static long connects; /* new connections opened: 1 in total when keep-alive works */

static int one(CURL *h, size_t *bytes, long *status, long i)
{
    *bytes = 0;
    long c = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bench_curl: request %ld: %s\n", i, curl_easy_strerror(rc));
        return 1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &c) == CURLE_OK) connects += c;
    if (*status != 200) {
        fprintf(stderr, "bench_curl: request %ld: HTTP status %ld\n", i, *status);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL BODYFILE N [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    long n = atol(argv[3]), warm = argc > 4 ? atol(argv[4]) : 0;
    if (n < 1 || warm < 0) { fprintf(stderr, "bench_curl: bad N or WARMUP\n"); return 2; }
    long blen;
    char *body = slurp(argv[2], &blen);
    if (!body) return 2;
    /* A body file written with a trailing newline: send the JSON only, as curl -d would. */
    while (blen && (body[blen - 1] == '\n' || body[blen - 1] == '\r')) body[--blen] = 0;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *h = curl_easy_init();
    if (!h) { fprintf(stderr, "bench_curl: curl_easy_init failed\n"); return 1; }
    size_t got = 0;
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, blen);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);

    long status = 0;
    size_t expect = 0;
    /* The first request (index build, first render, connection set-up) is never timed unless
     * it is the only one: with N=1 and no warm-up the whole process is what is measured. */
    for (long i = 0; i < warm; i++) {
        if (one(h, &got, &status, -1 - i)) return 1;
        expect = got;
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (one(h, &got, &status, i)) return 1;
        if (i == 0 && !warm) expect = got;
        if (got != expect || !got) {
            fprintf(stderr, "bench_curl: request %ld: %zu body bytes, expected %zu\n", i, got, expect);
            return 1;
        }
    }
    double t = now() - t0;
    printf("requests=%ld warmup=%ld status=%ld bytes_per_request=%zu connections=%ld total_s=%.6f us_per_request=%.3f"
           " vmhwm_kb=%ld\n", n, warm, status, expect, connects, t, t * 1e6 / (double)n, vmhwm_kb());
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    free(body);
    return 0;
}
