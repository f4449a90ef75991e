/* A tiny streaming chat client over libcurl, used by `make demo`: posts a chat request and
 * prints the answer's text as the events arrive.
 * usage: stream_chat URL BODYFILE */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char pending[1 << 16];
static size_t npending;

/* Print the "content" of each complete SSE "data:" line (enough JSON for a demo). */
static void emit_line(const char *l)
{
    if (strncmp(l, "data: ", 6) || !strcmp(l + 6, "[DONE]")) return;
    const char *c = strstr(l, "\"content\":\"");
    if (!c) return;
    for (c += 11; *c && *c != '"'; c++) {
        if (*c == '\\' && c[1]) {
            c++;
            putchar(*c == 'n' ? '\n' : *c == 't' ? '\t' : *c);
        } else putchar(*c);
    }
    fflush(stdout);
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    (void)ud;
    size_t len = sz * n;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            pending[npending] = 0;
            emit_line(pending);
            npending = 0;
        } else if (npending < sizeof pending - 1) pending[npending++] = p[i];
    }
    return len;
}

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: %s URL BODYFILE\n", argv[0]); return 2; }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    static char body[1 << 20];
    size_t n = fread(body, 1, sizeof body - 1, f);
    fclose(f);
    body[n] = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, argv[1]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    printf("\n");
    if (rc != CURLE_OK || status != 200) fprintf(stderr, "stream_chat: %s, HTTP %ld\n", curl_easy_strerror(rc), status);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return rc == CURLE_OK && status == 200 ? 0 : 1;
}
