/*
 * wakeup.c - the wake-up of coalesced mode: arms, fences and doorbells, both directions.
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
#include "libc.h"
#include "wakeup.h"

#include <errno.h>
#include <sys/socket.h>

#include "event.h"
#include "locks.h"
#include "scratch.h"

int shmsock_doorbell_send(int fd, uint64_t gen)
{
    struct shmsock_event event = {.type = SHMSOCK_EVENT_DOORBELL, .offset = gen};
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    if (shmsock_libc.send(fd, record, sizeof(record), MSG_DONTWAIT | MSG_NOSIGNAL) ==
        (ssize_t)sizeof(record))
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
        __atomic_add_fetch(&shmsock_own_header(conn)->counters.doorbells_sent, 1, __ATOMIC_RELAXED);
    return err;
}

bool shmsock_wakeup_doorbell_due(struct shmsock_conn *conn)
{
    uint64_t armed = __atomic_load_n(&shmsock_peer_header(conn)->event_arm, __ATOMIC_ACQUIRE);
    return armed != conn->wakeup.last_event_doorbell &&
           !__atomic_load_n(&shmsock_peer_header(conn)->event_spinning, __ATOMIC_ACQUIRE);
}

int shmsock_wakeup_ring_if_armed(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    conn->wakeup.doorbell_deferred = false;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t armed = __atomic_load_n(&shmsock_peer_header(conn)->event_arm, __ATOMIC_ACQUIRE);
    if (armed == conn->wakeup.last_event_doorbell && !shmsock_flag(&conn->wakeup.doorbell_owed))
        return 0;
    /* A consumer that busy-polls sees the ring itself; it clears the flag (with a fence)
     * before it arms and sleeps, so either we see that or it sees our event. */
    if (__atomic_load_n(&shmsock_peer_header(conn)->event_spinning, __ATOMIC_ACQUIRE) &&
        !shmsock_flag(&conn->wakeup.doorbell_owed))
        return 0;
    conn->wakeup.last_event_doorbell = armed;
    /* Say so first: the consumer looks for doorbells in the kernel only when we rang. */
    __atomic_store_n(&shmsock_own_header(conn)->event_rung, armed + 1, __ATOMIC_RELEASE);
    /* The reader we wake will not find us inside this send any more when it looks: it must
     * not wait for our producer_active hint to clear (a ping-pong reply is the last event). */
    __atomic_store_n(&shmsock_own_header(conn)->producer_active, 0, __ATOMIC_RELEASE);
    int err = ring_doorbell(conn, conn->fd, armed);
    if (err == 0)
        conn->producer.last_probe_us = shmsock_now_us(); /* the doorbell asked the kernel already */
    /* A full kernel queue (the peer has not read all our plain bytes yet): ring again at the
     * next send, or when a waiting sender sees room. Never forgotten. */
    shmsock_set_flag(&conn->wakeup.doorbell_owed, err == -EAGAIN);
    return err == -EAGAIN ? 0 : err;
}

