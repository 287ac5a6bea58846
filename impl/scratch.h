/*
 * scratch.h - a connection's scratch space: the large buffers of its calls (a look at the
 * next events, control buffers, iovec windows, records), kept off the stack. A read or send
 * must run on a small stack as the kernel call it stands for does (a clone() child with a few
 * KiB), and a per-message allocation would cost more than the call. Each part belongs to the
 * lock its users already hold: a holder of that lock uses it for the length of one call,
 * never across a wait for another lock that guards the same part.
 */
#ifndef SHMSOCK_IMPL_SCRATCH_H
#define SHMSOCK_IMPL_SCRATCH_H

#include <sys/uio.h>

#include "ancillary.h"
#include "event_source.h"

/* iovec entries a plain read maps without allocating (recv_plain's window). */
#define SHMSOCK_SCRATCH_IOVECS 16

/* Bytes of the release channel read at once (the producer's intake). */
#define SHMSOCK_SCRATCH_CHANNEL (64 * SHMSOCK_EVENT_SIZE)

struct shmsock_scratch {
    /* recv_lock: the copying receive, the take of a view, and queues.c's counting. */
    struct shmsock_look look;                  /* event_copy.c: the events looked at */
    union shmsock_control_buffer recv_control; /* a plain read's, or a read of records for real
                                                  (while the look's own buffer holds the peek) */
    struct iovec window[SHMSOCK_SCRATCH_IOVECS];
    struct shmsock_region_candidate offer; /* the peer's offer found by a read */
    unsigned char releases[SHMSOCK_RELEASE_BATCH * SHMSOCK_EVENT_SIZE]; /* RELEASE records */
    /* Records peeked: queues.c's counting, the old doorbells a read takes out (wakeup.c);
     * never both in one call. */
    unsigned char peek[SHMSOCK_LOOK_EVENTS * SHMSOCK_EVENT_SIZE];
    /* send_lock: the offer or answer sent with a plain send. */
    union shmsock_control_buffer send_control;
    /* producer_lock: the release channel's intake. */
    unsigned char channel[SHMSOCK_SCRATCH_CHANNEL];
    union shmsock_control_buffer channel_control;
    struct shmsock_region_candidate answer; /* the peer's answer found on the channel */
};

#endif
