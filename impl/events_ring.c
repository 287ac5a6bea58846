/*
 * events_ring.c - the event source of coalesced mode: the peer's DATA events in the event
 * ring of its region, waited for through the wake-up (wakeup.c). See event_source.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>

#include "libc.h"
#include "busy_poll.h"
#include "consumer.h"
#include "event_source.h"
#include "liveness.h"
#include "producer.h"
#include "ring.h"
#include "wakeup.h"

/* The entry `ahead` places after our tail in the peer's event ring, checked; 1 if there is
 * one, 0 if not, or -EPROTO. */
static int event_at(struct shmsock_conn *conn, uint64_t ahead, struct shmsock_event *event)
{
    int64_t available = shmsock_ring_available(&conn->consumer.peer, SHMSOCK_RING_EVENTS,
                                               conn->consumer.event_tail);
    if (available < 0)
        return -EPROTO;
    if ((uint64_t)available <= ahead)
        return 0;
    if (shmsock_ring_read(&conn->consumer.peer, SHMSOCK_RING_EVENTS,
                          conn->consumer.event_tail + ahead, event) < 0)
        return -EPROTO;
    if (event->type == SHMSOCK_EVENT_TO_KERNEL)
        return 1;
    if (shmsock_event_check_data(event, &conn->consumer.peer.geometry) < 0)
        return -EPROTO;
    return 1;
}

static int next_event(struct shmsock_conn *conn, struct shmsock_event *event)
{
    return event_at(conn, 0, event);
}

/* Longest wait for an event the producer is writing right now (microseconds). */
#define ACTIVE_PRODUCER_WAIT_US 2

/*
 * The ring is empty, but the producer says it is inside a send: its event is a few hundred
 * nanoseconds away. Waiting for it (at most ACTIVE_PRODUCER_WAIT_US, and only while the
 * producer stays inside its send) is cheaper than arming, which costs the producer a doorbell
 * and us a system call to take it out. The flag is only a hint: a wrong one costs this wait.
 * Returns 1 with *event filled if an event came.
 */
static int wait_for_active_producer(struct shmsock_conn *conn, struct shmsock_event *event)
{
    const struct shmsock_region_header *peer = shmsock_peer_header(conn);
    if (!__atomic_load_n(&peer->producer_active, __ATOMIC_ACQUIRE))
        return 0;
    shmsock_wakeup_signal_releases(
        conn); /* the producer may be waiting for the blocks we just read */
    int64_t until = shmsock_now_us() + ACTIVE_PRODUCER_WAIT_US;
    for (;;) {
        shmsock_cpu_relax();
        int r = next_event(conn, event);
        if (r != 0)
            return r;
        if (!__atomic_load_n(&peer->producer_active, __ATOMIC_ACQUIRE) || shmsock_now_us() >= until)
            return next_event(conn, event);
    }
}

/*
 * After a read that took a message and may have emptied the ring: if it is empty, arm and
 * take the old doorbells out, so the descriptor is not readable with nothing waiting. If
 * something arrived meanwhile, its doorbell stays and the descriptor stays readable. Either
 * way the read's releases are signalled (one fence for both; a read that took nothing still
 * returns the blocks it released). The message is the application's already: an error the
 * kernel reports on the way (the peer closed with our doorbells unread: ECONNRESET, which the
 * kernel hands out once) waits for the next read.
 */
static void ring_settle(struct shmsock_conn *conn, bool took)
{
    struct shmsock_event event;
    if (!took || next_event(conn, &event) != 0 || wait_for_active_producer(conn, &event) != 0) {
        shmsock_wakeup_signal_releases(conn);
        return;
    }
    shmsock_wakeup_arm_for_events(conn); /* its fence also serves the releases */
    int err = next_event(conn, &event) != 0 ? 0 : shmsock_wakeup_take_old_doorbells(conn, false);
    if (err < 0) /* a reset only our doorbells caused is none */
        err = shmsock_producer_filter_reset(conn, err);
    if (err < 0)
        shmsock_defer_error(conn, err);
}

/*
 * SHM_BUSY_POLL: spin on the ring for at most busy_poll_us before the wait arms, if the
 * connection's record (busy_poll.h) says spinning pays and some core is idle. The spin ends
 * at once when the spinner loses its core (a gap between two looks): the peer needs that CPU.
 * Returns 1 with *event filled, 0 if the wait must arm and sleep, or -EPROTO. event_spinning
 * is 1 only during the spin and cleared before the wait arms (see wakeup.c).
 */
