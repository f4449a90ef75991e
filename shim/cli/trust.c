/* llmreplay's local CA: `llmreplay ca`, and the CA variables `llmreplay run` gives its child
 * (the TLS llmreplay terminates is signed by this CA). */
#include "cli/cli.h"
#include "cli/java_trust.h"
#include "base/config.h"
#include "base/util.h"
#include "tls/cert.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* llmreplay's CA in the cache directory, created on first use; dir receives the directory. */
static bool ensure_ca(char *dir, size_t cap, char *err, size_t errcap)
{
    if (!lr_cache_dir(dir, cap)) {
        snprintf(err, errcap, "no cache directory for llmreplay's CA: set LLMREPLAY_CACHE_DIR to a writable directory");
        return false;
    }
    lr_issuer_t *is = lr_issuer_persistent(lr_crypto_linked(), dir, err, errcap);
    lr_issuer_free(is);
    return is != NULL;
}

/* dir/trust-HASH.pem: the file the user's variable names, plus llmreplay's CA. NULL if unreadable. */
static char *combined_trust(const char *dir, const char *user_file, const char *ca)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/trust-%016llx.pem", dir, (unsigned long long)lr_hash64(user_file, strlen(user_file), 7));
    return lr_trust_bundle(user_file, ca, path) ? strdup(path) : NULL;
}

/* CMD trusts the CA of the TLS helper: each CA variable names llmreplay's file when unset, or a
 * copy of the user's file with llmreplay's CA appended when set (the user's trust is kept).
 * And the shim finds the helper's binary. Set here, before the fork: this process only waits. */
void cli_export_ca(void)
{
    char dir[4096], err[1024], ca[4200], bundle[4200];
    if (ensure_ca(dir, sizeof dir, err, sizeof err)) {
        snprintf(ca, sizeof ca, "%s/ca.pem", dir);
        snprintf(bundle, sizeof bundle, "%s/ca-bundle.pem", dir);
        lr_java_trust(dir, ca);
        static const char *vars[] = {"NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"};
        for (size_t i = 0; i < 4; i++) {
            const char *mine = i == 0 ? ca : bundle, *user = getenv(vars[i]);
            if (!user || !*user) { if (access(mine, R_OK) == 0) setenv(vars[i], mine, 1); continue; }
            if (!strcmp(user, mine) || !strncmp(user, dir, strlen(dir))) continue; /* ours already */
            char *both = combined_trust(dir, user, ca);
            if (both) setenv(vars[i], both, 1);
            else fprintf(stderr, "llmreplay: warning: cannot read %s=%s, so llmreplay's CA is not added to it: clients "
                                 "whose TLS llmreplay terminates (Node, static TLS) will reject its certificate\n", vars[i], user);
            free(both);
        }
    } else {
        fprintf(stderr, "llmreplay: warning: %s; clients whose TLS llmreplay terminates (Node, static TLS) will reject "
                        "its certificate\n", err);
    }
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self)) setenv("LLMREPLAY_BIN", self, 0);
}

/* ---- ca -------------------------------------------------------------------------------- */

static const char *usage_ca =
    "usage: llmreplay ca [--bundle]\n"
    "\n"
    "Create llmreplay's local CA on first use, in the cache directory (LLMREPLAY_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/llmreplay or ~/.cache/llmreplay), and print the path of its certificate ca.pem: the\n"
    "HTTPS llmreplay answers itself (Node, static TLS) is signed by it. `llmreplay run` sets it up for CMD;\n"
    "elsewhere, e.g. NODE_EXTRA_CA_CERTS=$(llmreplay ca).\n"
    "  --bundle  print ca-bundle.pem instead: the system's CAs plus llmreplay's (for SSL_CERT_FILE)\n";

int cmd_ca(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_ca);
    if (h >= 0) return h;
    bool bundle = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bundle")) bundle = true;
        else { fprintf(stderr, "llmreplay: unknown ca option %s (see llmreplay ca --help)\n", argv[i]); return 2; }
    }
    char dir[4096], err[1024], path[4200];
    if (!ensure_ca(dir, sizeof dir, err, sizeof err)) { fprintf(stderr, "llmreplay: %s\n", err); return 1; }
    snprintf(path, sizeof path, "%s/%s", dir, bundle ? "ca-bundle.pem" : "ca.pem");
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "llmreplay: cannot write %s: %s (set LLMREPLAY_CACHE_DIR to a writable directory)\n", path,
                strerror(errno));
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