void shmsock_wakeup_arm_for_releases(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_PRODUCER_LOCK);
    __atomic_store_n(&shmsock_own_header(conn)->release_arm, ++conn->wakeup.release_arm_gen,
                     __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* After a full fence that followed our pushes: ring the producer if it sleeps for releases
 * (it arms, fences, then looks at our ring: either it sees them or we see its arm). */
static void ring_for_releases(struct shmsock_conn *conn)
{
    conn->wakeup.releases_unsignalled = false;
    uint64_t armed = __atomic_load_n(&shmsock_peer_header(conn)->release_arm, __ATOMIC_ACQUIRE);
    if (armed != conn->wakeup.last_release_doorbell) {
        /* The release channel holds at most one doorbell per arm of the producer, so it is
         * never full; a gone peer needs none. */
        conn->wakeup.last_release_doorbell = armed;
        (void)ring_doorbell(conn, conn->consumer.peer_release_fd, armed);
    }
}

/* Releases pushed and not yet signalled (a read that ended early): fence and signal now. */
void shmsock_wakeup_signal_releases(struct shmsock_conn *conn)
{
    if (!conn->wakeup.releases_unsignalled)
        return;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    ring_for_releases(conn);
}

/* Arm for the peer's events: a new generation, then a full fence (which also serves the
 * releases pushed before it). */
void shmsock_wakeup_arm_for_events(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    __atomic_store_n(&shmsock_own_header(conn)->event_arm, ++conn->wakeup.event_arm_gen,
                     __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (conn->wakeup.releases_unsignalled)
        ring_for_releases(conn);
}

/*
 * Every doorbell rung so far (the last one for generation rung - 1) answers an arm older than
 * ours: take the oldest one not yet taken without looking first. It lies at the head of the
 * kernel socket: the producer rings in the order of generations, and sends a kernel event only
 * after the TO_KERNEL marker, whose doorbell (if we slept) goes first; while we read the ring
 * nothing else reaches us there. So one system call takes it, where a look and a take cost
 * two. Returns 0 when every doorbell rung is taken (or the last is still on its way), 1 when
 * older ones remain, or a negative errno: the kernel's (ECONNRESET ...), or EPROTO when the
 * head is anything but an old doorbell (a peer that broke the order).
 */
static int take_head_doorbell(struct shmsock_conn *conn, uint64_t rung)
{
    unsigned char record[SHMSOCK_EVENT_SIZE];
    ssize_t n = shmsock_libc.recv(conn->fd, record, sizeof(record), MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno; /* on its way: next time */
    if (n == 0)
        return 0; /* the peer is gone: its end of stream is the next read's business */
    struct shmsock_event event;
    if (n != (ssize_t)sizeof(record) || shmsock_event_decode(record, &event) < 0 ||
        event.type != SHMSOCK_EVENT_DOORBELL || event.offset >= conn->wakeup.event_arm_gen)
        return -EPROTO;
    __atomic_add_fetch(&shmsock_own_header(conn)->counters.doorbells_received, 1, __ATOMIC_RELAXED);
    if (event.offset + 1 > conn->wakeup.doorbells_cleared)
        conn->wakeup.doorbells_cleared = event.offset + 1;
    return conn->wakeup.doorbells_cleared >= rung ? 0 : 1;
}

/*
 * Take the doorbells of generations before our current arm out of the kernel socket. Returns
 * 0, or the kernel's error for the socket (ECONNRESET ...), which must reach the application.
 */
int shmsock_wakeup_take_old_doorbells(struct shmsock_conn *conn, bool force)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    uint64_t rung = __atomic_load_n(&shmsock_peer_header(conn)->event_rung, __ATOMIC_ACQUIRE);
    if (rung <= conn->wakeup.doorbells_cleared && !force)
        return 0; /* no doorbell rung since we last took them out: no system call */
    uint64_t head = conn->wakeup.head_doorbell;
    conn->wakeup.head_doorbell = 0;
    if (!force && head != 0 && head == rung && head <= conn->wakeup.event_arm_gen) {
        /* The one doorbell rung since we last cleared is the one our wait saw at the head:
         * take exactly that record, without looking first. */
        unsigned char record[SHMSOCK_EVENT_SIZE];
        ssize_t n = shmsock_libc.recv(conn->fd, record, sizeof(record), MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n == (ssize_t)sizeof(record)) {
            __atomic_add_fetch(&shmsock_own_header(conn)->counters.doorbells_received, 1,
                               __ATOMIC_RELAXED);
            conn->wakeup.doorbells_cleared = rung;
            return 0;
        }
    }
    if (!force && head == 0 && rung <= conn->wakeup.event_arm_gen) {
        int r = take_head_doorbell(conn, rung);
        if (r <= 0)
            return r;
    }
    uint64_t newest_taken = 0;                    /* 1 + the newest generation taken out */
    unsigned char *records = conn->scratch->peek; /* (recv_lock) */
    size_t room = sizeof(conn->scratch->peek);
    for (;;) {
        ssize_t n = shmsock_libc.recv(conn->fd, records,
                                      conn->type == SOCK_STREAM ? room : SHMSOCK_EVENT_SIZE,
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
        if (shmsock_libc.recv(conn->fd, records, take, MSG_DONTWAIT) != (ssize_t)take)
            break;
        __atomic_add_fetch(&shmsock_own_header(conn)->counters.doorbells_received,
                           conn->type == SOCK_STREAM ? old : 1u, __ATOMIC_RELAXED);
        /* STREAM: the peek showed everything there was, and all of it was old doorbells. A
         * doorbell that arrives after it is found by the in-flight check below. */
        if (conn->type == SOCK_STREAM && take == (size_t)n && (size_t)n < room)
            break;
    }
    /*
     * The producer says it rang (event_rung) before it sends the doorbell. If the last one it
     * rang is old and we have not seen it, it is still on its way: look again next time.
     */
    bool in_flight = rung <= conn->wakeup.event_arm_gen && newest_taken < rung;
    if (!in_flight && rung > conn->wakeup.doorbells_cleared)
        conn->wakeup.doorbells_cleared =
            rung < conn->wakeup.event_arm_gen ? rung : conn->wakeup.event_arm_gen;
    return 0;
}
