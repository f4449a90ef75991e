/* Who speaks the TLS that reaches the helper: clients whose library the shim does not hook and
 * that ignore the CA variables `llmreplay run` sets (GnuTLS: wget, gnutls-cli; NSS; Java outside
 * `run`) are told, at every such connection, the exact option that makes them trust llmreplay's
 * CA. The library is known from what the process has mapped (dl_iterate_phdr), read by an
 * application thread when it connects; the responder thread only reads the result. */
#include "net/tls_who.h"
#include "base/config.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/util.h"
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { W_GNUTLS = 1, W_NSS = 2, W_JVM = 4, W_OPENSSL = 8 };
static int libs;           /* W_* of the mapped libraries */
static unsigned long adds; /* dl_iterate_phdr's load count when libs was computed */
static char ca[4200];      /* llmreplay's CA file, "" when there is no cache directory */
static bool under_run;     /* started by `llmreplay run` (read by an application thread) */

static int scan(struct dl_phdr_info *info, size_t size, void *arg)
{
    int *w = arg;
    const char *n = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    n = n ? n + 1 : info->dlpi_name ? info->dlpi_name : "";
    if (!strncmp(n, "libgnutls.so.", 13)) *w |= W_GNUTLS;
    if (!strncmp(n, "libnss3.so", 10)) *w |= W_NSS;
    if (!strncmp(n, "libjvm.so", 9)) *w |= W_JVM;
    if (!strncmp(n, "libssl.so.", 10)) *w |= W_OPENSSL;
    return 0;
}

static int count(struct dl_phdr_info *info, size_t size, void *arg)
{
    *(unsigned long *)arg = (unsigned long)info->dlpi_adds;
    return 1;
}

static void init(void)
{
    under_run = lr_cfg()->run != NULL;
    char dir[4096];
    if (lr_cache_dir(dir, sizeof dir)) snprintf(ca, sizeof ca, "%s/ca.pem", dir);
}

void lr_tls_who_prepare(void)
{
    unsigned long a = 0;
    dl_iterate_phdr(count, &a);
    if (a == __atomic_load_n(&adds, __ATOMIC_ACQUIRE) && a) return;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init);
    int w = 0;
    dl_iterate_phdr(scan, &w);
    __atomic_store_n(&libs, w, __ATOMIC_RELEASE);
    __atomic_store_n(&adds, a, __ATOMIC_RELEASE);
}

void lr_tls_who_hint(const char *host)
{
    int w = __atomic_load_n(&libs, __ATOMIC_ACQUIRE);
    const char *prog = program_invocation_short_name, *c = ca[0] ? ca : "$(llmreplay ca)";
    if (w & W_JVM) {
        if (!under_run)
            lr_warn("Java's TLS to %s is terminated with llmreplay's CA, which the JDK trusts only from its own trust "
                    "store: run it under `llmreplay run`, or see `keytool` in llmreplay's README", host);
    } else if ((w & W_GNUTLS) && !(w & W_OPENSSL)) {
        const char *opt = !strcmp(prog, "wget") ? "--ca-certificate=" : !strcmp(prog, "gnutls-cli") ? "--x509cafile=" : NULL;
        if (opt)
            lr_warn("%s's TLS (GnuTLS) to %s is terminated with llmreplay's CA, which GnuTLS does not take from "
                    "SSL_CERT_FILE: run %s %s%s", prog, host, prog, opt, c);
        else
            lr_warn("%s uses GnuTLS, whose TLS to %s is terminated with llmreplay's CA and which ignores SSL_CERT_FILE: "
                    "pass %s as the program's CA file option", prog, host, c);
    } else if ((w & W_NSS) && !(w & W_OPENSSL)) {
        lr_warn("%s uses NSS, whose TLS to %s is terminated with llmreplay's CA and which reads only its certificate "
                "database: certutil -A -d sql:$HOME/.pki/nssdb -n llmreplay -t C,, -i %s", prog, host, c);
    }
}
