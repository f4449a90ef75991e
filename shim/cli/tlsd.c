/* The TLS helper: one single-threaded poll loop over every connection the shim hands over.
 * Each connection is a TLS server (a leaf certificate for its name, issued by the persistent
 * CA) on one descriptor and the plaintext on the other; bytes are relayed both ways with
 * bounded buffers, so a slow side holds the other back instead of growing memory. */
#include "cli/tlsd.h"
#include "tls/cert.h"
#include "base/config.h"
#include "base/log.h"
#include "base/util.h"
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFCAP 32768

typedef struct {
    char d[BUFCAP];
    size_t off, len;
} relay_t;

typedef struct {
    SSL *ssl;
    int tls, plain;
    char host[256]; /* the certificate's name: the SNI, else the name from the shim */
    relay_t in;     /* decrypted, for the plaintext side */
    relay_t out;    /* from the plaintext side, to encrypt */
    short hs_want, rd_want, wr_want, sd_want; /* what SSL waits for, per operation */
    bool hs_done, failed;
    bool tls_eof, tls_dead;     /* no more from the client / the TLS side is unusable */
    bool plain_eof, plain_dead; /* no more from the responder / cannot write to it */
    bool plain_shut, tls_shut;  /* our EOF was passed on: shutdown(SHUT_WR), close_notify */
    bool alpn_refused;          /* said why already: no second message */
    int reset_fd;               /* the client's end, sent by the responder: reset, not close_notify */
} conn_t;

static SSL_CTX *ctx;
static lr_issuer_t *issuer;
static char ca_dir[4096];
static conn_t **conns;
static size_t nconns;

/* ---- TLS callbacks --------------------------------------------------------------------- */

/* The certificate for the name the client asked for (set before: the shim's name). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    conn_t *c = SSL_get_app_data(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!c || !sni || !*sni || !strcmp(sni, c->host)) return SSL_TLSEXT_ERR_OK;
    X509 *leaf = lr_issuer_leaf(issuer, sni);
    if (leaf && SSL_use_certificate(ssl, leaf) == 1) snprintf(c->host, sizeof c->host, "%s", sni);
    return SSL_TLSEXT_ERR_OK;
}

/* http/1.1 when offered, else h2 (the responder speaks it to a client that starts with its
 * preface); a client offering neither is refused with a reason; no ALPN at all means HTTP/1.1. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned inlen,
                   void *arg)
{
    char list[256];
    const char *sel = lr_alpn_select(in, inlen, list, sizeof list);
    if (sel) {
        *out = (const unsigned char *)sel;
        *outlen = (unsigned char)strlen(sel);
        return SSL_TLSEXT_ERR_OK;
    }
    if (!inlen) return SSL_TLSEXT_ERR_NOACK;
    conn_t *c = SSL_get_app_data(ssl);
    lr_error(LR_ALPN_REFUSED, c ? c->host : "?", list);
    if (c) c->alpn_refused = true;
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* a no_application_protocol alert */
}

/* OpenSSL's reason for the oldest queued error, never NULL. */
static const char *reason(void)
{
    const char *r = ERR_reason_error_string(ERR_peek_error());
    return r ? r : "unknown error";
}

static bool is_cert_alert(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
        return true;
    default:
        return false;
    }
}

static void say_handshake_failure(conn_t *c, int ssl_err)
{
    if (c->alpn_refused) return;
    unsigned long e = ERR_peek_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    /* Node checks the certificate after the handshake and just closes: no alert to go by */
    bool eof = !e && (ssl_err == SSL_ERROR_ZERO_RETURN || ssl_err == SSL_ERROR_SYSCALL);
    if (eof) why = "the client closed the connection";
    if (!why) why = "unknown error";
    const char *distrust = eof ? "if the client does not trust llmreplay's CA" : "the client does not trust llmreplay's CA";
    if ((is_cert_alert(e) || eof) && lr_cfg()->run) /* run exported every variable it knows */
        lr_error("TLS handshake with a client of %s failed: %s; %s, which `llmreplay run` exported in NODE_EXTRA_CA_CERTS, "
                 "SSL_CERT_FILE and JAVA_TOOL_OPTIONS: a client with a trust store of its own (GnuTLS, NSS, a pinned "
                 "bundle) must be given %s/ca.pem (see `llmreplay ca`)", c->host, why, distrust, ca_dir);
    else if (is_cert_alert(e) || eof)
        lr_error("TLS handshake with a client of %s failed: %s; %s: use `llmreplay run` or set "
                 "NODE_EXTRA_CA_CERTS/SSL_CERT_FILE to %s/ca.pem (see `llmreplay ca`)", c->host, why, distrust, ca_dir);
    else lr_error("TLS handshake with a client of %s failed: %s", c->host, why);
}

