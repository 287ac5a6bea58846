/*
 * event_source.h - where the consumer takes the peer's DATA events from.
 *
 * Two implementations: the peer's event ring (events_ring.c, coalesced mode: no system call
 * while the peer keeps sending) and the kernel socket (events_kernel.c, event mode: one
 * record per event, with the application's ancillary data beside it). The peer's direction
 * starts on the one its region names at the switch and may move from the ring to the kernel
 * socket once (a TO_KERNEL marker: a message with ancillary data, or a reader that wants
 * credentials); consumer.peer_coalesced says which one is current.
 *
 * Both operations run with recv_lock held and validate every event before using it.
 */
#ifndef SHMSOCK_IMPL_EVENT_SOURCE_H
#define SHMSOCK_IMPL_EVENT_SOURCE_H

#include <stdint.h>
#include <sys/types.h>

#include "conn.h"

struct shmsock_event_source {
    /* Copy the payload of the next events into target as one recvmsg(2) would: bytes, 0 at
     * end of stream (or with target->again set: the source changed), or a negative errno. */
    ssize_t (*read)(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags);
    /* Take the next DATA event for a view, holding its token; *start is how much of it a
     * copying read had already taken. */
    enum shmsock_take (*take)(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                              uint64_t *start, int *err);
};

extern const struct shmsock_event_source shmsock_ring_events;
extern const struct shmsock_event_source shmsock_kernel_events;

/* The source the peer's events come from now. */
static inline const struct shmsock_event_source *shmsock_event_source(struct shmsock_conn *conn)
{
    return conn->consumer.peer_coalesced ? &shmsock_ring_events : &shmsock_kernel_events;
}

/* A STREAM peek that reached the peer's switch point before its events were read: copy the
 * payload of the events already in the peer's ring, without waiting or taking any. Returns
 * the bytes copied, or a negative errno (a bad event fails the connection). */
ssize_t shmsock_ring_events_peek_ahead(struct shmsock_conn *conn,
                                       struct shmsock_read_target *target);

#endif