static int busy_poll(struct shmsock_conn *conn, struct shmsock_event *event)
{
    if (!shmsock_busy_poll_due(&conn->busy_poll))
        return 0;
    if (!shmsock_busy_poll_cores_idle(shmsock_now_us()))
        return 0;
    int64_t now = shmsock_now_us(); /* after the look at /proc/loadavg: no gap */
    int64_t until = now + conn->options.busy_poll_us;
    unsigned spins = 0;
    bool preempted = false;
    int r;
    __atomic_store_n(&shmsock_own_header(conn)->event_spinning, 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (;;) {
        r = next_event(conn, event);
        if (r != 0)
            break;
        /* Let a producer that shares our core run now and then. */
        if (++spins % 256 == 0)
            sched_yield();
        else
            shmsock_cpu_relax();
        int64_t later = shmsock_now_us();
        preempted = later - now > SHMSOCK_BUSY_POLL_PREEMPTED_US;
        now = later;
        if (preempted || now >= until)
            break;
    }
    /* Cleared before arming (shmsock_wakeup_arm_for_events fences): the producer rings from
     * now on. */
    __atomic_store_n(&shmsock_own_header(conn)->event_spinning, 0, __ATOMIC_RELEASE);
    shmsock_busy_poll_outcome(&conn->busy_poll, r != 0 && !preempted);
    return r;
}

/*
 * Wait until the peer's ring has an entry (1), or report why not: 0 at end of stream,
 * -EAGAIN (non-blocking, or SO_RCVTIMEO), -EINTR, another negative errno (a deferred one
 * first: the ring is empty when we come here).
 */
static int wait_for_event(struct shmsock_conn *conn, int flags)
{
    struct shmsock_event event;
    if (conn->live.deferred_error != 0)
        return shmsock_take_deferred_error(conn);
    /* Optional busy-poll: spin on the ring before paying for a sleep, while that pays. */
    if (conn->options.busy_poll_us > 0) {
        int r = busy_poll(conn, &event);
        if (r != 0)
            return r;
    }
    bool stale = false; /* the kernel socket showed a doorbell older than our arm */
    for (;;) {
        /* Arm, then look once more: the producer either sees the arm or we see its event. */
        shmsock_wakeup_arm_for_events(conn);
        int r = next_event(conn, &event);
        if (r != 0)
            return r;
        r = shmsock_wakeup_take_old_doorbells(conn, stale);
        if (r < 0)
            return r;
        /* Sleep until a doorbell (or end of stream) arrives, without taking it: it keeps the
         * descriptor readable until the ring is empty again. */
        unsigned char record[SHMSOCK_EVENT_SIZE];
        ssize_t n = shmsock_libc.recv(conn->fd, record, sizeof(record),
                                      MSG_PEEK | (flags & SHMSOCK_PASSED_FLAGS));
        int saved = errno;
        struct shmsock_event head;
        bool doorbell = n == (ssize_t)sizeof(record) && shmsock_event_decode(record, &head) == 0 &&
                        head.type == SHMSOCK_EVENT_DOORBELL &&
                        head.offset <= conn->wakeup.event_arm_gen;
        conn->wakeup.head_doorbell =
            doorbell ? head.offset + 1 : 0; /* ring_settle() takes it directly */
        r = next_event(conn, &event);
        if (r != 0)
            return r;
        if (n == 0)
            return 0;
        if (n < 0) /* a reset only our doorbells caused is the end of the stream */
            return shmsock_producer_filter_reset(conn, -saved);
        if (!doorbell)
            return -EPROTO; /* a kernel event without TO_KERNEL first, or a doorbell for a
                               generation we never armed */
        /* A stale doorbell (older generation): taken out on the next round, whatever the
         * producer's event_rung says. */
        stale = true;
        if (flags & MSG_DONTWAIT) {
            shmsock_wakeup_arm_for_events(conn);
            r = next_event(conn, &event);
            if (r != 0)
                return r;
            r = shmsock_wakeup_take_old_doorbells(conn, true);
            return r < 0 ? r : -EAGAIN;
        }
    }
}

/*
 * SOCK_SEQPACKET: the kernel reports a reset (the peer closed with messages of ours unread)
 * before the messages still queued for us. The peer's header says when it has closed its
 * socket; only then is the kernel asked (SO_ERROR hands the reset out once, as a read would).
 * 0 or -ECONNRESET.
 */
static int reset_before_messages(struct shmsock_conn *conn)
{
    if (conn->type != SOCK_SEQPACKET)
        return 0;
    uint32_t closes = __atomic_load_n(&shmsock_peer_header(conn)->socket_closes, __ATOMIC_ACQUIRE);
    if (closes == conn->consumer.peer_closes_read)
        return 0;
    conn->consumer.peer_closes_read = closes;
    return shmsock_producer_socket_error(conn);
}

/* The events after our tail (and look->ahead more), up to the first that fills look->want
 * bytes, or the TO_KERNEL marker. */
static int ring_look(struct shmsock_conn *conn, struct shmsock_look *look)
{
    look->control = (struct msghdr){.msg_controllen = 0}; /* ring events carry no ancillary data */
    if (look->first) {
        int err = reset_before_messages(conn);
        if (err < 0)
            return err;
    }
    /* A STREAM read of no bytes (want 0) still looks at the head event: it waits for one, or
     * says EAGAIN, as the kernel's read does. */
    uint64_t bytes = 0;
    while (look->count < SHMSOCK_LOOK_EVENTS && (look->count == 0 || bytes < look->want)) {
        struct shmsock_event *event = &look->events[look->count];
        int r = event_at(conn, look->ahead + look->count, event);
        if (r < 0)
            return r;
        if (r == 0)
            break;
        uint64_t start = look->ahead + look->count == 0 ? conn->consumer.head_consumed : 0;
        look->count++;
        if (event->type == SHMSOCK_EVENT_TO_KERNEL) {
            look->to_kernel = true;
            break;
        }
        bytes += event->length > start ? event->length - start : 0;
    }
    return look->count > 0 ? SHMSOCK_LOOK_FOUND : SHMSOCK_LOOK_EMPTY;
}

static int ring_consume(struct shmsock_conn *conn, struct shmsock_look *look, size_t k,
                        bool release)
{
    for (size_t i = 0; i < k; i++) {
        const struct shmsock_event *event = &look->events[i];
        if (event->type == SHMSOCK_EVENT_TO_KERNEL)
            conn->consumer.peer_coalesced = false; /* the kernel socket brings the next events */
        else if (shmsock_consumer_receive(&conn->consumer.tokens, event->token,
                                          event->block_count) < 0)
            return -EPROTO;
        else if (release)
            shmsock_consumer_push_release(conn, event);
        conn->consumer.event_tail++;
    }
    return 0;
}

const struct shmsock_event_source shmsock_ring_events = {
    .look = ring_look,
    .wait = wait_for_event,
    .consume = ring_consume,
    .settle = ring_settle,
    .one_look_per_read = false,
};
