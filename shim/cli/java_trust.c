/* `llmreplay run` for Java: the JDK does its TLS with its own trust store (cacerts), which no CA
 * variable reaches. A PKCS12 store = the JDK's cacerts (or the trustStore the user already set in
 * JAVA_TOOL_OPTIONS) plus llmreplay's CA is made with the JDK's keytool, cached in the cache
 * directory and rebuilt only when older than its inputs, and handed to every JVM the program
 * starts through JAVA_TOOL_OPTIONS. CLI only. */
#include "cli/java_trust.h"
#include "base/fs.h"
#include "base/util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STOREPASS "changeit"
#define OPT_STORE "-Djavax.net.ssl.trustStore="
#define OPT_PASS "-Djavax.net.ssl.trustStorePassword="

extern char **environ;

/* getenv, NULL when empty. */
static const char *getenv_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The JDK the program would start: JAVA_HOME, else the `java` on PATH (symlinks resolved). */
static bool find_jdk(char *home, size_t cap)
{
    const char *jh = getenv_set("JAVA_HOME");
    char p[PATH_MAX + 32];
    if (jh) {
        snprintf(p, sizeof p, "%s/bin/keytool", jh);
        if (access(p, X_OK) == 0) { snprintf(home, cap, "%s", jh); return true; }
    }
    const char *path = getenv_set("PATH");
    for (const char *s = path; s && *s;) {
        size_t n = strcspn(s, ":");
        char cand[PATH_MAX], real[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s/java", (int)n, s);
        if (n && access(cand, X_OK) == 0 && realpath(cand, real)) {
            char *slash = strrchr(real, '/');
            if (slash) *slash = 0; /* .../bin */
            slash = strrchr(real, '/');
            if (slash) *slash = 0;
            snprintf(p, sizeof p, "%s/bin/keytool", real);
            if (access(p, X_OK) == 0) { snprintf(home, cap, "%s", real); return true; }
        }
        s += n;
        if (*s == ':') s++;
    }
    return false;
}

/* The value of option opt (e.g. "-Djavax.net.ssl.trustStore=") in a JAVA_TOOL_OPTIONS string,
 * unquoted; the last one wins, as for the JVM. */
static bool tool_option(const char *opts, const char *opt, char *out, size_t cap)
{
    bool found = false;
    size_t ol = strlen(opt);
    for (const char *s = opts; s && *s;) {
        while (*s == ' ' || *s == '\t') s++;
        char q = (*s == '"' || *s == '\'') ? *s : 0;
        const char *b = s + (q != 0);
        const char *e = q ? strchr(b, q) : b + strcspn(b, " \t");
        if (!e) e = b + strlen(b);
        if ((size_t)(e - b) >= ol && !strncmp(b, opt, ol)) {
            snprintf(out, cap, "%.*s", (int)(e - b - (ptrdiff_t)ol), b + ol);
            found = true;
        }
        s = *e ? e + 1 : e;
    }
    return found;
}

static int64_t mtime_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? lr_mtime_ns(&st) : -1;
}

/* Run the JDK's keytool with args, quietly, without the shim and the user's JVM options. */
static bool keytool(const char *home, const char *const *args)
{
    char tool[PATH_MAX];
    snprintf(tool, sizeof tool, "%s/bin/keytool", home);
    const char *argv[20] = {tool, "-J-XX:TieredStopAtLevel=1"}; /* a short-lived JVM: C1 only starts faster */
    int n = 2;
    for (; args[n - 2] && n < 19; n++) argv[n] = args[n - 2];
    argv[n] = NULL;
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **env = calloc(ne + 1, sizeof *env);
    if (!env) return false;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "JAVA_TOOL_OPTIONS=", 18) &&
            strncmp(environ[i], "JDK_JAVA_OPTIONS=", 17))
            env[k++] = environ[i];
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); dup2(nul, 2); }
        execve(tool, (char *const *)argv, env);
        _exit(127);
    }
    free(env);
    int st = 0;
    if (pid < 0) return false;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* dest := base (any store type keytool reads, opened with pass) + ca.pem, as PKCS12. */
static bool build_store(const char *home, const char *base, const char *pass, const char *ca, const char *dest)
{
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", dest, (long)getpid());
    unlink(tmp);
    const char *copy[] = {"-importkeystore", "-noprompt", "-srckeystore", base, "-srcstorepass", pass,
                          "-destkeystore", tmp, "-deststoretype", "PKCS12", "-deststorepass", STOREPASS, NULL};
    const char *add[] = {"-importcert", "-noprompt", "-alias", "llmreplay-ca", "-file", ca,
                         "-keystore", tmp, "-storetype", "PKCS12", "-storepass", STOREPASS, NULL};
    bool ok = keytool(home, copy) && keytool(home, add) && chmod(tmp, 0644) == 0 && rename(tmp, dest) == 0;
    if (!ok) unlink(tmp);
    return ok;
}

void lr_java_trust(const char *dir, const char *ca)
{
    char home[PATH_MAX];
    if (!find_jdk(home, sizeof home)) return; /* no JDK: nothing to do */
    const char *opts = getenv("JAVA_TOOL_OPTIONS");
    char base[PATH_MAX + 32], pass[1024] = STOREPASS;
    if (tool_option(opts, OPT_STORE, base, sizeof base)) {
        if (!strncmp(base, dir, strlen(dir))) return; /* ours already (a nested run) */
        tool_option(opts, OPT_PASS, pass, sizeof pass);
    } else {
        snprintf(base, sizeof base, "%s/lib/security/cacerts", home);
    }
    char dest[PATH_MAX];
    snprintf(dest, sizeof dest, "%s/java-trust-%016llx.p12", dir, (unsigned long long)lr_hash64(base, strlen(base), 11));
    int64_t d = mtime_of(dest), b = mtime_of(base);
    if (b < 0) {
        fprintf(stderr, "llmreplay: warning: cannot read the Java trust store %s: Java clients will reject llmreplay's "
                        "certificate; import $(llmreplay ca) into their trust store with keytool\n", base);
        return;
    }
    if ((d < 0 || d < b || d < mtime_of(ca)) && !build_store(home, base, pass, ca, dest)) {
        fprintf(stderr, "llmreplay: warning: %s/bin/keytool could not copy %s with llmreplay's CA added to %s: Java "
                        "clients will reject llmreplay's certificate; check the store's password (%s)\n", home, base, dest, OPT_PASS);
        return;
    }
    buf_t v;
    buf_init(&v);
    if (opts && *opts) { buf_adds(&v, opts); buf_addc(&v, ' '); }
    bool q = strpbrk(dest, " \t") != NULL;
    buf_printf(&v, "%s" OPT_STORE "%s%s " OPT_PASS STOREPASS " -Djavax.net.ssl.trustStoreType=PKCS12", q ? "\"" : "", dest, q ? "\"" : "");
    if (!v.oom) setenv("JAVA_TOOL_OPTIONS", v.data, 1);
    buf_free(&v);
}
