/*
 * conn_coalesced.c - coalesced mode: events and releases through rings in each side's own
 * region, with a doorbell on the kernel socket only when the other side sleeps.
 *
 * Doorbells (events). The consumer, finding the peer's event ring empty, arms: it stores a
 * new generation in its region's event_arm, then looks at the ring once more before it
 * sleeps in the kernel. The producer, after publishing, loads event_arm and rings (a
 * DOORBELL record on the kernel socket) once per generation. With a full fence on both
 * sides, either the producer sees the new generation or the consumer sees the new event.
 *
 * Readability. A doorbell stays in the kernel socket until the consumer has found the ring
 * empty and armed again; only then does it take the doorbells of older generations out. So
 * the descriptor is readable whenever a message waits (a level-triggered reader never
 * stalls), and each new arrival after the reader drained to EAGAIN rings anew (an
 * edge-triggered reader never misses one). A stale doorbell can cause a wake-up that ends
 * in EAGAIN; a missing one cannot happen.
 *
 * Releases work the same way in the other direction: the consumer writes them into its
 * release ring and rings the producer's release channel only when the producer sleeps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "ancillary.h"
#include "conn.h"
#include "iov.h"
#include "ring.h"

#define PASSED_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)

static struct shmsock_region_header *own_header(struct shmsock_conn *conn)
{
    return conn->producer.own.base;
}

static const struct shmsock_region_header *peer_header(struct shmsock_conn *conn)
{
    return conn->consumer.peer.base;
}

int shmsock_doorbell_send(int fd, uint64_t gen)
{
    struct shmsock_event event = {.type = SHMSOCK_EVENT_DOORBELL, .offset = gen};
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    if (send(fd, record, sizeof(record), MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof(record))
        return 0;
    if (errno == EPIPE || errno == ECONNRESET)
        return -errno;
    return -EAGAIN;
}

/* Ring: shmsock_doorbell_send, counted in our header when it went. */
static int ring_doorbell(struct shmsock_conn *conn, int fd, uint64_t gen)
{
    int err = shmsock_doorbell_send(fd, gen);
    if (err == 0)
        __atomic_add_fetch(&own_header(conn)->counters.doorbells_sent, 1, __ATOMIC_RELAXED);
    return err;
}

/* ---- producer ---- */

bool shmsock_coalesced_doorbell_due(struct shmsock_conn *conn)
{
    uint64_t armed = __atomic_load_n(&peer_header(conn)->event_arm, __ATOMIC_ACQUIRE);
    return armed != conn->wakeup.last_event_doorbell &&
           !__atomic_load_n(&peer_header(conn)->event_spinning, __ATOMIC_ACQUIRE);
}

int shmsock_coalesced_ring_if_armed(struct shmsock_conn *conn)
{
    conn->wakeup.doorbell_deferred = false;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t armed = __atomic_load_n(&peer_header(conn)->event_arm, __ATOMIC_ACQUIRE);
    if (armed == conn->wakeup.last_event_doorbell && !shmsock_flag(&conn->wakeup.doorbell_owed))
        return 0;
    /* A consumer that busy-polls sees the ring itself; it clears the flag (with a fence)
     * before it arms and sleeps, so either we see that or it sees our event. */
    if (__atomic_load_n(&peer_header(conn)->event_spinning, __ATOMIC_ACQUIRE) &&
        !shmsock_flag(&conn->wakeup.doorbell_owed))
        return 0;
    conn->wakeup.last_event_doorbell = armed;
    /* Say so first: the consumer looks for doorbells in the kernel only when we rang. */
    __atomic_store_n(&own_header(conn)->event_rung, armed + 1, __ATOMIC_RELEASE);
    /* The reader we wake will not find us inside this send any more when it looks: it must
     * not wait for our producer_active hint to clear (a ping-pong reply is the last event). */
    __atomic_store_n(&own_header(conn)->producer_active, 0, __ATOMIC_RELEASE);
    int err = ring_doorbell(conn, conn->fd, armed);
    if (err == 0)
        conn->producer.last_probe_us = shmsock_now_us(); /* the doorbell asked the kernel already */
    /* A full kernel queue (the peer has not read all our plain bytes yet): ring again at the
     * next send, or when a waiting sender sees room. Never forgotten. */
    shmsock_set_flag(&conn->wakeup.doorbell_owed, err == -EAGAIN);
    return err == -EAGAIN ? 0 : err;
}

