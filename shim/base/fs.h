/* Files: whole-file reads, the one durable atomic writer, the one line appender, directories. */
#ifndef LR_FS_H
#define LR_FS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stat;
/* Read a whole file (at most max bytes; errno=EFBIG when larger). NUL-terminated.
 * st, when given, receives the file's status as read. */
char *lr_read_file(const char *path, size_t max, size_t *len);
char *lr_read_file_st(const char *path, size_t max, size_t *len, struct stat *st);
int64_t lr_mtime_ns(const struct stat *st);
/* mkdir -p; missing directories get mode. False when path is not a directory afterwards. */
bool lr_mkdirs(const char *path, unsigned mode);
/* llmreplay's cache directory, created: LLMREPLAY_CACHE_DIR, $XDG_CACHE_HOME/llmreplay,
 * $HOME/.cache/llmreplay, else /tmp/llmreplay-cache-UID if it is safely ours. It holds the
 * index (unless LLMREPLAY_CACHE=off, which this ignores) and the CA. */
bool lr_cache_dir(char *out, size_t cap);

/* The durable atomic write, in two steps for writers that stream (PEM files):
 * lr_tmp_open makes a fresh temporary file beside path (O_EXCL, O_NOFOLLOW: never a planted
 * one; created with the final mode, so a key is never readable by others, not even briefly);
 * lr_tmp_publish fsyncs it, then renames it over path (or, first_wins, links it: false with
 * errno EEXIST when another writer won), and fsyncs the directory. A crash or kill -9 leaves
 * the old file or none, never half of one. The caller closes fd after publishing. */
int lr_tmp_open(const char *path, unsigned mode, char *tmp, size_t cap);
bool lr_tmp_publish(int fd, const char *tmp, const char *path, bool first_wins);
/* Both steps for data in memory (a second part may follow the first); false with errno. */
bool lr_write_atomic(const char *path, unsigned mode, const void *p, size_t n, const void *p2, size_t n2);
/* Append one line to path with a single write(2) (O_APPEND): lines written by concurrent
 * threads and processes stay whole. False with errno. */
bool lr_append_line(const char *path, const void *p, size_t n);
#endif