/* ---- relaying -------------------------------------------------------------------------- */

static size_t room(relay_t *r)
{
    if (r->off && r->off + r->len == BUFCAP) { memmove(r->d, r->d + r->off, r->len); r->off = 0; }
    return BUFCAP - r->off - r->len;
}

static void consume(relay_t *r, size_t n)
{
    r->off += n;
    r->len -= n;
    if (!r->len) r->off = 0;
}

/* The poll events an SSL_ERROR_WANT_* asks for. */
static short want_of(int err) { return err == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN; }
static bool is_want(int err) { return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE; }

static bool handshake(conn_t *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) { c->hs_done = true; return true; }
    int e = SSL_get_error(c->ssl, r);
    if (is_want(e)) { c->hs_want = want_of(e); return false; }
    say_handshake_failure(c, e);
    c->failed = true;
    return false;
}

/* Each step returns true when it moved bytes or changed state: pump repeats until none does. */
static bool tls_to_relay(conn_t *c)
{
    if (c->tls_eof || !room(&c->in)) return false;
    ERR_clear_error();
    int n = SSL_read(c->ssl, c->in.d + c->in.off + c->in.len, (int)room(&c->in));
    if (n > 0) { c->in.len += (size_t)n; c->rd_want = POLLIN; return true; }
    int e = SSL_get_error(c->ssl, n);
    if (is_want(e)) { c->rd_want = want_of(e); return false; }
    c->tls_eof = true; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    if (e != SSL_ERROR_ZERO_RETURN) c->tls_dead = true;
    return true;
}

static bool relay_to_plain(conn_t *c)
{
    if (!c->in.len) return false;
    ssize_t w = c->plain_dead ? -1 : send(c->plain, c->in.d + c->in.off, c->in.len, MSG_NOSIGNAL);
    if (w > 0) { consume(&c->in, (size_t)w); return true; }
    if (w < 0 && !c->plain_dead && (errno == EAGAIN || errno == EINTR)) return false;
    /* the responder is gone: nobody to read for any more */
    c->plain_dead = c->plain_shut = c->tls_eof = true;
    c->in.len = c->in.off = 0;
    return true;
}

/* A fault rule's reset: the responder's last plaintext byte carries the client's end of the
 * connection (SCM_RIGHTS); that byte is no plaintext. */
static ssize_t recv_plain(conn_t *c, char *p, size_t cap, bool *marker)
{
    *marker = false;
    union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 4)]; } cm;
    struct iovec iov = {p, cap};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
    ssize_t n = recvmsg(c->plain, &m, MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *h = n > 0 ? CMSG_FIRSTHDR(&m) : NULL; h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
        size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof fd);
            if (c->reset_fd < 0) c->reset_fd = fd;
            else close(fd);
        }
        n--; /* the marker byte: the fd-carrying message is the last one read */
        *marker = true;
    }
    return n;
}

/* Reset the client's connection, as a server's RST: the TLS records written so far are read,
 * then ECONNRESET (a unix socket closed with unread input resets its peer). */
