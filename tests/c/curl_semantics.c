/* libcurl semantics of replayed transfers: callbacks, errors, getinfo, handle life cycle.
 * Run under the shim with LLMREPLAY_DIR holding the seed recording and an exception recording.
 * usage: curl_semantics SEED_BODY_FILE ERROR_BODY_FILE
 * Prints "ok NAME" / "not ok NAME: detail" per check; exits 1 on any failure. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdbool.h>
#include <unistd.h>
#include <sys/wait.h>

static int failures;
#define CHECK(name, cond, ...) do { \
    if (cond) printf("ok %s\n", name); \
    else { failures++; printf("not ok %s: ", name); printf(__VA_ARGS__); printf("\n"); } \
} while (0)

static const char *URL = "http://localhost:8000/v1/chat/completions";
static char *seed_body, *err_body;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    char *d = malloc(n + 1);
    memcpy(d, buf, n);
    d[n] = 0;
    return d;
}

typedef struct {
    char data[1 << 16];
    size_t len;
    int calls;
    int fail_at;   /* short-write on this call (1-based), 0: never */
    int pause_at;  /* return CURL_WRITEFUNC_PAUSE once on this call */
    CURL *h;
} sink_t;

static size_t on_write(char *p, size_t sz, size_t n, void *ud)
{
    sink_t *s = ud;
    s->calls++;
    if (s->fail_at && s->calls == s->fail_at) return 0;
    if (s->pause_at && s->calls == s->pause_at) { s->pause_at = 0; s->calls--; return CURL_WRITEFUNC_PAUSE; }
    if (s->len + sz * n < sizeof s->data) memcpy(s->data + s->len, p, sz * n);
    s->len += sz * n;
    return sz * n;
}

typedef struct {
    char lines[64][256];
    int n;
} heads_t;

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    heads_t *h = ud;
    if (h->n < 64) snprintf(h->lines[h->n++], 256, "%.*s", (int)(sz * n), p);
    return sz * n;
}

static CURL *chat(const char *body, sink_t *s)
{
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, URL);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (s) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
        s->h = h;
    }
    return h;
}

static int abort_progress(void *p, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)p; (void)a; (void)b; (void)c; (void)d;
    return 1;
}

static int unpause_progress(void *p, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a; (void)b; (void)c; (void)d;
    curl_easy_pause(((sink_t *)p)->h, CURLPAUSE_CONT);
    return 0;
}

static size_t reader_pos;
static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
    const char *src = ud;
    size_t left = strlen(src) - reader_pos, k = sz * n < left ? sz * n : left;
    if (k > 7) k = 7; /* small pieces: the body must be reassembled */
    memcpy(buf, src + reader_pos, k);
    reader_pos += k;
    return k;
}

static CURLM *recursive_multi;
static int recursive_rc;
static size_t remove_in_callback(char *p, size_t sz, size_t n, void *ud)
{
    sink_t *s = ud;
    if (recursive_rc == -1) recursive_rc = curl_multi_remove_handle(recursive_multi, s->h);
    (void)p;
    return sz * n;
}

