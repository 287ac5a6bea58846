/*
 * libc.h - the C library's socket calls, reached without passing through an interposer.
 *
 * A program run under shmsock-run has libshmsock-preload.so define send, recv, close, poll,
 * ... before the C library does. The library's own calls on the kernel socket, and the
 * facade's calls on descriptors that are not shm sockets, must reach the C library, not come
 * back into the preload (which would recurse). A static link with `ld --wrap` has the same
 * problem. So every such call goes through this table, filled with the C library's own
 * entry points (dlsym(RTLD_NEXT), done once when the library is loaded).
 *
 * Without an interposer the table holds the ordinary functions: a call through it costs one
 * indirect jump.
 */
#ifndef SHMSOCK_IMPL_LIBC_H
#define SHMSOCK_IMPL_LIBC_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct mmsghdr; /* <sys/socket.h> declares it only with _GNU_SOURCE */

struct shmsock_libc_calls {
    int (*socket)(int, int, int);
    int (*socketpair)(int, int, int, int[2]);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*shutdown)(int, int);
    int (*close)(int);
    int (*close_range)(unsigned int, unsigned int, int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*getpeername)(int, struct sockaddr *, socklen_t *);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
    int (*fclose)(FILE *);
    ssize_t (*sendfile)(int, int, off_t *, size_t);
    ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
};

/* The C library's entry points. Filled before main (a constructor) and by shmsock_libc_resolve. */
extern struct shmsock_libc_calls shmsock_libc;

/* Fill shmsock_libc with the C library's entry points (idempotent, thread-safe: every
 * caller writes the same values). An interposer calls it if it runs before the library's
 * constructor did (another library's constructor may open sockets first). */
void shmsock_libc_resolve(void);

/* Whether shmsock_libc_resolve has run. */
bool shmsock_libc_resolved(void);

#endif
