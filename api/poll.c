/*
 * poll.c - shm_poll, shm_ppoll: poll(2) and ppoll(2) where POLLOUT on a shm socket also means
 * "a block is free".
 *
 * For each shm socket whose writer is out of blocks, POLLOUT is taken out of the kernel
 * socket's entry and the release channel is watched instead; when releases arrive we check
 * again. Everything else is plain poll(2).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fd_table.h"
#include "poll_wait.h"
#include "result.h"
#include "shmsock.h"

int64_t shmsock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t shmsock_deadline(const struct timespec *timeout)
{
    return timeout != NULL ? shmsock_now_ns() + timeout->tv_sec * 1000000000 + timeout->tv_nsec
                           : -1;
}

const struct timespec *shmsock_time_left(int64_t deadline, struct timespec *left)
{
    if (deadline < 0)
        return NULL;
    int64_t ns = deadline - shmsock_now_ns();
    if (ns < 0)
        ns = 0;
    *left = (struct timespec){.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    return left;
}

#define SMALL_SET 16

/* Whether any entry asks POLLOUT of a shm socket (else the kernel's poll tells the truth). */
static bool asks_shm_writability(const struct pollfd *fds, nfds_t nfds)
{
    for (nfds_t i = 0; i < nfds; i++) {
        if (!(fds[i].events & POLLOUT))
            continue;
        struct shmsock_entry *entry = shmsock_fd_get(fds[i].fd);
        shmsock_fd_put(entry);
        if (entry != NULL)
            return true;
    }
    return false;
}

int shmsock_poll_wait(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                      const sigset_t *sigmask)
{
    if (nfds > 65536)
        return (int)shmsock_result(-EINVAL);
    /* Small sets (the usual case) live on the stack: no allocation per wait. */
    struct pollfd small_set[2 * SMALL_SET];
    struct shmsock_entry *small_entries[SMALL_SET];
    struct pollfd *set = small_set;
    struct shmsock_entry **entries = small_entries;
    if (nfds > SMALL_SET) {
        set = calloc(nfds * 2, sizeof(*set));
        entries = calloc(nfds, sizeof(*entries));
        if (set == NULL || entries == NULL) {
            free(set);
            free(entries);
            return (int)shmsock_result(-ENOMEM);
        }
    }
    for (nfds_t i = 0; i < nfds; i++)
        entries[i] = (fds[i].events & POLLOUT) ? shmsock_fd_get(fds[i].fd) : NULL;

    int64_t deadline = shmsock_deadline(timeout);
    int ready;
    for (;;) {
        /* set[i]: the caller's entry; set[nfds + i]: the release channel when starved. */
        for (nfds_t i = 0; i < nfds; i++) {
            set[i] = (struct pollfd){.fd = fds[i].fd, .events = fds[i].events};
            set[nfds + i] = (struct pollfd){.fd = -1};
            int space_fd = entries[i] != NULL ? shmsock_conn_space_fd(entries[i]->conn) : -1;
            if (space_fd >= 0) {
                set[i].events &= (short)~POLLOUT;
                set[nfds + i] = (struct pollfd){.fd = space_fd, .events = POLLIN};
            }
        }
        struct timespec left;
        int n = shmsock_libc.ppoll(set, nfds * 2, shmsock_time_left(deadline, &left), sigmask);
        if (n < 0) {
            ready = -1;
            break;
        }
        ready = 0;
        for (nfds_t i = 0; i < nfds; i++) {
            fds[i].revents = set[i].revents;
            if (set[nfds + i].fd >= 0 && set[nfds + i].revents != 0 &&
                shmsock_conn_has_space(entries[i]->conn))
                fds[i].revents |= POLLOUT;
            if (fds[i].revents != 0)
                ready++;
        }
        /* Releases came but not enough yet: wait again (not a busy loop: it needs a release). */
        if (ready > 0 || n == 0)
            break;
    }
    for (nfds_t i = 0; i < nfds; i++)
        shmsock_fd_put(entries[i]);
    int saved = errno;
    if (set != small_set) {
        free(set);
        free(entries);
    }
    errno = saved;
    return ready;
}

int shm_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (!asks_shm_writability(fds, nfds))
        return shmsock_libc.poll(fds, nfds, timeout);
    struct timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (long)(timeout % 1000) * 1000000};
    return shmsock_poll_wait(fds, nfds, timeout >= 0 ? &ts : NULL, NULL);
}

int shm_ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
              const sigset_t *sigmask)
{
    if (!asks_shm_writability(fds, nfds))
        return shmsock_libc.ppoll(fds, nfds, timeout, sigmask);
    if (timeout != NULL &&
        (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000))
        return (int)shmsock_result(-EINVAL);
    return shmsock_poll_wait(fds, nfds, timeout, sigmask);
}
