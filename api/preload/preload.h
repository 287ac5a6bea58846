/*
 * preload.h - what the files of libshmsock-preload.so share.
 *
 * The preload defines the C library's socket calls (socket, accept, send, recv, read, write,
 * close, dup, fcntl, poll, select, epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2, ...).
 * Each one hands the call to the shm_ call of the same name, which serves shm sockets and
 * passes every other descriptor to the C library (through shmsock_libc, never back here). So
 * the program's descriptors stay the real kernel sockets, and a connection whose peer does not
 * run shmsock simply stays a kernel connection. In every wait (poll, select, epoll) a shm
 * socket is writable only when a send would make progress, so a writer waiting for room
 * sleeps. close is shm_close, which is async-signal-safe: the program may close descriptors
 * in a signal handler (its other calls on a shm socket take locks and are not safe there).
 *
 * Configuration comes from the environment (shmsock-run sets it; see shmsock-run(1)):
 * SHMSOCK_EXCLUDE, SHMSOCK_LOG, SHMSOCK_COALESCE, SHMSOCK_BUSY_POLL, SHMSOCK_BLOCK_SIZE.
 */
#ifndef SHMSOCK_PRELOAD_H
#define SHMSOCK_PRELOAD_H

#include <stdbool.h>
#include <sys/socket.h>

#include "../../impl/libc.h"

/* The C library's entry points are known (the preload's first call may come before the
 * library's constructors ran, from another library's constructor). */
static inline void shmsock_preload_ready(void)
{
    if (__builtin_expect(!shmsock_libc_resolved(), 0))
        shmsock_libc_resolve();
}

/* A socket shm_socket, shm_socketpair or shm_accept4 just adopted: give it the defaults of
 * the environment and log it. `how` names the call, for the log. */
void shmsock_preload_adopted(int fd, const char *how);

/* Whether addr is listed in SHMSOCK_EXCLUDE (a path, or "@name" for an abstract name). */
bool shmsock_preload_excluded(const struct sockaddr *addr, socklen_t addrlen);

/* fd is a shm socket about to be bound or connected to an excluded address: keep it on the
 * kernel path (logged). */
void shmsock_preload_exclude(int fd, const struct sockaddr *addr, socklen_t addrlen);

#endif
