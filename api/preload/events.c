/*
 * events.c - the preload's waits: poll, ppoll, select, pselect, their _FORTIFY_SOURCE forms, and
 * epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2.
 * Each is the shm_ call of the same name, whose POLLOUT on a shm socket means a send would
 * make progress (the kernel socket alone would say "writable" with every block in use, and a
 * writer waiting for room would spin).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sys/select.h>

#include "preload.h"
#include "shmsock.h"

extern void __chk_fail(void) __attribute__((noreturn));

int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    shmsock_preload_ready();
    return shm_poll(fds, nfds, timeout);
}

int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask)
{
    shmsock_preload_ready();
    return shm_ppoll(fds, nfds, timeout, sigmask);
}

int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen);
int __poll_chk(struct pollfd *fds, nfds_t nfds, int timeout, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < nfds)
        __chk_fail();
    return poll(fds, nfds, timeout);
}

int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen);
int __ppoll_chk(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                const sigset_t *sigmask, size_t fdslen)
{
    if (fdslen / sizeof(*fds) < nfds)
        __chk_fail();
    return ppoll(fds, nfds, timeout, sigmask);
}

int select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds, struct timeval *timeout)
{
    shmsock_preload_ready();
    return shm_select(nfds, readfds, writefds, exceptfds, timeout);
}

int pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
            const struct timespec *timeout, const sigset_t *sigmask)
{
    shmsock_preload_ready();
    return shm_pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    shmsock_preload_ready();
    return shm_epoll_ctl(epfd, op, fd, event);
}

int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    shmsock_preload_ready();
    return shm_epoll_wait(epfd, events, maxevents, timeout);
}

int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                const sigset_t *sigmask)
{
    shmsock_preload_ready();
    return shm_epoll_pwait(epfd, events, maxevents, timeout, sigmask);
}

int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                 const struct timespec *timeout, const sigset_t *sigmask)
{
    shmsock_preload_ready();
    return shm_epoll_pwait2(epfd, events, maxevents, timeout, sigmask);
}
