/* Requests answered in the caller's thread (net/inline.c), for the write hooks. */
#ifndef LR_INLINE_H
#define LR_INLINE_H
#include <sys/types.h>
#include <sys/uio.h>

/* The client wrote iov on fd: when fd is a swapped descriptor whose connection can take the
 * bytes now, they are taken (and what they complete is answered) and their count returned;
 * -2 otherwise: the caller writes them for real. errno is kept. */
ssize_t lr_inline_write(int fd, const struct iovec *iov, int n);
#endif
