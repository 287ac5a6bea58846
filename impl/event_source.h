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
 * A source looks at events, waits for them, takes them and settles; one copy loop (event_copy.c)
 * reads through either, with recv_lock held, and validates every event before using it.
 */
#ifndef SHMSOCK_IMPL_EVENT_SOURCE_H
#define SHMSOCK_IMPL_EVENT_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ancillary.h"
#include "conn.h"

/* Most events one look holds (the kernel socket's peek of records). */
#define SHMSOCK_LOOK_EVENTS 16

enum shmsock_look_result {
    SHMSOCK_LOOK_END = 0,   /* end of stream */
    SHMSOCK_LOOK_FOUND = 1, /* look->count events (at least one) */
    SHMSOCK_LOOK_EMPTY = 2, /* nothing there now: wait, then look again */
    SHMSOCK_LOOK_AGAIN = 3, /* the source's state changed (stale doorbells gone): read again */
};

/* The next events, looked at without taking them. */
struct shmsock_look {
    int flags;       /* the application's MSG_PEEK, MSG_DONTWAIT, MSG_CMSG_CLOEXEC */
    bool first;      /* the first look of a read */
    bool take_head;  /* the first event is taken whatever it is (a view, a SEQPACKET read): the
                        source may take it while it looks */
    bool ahead_only; /* a peek before the switch point: it never waits, the marker ends it */
    uint64_t ahead;  /* events to pass over first (a peek that goes on) */
    size_t want;     /* bytes the reader has room for: events past them need no look (0, a
                        STREAM read of no bytes: the head event, waited for as any) */
    /* What the source found: */
    size_t count;
    bool to_kernel;        /* the last event is the ring's TO_KERNEL marker */
    bool more;             /* more events may wait behind these than one look shows */
    bool rights_ambiguous; /* the kernel's peek quirk: the descriptors may be the next record's */
    struct shmsock_event events[SHMSOCK_LOOK_EVENTS];
    struct msghdr control; /* ancillary data beside the events (empty for the ring) */
    struct iovec iov;
    unsigned char records[SHMSOCK_LOOK_EVENTS * SHMSOCK_EVENT_SIZE];
    union shmsock_control_buffer buffer;
};

struct shmsock_event_source {
    /* Look at the next events: a shmsock_look_result or a negative errno (-EPROTO: the peer
     * broke the protocol). The kernel socket's look waits as the flags say (its peek). */
    int (*look)(struct shmsock_conn *conn, struct shmsock_look *look);
    /* After SHMSOCK_LOOK_EMPTY (never, where the look waits): wait until an event is there
     * (1), 0 at end of stream, or a negative errno (-EAGAIN, -EINTR, the connection's error). */
    int (*wait)(struct shmsock_conn *conn, int flags);
    /* Take the first k events looked at for real, their tokens into our consumer list, and
     * with release give their runs back (they have been copied out). 0 or -EPROTO. */
    int (*consume)(struct shmsock_conn *conn, struct shmsock_look *look, size_t k, bool release);
    /* After a read or a take, on every way out (took: it took payload for real); NULL: none. */
    void (*settle)(struct shmsock_conn *conn, bool took);
    /* Its events carry ancillary data: a read takes one look only (the ancillary data of a
     * look goes with its bytes), and a read that could take more says so (batch_full). */
    bool one_look_per_read;
};

extern const struct shmsock_event_source shmsock_ring_events;
extern const struct shmsock_event_source shmsock_kernel_events;

/* The source the peer's events come from now. */
static inline const struct shmsock_event_source *shmsock_event_source(struct shmsock_conn *conn)
{
    return conn->consumer.peer_coalesced ? &shmsock_ring_events : &shmsock_kernel_events;
}

/* Copy the payload of the next events into target as one recvmsg(2) would, from the current
 * source (event_copy.c): bytes, 0 at end of stream (or with target->again set: the source
 * changed), or a negative errno. */
ssize_t shmsock_events_read(struct shmsock_conn *conn, struct shmsock_read_target *target,
                            int flags);

/* Take the next DATA event for a view, holding its token; *start is how much of it a copying
 * read had already taken (event_copy.c). SHMSOCK_LOOK_FOUND, _END, _AGAIN (the source changed:
 * take again) or a negative errno. */
int shmsock_events_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                        uint64_t *start);

/* A STREAM peek that reached the peer's switch point before its events were read: copy the
 * payload of the events already in the peer's ring, without waiting or taking any
 * (event_copy.c). Returns the bytes copied, or a negative errno (a bad event fails the
 * connection). */
ssize_t shmsock_ring_events_peek_ahead(struct shmsock_conn *conn,
                                       struct shmsock_read_target *target);

#endif
