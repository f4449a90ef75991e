/* A host program that carries its own, incompatible cJSON_* symbols (exported with -rdynamic
 * semantics via visibility default). The shim must never call them: it has its own copy. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOGUS(name) __attribute__((visibility("default"))) void name(void) { \
    fprintf(stderr, "host's %s was called by the shim\n", #name); abort(); }
BOGUS(cJSON_ParseWithLengthOpts)
BOGUS(cJSON_Delete)
BOGUS(cJSON_GetObjectItemCaseSensitive)
BOGUS(cJSON_PrintUnformatted)
BOGUS(cJSON_Duplicate)
BOGUS(cJSON_CreateObject)

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; *(size_t *)u += s * n; return s * n; }

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    static char body[1 << 16];
    size_t n = f ? fread(body, 1, sizeof body - 1, f) : 0;
    if (f) fclose(f);
    body[n] = 0;
    size_t got = 0;
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, "http://localhost:8000/v1/chat/completions");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    printf("%d %ld %zu\n", (int)rc, code, got);
    return rc == CURLE_OK && code == 200 && got > 0 ? 0 : 1;
}