static void reset_tls(conn_t *c)
{
    ssize_t w = send(c->reset_fd, "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)w;
    close(c->reset_fd);
    c->reset_fd = -1;
    close(c->tls);
    c->tls = -1;
    c->tls_dead = c->tls_eof = c->tls_shut = c->failed = true;
}

static bool plain_to_relay(conn_t *c)
{
    if (c->plain_eof || !room(&c->out)) return false;
    bool marker;
    ssize_t n = recv_plain(c, c->out.d + c->out.off + c->out.len, room(&c->out), &marker);
    if (n == 0 && marker) return true; /* only the marker */
    if (n > 0) { c->out.len += (size_t)n; return true; }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    c->plain_eof = true;
    return true;
}

static bool relay_to_tls(conn_t *c)
{
    if (!c->out.len) return false;
    if (c->tls_dead) { c->out.len = c->out.off = 0; return true; }
    ERR_clear_error();
    int n = SSL_write(c->ssl, c->out.d + c->out.off, (int)c->out.len);
    if (n > 0) { consume(&c->out, (size_t)n); c->wr_want = POLLOUT; return true; }
    int e = SSL_get_error(c->ssl, n);
    if (is_want(e)) { c->wr_want = want_of(e); return false; }
    c->tls_dead = c->tls_eof = true; /* the client is gone */
    return true;
}

/* Pass each side's EOF on once its buffered bytes are delivered. */
static void pass_eofs(conn_t *c)
{
    if (c->tls_eof && !c->in.len && !c->plain_shut) {
        shutdown(c->plain, SHUT_WR);
        c->plain_shut = true;
    }
    if (c->plain_eof && !c->out.len && !c->tls_shut) {
        if (c->reset_fd >= 0 && !c->tls_dead) { reset_tls(c); return; }
        if (c->tls_dead) { c->tls_shut = true; return; }
        ERR_clear_error();
        int r = SSL_shutdown(c->ssl); /* sends close_notify; the client's is read by SSL_read */
        int e = r < 0 ? SSL_get_error(c->ssl, r) : 0;
        if (r < 0 && is_want(e)) c->sd_want = want_of(e);
        else c->tls_shut = true;
    }
}

static void pump(conn_t *c)
{
    if (!c->hs_done && !handshake(c)) return;
    bool moved;
    do {
        moved = tls_to_relay(c);
        moved |= relay_to_plain(c);
        moved |= plain_to_relay(c);
        moved |= relay_to_tls(c);
    } while (moved);
    pass_eofs(c);
}

static bool finished(const conn_t *c)
{
    if (c->failed) return true;
    if (c->tls_dead && !c->in.len) return true;
    return c->tls_eof && c->plain_shut && !c->in.len && c->plain_eof && c->tls_shut && !c->out.len;
}

/* What poll must wait for: exactly the operations pump would retry (no busy loop). */
static short tls_events(const conn_t *c)
{
    if (c->failed) return 0;
    if (!c->hs_done) return c->hs_want;
    short ev = 0;
    if (!c->tls_eof && c->in.len < BUFCAP) ev |= c->rd_want; /* room() compacts */
    if (c->out.len && !c->tls_dead) ev |= c->wr_want;
    if (c->plain_eof && !c->out.len && !c->tls_shut) ev |= c->sd_want;
    return ev;
}

static short plain_events(const conn_t *c)
{
    if (c->failed || !c->hs_done) return 0;
    short ev = 0;
    if (!c->plain_eof && c->out.len < BUFCAP) ev |= POLLIN;
    if (c->in.len && !c->plain_dead) ev |= POLLOUT;
    return ev;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_free(conn_t *c)
{
    if (c->ssl) SSL_free(c->ssl);
    if (c->tls >= 0) close(c->tls);
    if (c->reset_fd >= 0) close(c->reset_fd);
    close(c->plain);
    free(c);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void add_conn(int tls, int plain, const char *host)
{
    conn_t *c = calloc(1, sizeof *c);
    conn_t **grown = c ? realloc(conns, sizeof *conns * (nconns + 1)) : NULL;
    if (!grown) {
        lr_error("tls-helper: out of memory; a TLS connection to %s was dropped", host);
        free(c);
        close(tls);
        close(plain);
        return;
    }
    conns = grown;
    *c = (conn_t){.tls = tls, .plain = plain, .reset_fd = -1, .hs_want = POLLIN, .rd_want = POLLIN, .wr_want = POLLOUT, .sd_want = POLLOUT};
    snprintf(c->host, sizeof c->host, "%.255s", *host ? host : "localhost");
    set_nonblock(tls);
    set_nonblock(plain);
    X509 *leaf = lr_issuer_leaf(issuer, c->host);
    /* a name no certificate can carry: any certificate, the client reports the mismatch */
    if (!leaf) leaf = lr_issuer_leaf(issuer, "localhost");
    c->ssl = SSL_new(ctx);
    if (!c->ssl || !leaf || SSL_set_fd(c->ssl, tls) != 1 || SSL_use_certificate(c->ssl, leaf) != 1 ||
        SSL_use_PrivateKey(c->ssl, lr_issuer_leaf_key(issuer)) != 1) {
        lr_error("tls-helper: cannot set up TLS for %s: %s", c->host, reason());
        conn_free(c);
        return;
    }
    SSL_set_app_data(c->ssl, c);
    SSL_set_accept_state(c->ssl);
    pump(c); /* the ClientHello is already waiting */
    if (finished(c)) conn_free(c); /* now, not after a burst of messages: descriptors are finite */
    else conns[nconns++] = c;
}

/* Every queued control message; false once the control socket is closed. */
static bool take_conns(int ctl)
{
    for (;;) {
        char payload[4 + 256 + 1];
        union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int) * 8)]; } cm;
        struct iovec iov = {payload, sizeof payload - 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
        ssize_t n = recvmsg(ctl, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        if (n == 0) return false; /* the shim never sends an empty message */
        int fds[8], nfd = 0;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k && nfd < 8; i++) memcpy(&fds[nfd++], CMSG_DATA(h) + i * sizeof(int), sizeof(int));
        }
        payload[n] = 0;
        bool ok = nfd == 2 && n > 4 && !memcmp(payload, LR_TLSD_MAGIC, 4) && memchr(payload + 4, 0, (size_t)n - 4) &&
                  !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
        if (ok) { add_conn(fds[0], fds[1], payload + 4); continue; }
        if (m.msg_flags & MSG_CTRUNC)
            lr_error("tls-helper: out of file descriptors, a TLS connection was dropped: raise the limit (ulimit -n)");
        else lr_error("tls-helper: ignored a malformed control message (are libllmreplay.so and llmreplay from one build?)");
        for (int i = 0; i < nfd; i++) close(fds[i]);
    }
}