static int timer_ms = -1;
static int on_timer(CURLM *m, long ms, void *ud)
{
    (void)m; (void)ud;
    timer_ms = (int)ms;
    return 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) { fprintf(stderr, "usage: %s SEED_BODY ERROR_BODY [pace]\n", argv[0]); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a hang still shows how far it got */
    seed_body = slurp(argv[1]);
    err_body = slurp(argv[2]);
    curl_global_init(CURL_GLOBAL_ALL);
    if (argc == 4) { /* pacing: events are spaced, and the first arrives long before the last */
        sink_t s = {0};
        CURL *h = chat(seed_body, &s);
        double t0 = now();
        curl_easy_perform(h);
        double dt = now() - t0;
        CHECK("pacing_spaces_events", dt >= 0.025 * (s.calls - 1), "dt=%.3f calls=%d", dt, s.calls);
        curl_easy_cleanup(h);
        return failures ? 1 : 0;
    }
    char errbuf[CURL_ERROR_SIZE];

    { /* a replayed stream: one write per event, headers one per call, getinfo */
        sink_t s = {0};
        heads_t hd = {0};
        CURL *h = chat(seed_body, &s);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
        curl_easy_setopt(h, CURLOPT_PRIVATE, (void *)&s);
        CURLcode rc = curl_easy_perform(h);
        long code = 0, ver = 0;
        char *ct = NULL, *eff = NULL, *meth = NULL, *scheme = NULL;
        void *priv = NULL;
        curl_off_t dl = 0, clen = 0, total = -1;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
        curl_easy_getinfo(h, CURLINFO_EFFECTIVE_METHOD, &meth);
        curl_easy_getinfo(h, CURLINFO_SCHEME, &scheme);
        curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &dl);
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen);
        curl_easy_getinfo(h, CURLINFO_TOTAL_TIME_T, &total);
        curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &ver);
        curl_easy_getinfo(h, CURLINFO_PRIVATE, &priv);
        CHECK("stream_perform_ok", rc == CURLE_OK, "rc=%d", rc);
        CHECK("stream_status_200", code == 200, "code=%ld", code);
        CHECK("stream_content_type", ct && !strcmp(ct, "text/event-stream; charset=utf-8"), "ct=%s", ct ? ct : "(null)");
        CHECK("stream_effective_url", eff && !strcmp(eff, URL), "eff=%s", eff ? eff : "(null)");
        CHECK("stream_effective_method", meth && !strcmp(meth, "POST"), "meth=%s", meth ? meth : "(null)");
        CHECK("stream_scheme", scheme && !strcmp(scheme, "HTTP"), "scheme=%s", scheme ? scheme : "(null)");
        CHECK("stream_size_download", dl == (curl_off_t)s.len && dl > 0, "dl=%lld len=%zu", (long long)dl, s.len);
        CHECK("stream_content_length_unknown", clen == -1, "clen=%lld", (long long)clen);
        CHECK("stream_total_time", total >= 0, "total=%lld", (long long)total);
        CHECK("stream_http_version", ver == CURL_HTTP_VERSION_1_1, "ver=%ld", ver);
        CHECK("private_preserved", priv == &s, "priv=%p", priv);
        CHECK("one_write_per_event", s.calls >= 20 && strstr(s.data, "data: [DONE]\n\n"), "calls=%d", s.calls);
        CHECK("status_line_first_header", hd.n > 3 && !strcmp(hd.lines[0], "HTTP/1.1 200 OK\r\n"), "first=%s", hd.lines[0]);
        CHECK("blank_line_last_header", hd.n > 3 && !strcmp(hd.lines[hd.n - 1], "\r\n"), "n=%d", hd.n);
        bool ctype_line = false;
        for (int i = 0; i < hd.n; i++) ctype_line |= !strncasecmp(hd.lines[i], "content-type: text/event-stream", 31);
        CHECK("content_type_header", ctype_line, "no content-type header line");
        curl_easy_cleanup(h);
    }
    { /* a short write stops the transfer with CURLE_WRITE_ERROR */
        sink_t s = {0};
        s.fail_at = 3;
        CURL *h = chat(seed_body, &s);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        errbuf[0] = 0;
        CURLcode rc = curl_easy_perform(h);
        CHECK("short_write_error", rc == CURLE_WRITE_ERROR && s.calls == 3, "rc=%d calls=%d", rc, s.calls);
        CHECK("short_write_errorbuffer", errbuf[0] != 0, "empty error buffer");
        curl_easy_cleanup(h);
    }
    { /* a progress callback returning non-zero aborts */
        sink_t s = {0};
        CURL *h = chat(seed_body, &s);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_progress);
        CURLcode rc = curl_easy_perform(h);
        CHECK("progress_abort", rc == CURLE_ABORTED_BY_CALLBACK, "rc=%d", rc);
        curl_easy_cleanup(h);
    }
    { /* a miss: a 404 with an explanation; with FAILONERROR, CURLE_HTTP_RETURNED_ERROR and no body */
        sink_t s = {0};
        CURL *h = chat("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"never recorded\"}]}", &s);
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        CHECK("miss_is_404", rc == CURLE_OK && code == 404, "rc=%d code=%ld", rc, code);
        s.data[s.len < sizeof s.data ? s.len : sizeof s.data - 1] = 0;
        CHECK("miss_explains", strstr(s.data, "no recording matches") && strstr(s.data, "messages[0].content"), "body=%.300s", s.data);
        sink_t s2 = {0};
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s2);
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        rc = curl_easy_perform(h);
        CHECK("failonerror_miss", rc == CURLE_HTTP_RETURNED_ERROR && s2.len == 0, "rc=%d len=%zu", rc, s2.len);
        CHECK("failonerror_message", strstr(errbuf, "404") != NULL, "errbuf=%s", errbuf);
        curl_easy_cleanup(h);
    }
    { /* a recorded upstream error replays with its status and body */
        sink_t s = {0};
        CURL *h = chat(err_body, &s);
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        s.data[s.len < sizeof s.data ? s.len : sizeof s.data - 1] = 0;
        CHECK("recorded_error_status", rc == CURLE_OK && code == 429, "rc=%d code=%ld", rc, code);
        CHECK("recorded_error_body", strstr(s.data, "Rate limit reached") != NULL, "body=%.200s", s.data);
        curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
        rc = curl_easy_perform(h);
        CHECK("recorded_error_failonerror", rc == CURLE_HTTP_RETURNED_ERROR, "rc=%d", rc);
        curl_easy_cleanup(h);
    }
    { /* HEADERDATA without HEADERFUNCTION: headers go through the default fwrite; default body fwrite */
        FILE *hf = tmpfile(), *bf = tmpfile();
        CURL *h = chat(seed_body, NULL);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, hf);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, bf);
        CURLcode rc = curl_easy_perform(h);
        char buf[256] = "";
        rewind(hf);
        size_t n = fread(buf, 1, sizeof buf - 1, hf);
        buf[n] = 0;
        CHECK("headerdata_default_fwrite", rc == CURLE_OK && !strncmp(buf, "HTTP/1.1 200 OK\r\n", 17), "rc=%d head=%.40s", rc, buf);
        long sz = ftell(bf);
        rewind(bf);
        n = fread(buf, 1, 6, bf);
        buf[n] = 0;
        CHECK("writedata_default_fwrite", sz > 1000 && !strcmp(buf, "data: "), "size=%ld start=%s", sz, buf);
        curl_easy_cleanup(h);
        fclose(hf);
        fclose(bf);
    }
    { /* CURLOPT_HEADER puts the head into the body stream; NOBODY sends none */
        sink_t s = {0};
        CURL *h = chat(seed_body, &s);
        curl_easy_setopt(h, CURLOPT_HEADER, 1L);
        curl_easy_perform(h);
        CHECK("header_in_body", !strncmp(s.data, "HTTP/1.1 200 OK\r\n", 17), "start=%.30s", s.data);
        sink_t s2 = {0};
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s2);
        curl_easy_setopt(h, CURLOPT_HEADER, 0L);
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
        CURLcode rc = curl_easy_perform(h);
        CHECK("nobody_no_body", rc == CURLE_OK && s2.len == 0, "rc=%d len=%zu", rc, s2.len);
        curl_easy_cleanup(h);
    }
    { /* upload through a read callback, in small pieces */
        sink_t s = {0};
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, URL);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(seed_body));
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, seed_body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        reader_pos = 0;
        CURLcode rc = curl_easy_perform(h);
        long code = 0;
        curl_off_t up = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
        CHECK("readfunction_upload", rc == CURLE_OK && code == 200, "rc=%d code=%ld", rc, code);
        CHECK("size_upload", up == (curl_off_t)strlen(seed_body), "up=%lld", (long long)up);
        curl_easy_cleanup(h);
    }
    { /* COPYPOSTFIELDS survives the caller freeing its buffer; duphandle copies everything */
        sink_t s = {0};
        char *tmp = strdup(seed_body);
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, URL);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, tmp);
        memset(tmp, 'x', strlen(tmp));
        free(tmp);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        long code = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        CHECK("copypostfields", rc == CURLE_OK && code == 200, "rc=%d code=%ld", rc, code);
        curl_easy_cleanup(h);
        sink_t s2 = {0};
        h = chat(seed_body, &s2);
        CURL *d = curl_easy_duphandle(h);
        curl_easy_cleanup(h);
        code = 0;
        rc = curl_easy_perform(d);
        curl_easy_getinfo(d, CURLINFO_RESPONSE_CODE, &code);
        CHECK("duphandle", rc == CURLE_OK && code == 200 && s2.len > 1000, "rc=%d code=%ld", rc, code);
        /* after reset the handle has no URL: the real libcurl answers, as it would */
        curl_easy_reset(d);
        rc = curl_easy_perform(d);
        CHECK("reset_forgets_url", rc == CURLE_URL_MALFORMAT, "rc=%d", rc);
        curl_easy_cleanup(d);
    }
    { /* a URL that is not an LLM call goes to the real libcurl */
        char path[] = "/tmp/llmreplay-sem-XXXXXX";
        int fd = mkstemp(path);
        if (write(fd, "plain file\n", 11) != 11) return 2;
        close(fd);
        char url[128];
        snprintf(url, sizeof url, "file://%s", path);
        sink_t s = {0};
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        CURLcode rc = curl_easy_perform(h);
        CHECK("passthrough_other_urls", rc == CURLE_OK && s.len == 11 && !memcmp(s.data, "plain file\n", 11), "rc=%d len=%zu", rc, s.len);
        unlink(path);
        curl_easy_cleanup(h);
    }
    { /* CURLOPT_CURLU instead of CURLOPT_URL */
        sink_t s = {0};
        CURLU *u = curl_url();
        curl_url_set(u, CURLUPART_URL, "https://api.openai.com/v1/chat/completions", 0);
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_CURLU, u);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, seed_body);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        long code = 0;
        char *scheme = NULL;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(h, CURLINFO_SCHEME, &scheme);
        CHECK("curlu", rc == CURLE_OK && code == 200 && scheme && !strcmp(scheme, "HTTPS"), "rc=%d code=%ld", rc, code);
        curl_easy_cleanup(h);
        curl_url_cleanup(u);
    }
    { /* pause from the write callback, resumed from the progress callback */
        sink_t s = {0}, ref = {0};
        CURL *h = chat(seed_body, &ref);
        curl_easy_perform(h);
        curl_easy_cleanup(h);
        h = chat(seed_body, &s);
        s.pause_at = 4;
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, unpause_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
        CURLcode rc = curl_easy_perform(h);
        CHECK("pause_resume", rc == CURLE_OK && s.len == ref.len && !memcmp(s.data, ref.data, s.len), "rc=%d len=%zu/%zu", rc, s.len, ref.len);
        curl_easy_cleanup(h);
    }
    { /* the multi socket interface: the timer callback is asked to fire, socket_action serves */
        sink_t s = {0};
        CURLM *m = curl_multi_init();
        curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
        CURL *h = chat(seed_body, &s);
        timer_ms = -1;
        curl_multi_add_handle(m, h);
        int running = 1, loops = 0;
        CHECK("socket_timer_armed", timer_ms >= 0, "timer_ms=%d", timer_ms);
        while (running && loops++ < 1000) curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
        int left;
        CURLMsg *msg = curl_multi_info_read(m, &left);
        CHECK("socket_action_done", msg && msg->msg == CURLMSG_DONE && msg->data.result == CURLE_OK && msg->easy_handle == h && strstr(s.data, "[DONE]"),
              "msg=%p loops=%d", (void *)msg, loops);
        CHECK("multi_add_twice", curl_multi_add_handle(m, h) == CURLM_ADDED_ALREADY, "second add accepted");
        curl_multi_remove_handle(m, h);
        curl_easy_cleanup(h);
        curl_multi_cleanup(m);
    }
    { /* removing a handle from inside its own write callback is refused, as libcurl does */
        CURLM *m = curl_multi_init();
        sink_t s = {0};
        CURL *h = chat(seed_body, &s);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, remove_in_callback);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        recursive_multi = m;
        recursive_rc = -1;
        curl_multi_add_handle(m, h);
        int running = 1;
        for (int i = 0; running && i < 1000; i++) curl_multi_perform(m, &running);
        CHECK("remove_inside_callback_refused", recursive_rc == CURLM_RECURSIVE_API_CALL, "rc=%d", recursive_rc);
        curl_multi_remove_handle(m, h);
        /* the same handle on a real transfer afterwards: getinfo is libcurl's again */
        char path[] = "/tmp/llmreplay-sem2-XXXXXX";
        int fd = mkstemp(path);
        if (write(fd, "x", 1) != 1) return 2;
        close(fd);
        char url[128];
        snprintf(url, sizeof url, "file://%s", path);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_multi_add_handle(m, h);
        running = 1;
        for (int i = 0; running && i < 1000; i++) { curl_multi_perform(m, &running); curl_multi_poll(m, NULL, 0, 100, NULL); }
        char *eff = NULL;
        curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
        CHECK("getinfo_after_real_multi_transfer", eff && !strcmp(eff, url), "eff=%s", eff ? eff : "(null)");
        unlink(path);
        curl_multi_remove_handle(m, h);
        curl_easy_cleanup(h);
        curl_multi_cleanup(m);
    }
    { /* COPYPOSTFIELDS, then a larger POSTFIELDSIZE: libcurl drops the copy; no over-read */
        CURL *h = curl_easy_init();
        sink_t s = {0};
        curl_easy_setopt(h, CURLOPT_URL, URL);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, "{\"model\":\"m\"}");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 100000L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 2L);
        CURLcode rc = curl_easy_perform(h);
        CHECK("copypostfields_then_larger_size", rc != CURLE_OK || s.len > 0, "rc=%d", rc);
        curl_easy_cleanup(h);
    }
    { /* pacing: events are spaced (the shim reads its settings once per process, so the
       * check runs in a new process started with LLMREPLAY_PACE_MS set) */
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("LLMREPLAY_PACE_MS", "25", 1);
            execl(argv[0], argv[0], argv[1], argv[2], "pace", (char *)NULL);
            _exit(127);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) failures++;
    }
    curl_global_cleanup();
    free(seed_body);
    free(err_body);
    return failures ? 1 : 0;
}
