/*
 * conn_send.c - the copying send: plain sends (with our offer attached to the first one)
 * until our direction has switched, then reserve + gather + commit (producer.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "libc.h"
#include "ancillary.h"
#include "conn.h"
#include "iov.h"
#include "liveness.h"
#include "locks.h"
#include "negotiation.h"
#include "producer.h"
#include "scratch.h"
#include "wakeup.h"

/*
 * Send through the kernel socket as a plain socket would. With `offer`, attach our offer to
 * this payload (the application sent no ancillary data of its own). With `reader_idle` too
 * (the caller holds recv_lock, so no read is in progress), mark our reads careful before the
 * offer leaves.
 */
static ssize_t send_plain(struct shmsock_conn *conn, const struct msghdr *msg, int flags,
                          bool offer, bool reader_idle)
{
    size_t length = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    /* A zero-length STREAM send carries nothing, not even descriptors: no offer on it. */
    if (offer && conn->type == SOCK_STREAM && length == 0)
        offer = false;
    if (offer && shmsock_negotiation_prepare_blind_offer(conn) < 0)
        offer = false; /* no region: stay a plain socket, correct if slower */
    /* Every read from now on is careful: it waits for recv_lock, then finds us OFFERED. Say
     * so in our region before the offer leaves, not after: the peer may take the offer,
     * answer and reply before this thread runs again, and that reply switches only if it
     * finds the mark (else it goes plain and the peer stays OFFERED after the round trip).
     * Nobody reads the mark before the offer arrives; a send that fails takes it back. */
    if (offer && reader_idle)
        shmsock_negotiation_mark_reader_careful(conn);

    struct msghdr out = *msg;
    if (offer) {
        union shmsock_control_buffer *control = &conn->scratch->send_control; /* send_lock */
        out.msg_control = control->bytes;
        out.msg_controllen = shmsock_ancillary_build_offer(control, conn->producer.own.memfd,
                                                           conn->producer.release_offered);
    }
    ssize_t n = shmsock_libc.sendmsg(conn->fd, &out, flags | MSG_NOSIGNAL);
    if (n < 0) {
        int err = -errno;
        if (offer && reader_idle) /* the region stays ours alone: no mark until it leaves */
            shmsock_negotiation_unmark_reader_careful(conn);
        return err;
    }
    conn->nego.plain_sent += conn->type == SOCK_STREAM ? (uint64_t)n : 1u;
    if (offer)
        shmsock_negotiation_blind_offer_sent(conn);
    return n;
}

/* Copy bytes [skip, skip+length) of the message into a fresh run and publish it. */
static ssize_t send_one_run(struct shmsock_conn *conn, const struct msghdr *msg, size_t skip,
                            size_t length, bool with_control, int flags)
{
    /* The kernel's send fails with EFAULT where it cannot read the application's buffer:
     * before anything is reserved or published. */
    int fault = shmsock_iov_check(msg->msg_iov, msg->msg_iovlen, skip, length, false);
    if (fault < 0)
        return fault;
    uint32_t blocks = shmsock_blocks_for_length(length, conn->producer.own.geometry.block_size);
    int64_t token = shmsock_producer_reserve_blocks(conn, blocks, flags);
    if (token < 0)
        return token;
    shmsock_iov_gather(shmsock_region_block(&conn->producer.own, (uint32_t)token), msg->msg_iov,
                       msg->msg_iovlen, skip, length);
    int err =
        shmsock_producer_commit(conn, (uint32_t)token, blocks, length, msg, with_control, flags);
    return err < 0 ? err : (ssize_t)length;
}

