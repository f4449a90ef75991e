/* `llmreplay serve`: the responder on a TCP port, as a base URL and as a forward proxy. */
#include "cli/cli.h"
#include "base/config.h"
#include "base/fs.h"
#include "base/log.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "net/proxy.h"
#include "net/responder.h"
#include "net/serve.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_serve =
    "usage: llmreplay serve [-d DIR]... [--listen ADDR:PORT] [--mode MODE] [--record-dir DIR] [--upstream URL]\n"
    "                       [--strict] [--ignore FIELDS] [--pace MS]\n"
    "\n"
    "Answer HTTP from the recordings on a TCP port (default 127.0.0.1:8080), as a base URL\n"
    "(OPENAI_BASE_URL=http://ADDR:PORT/v1, OLLAMA_HOST=ADDR:PORT) and as an HTTP proxy (HTTPS_PROXY=http://ADDR:PORT;\n"
    "CONNECT to a recorded host is answered with TLS from llmreplay's CA, see llmreplay ca). Other hosts are refused\n"
    "in replay mode and passed through in the other modes.\n"
    "  -d, --dir DIR     recording directory (repeatable; else LLMREPLAY_DIR)\n"
    "  --listen A:P      address and port (PORT alone: 127.0.0.1, :PORT: every interface; 0: any free port)\n"
    "  --mode MODE       replay (default), record, record-if-missing, live or trace\n"
    "  --record-dir DIR  where recordings are written (default: the first -d)\n"
    "  --upstream URL    where base-URL requests go in the other modes, e.g. https://api.openai.com\n"
    "  --strict          exit 3 on Ctrl-C/SIGTERM when any request had no recording\n"
    "  --ignore FIELDS   body fields left out of matching;  --pace MS  space streamed events\n";

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "llmreplay: %s%s (see llmreplay serve --help)\n", msg, arg ? arg : "");
    return 2;
}

/* Options become the variables the engine reads, as `run` does for its child. */
static int options(int argc, char **argv, const char **listen, bool *strict)
{
    buf_t dirs;
    buf_init(&dirs);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--strict")) { *strict = true; continue; }
        if (!val) return bad("missing value or unknown option ", a);
        if (!strcmp(a, "-d") || !strcmp(a, "--dir")) {
            char *abs = realpath(val, NULL);
            if (dirs.len) buf_addc(&dirs, ':');
            buf_adds(&dirs, abs ? abs : val);
            free(abs);
        } else if (!strcmp(a, "--listen")) *listen = val;
        else if (!strcmp(a, "--mode")) {
            if (strcmp(val, "replay") && strcmp(val, "record") && strcmp(val, "record-if-missing") && strcmp(val, "live") &&
                strcmp(val, "trace"))
                return bad("unknown --mode ", val);
            setenv("LLMREPLAY_MODE", val, 1);
        } else if (!strcmp(a, "--record-dir")) setenv("LLMREPLAY_RECORD_DIR", val, 1);
        else if (!strcmp(a, "--upstream")) {
            if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8)) return bad("--upstream needs an http(s):// URL: ", val);
            lr_proxy_set_origin(val);
        } else if (!strcmp(a, "--ignore")) setenv("LLMREPLAY_IGNORE", val, 1);
        else if (!strcmp(a, "--pace")) setenv("LLMREPLAY_PACE_MS", val, 1);
        else return bad("unknown serve option ", a);
        i++;
    }
    if (dirs.len) setenv("LLMREPLAY_DIR", dirs.data, 1);
    buf_free(&dirs);
    return 0;
}

/* The engine in this process counts a miss as `run --strict` does: a line in a file. */
static int strict_misses(const char *file)
{
    size_t len = 0;
    char *t = lr_read_file(file, (size_t)1 << 30, &len);
    int n = 0;
    for (size_t i = 0; t && i < len; i++) n += t[i] == '\n';
    free(t);
    unlink(file);
    return n;
}

int cmd_serve(int argc, char **argv)
{
    int h = cli_help_or_version(argc, argv, usage_serve);
    if (h >= 0) return h;
    const char *listen = "127.0.0.1:8080";
    bool strict = false;
    int rc = options(argc, argv, &listen, &strict);
    if (rc) return rc;
    char strict_file[] = "/tmp/llmreplay-strict-XXXXXX";
    if (strict) {
        int fd = mkstemp(strict_file);
        if (fd < 0) { fprintf(stderr, "llmreplay: cannot create a temporary file: %s\n", strerror(errno)); return 2; }
        close(fd);
        setenv("LLMREPLAY__STRICT_FILE", strict_file, 1);
    }
    char self[PATH_MAX];
    if (realpath("/proc/self/exe", self)) setenv("LLMREPLAY_BIN", self, 0); /* the TLS helper */
    lr_config_reload();
    bool replay = lr_cfg()->mode == MODE_REPLAY;
    const char *mode = lr_mode_name(lr_cfg()->mode);
    if (!lr_cfg()->dir && replay) fprintf(stderr, "llmreplay: warning: no -d DIR and no LLMREPLAY_DIR: every request will miss\n");
    if (!replay && !lr_proxy_origin())
        fprintf(stderr, "llmreplay: note: without --upstream URL, base-URL requests are refused in %s mode (they have nowhere to "
                "go); proxied ones (HTTPS_PROXY) go to their own host\n", mode);
    lr_store_t *s = lr_store_global(); /* load now: problems show at start, not at the first request */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* every thread inherits it; sigwait below takes them */
    char bound[96], err[512];
    int lfd = lr_serve_listen(listen, bound, sizeof bound, err, sizeof err);
    if (lfd < 0) { fprintf(stderr, "%s\n", err); return 2; }
    if (!lr_serve_start(lfd)) return 2;
    int nrec = s ? lr_store_size(s) : 0;
    printf("llmreplay: serving %d recording%s on http://%s (base URL http://%s/v1, or proxy HTTPS_PROXY=http://%s), mode %s\n",
           nrec, nrec == 1 ? "" : "s", bound, bound, bound, mode);
    fflush(stdout);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {}
    for (int i = 0; i < 1000 && lr_responder_busy(); i++) usleep(10000); /* recordings being written */
    int misses = strict ? strict_misses(strict_file) : 0;
    fprintf(stderr, "llmreplay: serve stopped (%s): %lu connection%s%s", strsignal(sig), lr_serve_accepted(),
            lr_serve_accepted() == 1 ? "" : "s", strict ? "" : "\n");
    if (strict) fprintf(stderr, ", %d miss%s\n", misses, misses == 1 ? "" : "es");
    fflush(NULL);
    _exit(strict && misses ? 3 : 0); /* the loop threads hold no state that needs an orderly exit */
}
