/* Handing TLS the shim cannot hook to `llmreplay tls-helper`. Protocol, over a SOCK_SEQPACKET
 * control socket (the helper's fd 3): one message per connection, payload "LRT1" + host +
 * NUL, SCM_RIGHTS [the TLS descriptor, the helper's end of a plaintext socketpair]. There is
 * no answer: the helper speaks on the plaintext descriptor, or closes it. The helper exits
 * when the control socket closes (this process and its forks are gone) and its connections
 * are done. No libssl or libcrypto is ever loaded here. */
#include "net/tls_term.h"
#include "net/tls_who.h"
#include "base/real.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The helper of this process. The lock is taken across fork (atfork) so that a fork while
 * the responder thread starts the helper leaves the child a usable lock. */
static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;
static int helper_ctl = -1;  /* our end of the control socket, -1 before start */
static pid_t helper_owner;   /* the process helper_ctl belongs to */
static bool helper_broken;   /* the helper could not start: said once, not retried */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void) { pthread_mutex_lock(&helper_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&helper_lock); }
static void fork_child(void)
{
    /* The parent's helper stays the parent's: our copy of its socket would keep it alive. */
    if (helper_ctl >= 0) lr_close(helper_ctl);
    helper_ctl = -1;
    pthread_mutex_unlock(&helper_lock);
}
static void atfork_register(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

static bool executable(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0;
}

/* LLMREPLAY_BIN, else the llmreplay beside (or in the bin/ of the prefix of) this library. */
static bool find_binary(char *out, size_t cap)
{
    const char *env = lr_cfg()->bin;
    if (env) {
        snprintf(out, cap, "%s", env);
        return executable(out);
    }
    Dl_info di;
    char lib[PATH_MAX];
    if (!dladdr((void *)lr_tls_terminate, &di) || !di.dli_fname) return false;
    if (!realpath(di.dli_fname, lib)) snprintf(lib, sizeof lib, "%s", di.dli_fname);
    char *slash = strrchr(lib, '/');
    if (!slash) return false;
    *slash = 0;
    /* the last one is build/asan/libllmreplay.so's */
    static const char *rel[] = {"llmreplay", "../../bin/llmreplay", "../bin/llmreplay", "../llmreplay"};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
        snprintf(out, cap, "%s/%s", lib, rel[i]);
        if (executable(out)) return true;
    }
    return false;
}

/* "LD_PRELOAD=..." without the entries naming libllmreplay (the helper must not be shimmed);
 * NULL when none is left. */
static char *preload_without_shim(const char *entry)
{
    buf_t b;
    buf_init(&b);
    buf_adds(&b, "LD_PRELOAD=");
    size_t empty = b.len;
    for (const char *p = entry + strlen("LD_PRELOAD="); *p;) {
        size_t n = strcspn(p, " :");
        char *tok = lr_strndup(p, n);
        if (tok && n && !strstr(tok, "libllmreplay")) {
            if (b.len > empty) buf_addc(&b, ' ');
            buf_adds(&b, tok);
        }
        free(tok);
        p += n;
        if (*p) p++;
    }
    if (b.len == empty) { buf_free(&b); return NULL; }
    return buf_steal(&b, NULL);
}

/* The host's environment for the helper, copied (strings and all) by an application thread:
 * the responder thread, which starts the helper, must not read an environment that another
 * thread may be changing with setenv. */
static char **helper_env(void)
{
    size_t n = 0;
    while (environ && environ[n]) n++;
    char **env = calloc(n + 1, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char *e = strncmp(environ[i], "LD_PRELOAD=", 11) ? strdup(environ[i]) : preload_without_shim(environ[i]);
        if (e) env[k++] = e;
    }
    return env;
}

static char bin[PATH_MAX + 32]; /* the llmreplay binary, "" when not found */
static char **spawn_env;
static pthread_once_t prepared = PTHREAD_ONCE_INIT;
static void prepare(void)
{
    if (!find_binary(bin, sizeof bin)) bin[0] = 0;
    spawn_env = helper_env();
}

void lr_tls_term_prepare(void)
{
    pthread_once(&prepared, prepare);
    lr_tls_who_prepare();
}

/* posix_spawn the helper with fd 3 = its end of the control socket. The helper forks once
 * and its first process exits at once (status 1 when it cannot work, having said why): we
 * reap exactly that pid and never touch the host's SIGCHLD handling. */
