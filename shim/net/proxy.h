/* Proxy requests on a connection the responder serves: CONNECT host:port and absolute-form
 * plain HTTP. Intercepted hosts are served by the responder itself (a CONNECT is answered 200
 * and the tunnel is served like any connection); other hosts are refused or passed through. */
#ifndef LR_PROXY_H
#define LR_PROXY_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef enum { LR_ROUTE_SERVE, LR_ROUTE_PASS, LR_ROUTE_REFUSE } lr_route_t;

/* What to do with a request for host:port. hop: the connection stands for a real proxy the
 * client was configured with (the shim answering in-process; other hosts go to that proxy
 * unless LLMREPLAY_EGRESS=deny), else it is llmreplay's own proxy (other hosts are refused in
 * replay mode, reached directly in the other modes). why receives the refusal's message. */
lr_route_t lr_proxy_route(const char *host, int port, bool hop, char *why, size_t cap);

/* Split "host:port" / "[v6]:port" (CONNECT's target) or the authority of an http:// URL. */
bool lr_proxy_target(const char *s, size_t n, bool url, char *host, size_t cap, int *port);

/* Pass the client connection fd through, on a thread of its own: connect to host:port (the
 * target, or the real proxy) over real DNS and TCP, send pre (bytes the client sent that belong
 * to the far side), answer "200 Connection established" first when tunnel (a CONNECT this side
 * answers), then copy both ways until both sides are done. Takes ownership of fd. */
void lr_proxy_splice(int fd, const char *host, int port, const void *pre, size_t prelen, bool tunnel);

/* Does a NO_PROXY entry (curl/Go/Python semantics: "*", "host", ".host", "*.host", with an
 * optional ":port"; n bytes) cover host? Address and CIDR entries never cover a name. */
bool lr_no_proxy_covers(const char *entry, size_t n, const char *host);

/* llmreplay's own proxy (serve, run): the proxy this process was itself configured with for a
 * pass-through to host (HTTPS_PROXY for a tunnel, HTTP_PROXY for plain HTTP, else ALL_PROXY;
 * unless its NO_PROXY covers host). False: connect directly. */
bool lr_proxy_chain(bool tunnel, const char *host, char *hop, size_t cap, int *port);
/* Read those variables now, on an application thread (never on the responder's). */
void lr_proxy_prepare(void);

/* The shim only (the CLI turns it off): is host (a name or an address literal) and port
 * (0: any) the proxy that HTTPS_PROXY, HTTP_PROXY or ALL_PROXY (either case) name? Then its
 * connections are answered in-process too. Only while LLMREPLAY_DIR or LLMREPLAY_HOSTS is set. */
bool lr_proxy_is_hop(const char *host, int port);
void lr_proxy_disable_hops(void);

/* llmreplay serve --upstream URL: the scheme://host[:port] that origin-form requests made to
 * the server directly (as a base URL) are meant for; NULL when unset. */
void lr_proxy_set_origin(const char *base);
const char *lr_proxy_origin(void);
#endif
