/* libssl uses that the TLS hooks must survive (regressions from review):
 *   dup     SSL_dup of a session the hooks keep state for (the copy must not share it)
 *   nobio   SSL_connect before any BIO is set (real libssl: an error, not a crash)
 *   biossl  a session driven through an SSL BIO (BIO_f_ssl), verification on: its reads and
 *           writes never pass through the SSL_* hooks, so it must get real TLS (terminated),
 *           and keep it when the program then calls SSL_read itself
 *   fork    a connection made before fork(), its handshake done in the child
 *   burst N N non-blocking handshakes at once (with the tls layer off: N hand-overs to the
 *           TLS helper in a burst)
 * usage: tls_edges dup|nobio|biossl|fork|burst N */
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int connect_to(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, "443", &hints, &ai)) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen)) { perror("connect"); fd = -1; }
    freeaddrinfo(ai);
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static SSL *session(SSL_CTX *ctx, int fd)
{
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, "api.openai.com");
    return s;
}

/* 1 when done, 0 while it waits, -1 on failure */
static int step(SSL *s)
{
    int r = SSL_connect(s);
    if (r == 1) return 1;
    int e = SSL_get_error(s, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

static int forked(SSL_CTX *ctx)
{
    int fd = connect_to("api.openai.com");
    if (fd < 0) return 1;
    SSL *s = session(ctx, fd);
    pid_t pid = fork(); /* a pre-fork worker inheriting the connection */
    if (pid == 0) {
        int r;
        while ((r = step(s)) == 0) {
            struct pollfd p = {fd, POLLIN, 0};
            poll(&p, 1, 5000);
        }
        puts(r == 1 ? "child: handshake ok" : "child: handshake failed");
        ERR_print_errors_fp(stdout);
        _exit(r == 1 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int burst(SSL_CTX *ctx, int n)
{
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL **s = calloc((size_t)n, sizeof *s);
    int *state = calloc((size_t)n, sizeof *state), ok = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        int fd = connect_to("api.openai.com");
        if (fd < 0) return 1;
        s[i] = session(ctx, fd);
    }
    for (int round = 0; round < 3000 && ok + bad < n; round++) {
        for (int i = 0; i < n; i++)
            if (!state[i] && (state[i] = step(s[i])) != 0) {
                if (state[i] > 0) ok++;
                else bad++;
            }
        usleep(2000);
    }
    printf("%d ok, %d failed, %d pending\n", ok, bad, n - ok - bad);
    return 0;
}

static int biossl(SSL_CTX *ctx)
{
    const char *host = "api.openai.com";
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, "443", &hints, &ai)) return 1;
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen)) { perror("connect"); return 1; }
    freeaddrinfo(ai);
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, host);
    SSL_set1_host(s, host);
    SSL_set_connect_state(s);
    BIO *b = BIO_new(BIO_f_ssl());
    BIO_set_ssl(b, s, BIO_CLOSE);
    printf("handshake %ld\n", BIO_do_handshake(b));
    const char *req = "GET /v1/models HTTP/1.1\r\nHost: api.openai.com\r\nConnection: close\r\n\r\n";
    printf("write %d\n", BIO_write(b, req, (int)strlen(req)));
    char buf[64] = "";
    int r = SSL_read(s, buf, 12); /* the program's own call on the session the SSL BIO set up */
    printf("read %.*s\n", r > 0 ? r : 0, buf);
    ERR_print_errors_fp(stdout);
    BIO_free_all(b);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) { fprintf(stderr, "usage: tls_edges dup|nobio|biossl|fork|burst N\n"); return 2; }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = 0;
    if (!strcmp(argv[1], "dup")) {
        SSL *s = SSL_new(ctx);
        SSL_set_tlsext_host_name(s, "api.openai.com"); /* the hooks keep this name */
        SSL *d = SSL_dup(s);
        SSL_free(d);
        SSL_free(s);
        puts("freed both");
    } else if (!strcmp(argv[1], "nobio")) {
        SSL *s = SSL_new(ctx);
        SSL_set_tlsext_host_name(s, "api.openai.com");
        int r = SSL_connect(s);
        printf("connect %d error %d\n", r, SSL_get_error(s, r));
        SSL_free(s);
    } else if (!strcmp(argv[1], "biossl")) {
        rc = biossl(ctx);
    } else if (!strcmp(argv[1], "fork")) {
        rc = forked(ctx);
    } else if (!strcmp(argv[1], "burst") && argc == 3) {
        rc = burst(ctx, atoi(argv[2]));
    }
    SSL_CTX_free(ctx);
    return rc;
}
