/* A libssl client as Ruby's openssl extension drives one: a generic TLS_method() context (its
 * SSL objects are servers until SSL_connect makes them clients), SSL_set_fd, a non-blocking
 * SSL_connect retried after poll, then blocking reads to the end.
 * usage: tls_generic HOST PORT PATH BODY   (prints one JSON object) */
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 5) { fprintf(stderr, "usage: tls_generic HOST PORT PATH BODY\n"); return 2; }
    const char *host = argv[1], *path = argv[3], *body = argv[4];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, argv[2], &hints, &ai) != 0) { fprintf(stderr, "no address\n"); return 1; }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { perror("connect"); return 1; }
    freeaddrinfo(ai);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *s = SSL_new(ctx);
    int server_before = SSL_is_server(s);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, host);
    SSL_set1_host(s, host);
    int r;
    while ((r = SSL_connect(s)) != 1) {
        int e = SSL_get_error(s, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) { ERR_print_errors_fp(stderr); return 1; }
        struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
        poll(&p, 1, 10000);
    }
    char req[8192];
    int n = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", path, host, strlen(body), body);
    if (SSL_write(s, req, n) != n) { ERR_print_errors_fp(stderr); return 1; }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char buf[16384], status[64] = "";
    long total = 0;
    while ((r = SSL_read(s, buf, sizeof buf)) > 0) {
        if (!total) sscanf(buf, "%63[^\r]", status);
        total += r;
    }
    printf("{\"server_before\": %d, \"server_after\": %d, \"verify\": %ld, \"status\": \"%s\", \"total\": %ld}\n",
           server_before, SSL_is_server(s), SSL_get_verify_result(s), status, total);
    return 0;
}
