/* `llmreplay --version`: this version, and the libraries the shim would use on this system
 * (libcurl and cJSON are loaded at run time, so a missing one shows here first). */
#include "cli/cli.h"
#include <dlfcn.h>
#include <openssl/crypto.h>
#include <stdio.h>

#ifndef LR_VERSION
#define LR_VERSION "0.1.0"
#endif

/* The version string a library's function returns, or why there is none. */
static const char *lib_version(const char *soname, const char *fn, char *buf, size_t cap)
{
    void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
    if (!h) { snprintf(buf, cap, "not found (%s)", soname); return buf; }
    const char *(*f)(void) = (const char *(*)(void))dlsym(h, fn);
    snprintf(buf, cap, "%s", f ? f() : "unknown version");
    dlclose(h);
    return buf;
}

void cli_print_version(void)
{
    char curl[200], cjson[200];
    printf("llmreplay %s\n", LR_VERSION);
    printf("libcurl: %s\n", lib_version("libcurl.so.4", "curl_version", curl, sizeof curl));
    printf("libssl: %s\n", OpenSSL_version(OPENSSL_VERSION));
    printf("cJSON: %s\n", lib_version("libcjson.so.1", "cJSON_Version", cjson, sizeof cjson));
}