static void drop_finished(void)
{
    size_t k = 0;
    for (size_t i = 0; i < nconns; i++) {
        if (finished(conns[i])) conn_free(conns[i]);
        else conns[k++] = conns[i];
    }
    nconns = k;
}

static int serve(int ctl)
{
    bool ctl_open = true;
    struct pollfd *pf = NULL;
    while (ctl_open || nconns) {
        struct pollfd *grown = realloc(pf, sizeof *pf * (1 + 2 * nconns));
        if (!grown) { lr_error("tls-helper: out of memory"); return 1; }
        pf = grown;
        pf[0] = (struct pollfd){.fd = ctl_open ? ctl : -1, .events = POLLIN};
        size_t n = nconns; /* connections added below are pumped when added */
        for (size_t i = 0; i < n; i++) {
            short t = tls_events(conns[i]), p = plain_events(conns[i]);
            /* a descriptor with no events still reports POLLHUP: leave it out */
            pf[1 + 2 * i] = (struct pollfd){.fd = t ? conns[i]->tls : -1, .events = t};
            pf[2 + 2 * i] = (struct pollfd){.fd = p ? conns[i]->plain : -1, .events = p};
        }
        if (poll(pf, 1 + 2 * n, -1) < 0) {
            if (errno == EINTR) continue;
            lr_error("tls-helper: poll: %s", strerror(errno));
            return 1;
        }
        for (size_t i = 0; i < n; i++)
            if (pf[1 + 2 * i].revents || pf[2 + 2 * i].revents) pump(conns[i]);
        if (pf[0].revents) ctl_open = take_conns(ctl);
        drop_finished();
    }
    free(pf);
    return 0;
}

/* ---- start ----------------------------------------------------------------------------- */

static bool setup(void)
{
    char err[1024];
    if (!lr_cache_dir(ca_dir, sizeof ca_dir)) {
        lr_error("tls-helper: no cache directory for llmreplay's CA: set LLMREPLAY_CACHE_DIR to a writable directory");
        return false;
    }
    issuer = lr_issuer_persistent(lr_crypto_linked(), ca_dir, err, sizeof err);
    if (!issuer) { lr_error("tls-helper: %s", err); return false; }
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        lr_error("tls-helper: cannot create a TLS context: %s", reason());
        return false;
    }
    /* a client that drops the connection without close_notify is an EOF, not an error */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    /* the write buffer moves (compaction) and grows between retries of one SSL_write */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    return true;
}

int lr_tlsd_main(int ctl_fd)
{
    int type = 0;
    socklen_t tl = sizeof type;
    if (getsockopt(ctl_fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_SEQPACKET) {
        fprintf(stderr, "llmreplay: tls-helper is started by libllmreplay.so with its control socket on fd %d; "
                        "there is no need to run it by hand\n", ctl_fd);
        return 2;
    }
    /* whatever else the host leaked into us would outlive it with us */
    if (ctl_fd >= 3) close_range((unsigned)ctl_fd + 1, ~0U, 0);
    /* a closed stdio descriptor would be reused by a connection and get our messages */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) return 2;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN); /* ^C is for the program; we end when it does */
    struct rlimit rl; /* two descriptors per connection: as many as we may */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (!setup()) return 1;
    pid_t pid = fork();
    if (pid < 0) { lr_error("tls-helper: fork: %s", strerror(errno)); return 1; }
    if (pid > 0) _exit(0); /* the shim reaps this process; init adopts the helper */
    return serve(ctl_fd);
}
