/*
 * negotiation.c - the way of each direction to shared memory (see docs/PROTOCOL.md).
 *
 * Our sends go through PLAIN -> OFFERED -> SHM (or PLAIN -> SHM when the peer offered
 * first); the peer's, as we read them, through IN_PLAIN -> IN_TRANSITION -> IN_EVENTS. The
 * calls here change that state and say what happened; they never call back into the send or
 * receive paths.
 */
#define _GNU_SOURCE
#include "libc.h"
#include "negotiation.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "ancillary.h"
#include "consumer.h"
#include "liveness.h"
#include "locks.h"
#include "producer.h"
#include "scratch.h"

bool shmsock_negotiation_started(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) != SHMSOCK_OUT_PLAIN ||
           __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
}

void shmsock_negotiation_prepare_while_waiting(struct shmsock_conn *conn)
{
    /* A send in progress prepares (or offers) by itself. */
    if (!shmsock_trylock(conn, SHMSOCK_SEND_LOCK))
        return;
    if (conn->options.negotiate && !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) &&
        __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN)
        (void)shmsock_producer_prepare_region(conn); /* on failure the first send tries again */
    shmsock_negotiation_unlock_send(conn);
}

/* A region made ahead of need and not offered yet was made for the options of that moment:
 * when they change, drop it; the first send makes it again. */
void shmsock_negotiation_drop_unoffered_region(struct shmsock_conn *conn)
{
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    if (conn->producer.own.base != NULL &&
        __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN) {
        shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
        shmsock_lock(conn, SHMSOCK_REGION_LOCK);
        shmsock_region_release(&conn->producer.own);
        __atomic_store_n(&conn->nego.reader_careful, 0, __ATOMIC_RELAXED);
        shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
        shmsock_producer_list_destroy(&conn->producer.tokens);
        shmsock_close_fd(conn->producer.release_rx);
        shmsock_close_fd(conn->producer.release_offered);
        conn->producer.release_rx = -1;
        conn->producer.release_offered = -1;
        shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
    }
    shmsock_negotiation_unlock_send(conn);
}

int shmsock_negotiation_prepare_blind_offer(struct shmsock_conn *conn)
{
    int err = shmsock_producer_prepare_region(conn);
    if (err < 0 || conn->producer.release_offered >= 0)
        return err;
    int channel[2];
    if (shmsock_libc.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) < 0)
        return -errno;
    conn->producer.release_rx = channel[0];
    conn->producer.release_offered = channel[1];
    return 0;
}

/* The offer has left: the peer holds its own copy of the channel descriptor. Our region's
 * memfd stays open so that inspection tools (shmsock-ss) find it in /proc/PID/fd. */
static void offer_sent(struct shmsock_conn *conn)
{
    shmsock_close_fd(conn->producer.release_offered);
    conn->producer.release_offered = -1;
}

void shmsock_negotiation_mark_reader_careful(struct shmsock_conn *conn)
{
    if (__atomic_load_n(&conn->nego.reader_careful, __ATOMIC_RELAXED))
        return; /* every read once negotiation began comes here: keep it cheap */
    shmsock_lock(conn, SHMSOCK_REGION_LOCK);
    if (conn->producer.own.base != NULL && !conn->nego.reader_careful) {
        shmsock_region_mark_reader_careful(&conn->producer.own);
        __atomic_store_n(&conn->nego.reader_careful, 1, __ATOMIC_RELAXED);
    }
    shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
}

void shmsock_negotiation_unmark_reader_careful(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    shmsock_lock(conn, SHMSOCK_REGION_LOCK);
    if (conn->producer.own.base != NULL && conn->nego.reader_careful) {
        shmsock_region_unmark_reader_careful(&conn->producer.own);
        __atomic_store_n(&conn->nego.reader_careful, 0, __ATOMIC_RELAXED);
    }
    shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
}

