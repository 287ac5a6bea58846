/*
 * result.h - the one place where internal results become POSIX results.
 *
 * Internally every function returns a count or a negative errno (as the kernel does). The
 * facade returns -1 and sets errno, and raises SIGPIPE for EPIPE when the caller did not pass
 * MSG_NOSIGNAL, as send(2) does on a stream socket.
 */
#ifndef SHMSOCK_API_RESULT_H
#define SHMSOCK_API_RESULT_H

#include <sys/types.h>

/* r >= 0: returned as is. r < 0: errno = -r, returns -1. */
ssize_t shmsock_result(ssize_t r);

/* As shmsock_result for a send: also raises SIGPIPE on -EPIPE unless MSG_NOSIGNAL, on
 * SOCK_STREAM only (the kernel raises none for SOCK_SEQPACKET). */
ssize_t shmsock_send_result(ssize_t r, int flags, int type);

#endif
