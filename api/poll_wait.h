/*
 * poll_wait.h - the wait behind shm_poll, shm_ppoll, shm_select and shm_pselect.
 */
#ifndef SHMSOCK_API_POLL_WAIT_H
#define SHMSOCK_API_POLL_WAIT_H

#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in nanoseconds. */
int64_t shmsock_now_ns(void);

/* The moment `timeout` from now ends (nanoseconds, shmsock_now_ns's clock), or -1 for none
 * (timeout NULL: wait for ever). */
int64_t shmsock_deadline(const struct timespec *timeout);

/* The time left until deadline in *left (zero once it has passed), for the kernel's timed
 * waits: returns left, or NULL for no deadline (-1). */
const struct timespec *shmsock_time_left(int64_t deadline, struct timespec *left);

/* ppoll(2) where POLLOUT on a shm socket means a send would make progress: timeout NULL waits
 * for ever, sigmask as ppoll's. Returns as ppoll (-1 and errno on failure). */
int shmsock_poll_wait(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout,
                      const sigset_t *sigmask);

#endif
