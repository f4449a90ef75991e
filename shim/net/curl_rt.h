/* libcurl loaded at run time for the shim's own upstream calls (socket-layer record, live and
 * trace modes): never linked, so processes that do not go upstream never load it. */
#ifndef LR_CURL_RT_H
#define LR_CURL_RT_H
#define CURL_DISABLE_TYPECHECK 1
#define CURL_DISABLE_DEPRECATION 1
#include <curl/curl.h>

typedef struct {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} lr_curl_t;

/* NULL, with one error line, when no libcurl can be loaded. */
const lr_curl_t *lr_curl(void);
#endif
