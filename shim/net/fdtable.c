#include "net/fdtable.h"
#include "base/real.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Two levels of atomic pointers, pages allocated on first use and never freed: lr_close() of a
 * descriptor that is not ours (almost every close) reads two words and takes no lock, so it
 * stays cheap and safe even when called from a signal handler. */
#define PAGE 1024
#define NPAGES 1024 /* descriptors below 1,048,576 */
static lr_fdinfo_t **pages[NPAGES];

static lr_fdinfo_t **slot(int fd, bool create)
{
    if (fd < 0 || fd >= PAGE * NPAGES) return NULL;
    lr_fdinfo_t **p = __atomic_load_n(&pages[fd / PAGE], __ATOMIC_ACQUIRE);
    if (!p && create) {
        lr_fdinfo_t **n = calloc(PAGE, sizeof *n);
        if (!n) return NULL;
        lr_fdinfo_t **expected = NULL;
        if (__atomic_compare_exchange_n(&pages[fd / PAGE], &expected, n, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) p = n;
        else { free(n); p = expected; }
    }
    return p ? &p[fd % PAGE] : NULL;
}

/* Entries are allocated once per descriptor number and then reused, never freed: lr_close()
 * only clears a flag (no free(), so it stays async-signal-safe), and a reader racing with a
 * close never touches freed memory. The cost is bounded by the highest number ever swapped. */
void lr_fdt_set(int fd, const lr_fdinfo_t *info)
{
    lr_fdinfo_t **s = slot(fd, true);
    if (!s) return;
    lr_fdinfo_t *e = __atomic_load_n(s, __ATOMIC_ACQUIRE);
    if (!e) {
        lr_fdinfo_t *n = calloc(1, sizeof *n);
        if (!n) return;
        lr_fdinfo_t *expected = NULL;
        if (__atomic_compare_exchange_n(s, &expected, n, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) e = n;
        else { free(n); e = expected; }
    }
    __atomic_store_n(&e->alive, 0, __ATOMIC_RELEASE);
    lr_fdinfo_t copy = *info;
    copy.alive = 0;
    memcpy(e, &copy, sizeof copy);
    __atomic_store_n(&e->alive, 1, __ATOMIC_RELEASE);
    __atomic_fetch_or(&lr_libc_state, LR_SWAPPED, __ATOMIC_RELEASE);
}

bool lr_fdt_get(int fd, lr_fdinfo_t *out)
{
    lr_fdinfo_t **s = slot(fd, false);
    lr_fdinfo_t *e = s ? __atomic_load_n(s, __ATOMIC_ACQUIRE) : NULL;
    if (!e || !__atomic_load_n(&e->alive, __ATOMIC_ACQUIRE)) return false;
    *out = *e;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_ino != out->ino || !S_ISSOCK(st.st_mode)) {
        lr_fdt_clear(fd); /* the number was reused for something else */
        return false;
    }
    return true;
}

static lr_fdinfo_t *live(int fd)
{
    lr_fdinfo_t **s = slot(fd, false);
    lr_fdinfo_t *e = s ? __atomic_load_n(s, __ATOMIC_ACQUIRE) : NULL;
    return e && __atomic_load_n(&e->alive, __ATOMIC_ACQUIRE) ? e : NULL;
}

void lr_fdt_set_tcp(int fd, int opt, int val)
{
    lr_fdinfo_t *e = live(fd);
    if (e && opt >= 0 && opt < 32) __atomic_store_n(&e->tcp_opts[opt], val, __ATOMIC_RELAXED);
}

void lr_fdt_set_keepalive(int fd, int val)
{
    lr_fdinfo_t *e = live(fd);
    if (e) __atomic_store_n(&e->keepalive, val, __ATOMIC_RELAXED);
}

void lr_fdt_set_conn(int fd, void *conn, unsigned long long id)
{
    lr_fdinfo_t *e = live(fd);
    if (!e) return;
    /* id first: a reader that sees the pointer checks it against the registry by id */
    __atomic_store_n(&e->conn_id, id, __ATOMIC_RELEASE);
    __atomic_store_n(&e->conn, conn, __ATOMIC_RELEASE);
}

void lr_fdt_clear(int fd)
{
    lr_fdinfo_t *e = live(fd);
    if (e) __atomic_store_n(&e->alive, 0, __ATOMIC_RELEASE);
}

void lr_fdt_dup(int oldfd, int newfd)
{
    lr_fdinfo_t info;
    if (oldfd == newfd) return;
    if (lr_fdt_get(oldfd, &info)) lr_fdt_set(newfd, &info);
    else lr_fdt_clear(newfd);
}