static int spawn(const char *path, int theirs)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    /* the host's stderr, for the helper's messages: passed explicitly, since Node marks its
     * stdio close-on-exec (a closed fd 2 would be reused for a connection, messages and all) */
    int err = lr_fcntl(2, F_DUPFD_CLOEXEC, 10);
    if (err >= 0) posix_spawn_file_actions_adddup2(&fa, err, 2);
    else posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, theirs, 3);
    /* the responder thread blocks signals, the host may ignore some: the helper starts clean */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)path, "tls-helper", NULL};
    pid_t pid;
    int rc = spawn_env ? posix_spawn(&pid, path, &fa, &at, argv, spawn_env) : ENOMEM;
    if (err >= 0) lr_close(err);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return rc;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    /* ECHILD (a host reaping every child) leaves st 0: assume it started */
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static bool start_helper(const char *host)
{
    lr_tls_term_prepare(); /* normally done already, by lr_responder_add */
    if (!bin[0]) {
        lr_error("TLS to %s needs the llmreplay binary to terminate TLS (Node, static TLS); "
                 "set LLMREPLAY_BIN=/path/to/llmreplay or use `llmreplay run`", host);
        return false;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        lr_error("cannot start the TLS helper: socketpair: %s", strerror(errno));
        return false;
    }
    /* dup2(3, 3) would keep close-on-exec: make sure the helper's end is not fd 3 yet */
    if (sv[1] == 3) {
        int moved = lr_fcntl(sv[1], F_DUPFD_CLOEXEC, 4);
        lr_close(sv[1]);
        sv[1] = moved;
    }
    int rc = sv[1] < 0 ? errno : spawn(bin, sv[1]);
    if (sv[1] >= 0) lr_close(sv[1]);
    if (rc != 0) {
        lr_close(sv[0]);
        if (rc > 0) lr_error("cannot run %s tls-helper: %s (set LLMREPLAY_BIN to the llmreplay binary)", bin, strerror(rc));
        else lr_error("%s tls-helper failed to start (see its message above); TLS to replayed hosts will fail", bin);
        return false;
    }
    helper_ctl = sv[0];
    return true;
}

/* One connection to the helper: 0, or the errno of sendmsg. *plain is our plaintext end. */
static int hand_over(int tls_fd, const char *host, int *plain)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return errno;
    char payload[4 + 256];
    memcpy(payload, LR_TLSD_MAGIC, 4);
    size_t hl = strnlen(host, 255);
    memcpy(payload + 4, host, hl);
    payload[4 + hl] = 0;
    int fds[2] = {tls_fd, sp[1]};
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof fds)]; } cm;
    memset(&cm, 0, sizeof cm);
    struct iovec iov = {payload, 4 + hl + 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    ssize_t r;
    /* a burst of connections may fill the control socket: wait for the helper a little, never
     * for good (the responder thread serves every other connection meanwhile) */
    double until = lr_now() + 2.0;
    for (;;) {
        r = sendmsg(helper_ctl, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) break;
        double left = until - lr_now();
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (left <= 0) break;
            struct pollfd p = {.fd = helper_ctl, .events = POLLOUT};
            poll(&p, 1, (int)(left * 1000) + 1);
        }
    }
    int e = r < 0 ? errno : 0;
    lr_close(sp[1]);
    if (e) { lr_close(sp[0]); return e; }
    lr_fcntl(sp[0], F_SETFL, lr_fcntl(sp[0], F_GETFL, 0) | O_NONBLOCK);
    *plain = sp[0];
    return 0;
}

static int terminate_locked(int tls_fd, const char *host)
{
    if (helper_owner != getpid()) {
        /* forked without our atfork handler (raw clone): the descriptor may not even be ours */
        helper_ctl = -1;
        helper_owner = getpid();
    }
    int plain = -1;
    for (int attempt = 0; attempt < 2 && !helper_broken; attempt++) {
        /* not retried when it fails: the reason was said once, and every connection would pay */
        if (helper_ctl < 0 && !start_helper(host)) { helper_broken = true; break; }
        int e = hand_over(tls_fd, host, &plain);
        if (!e) return plain;
        if (e != EPIPE && e != ECONNRESET && e != ENOTCONN) {
            lr_error("cannot hand TLS to %s to the TLS helper: %s", host, strerror(e));
            break;
        }
        /* the helper died: start another one, once */
        lr_close(helper_ctl);
        helper_ctl = -1;
    }
    return -1;
}

int lr_tls_terminate(int tls_fd, const char *host)
{
    pthread_once(&atfork_once, atfork_register);
    lr_tls_who_hint(host ? host : "");
    pthread_mutex_lock(&helper_lock);
    int fd = terminate_locked(tls_fd, host ? host : "");
    pthread_mutex_unlock(&helper_lock);
    lr_close(tls_fd);
    return fd;
}
