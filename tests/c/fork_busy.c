/* Regression test: fork() while other threads are inside replays. Each child must be able to
 * replay at once (no lock inherited in the held state), and every replay must succeed.
 * usage: fork_busy SEED_BODY_FILE */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char body[1 << 16];
static int stop; /* atomic: read by the busy threads */
static int failures;

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static int replay_on(CURL *h)
{
    curl_easy_setopt(h, CURLOPT_URL, "http://localhost:8000/v1/chat/completions");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    return rc == CURLE_OK && code == 200;
}

static int replay(void)
{
    CURL *h = curl_easy_init();
    int ok = replay_on(h);
    curl_easy_cleanup(h);
    return ok;
}

static void *busy(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED))
        if (!replay()) __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv)
{
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f) return 2;
    body[fread(body, 1, sizeof body - 1, f)] = 0;
    fclose(f);
    curl_global_init(CURL_GLOBAL_ALL);
    replay(); /* the index exists before the threads start racing fork() */
    pthread_t th[3];
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, busy, NULL);
    int bad_children = 0;
    for (int i = 0; i < 100; i++) {
        /* the child's handle is made before fork(): libcurl's own global init lock, taken by
         * curl_easy_init in the busy threads, is not fork-safe, and this tests the shim's locks */
        CURL *ch = curl_easy_init();
        pid_t p = fork();
        if (p == 0) {
            alarm(30); /* a deadlock shows as SIGALRM (14) instead of a hung test */
            _exit(replay_on(ch) ? 0 : 1);
        }
        curl_easy_cleanup(ch);
        int st;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            if (!bad_children++)
                fprintf(stderr, "child %d: %s %d\n", i, WIFSIGNALED(st) ? "killed by signal" : "exit status",
                        WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    printf("%d bad children, %d failed replays\n", bad_children, failures);
    return bad_children || failures ? 1 : 0;
}