int shmsock_negotiation_send_answer(struct shmsock_conn *conn, int flags)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    shmsock_set_flag(&conn->nego.answer_owed, false);
    int err = shmsock_producer_prepare_region(conn);
    if (err < 0)
        return err;
    /* If no read is in progress, our reads are careful from now on: say so at once. */
    if (shmsock_trylock(conn, SHMSOCK_RECV_LOCK)) {
        shmsock_negotiation_mark_reader_careful(conn);
        shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    }
    /* The answer goes on the peer's release channel, never on the application's socket, so
     * a peer that never reads leaves nothing of ours unread there. That channel then serves
     * both directions (its two ends are full duplex): our answer carries only our region,
     * unless a blind offer of ours made a channel of its own that has not left yet. */
    struct shmsock_event event = {.type = SHMSOCK_EVENT_OFFER};
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    union shmsock_control_buffer *control = &conn->scratch->send_control; /* send_lock */
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control->bytes,
        .msg_controllen = shmsock_ancillary_build_offer(control, conn->producer.own.memfd,
                                                        conn->producer.release_offered),
    };
    ssize_t n = shmsock_libc.sendmsg(conn->consumer.peer_release_fd, &msg,
                                     MSG_NOSIGNAL | (flags & MSG_DONTWAIT));
    if (n < 0)
        return -errno;
    if (conn->producer.release_rx < 0)
        conn->producer.release_rx =
            conn->consumer.peer_release_fd; /* the peer's releases come back on it */
    offer_sent(conn);
    __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_OFFERED, __ATOMIC_RELEASE);
    return 0;
}

/* Mark our blind offer (attached to payload) as sent. Called by the send path. */
void shmsock_negotiation_blind_offer_sent(struct shmsock_conn *conn)
{
    offer_sent(conn);
    __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_OFFERED, __ATOMIC_RELEASE);
}

int shmsock_negotiation_accept_offer(struct shmsock_conn *conn, const int fds[2],
                                     const struct shmsock_region_candidate *candidate)
{
    const struct stat st = candidate->st;
    if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
        /* The same offer seen again (once peeked, once read) is fine; a second one is not. */
        shmsock_libc.close(fds[0]);
        shmsock_close_fd(fds[1]);
        if (st.st_dev == conn->nego.peer_region_dev && st.st_ino == conn->nego.peer_region_ino)
            return 0;
        return shmsock_conn_fail(conn, -EPROTO);
    }
    int err = shmsock_consumer_attach(conn, fds[0], candidate);
    shmsock_libc.close(fds[0]);
    if (err < 0) {
        shmsock_close_fd(fds[1]);
        return shmsock_conn_fail(conn, err == -ENOMEM ? err : -EPROTO);
    }
    conn->nego.peer_region_dev = st.st_dev;
    conn->nego.peer_region_ino = st.st_ino;
    /* An answer without a channel shares ours: our releases for the peer go back on it. */
    conn->consumer.peer_release_fd = fds[1] >= 0 ? fds[1] : conn->producer.release_rx;
    __atomic_store_n(&conn->nego.peer_offered, 1, __ATOMIC_RELEASE);

    /* Answer at once, so that a peer which only sends also switches to shared memory: the
     * caller's path sends it once it has let its lock go (shmsock_negotiation_answer_owed). */
    if (conn->options.negotiate && shmsock_out_state(conn) == SHMSOCK_OUT_PLAIN)
        shmsock_set_flag(&conn->nego.answer_owed, true);
    return 0;
}

/* Send the answer owed, if it still is (send_lock held). */
static void answer_if_owed(struct shmsock_conn *conn)
{
    if (!shmsock_flag(&conn->nego.answer_owed) ||
        __atomic_load_n(&conn->options.negotiation_held, __ATOMIC_ACQUIRE))
        return; /* (held: owed still, answered once one process alone holds the socket) */
    shmsock_set_flag(&conn->nego.answer_owed, false);
    if (shmsock_out_state(conn) == SHMSOCK_OUT_PLAIN)
        (void)shmsock_negotiation_send_answer(conn, MSG_DONTWAIT);
}

