/* Descriptors whose TCP connection was swapped for a socketpair: what the client must keep
 * seeing (inet peer and local addresses, TCP options). An entry is trusted only while the
 * descriptor still refers to the same socket (inode check), so a number reused by the
 * kernel is never mistaken for ours, whichever call created it. */
#ifndef LR_FDTABLE_H
#define LR_FDTABLE_H
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

typedef struct {
    int alive;  /* slot in use (entries are reused, never freed: see fdtable.c) */
    ino_t ino;
    int family;
    struct sockaddr_storage peer, local;
    socklen_t peerlen, locallen;
    int tcp_opts[32];  /* IPPROTO_TCP option values by option number (< 32) */
    int keepalive;
    void *conn;              /* the responder's connection (net/inline.c), checked by id */
    unsigned long long conn_id;
} lr_fdinfo_t;

/* Also sets LR_SWAPPED in lr_libc_state (base/real.h): the write hooks' slow path from then on. */
void lr_fdt_set(int fd, const lr_fdinfo_t *info);
/* Copy of fd's entry if it is still ours; false otherwise. */
bool lr_fdt_get(int fd, lr_fdinfo_t *out);
/* Update an option of a known entry. */
void lr_fdt_set_tcp(int fd, int opt, int val);
void lr_fdt_set_keepalive(int fd, int val);
void lr_fdt_clear(int fd);
/* The connection that serves fd (set right after the swap). */
void lr_fdt_set_conn(int fd, void *conn, unsigned long long id);
/* newfd now refers to what oldfd does (dup, dup2, dup3, F_DUPFD). */
void lr_fdt_dup(int oldfd, int newfd);
#endif
