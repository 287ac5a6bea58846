/*
 * select.c - shm_select, shm_pselect: select(2) and pselect(2) where a shm socket in the write
 * set is ready only when a send would make progress (a free block), so a writer waiting for
 * room does not spin. Sets that ask nothing of a shm socket's writability go to the kernel
 * unchanged; the others are waited for as a poll (shmsock_poll_wait) and written back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "fd_table.h"
#include "poll_wait.h"
#include "result.h"
#include "shmsock.h"

/* fd_set bits by hand: FD_ISSET aborts beyond FD_SETSIZE under _FORTIFY_SOURCE, and programs
 * may pass larger sets (as the kernel allows). */
#define BITS_PER_WORD (CHAR_BIT * sizeof(unsigned long))

static bool is_set(const fd_set *set, int fd)
{
    const unsigned long *words = (const unsigned long *)(const void *)set;
    return set != NULL &&
           (words[(unsigned)fd / BITS_PER_WORD] >> ((unsigned)fd % BITS_PER_WORD)) & 1ul;
}

static void set_bit(fd_set *set, int fd)
{
    unsigned long *words = (unsigned long *)(void *)set;
    words[(unsigned)fd / BITS_PER_WORD] |= 1ul << ((unsigned)fd % BITS_PER_WORD);
}

static void clear_set(fd_set *set, int nfds)
{
    if (set != NULL)
        memset(set, 0, ((size_t)nfds + BITS_PER_WORD - 1) / BITS_PER_WORD * sizeof(unsigned long));
}

static bool writes_to_shm_socket(int nfds, const fd_set *writefds)
{
    for (int fd = 0; writefds != NULL && fd < nfds; fd++) {
        if (!is_set(writefds, fd))
            continue;
        struct shmsock_entry *entry = shmsock_fd_get(fd);
        shmsock_fd_put(entry);
        if (entry != NULL)
            return true;
    }
    return false;
}

/* The select as a poll. Returns the ready count, or -1 with errno. */
static int select_as_poll(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                          const struct timespec *timeout, const sigset_t *sigmask)
{
    struct pollfd *fds = calloc((size_t)nfds, sizeof(*fds));
    if (fds == NULL)
        return (int)shmsock_result(-ENOMEM);
    nfds_t count = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short events =
            (short)((is_set(readfds, fd) ? POLLIN : 0) | (is_set(writefds, fd) ? POLLOUT : 0) |
                    (is_set(exceptfds, fd) ? POLLPRI : 0));
        if (events != 0)
            fds[count++] = (struct pollfd){.fd = fd, .events = events};
    }
    int n = shmsock_poll_wait(fds, count, timeout, sigmask);
    if (n < 0) {
        int saved = errno;
        free(fds);
        errno = saved;
        return -1;
    }
    for (nfds_t i = 0; i < count; i++) {
        if (fds[i].revents & POLLNVAL) { /* select fails as a whole on a closed descriptor */
            free(fds);
            return (int)shmsock_result(-EBADF);
        }
    }
    clear_set(readfds, nfds);
    clear_set(writefds, nfds);
    clear_set(exceptfds, nfds);
    int ready = 0;
    for (nfds_t i = 0; i < count; i++) {
        /* As the kernel's select maps poll bits: HUP and ERR make a descriptor readable, ERR
         * writable too. */
        short got = fds[i].revents, asked = fds[i].events;
        if ((asked & POLLIN) && (got & (POLLIN | POLLHUP | POLLERR))) {
            set_bit(readfds, fds[i].fd);
            ready++;
        }
        if ((asked & POLLOUT) && (got & (POLLOUT | POLLERR))) {
            set_bit(writefds, fds[i].fd);
            ready++;
        }
        if ((asked & POLLPRI) && (got & POLLPRI)) {
            set_bit(exceptfds, fds[i].fd);
            ready++;
        }
    }
    free(fds);
    return ready;
}

int shm_select(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
               struct timeval *timeout)
{
    if (nfds < 0 || !writes_to_shm_socket(nfds, writefds))
        return shmsock_libc.select(nfds, readfds, writefds, exceptfds, timeout);
    if (timeout != NULL && (timeout->tv_sec < 0 || timeout->tv_usec < 0))
        return (int)shmsock_result(-EINVAL);
    struct timespec ts;
    int64_t start = shmsock_now_ns();
    if (timeout != NULL) {
        /* The kernel carries whole seconds of microseconds over. */
        ts.tv_sec = timeout->tv_sec + timeout->tv_usec / 1000000;
        ts.tv_nsec = (timeout->tv_usec % 1000000) * 1000;
    }
    int r = select_as_poll(nfds, readfds, writefds, exceptfds, timeout != NULL ? &ts : NULL, NULL);
    if (timeout != NULL) { /* Linux leaves the time not slept in *timeout */
        int64_t left = ts.tv_sec * 1000000000 + ts.tv_nsec - (shmsock_now_ns() - start);
        if (left < 0)
            left = 0;
        timeout->tv_sec = left / 1000000000;
        timeout->tv_usec = (left % 1000000000) / 1000;
    }
    return r;
}

int shm_pselect(int nfds, fd_set *readfds, fd_set *writefds, fd_set *exceptfds,
                const struct timespec *timeout, const sigset_t *sigmask)
{
    if (nfds < 0 || !writes_to_shm_socket(nfds, writefds))
        return shmsock_libc.pselect(nfds, readfds, writefds, exceptfds, timeout, sigmask);
    if (timeout != NULL &&
        (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000))
        return (int)shmsock_result(-EINVAL);
    return select_as_poll(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}