void shmsock_negotiation_send_owed_answer(struct shmsock_conn *conn)
{
    /* Whoever holds send_lock looks again after it lets it go (shmsock_negotiation_unlock_send). */
    if (!shmsock_trylock(conn, SHMSOCK_SEND_LOCK))
        return;
    answer_if_owed(conn);
    shmsock_unlock(conn, SHMSOCK_SEND_LOCK);
}

void shmsock_negotiation_take_answer(struct shmsock_conn *conn)
{
    if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        return;
    shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
    shmsock_producer_drain_channel(conn);
    /* Attached before the lock goes: a reader in another thread that drains the channel next
     * must find the peer's region attached (it then reads the peer's switch point), never an
     * answer half taken. */
    if (shmsock_flag(&conn->nego.answer_waiting)) {
        int fds[2] = {conn->nego.answer_fds[0], conn->nego.answer_fds[1]};
        shmsock_set_flag(&conn->nego.answer_waiting, false);
        /* (Not copied: nothing writes it again while we hold producer_lock.) */
        (void)shmsock_negotiation_accept_offer(conn, fds, &conn->nego.answer); /* or fails */
    }
    shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
}

/* Room in the kernel queue a doorbell certainly fits in (a 32-byte message costs about 1 KiB
 * of socket buffer accounting here). */
#define DOORBELL_ROOM 4096

/* Whether our direction may move to shared memory now: both offers are out and the peer
 * reads carefully (it will look for our switch point before taking bytes as payload). */
static bool ready_to_switch(struct shmsock_conn *conn)
{
    if (!__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) ||
        !shmsock_region_reader_careful(&conn->consumer.peer))
        return false;
    /* Not while our plain bytes fill the kernel queue: the first doorbell needs room (and a
     * reader that has just drained our plain bytes finds the ring only through it). A
     * doorbell's message takes well under DOORBELL_ROOM of the queue's accounting; asking
     * for more than that would keep a sender whose reader lags from ever switching. */
    int queued = 0;
    int sndbuf = __atomic_load_n(&conn->producer.sndbuf, __ATOMIC_ACQUIRE);
    return shmsock_libc.ioctl(conn->fd, SIOCOUTQ, &queued) < 0 || sndbuf - queued >= DOORBELL_ROOM;
}

int shmsock_negotiation_try_switch(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    int state = shmsock_out_state(conn);
    if (state != SHMSOCK_OUT_OFFERED || !ready_to_switch(conn))
        return state;
    /* Choose how our events travel, tell the peer after how many plain units they start,
     * then switch. */
    struct shmsock_region_header *header = shmsock_own_header(conn);
    conn->producer.send_mode =
        conn->options.coalesce && !shmsock_producer_peer_wants_kernel_events(conn)
            ? SHMSOCK_SEND_MODE_COALESCED
            : SHMSOCK_SEND_MODE_EVENTS;
    conn->producer.releases_by_ring = conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED;
    __atomic_store_n(&header->send_mode, conn->producer.send_mode, __ATOMIC_RELEASE);
    shmsock_region_publish_switch(&conn->producer.own, conn->nego.plain_sent);
    __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_SHM, __ATOMIC_RELEASE);
    return SHMSOCK_OUT_SHM;
}

/* Learn the peer's switch point if it has published it. */
void shmsock_negotiation_refresh_switch(struct shmsock_conn *conn)
{
    if (!conn->nego.peer_switch_known &&
        __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        conn->nego.peer_switch_known =
            shmsock_region_read_switch(&conn->consumer.peer, &conn->nego.peer_switch);
}

/* Whether the peer can never switch: it dropped our offer (a plain program). */
bool shmsock_negotiation_peer_is_plain(struct shmsock_conn *conn)
{
    return shmsock_flag(&conn->producer.release_closed) &&
           !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
}

bool shmsock_negotiation_reads_careful(struct shmsock_conn *conn)
{
    return conn->options.negotiate && !shmsock_negotiation_peer_is_plain(conn) &&
           (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) ||
            shmsock_out_state(conn) != SHMSOCK_OUT_PLAIN);
}
