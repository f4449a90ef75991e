/* A libcurl client for the tests: performs the jobs listed in a file and writes, per job, the
 * status, the content type and every write-callback chunk, so the tests can check that a
 * stream arrives event by event.
 *
 * usage: replay_client easy|multi|threads:N JOBFILE
 * JOBFILE lines: METHOD<TAB>URL<TAB>BODYFILE or -<TAB>OUTFILE */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char method[16], url[2048], bodyfile[1024], outfile[1024];
    char *body;
    long bodylen;
    FILE *out;
    CURL *h;
} job_t;

static job_t *jobs;
static int njobs, next_job;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    job_t *j = ud;
    fprintf(j->out, "%zu\n", sz * n);
    fwrite(p, 1, sz * n, j->out);
    return sz * n;
}

static void load_jobs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        jobs = realloc(jobs, sizeof *jobs * (size_t)(njobs + 1));
        job_t *j = &jobs[njobs];
        memset(j, 0, sizeof *j);
        if (sscanf(line, "%15[^\t]\t%2047[^\t]\t%1023[^\t]\t%1023[^\t\n]", j->method, j->url, j->bodyfile, j->outfile) != 4) continue;
        if (strcmp(j->bodyfile, "-")) {
            FILE *b = fopen(j->bodyfile, "rb");
            if (!b) { perror(j->bodyfile); exit(2); }
            fseek(b, 0, SEEK_END);
            j->bodylen = ftell(b);
            rewind(b);
            j->body = malloc((size_t)j->bodylen + 1);
            if (fread(j->body, 1, (size_t)j->bodylen, b) != (size_t)j->bodylen) exit(2);
            fclose(b);
        }
        njobs++;
    }
    fclose(f);
}

static void setup(CURL *h, job_t *j)
{
    j->out = fopen(j->outfile, "wb");
    if (!j->out) { perror(j->outfile); exit(2); }
    curl_easy_setopt(h, CURLOPT_URL, j->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(h, CURLOPT_PRIVATE, j);
    if (j->body) {
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd); /* leaked: lives as long as the handle */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, j->bodylen);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
    }
    if (strcmp(j->method, "POST") && strcmp(j->method, "GET")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
}

static void finish(CURL *h, job_t *j, CURLcode rc)
{
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    fprintf(j->out, "END %d %ld %s\n", (int)rc, status, ct ? ct : "-");
    fclose(j->out);
}

static void *worker(void *arg)
{
    (void)arg;
    CURL *h = curl_easy_init(); /* one handle per thread, reused: reset between jobs */
    for (;;) {
        pthread_mutex_lock(&lock);
        int i = next_job < njobs ? next_job++ : -1;
        pthread_mutex_unlock(&lock);
        if (i < 0) break;
        curl_easy_reset(h);
        setup(h, &jobs[i]);
        finish(h, &jobs[i], curl_easy_perform(h));
    }
    curl_easy_cleanup(h);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: %s easy|multi|threads:N JOBFILE\n", argv[0]); return 2; }
    curl_global_init(CURL_GLOBAL_ALL);
    load_jobs(argv[2]);
    if (!strcmp(argv[1], "easy")) {
        for (int i = 0; i < njobs; i++) {
            CURL *h = curl_easy_init();
            setup(h, &jobs[i]);
            finish(h, &jobs[i], curl_easy_perform(h));
            curl_easy_cleanup(h);
        }
    } else if (!strcmp(argv[1], "multi")) {
        CURLM *m = curl_multi_init();
        for (int i = 0; i < njobs; i++) {
            jobs[i].h = curl_easy_init();
            setup(jobs[i].h, &jobs[i]);
            curl_multi_add_handle(m, jobs[i].h);
        }
        int running = 1, done = 0;
        while (done < njobs) {
            curl_multi_perform(m, &running);
            CURLMsg *msg;
            int left;
            while ((msg = curl_multi_info_read(m, &left))) {
                if (msg->msg != CURLMSG_DONE) continue;
                job_t *j;
                CURL *h = msg->easy_handle;
                CURLcode rc = msg->data.result;
                curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&j);
                finish(h, j, rc);
                curl_multi_remove_handle(m, h);
                curl_easy_cleanup(h);
                done++;
            }
            if (done < njobs) curl_multi_poll(m, NULL, 0, 1000, NULL);
        }
        curl_multi_cleanup(m);
    } else if (!strncmp(argv[1], "threads:", 8)) {
        int n = atoi(argv[1] + 8);
        pthread_t th[64];
        for (int i = 0; i < n && i < 64; i++) pthread_create(&th[i], NULL, worker, NULL);
        for (int i = 0; i < n && i < 64; i++) pthread_join(th[i], NULL);
    } else {
        fprintf(stderr, "unknown mode %s\n", argv[1]);
        return 2;
    }
    for (int i = 0; i < njobs; i++) free(jobs[i].body);
    free(jobs);
    curl_global_cleanup();
    return 0;
}
