/*
 * poll.c - shm_poll: poll(2) where POLLOUT on a shm socket also means "a block is free".
 *
 * For each shm socket whose writer is out of blocks, POLLOUT is taken out of the kernel
 * socket's entry and the release channel is watched instead; when releases arrive we check
 * again. Everything else is plain poll(2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fd_table.h"
#include "result.h"
#include "shmsock.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define SMALL_SET 16

int shm_poll(struct pollfd *fds, nfds_t nfds, int timeout)
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

    int64_t deadline = timeout >= 0 ? now_ms() + timeout : -1;
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
        int wait = deadline < 0 ? -1 : (int)(deadline > now_ms() ? deadline - now_ms() : 0);
        int n = poll(set, nfds * 2, wait);
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
