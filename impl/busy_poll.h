/*
 * busy_poll.h - SHM_BUSY_POLL's adaptation (busy_poll.c): whether a wait spins on the ring
 * before it arms and sleeps, and what each spin taught.
 *
 * Spinning pays only while the peer answers inside the window on a core of its own. A spin
 * that ran out, or that lost its core meanwhile (preempted), is wasted; after
 * SHMSOCK_BUSY_POLL_WASTE_LIMIT wasted spins in a row the connection's waits go straight to
 * arm and sleep for a number of waits that doubles with each wasted probe after it
 * (SHMSOCK_BUSY_POLL_FIRST_BACKOFF .. SHMSOCK_BUSY_POLL_MAX_BACKOFF); a spin that pays starts
 * over. Independently, no wait spins while the machine has no idle core (more runnable tasks
 * than online CPUs in /proc/loadavg, read at most once per SHMSOCK_BUSY_POLL_LOAD_PERIOD_US
 * per process): the spinner would take the CPU the peer needs to answer.
 */
#ifndef SHMSOCK_IMPL_BUSY_POLL_H
#define SHMSOCK_IMPL_BUSY_POLL_H

#include <stdbool.h>
#include <stdint.h>

/* Wasted spins in a row that start the back-off. */
#define SHMSOCK_BUSY_POLL_WASTE_LIMIT 2u
/* Waits that skip the spin after the first back-off; doubled by every wasted probe. */
#define SHMSOCK_BUSY_POLL_FIRST_BACKOFF 8u
#define SHMSOCK_BUSY_POLL_MAX_BACKOFF 4096u
/* A gap this long between two looks of a spin means the spinner lost its core (µs). */
#define SHMSOCK_BUSY_POLL_PREEMPTED_US 20
/* How long one reading of /proc/loadavg is trusted (µs). */
#define SHMSOCK_BUSY_POLL_LOAD_PERIOD_US 10000

/* Per connection, reader side (recv_lock). Zeroed: spin at the next wait. */
struct shmsock_busy_poll {
    uint32_t wasted;  /* spins in a row that did not pay */
    uint32_t backoff; /* waits the last back-off skipped (0: none since the last paying spin) */
    uint32_t skip;    /* waits left that go straight to arm and sleep */
};

/* Whether this wait may spin, as far as the connection's record goes (counts a skipped wait
 * down). Pure. */
bool shmsock_busy_poll_due(struct shmsock_busy_poll *bp);

/* A spin ended: `paid` if an event came inside the window without the spinner losing its
 * core. Pure. */
void shmsock_busy_poll_outcome(struct shmsock_busy_poll *bp, bool paid);

/* Whether some core looks idle (runnable tasks <= online CPUs; true if /proc/loadavg cannot
 * be read). Reads /proc/loadavg at most once per SHMSOCK_BUSY_POLL_LOAD_PERIOD_US per
 * process; `now_us` is shmsock_now_us(). */
bool shmsock_busy_poll_cores_idle(int64_t now_us);

/* Tests only: with `ignore`, shmsock_busy_poll_cores_idle says true, so that a test sees the
 * back-off alone whatever the machine's load. */
void shmsock_busy_poll_ignore_load(bool ignore);

#endif
