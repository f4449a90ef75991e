/* A libssl client on a non-blocking socket that looks at everything a TLS client may ask:
 * handshake readiness, WANT_READ on an empty transport, peek/pending, ALPN, version, cipher,
 * the peer certificate and its host check, the verify result, and a clean close.
 * usage: tls_api HOST PORT PATH BODY   (prints one JSON object) */
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void wait_for(int fd, int err)
{
    struct pollfd p = {.fd = fd, .events = err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN};
    poll(&p, 1, 10000);
}

int main(int argc, char **argv)
{
    if (argc != 5) { fprintf(stderr, "usage: tls_api HOST PORT PATH BODY\n"); return 2; }
    const char *host = argv[1], *port = argv[2], *path = argv[3], *body = argv[4];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, port, &hints, &ai) != 0) { fprintf(stderr, "no address\n"); return 1; }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) { perror("connect"); return 1; }
    freeaddrinfo(ai);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_default_verify_paths(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    SSL *s = SSL_new(ctx);
    SSL_set_fd(s, fd);
    SSL_set_tlsext_host_name(s, host);
    SSL_set1_host(s, host);

    int want_reads = 0, r;
    while ((r = SSL_connect(s)) != 1) {
        int e = SSL_get_error(s, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        want_reads += e == SSL_ERROR_WANT_READ;
        wait_for(fd, e);
    }
    const unsigned char *sel;
    unsigned sel_len;
    SSL_get0_alpn_selected(s, &sel, &sel_len);
    X509 *peer = SSL_get1_peer_certificate(s);
    char issuer[256] = "";
    if (peer) X509_NAME_get_text_by_NID(X509_get_issuer_name(peer), NID_commonName, issuer, sizeof issuer);
    STACK_OF(X509) *chain = SSL_get0_verified_chain(s);

    /* nothing sent yet: an empty non-blocking transport is WANT_READ */
    char buf[65536];
    int empty = SSL_read(s, buf, sizeof buf);
    int empty_err = SSL_get_error(s, empty);

    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", path, host, strlen(body), body);
    while ((r = SSL_write(s, req, n)) <= 0) wait_for(fd, SSL_get_error(s, r));

    char peeked[6] = "";
    while ((r = SSL_peek(s, peeked, 5)) <= 0) wait_for(fd, SSL_get_error(s, r));
    int pending = SSL_pending(s);
    size_t total = 0;
    int last_err;
    for (;;) {
        r = SSL_read(s, buf, sizeof buf);
        if (r > 0) { total += (size_t)r; continue; }
        last_err = SSL_get_error(s, r);
        if (last_err == SSL_ERROR_WANT_READ || last_err == SSL_ERROR_WANT_WRITE) { wait_for(fd, last_err); continue; }
        break;
    }
    int received = (SSL_get_shutdown(s) & SSL_RECEIVED_SHUTDOWN) != 0;
    int shut = SSL_shutdown(s);
    printf("{\"want_reads\": %d, \"finished\": %d, \"version\": \"%s\", \"cipher\": \"%s\", \"alpn\": \"%.*s\", "
           "\"verify\": %ld, \"host_ok\": %d, \"issuer\": \"%s\", \"chain\": %d, \"empty\": %d, \"empty_err\": %d, "
           "\"peek\": \"%s\", \"pending\": %d, \"total\": %zu, \"last_err\": %d, \"received_shutdown\": %d, "
           "\"shutdown\": %d}\n",
           want_reads, SSL_is_init_finished(s), SSL_get_version(s), SSL_CIPHER_get_name(SSL_get_current_cipher(s)),
           (int)sel_len, sel ? (const char *)sel : "", SSL_get_verify_result(s),
           peer ? X509_check_host(peer, host, 0, 0, NULL) : -1, issuer, chain ? sk_X509_num(chain) : 0, empty,
           empty_err, peeked, pending, total, last_err, received, shut);
    X509_free(peer);
    SSL_free(s);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