static ssize_t send_shm(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    if (conn->type == SOCK_STREAM && msg->msg_namelen != 0)
        return -EISCONN; /* as unix_stream_sendmsg on a connected socket */
    size_t length = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    if (conn->type == SOCK_SEQPACKET && length > shmsock_producer_message_limit(conn))
        return -EMSGSIZE; /* the kernel checks the size before anything else */
    if (conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED) {
        int err = shmsock_producer_probe(conn, flags);
        if (err == 0 && shmsock_flag(&conn->wakeup.doorbell_owed))
            err = shmsock_wakeup_ring_if_armed(conn);
        if (err < 0)
            return err;
    }
    bool control = shmsock_ancillary_present(msg);
    if (conn->type == SOCK_SEQPACKET)
        return send_one_run(conn, msg, 0, length, control, flags);
    if (length == 0)
        return shmsock_kernel_empty_send(conn,
                                         flags); /* nothing to carry, but the kernel's answer */
    /* STREAM: split into runs of a quarter of the region, so both sides work in parallel. */
    size_t chunk = (size_t)(conn->producer.own.geometry.block_count / 4) *
                   conn->producer.own.geometry.block_size;
    if (chunk < conn->producer.own.geometry.block_size)
        chunk = conn->producer.own.geometry.block_size;
    size_t sent = 0;
    while (sent < length) {
        size_t part = length - sent < chunk ? length - sent : chunk;
        ssize_t n = send_one_run(conn, msg, sent, part, control && sent == 0, flags);
        if (n < 0)
            return sent > 0 ? (ssize_t)sent : n;
        sent += (size_t)n;
    }
    return (ssize_t)sent;
}

/* Offer blindly on this payload. If no read is in progress, our reads are careful from now
 * on (they take the recv_lock first), so say so in the region at once (send_plain). A read in
 * progress says so itself when it ends (shmsock_recv_locked). */
static ssize_t send_with_blind_offer(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    bool reader_idle = shmsock_trylock(conn, SHMSOCK_RECV_LOCK);
    ssize_t n = send_plain(conn, msg, flags, true, reader_idle);
    if (reader_idle)
        shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    return n;
}

ssize_t shmsock_send_locked(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    if (!conn->options.negotiate)
        return send_plain(conn, msg, flags, false, false);
    int state = shmsock_out_state(conn);
    if (state == SHMSOCK_OUT_OFFERED && !shmsock_flag(&conn->producer.release_closed) &&
        !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        shmsock_negotiation_take_answer(conn);

    if (state == SHMSOCK_OUT_PLAIN &&
        __atomic_load_n(&conn->options.negotiation_held, __ATOMIC_ACQUIRE))
        return send_plain(conn, msg, flags, false, false); /* no offer, no answer, while held */
    if (state == SHMSOCK_OUT_PLAIN) {
        if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
            /* The peer offered first: answer on its release channel. */
            int err = shmsock_negotiation_send_answer(conn, flags);
            if (err < 0)
                return err;
            state = SHMSOCK_OUT_OFFERED;
        } else if (shmsock_ancillary_present(msg)) {
            /* Never offer on a message that carries the application's own ancillary data. */
            return send_plain(conn, msg, flags, false, false);
        } else {
            return send_with_blind_offer(conn, msg, flags);
        }
    }
    if (state == SHMSOCK_OUT_OFFERED)
        state = shmsock_negotiation_try_switch(conn);
    if (state == SHMSOCK_OUT_SHM)
        return send_shm(conn, msg, flags);
    return send_plain(conn, msg, flags, false, false);
}

ssize_t shmsock_conn_send(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    int err = shmsock_conn_error(conn);
    if (err != 0)
        return err;
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    shmsock_producer_set_active(conn, 1);
    ssize_t n = shmsock_send_locked(conn, msg, flags);
    shmsock_producer_set_active(conn, 0);
    shmsock_negotiation_unlock_send(conn);
    return shmsock_conn_result(conn, n);
}

void shmsock_conn_flush_doorbell(struct shmsock_conn *conn)
{
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    if (conn->wakeup.doorbell_deferred && conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED)
        (void)shmsock_wakeup_ring_if_armed(conn);
    shmsock_negotiation_unlock_send(conn);
}