int shmsock_coalesced_publish(struct shmsock_conn *conn, const struct shmsock_event *event,
                              int flags)
{
    shmsock_ring_push(&conn->producer.own, SHMSOCK_RING_EVENTS, event);
    if (flags & MSG_MORE) {
        conn->wakeup.doorbell_deferred = true; /* rung by the next send without MSG_MORE */
        return 0;
    }
    return shmsock_coalesced_ring_if_armed(conn);
}

void shmsock_coalesced_reclaim(struct shmsock_conn *conn)
{
    int64_t available =
        shmsock_ring_available(&conn->consumer.peer, SHMSOCK_RING_RELEASES, conn->producer.release_tail);
    if (available < 0) {
        shmsock_conn_fail(conn, -EPROTO);
        return;
    }
    for (int64_t i = 0; i < available; i++) {
        struct shmsock_event event;
        if (shmsock_ring_read(&conn->consumer.peer, SHMSOCK_RING_RELEASES, conn->producer.release_tail, &event) < 0 ||
            shmsock_event_check_release(&event, &conn->producer.own.geometry) < 0 ||
            shmsock_producer_release(&conn->producer.tokens, event.token, event.block_count) < 0) {
            shmsock_conn_fail(conn, -EPROTO);
            return;
        }
        conn->producer.release_tail++;
    }
    __atomic_store_n(&own_header(conn)->counters.blocks_in_use,
                     conn->producer.tokens.block_count - conn->producer.tokens.free_blocks, __ATOMIC_RELAXED);
}

