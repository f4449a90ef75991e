/* The real libcurl behind the hooks, resolved once. */
#include "curl/curl_layer.h"
#include "base/config.h"
#include "base/log.h"
#include "base/real.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

lr_curl_real_t lr_curl_real;
__thread int in_real_perform;

static const char *const curl_libs[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl-nss.so.4", NULL};
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void resolve(void)
{
#define R(field, name) *(void **)&real.field = lr_real(name, NULL, curl_libs)
    *(void **)&real.easy_setopt = lr_real("curl_easy_setopt", NULL, curl_libs);
    R(easy_perform, "curl_easy_perform");
    R(easy_getinfo, "curl_easy_getinfo");
    R(easy_cleanup, "curl_easy_cleanup");
    R(easy_reset, "curl_easy_reset");
    R(easy_duphandle, "curl_easy_duphandle");
    R(easy_pause, "curl_easy_pause");
    R(multi_add_handle, "curl_multi_add_handle");
    R(multi_remove_handle, "curl_multi_remove_handle");
    R(multi_perform, "curl_multi_perform");
    R(multi_poll, "curl_multi_poll");
    R(multi_wait, "curl_multi_wait");
    R(multi_info_read, "curl_multi_info_read");
    R(multi_cleanup, "curl_multi_cleanup");
    R(multi_timeout, "curl_multi_timeout");
    R(multi_setopt, "curl_multi_setopt");
    R(multi_socket_action, "curl_multi_socket_action");
    R(url_get, "curl_url_get");
    R(free, "curl_free");
#undef R
    if (!real.easy_setopt || !real.easy_perform)
        lr_error("libcurl's functions cannot be found although a libcurl call was made; is libcurl loaded twice?");
}

void curl_real(void) { pthread_once(&real_once, resolve); }

