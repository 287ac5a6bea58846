/*
 * poll_wait.h - the wait behind shm_poll, shm_ppoll, shm_select and shm_pselect.
 */
#ifndef SHMSOCK_API_POLL_WAIT_H
#define SHMSOCK_API_POLL_WAIT_H

#include <poll.h>
#include <signal.h>
#include <time.h>

/* ppoll(2) where POLLOUT on a shm socket means a send would make progress: timeout NULL waits
 * for ever, sigmask as ppoll's. Returns as ppoll (-1 and errno on failure). */
int shmsock_poll_wait(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                      const sigset_t *sigmask);

#endif