void shmsock_coalesced_arm_for_releases(struct shmsock_conn *conn)
{
    __atomic_store_n(&own_header(conn)->release_arm, ++conn->wakeup.release_arm_gen, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ---- consumer ---- */

/* Write a release into our ring; the producer is looked at later, after a full fence
 * (ring_for_releases), so that one fence serves all the releases and the arm of a read. */
static void push_release(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    shmsock_consumer_release(&conn->consumer.tokens, data->token, data->block_count);
    struct shmsock_event release =
        shmsock_event_release(&conn->consumer.peer.geometry, data->token, data->block_count);
    shmsock_ring_push(&conn->producer.own, SHMSOCK_RING_RELEASES, &release);
    conn->wakeup.releases_unsignalled = true;
}

/* After a full fence that followed our pushes: ring the producer if it sleeps for releases
 * (it arms, fences, then looks at our ring: either it sees them or we see its arm). */
static void ring_for_releases(struct shmsock_conn *conn)
{
    conn->wakeup.releases_unsignalled = false;
    uint64_t armed = __atomic_load_n(&peer_header(conn)->release_arm, __ATOMIC_ACQUIRE);
    if (armed != conn->wakeup.last_release_doorbell) {
        /* The release channel holds at most one doorbell per arm of the producer, so it is
         * never full; a gone peer needs none. */
        conn->wakeup.last_release_doorbell = armed;
        (void)ring_doorbell(conn, conn->consumer.peer_release_fd, armed);
    }
}

/* Releases pushed and not yet signalled (a read that ended early): fence and signal now. */
static void signal_releases(struct shmsock_conn *conn)
{
    if (!conn->wakeup.releases_unsignalled)
        return;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ring_for_releases(conn);
}

void shmsock_conn_release_run(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    push_release(conn, data);
    signal_releases(conn);
}

/* The entry `ahead` places after our tail in the peer's event ring, checked; 1 if there is
 * one, 0 if not, or -EPROTO. */
static int event_at(struct shmsock_conn *conn, uint64_t ahead, struct shmsock_event *event)
{
    int64_t available = shmsock_ring_available(&conn->consumer.peer, SHMSOCK_RING_EVENTS, conn->consumer.event_tail);
    if (available < 0)
        return -EPROTO;
    if ((uint64_t)available <= ahead)
        return 0;
    if (shmsock_ring_read(&conn->consumer.peer, SHMSOCK_RING_EVENTS, conn->consumer.event_tail + ahead, event) < 0)
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

/*
 * Take the doorbells of generations before our current arm out of the kernel socket. Returns
 * 0, or the kernel's error for the socket (ECONNRESET ...), which must reach the application.
 */
static int consume_old_doorbells(struct shmsock_conn *conn, bool force)
{
    uint64_t rung = __atomic_load_n(&peer_header(conn)->event_rung, __ATOMIC_ACQUIRE);
    if (rung <= conn->wakeup.doorbells_cleared && !force)
        return 0; /* no doorbell rung since we last took them out: no system call */
    uint64_t head = conn->wakeup.head_doorbell;
    conn->wakeup.head_doorbell = 0;
    if (!force && head != 0 && head == rung && head <= conn->wakeup.event_arm_gen) {
        /* The one doorbell rung since we last cleared is the one our wait saw at the head:
         * take exactly that record, without looking first. */
        unsigned char record[SHMSOCK_EVENT_SIZE];
        ssize_t n = recv(conn->fd, record, sizeof(record), MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n == (ssize_t)sizeof(record)) {
            __atomic_add_fetch(&own_header(conn)->counters.doorbells_received, 1, __ATOMIC_RELAXED);
            conn->wakeup.doorbells_cleared = rung;
            return 0;
        }
    }
    uint64_t newest_taken = 0; /* 1 + the newest generation taken out */
    for (;;) {
        unsigned char records[16 * SHMSOCK_EVENT_SIZE];
        ssize_t n = recv(conn->fd, records,
                         conn->type == SOCK_STREAM ? sizeof(records) : SHMSOCK_EVENT_SIZE,
                         MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n < 0)
            break;
        size_t old = 0;
        for (size_t at = 0; at + SHMSOCK_EVENT_SIZE <= (size_t)n; at += SHMSOCK_EVENT_SIZE) {
            struct shmsock_event event;
            if (shmsock_event_decode(records + at, &event) < 0 ||
                event.type != SHMSOCK_EVENT_DOORBELL || event.offset >= conn->wakeup.event_arm_gen)
                break;
            if (event.offset + 1 > newest_taken)
                newest_taken = event.offset + 1;
            old++;
        }
        if (old == 0)
            break;
        size_t take = conn->type == SOCK_STREAM ? old * SHMSOCK_EVENT_SIZE : SHMSOCK_EVENT_SIZE;
        if (recv(conn->fd, records, take, MSG_DONTWAIT) != (ssize_t)take)
            break;
        __atomic_add_fetch(&own_header(conn)->counters.doorbells_received,
                           conn->type == SOCK_STREAM ? old : 1u, __ATOMIC_RELAXED);
        /* STREAM: the peek showed everything there was, and all of it was old doorbells. A
         * doorbell that arrives after it is found by the in-flight check below. */
        if (conn->type == SOCK_STREAM && take == (size_t)n && (size_t)n < sizeof(records))
            break;
    }
    /*
     * The producer says it rang (event_rung) before it sends the doorbell. If the last one it
     * rang is old and we have not seen it, it is still on its way: look again next time.
     */
    bool in_flight = rung <= conn->wakeup.event_arm_gen && newest_taken < rung;
    if (!in_flight && rung > conn->wakeup.doorbells_cleared)
        conn->wakeup.doorbells_cleared = rung < conn->wakeup.event_arm_gen ? rung : conn->wakeup.event_arm_gen;
    return 0;
}

/* Arm for the peer's events: a new generation, then a full fence (which also serves the
 * releases pushed before it). */
static void arm_for_events(struct shmsock_conn *conn)
{
    __atomic_store_n(&own_header(conn)->event_arm, ++conn->wakeup.event_arm_gen, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (conn->wakeup.releases_unsignalled)
        ring_for_releases(conn);
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
    const struct shmsock_region_header *peer = peer_header(conn);
    if (!__atomic_load_n(&peer->producer_active, __ATOMIC_ACQUIRE))
        return 0;
    signal_releases(conn); /* the producer may be waiting for the blocks we just read */
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

/* settle() without the deferral: 0 or the kernel's error for the socket. */
static int settle_ring(struct shmsock_conn *conn)
{
    struct shmsock_event event;
    if (next_event(conn, &event) != 0 || wait_for_active_producer(conn, &event) != 0) {
        signal_releases(conn);
        return 0;
    }
    arm_for_events(conn); /* its fence also serves the releases */
    if (next_event(conn, &event) != 0)
        return 0;
    return consume_old_doorbells(conn, false);
}

/*
 * After a read that took a message and may have emptied the ring: if it is empty, arm and
 * take the old doorbells out, so the descriptor is not readable with nothing waiting. If
 * something arrived meanwhile, its doorbell stays and the descriptor stays readable. Either
 * way the read's releases are signalled (one fence for both). The message is the
 * application's already: an error the kernel reports on the way (the peer closed with our
 * doorbells unread: ECONNRESET, which the kernel hands out once) waits for the next read.
 */
static void settle(struct shmsock_conn *conn)
{
    int err = shmsock_conn_kernel_reset(conn, settle_ring(conn));
    if (err < 0 && conn->live.deferred_error == 0)
        conn->live.deferred_error = err;
}

/* A deferred error, reported once by a read that finds the ring empty (recv_lock). */
static int take_deferred_error(struct shmsock_conn *conn)
{
    int err = conn->live.deferred_error;
    conn->live.deferred_error = 0;
    return err;
}

/*
 * Wait until the peer's ring has an entry (1), or report why not: 0 at end of stream,
 * -EAGAIN (non-blocking, or SO_RCVTIMEO), -EINTR, another negative errno (a deferred one
 * first: the ring is empty when we come here).
 */
static int wait_for_event(struct shmsock_conn *conn, int flags, struct shmsock_event *event)
{
    if (conn->live.deferred_error != 0)
        return take_deferred_error(conn);
    /* Optional busy-poll: spin on the ring before paying for a sleep. */
    if (conn->options.busy_poll_us > 0) {
        int64_t until = shmsock_now_us() + conn->options.busy_poll_us;
        unsigned spins = 0;
        __atomic_store_n(&own_header(conn)->event_spinning, 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        do {
            int r = next_event(conn, event);
            if (r != 0) {
                __atomic_store_n(&own_header(conn)->event_spinning, 0, __ATOMIC_RELEASE);
                return r;
            }
            /* Let a producer that shares our core run now and then. */
            if (++spins % 256 == 0)
                sched_yield();
            else
                shmsock_cpu_relax();
        } while (shmsock_now_us() < until);
        /* Cleared before arming (arm_for_events fences): the producer rings from now on. */
        __atomic_store_n(&own_header(conn)->event_spinning, 0, __ATOMIC_RELEASE);
    }
    bool stale = false; /* the kernel socket showed a doorbell older than our arm */
    for (;;) {
        /* Arm, then look once more: the producer either sees the arm or we see its event. */
        arm_for_events(conn);
        int r = next_event(conn, event);
        if (r != 0)
            return r;
        r = consume_old_doorbells(conn, stale);
        if (r < 0)
            return r;
        /* Sleep until a doorbell (or end of stream) arrives, without taking it: it keeps the
         * descriptor readable until the ring is empty again. */
        unsigned char record[SHMSOCK_EVENT_SIZE];
        ssize_t n = recv(conn->fd, record, sizeof(record), MSG_PEEK | (flags & PASSED_FLAGS));
        int saved = errno;
        struct shmsock_event head;
        bool doorbell = n == (ssize_t)sizeof(record) && shmsock_event_decode(record, &head) == 0 &&
                        head.type == SHMSOCK_EVENT_DOORBELL && head.offset <= conn->wakeup.event_arm_gen;
        conn->wakeup.head_doorbell = doorbell ? head.offset + 1 : 0; /* settle() takes it directly */
        r = next_event(conn, event);
        if (r != 0)
            return r;
        if (n == 0)
            return 0;
        if (n < 0) /* a reset only our doorbells caused is the end of the stream */
            return shmsock_conn_kernel_reset(conn, -saved);
        if (!doorbell)
            return -EPROTO; /* a kernel event without TO_KERNEL first, or a doorbell for a
                               generation we never armed */
        /* A stale doorbell (older generation): taken out on the next round, whatever the
         * producer's event_rung says. */
        stale = true;
        if (flags & MSG_DONTWAIT) {
            arm_for_events(conn);
            r = next_event(conn, event);
            if (r != 0)
                return r;
            r = consume_old_doorbells(conn, true);
            return r < 0 ? r : -EAGAIN;
        }
    }
}

static ssize_t coalesced_read(struct shmsock_conn *conn, struct shmsock_read_target *target,
                              int flags);

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
    uint32_t closes = __atomic_load_n(&peer_header(conn)->socket_closes, __ATOMIC_ACQUIRE);
    if (closes == conn->consumer.peer_closes_read)
        return 0;
    conn->consumer.peer_closes_read = closes;
    return shmsock_conn_socket_error(conn);
}

ssize_t shmsock_coalesced_recv(struct shmsock_conn *conn, struct shmsock_read_target *target,
                               int flags)
{
    int err = reset_before_messages(conn);
    if (err < 0)
        return err;
    ssize_t n = coalesced_read(conn, target, flags);
    signal_releases(conn); /* a read that ended before settling still returns its blocks */
    return n;
}

static ssize_t coalesced_read(struct shmsock_conn *conn, struct shmsock_read_target *target,
                              int flags)
{
    struct msghdr *user = target->msg;
    bool peek = (flags & MSG_PEEK) != 0;
    size_t copied = 0;
    if (conn->type == SOCK_STREAM && target->space == 0)
        return shmsock_nothing_read(user);
    int msg_flags = 0;
    uint64_t peek_index = 0; /* MSG_PEEK walks ahead without moving the tail */
    for (;;) {
        struct shmsock_event event;
        int r = event_at(conn, peek_index, &event);
        if (r == 0 && copied > 0)
            break; /* STREAM: return what we have rather than wait */
        if (r == 0)
            r = wait_for_event(conn, flags, &event);
        if (r < 0)
            return r == -EPROTO ? shmsock_conn_fail(conn, -EPROTO)
                                : (copied > 0 ? (ssize_t)copied : r);
        if (r == 0)
            return shmsock_nothing_read(user); /* end of stream (nothing copied: see above) */
        if (event.type == SHMSOCK_EVENT_TO_KERNEL) {
            if (copied > 0) {
                /* A read goes on: the peer's next bytes wait as kernel events. A peek stops
                 * here (a shorter peek than the kernel's, README). */
                target->batch_full = !peek;
                break;
            }
            /* From here on the peer's events come through the kernel socket. */
            conn->consumer.event_tail++;
            conn->consumer.peer_coalesced = false;
            return SHMSOCK_RETRY; /* the caller reads again in event mode */
        }
        uint64_t start = peek_index == 0 ? conn->consumer.head_consumed : 0;
        if (start > event.length)
            return shmsock_conn_fail(conn, -EPROTO);
        const unsigned char *payload = (const unsigned char *)conn->consumer.peer.base + event.offset;
        size_t n = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip + copied,
                                       payload + start, event.length - start);
        copied += n;
        if (conn->type == SOCK_SEQPACKET) {
            if (n < event.length)
                msg_flags |= MSG_TRUNC;
            user->msg_flags = msg_flags;
            user->msg_controllen = 0; /* ring messages carry no ancillary data */
            if (!peek) {
                if (shmsock_consumer_receive(&conn->consumer.tokens, event.token, event.block_count) < 0)
                    return shmsock_conn_fail(conn, -EPROTO);
                conn->consumer.event_tail++;
                push_release(conn, &event);
                settle(conn);
            }
            return (flags & MSG_TRUNC) ? (ssize_t)event.length : (ssize_t)copied;
        }
        if (peek) {
            /* A peek shows what is there without moving on. */
            peek_index++;
            if (copied == target->space)
                break;
            continue;
        }
        if (start + n < event.length) {
            conn->consumer.head_consumed = start + n;
            break;
        }
        if (shmsock_consumer_receive(&conn->consumer.tokens, event.token, event.block_count) < 0)
            return shmsock_conn_fail(conn, -EPROTO);
        conn->consumer.head_consumed = 0;
        conn->consumer.event_tail++;
        push_release(conn, &event);
        if (copied == target->space)
            break;
    }
    if (!peek && copied > 0)
        settle(conn);
    user->msg_flags = msg_flags;
    user->msg_controllen = 0; /* ring messages carry no ancillary data */
    return (ssize_t)copied;
}

ssize_t shmsock_coalesced_peek_ahead(struct shmsock_conn *conn, struct shmsock_read_target *target)
{
    struct msghdr *user = target->msg;
    size_t copied = 0;
    struct shmsock_event event;
    for (uint64_t ahead = 0; copied < target->space; ahead++) {
        int r = event_at(conn, ahead, &event);
        if (r < 0)
            return shmsock_conn_fail(conn, -EPROTO);
        if (r == 0 || event.type == SHMSOCK_EVENT_TO_KERNEL)
            break;
        const unsigned char *payload = (const unsigned char *)conn->consumer.peer.base + event.offset;
        copied += shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip + copied,
                                      payload, event.length);
    }
    return (ssize_t)copied;
}

int shmsock_coalesced_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                           uint64_t *start)
{
    int r = reset_before_messages(conn);
    if (r < 0)
        return r;
    r = next_event(conn, event);
    if (r == 0)
        r = wait_for_event(conn, flags, event);
    if (r == -EPROTO)
        return shmsock_conn_fail(conn, -EPROTO);
    if (r <= 0)
        return r;
    if (event->type == SHMSOCK_EVENT_TO_KERNEL) {
        conn->consumer.event_tail++;
        conn->consumer.peer_coalesced = false;
        return (int)SHMSOCK_RETRY;
    }
    if (shmsock_consumer_receive(&conn->consumer.tokens, event->token, event->block_count) < 0)
        return shmsock_conn_fail(conn, -EPROTO);
    *start = conn->consumer.head_consumed;
    conn->consumer.head_consumed = 0;
    conn->consumer.event_tail++;
    settle(conn);
    return 1;
}
