#include "base/fs.h"
#include "base/config.h"
#include "base/real.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *lr_read_file(const char *path, size_t max, size_t *len) { return lr_read_file_st(path, max, len, NULL); }

int64_t lr_mtime_ns(const struct stat *st) { return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec; }

char *lr_read_file_st(const char *path, size_t max, size_t *len, struct stat *stout)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) < 0) { int e = errno; lr_close(fd); errno = e; return NULL; }
    if (stout) *stout = st;
    if (!S_ISREG(st.st_mode)) { lr_close(fd); errno = EISDIR; return NULL; }
    if ((size_t)st.st_size > max) { lr_close(fd); errno = EFBIG; return NULL; }
    size_t cap = (size_t)st.st_size, got = 0;
    char *d = malloc(cap + 1);
    if (!d) { lr_close(fd); errno = ENOMEM; return NULL; }
    while (got < cap) {
        ssize_t r = read(fd, d + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* file shrank: use what is there */
        got += (size_t)r;
    }
    lr_close(fd);
    d[got] = 0;
    *len = got;
    return d;
}

bool lr_mkdirs(const char *path, unsigned mode)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return false;
    for (char *c = p + 1; *c; c++)
        if (*c == '/') { *c = 0; mkdir(p, (mode_t)mode); *c = '/'; }
    mkdir(p, (mode_t)mode);
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

bool lr_cache_dir(char *out, size_t cap)
{
    const char *v;
    int n;
    if ((v = lr_cfg()->cache_dir)) n = snprintf(out, cap, "%s", v);
    else {
        /* a shared fallback: ours only if we own it and nobody else can write there */
        n = snprintf(out, cap, "/tmp/llmreplay-cache-%d", (int)getuid());
        mkdir(out, 0700);
        struct stat st;
        if (lstat(out, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022)) return false;
    }
    if (n < 0 || (size_t)n >= cap) return false;
    /* a missing cache home is created; an unwritable one only costs the cache */
    lr_mkdirs(out, 0755);
    return true;
}

int lr_tmp_open(const char *path, unsigned mode, char *tmp, size_t cap)
{
    static unsigned seq;
    for (int i = 0; i < 100; i++) {
        unsigned r = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) * 2654435761u ^ (unsigned)time(NULL);
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path + 1) : 0;
        /* hidden (a dot first): scanners of the directory skip it */
        snprintf(tmp, cap, "%.*s.%s.%d.%08x.tmp", dl, path, path + dl, (int)getpid(), r);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

bool lr_tmp_publish(int fd, const char *tmp, const char *path, bool first_wins)
{
    /* data on disk before the name */
    bool ok = fsync(fd) == 0;
    if (ok) ok = (first_wins ? link(tmp, path) : rename(tmp, path)) == 0;
    int e = errno;
    if (!ok || first_wins) unlink(tmp); /* after link(): the temporary name */
    if (ok) {
        char dir[4096];
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { fsync(dfd); lr_close(dfd); } /* the name itself on disk */
    }
    errno = e;
    return ok;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = lr_write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (!w) errno = EIO; return false; }
        c += w;
        n -= (size_t)w;
    }
    return true;
}

bool lr_write_atomic(const char *path, unsigned mode, const void *p, size_t n, const void *p2, size_t n2)
{
    char tmp[4608];
    int fd = lr_tmp_open(path, mode, tmp, sizeof tmp);
    if (fd < 0) return false;
    bool ok = write_all(fd, p, n) && (!n2 || write_all(fd, p2, n2));
    if (!ok) { int e = errno; lr_close(fd); unlink(tmp); errno = e; return false; }
    ok = lr_tmp_publish(fd, tmp, path, false);
    int e = errno;
    lr_close(fd);
    errno = e;
    return ok;
}

bool lr_append_line(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    ssize_t w = lr_write(fd, p, n); /* one write with O_APPEND: never interleaved with another */
    int e = errno;
    lr_close(fd);
    errno = e;
    return w == (ssize_t)n;
}
