/*
 * conn_send.c - the send path: plain sends (with the offer attached to the first one), the
 * switch to shared memory, and shm sends (reserve blocks, copy, publish the DATA event).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <time.h>

#include "ancillary.h"
#include "conn.h"
#include "event.h"
#include "iov.h"
#include "release_channel.h"
#include "ring.h"

static int out_state(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE);
}

/* Say in our header whether we are inside a coalesced send (a hint for the reader). */
static void set_producer_active(struct shmsock_conn *conn, uint64_t active)
{
    if (conn->producer.send_mode != SHMSOCK_SEND_MODE_COALESCED || out_state(conn) != SHMSOCK_OUT_SHM)
        return;
    struct shmsock_region_header *header = conn->producer.own.base;
    __atomic_store_n(&header->producer_active, active, __ATOMIC_RELEASE);
}

/* ---- plain sends ---- */

/*
 * Send through the kernel socket as a plain socket would. With `offer`, attach our offer to
 * this payload (the application sent no ancillary data of its own).
 */
static ssize_t send_plain(struct shmsock_conn *conn, const struct msghdr *msg, int flags,
                          bool offer)
{
    size_t length = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    /* A zero-length STREAM send carries nothing, not even descriptors: no offer on it. */
    if (offer && conn->type == SOCK_STREAM && length == 0)
        offer = false;
    if (offer && shmsock_conn_prepare_blind_offer(conn) < 0)
        offer = false; /* no region: stay a plain socket, correct if slower */

    struct msghdr out = *msg;
    union shmsock_control_buffer control;
    if (offer) {
        out.msg_control = control.bytes;
        out.msg_controllen =
            shmsock_ancillary_build_offer(&control, conn->producer.own.memfd, conn->producer.release_offered);
    }
    ssize_t n = sendmsg(conn->fd, &out, flags | MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    conn->nego.plain_sent += conn->type == SOCK_STREAM ? (uint64_t)n : 1u;
    if (offer)
        shmsock_conn_blind_offer_sent(conn);
    return n;
}

/* Take back every run the peer has returned (ring and release channel). producer_lock held. */
static void reclaim(struct shmsock_conn *conn)
{
    /* In coalesced mode the channel only carries doorbells (read before sleeping). */
    if (conn->producer.releases_by_ring)
        shmsock_coalesced_reclaim(conn);
    else
        shmsock_release_channel_drain(conn);
}

static int64_t try_reserve(struct shmsock_conn *conn, uint32_t blocks)
{
    pthread_mutex_lock(&conn->producer_lock);
    /* Releases are read only when needed, so one read collects many of them. */
    int64_t token = -1;
    for (int attempt = 0; attempt < 2 && token < 0; attempt++) {
        if (attempt == 1)
            reclaim(conn);
        if (conn->producer.tokens.sent_tokens < SHMSOCK_MAX_TOKENS_IN_FLIGHT)
            token = shmsock_producer_reserve(&conn->producer.tokens, blocks);
    }
    if (token < 0)
        conn->producer.want_blocks = blocks;
    struct shmsock_region_header *header = conn->producer.own.base;
    __atomic_store_n(&header->counters.blocks_in_use,
                     conn->producer.tokens.block_count - conn->producer.tokens.free_blocks, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&conn->producer_lock);
    return token;
}

void shmsock_cancel_reservation(struct shmsock_conn *conn, uint32_t token, uint32_t blocks)
{
    pthread_mutex_lock(&conn->producer_lock);
    (void)shmsock_producer_release(&conn->producer.tokens, token, blocks);
    pthread_mutex_unlock(&conn->producer_lock);
}

static bool would_block(struct shmsock_conn *conn, int flags)
{
    if (flags & MSG_DONTWAIT)
        return true;
    int fl = fcntl(conn->fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* SO_SNDTIMEO as a deadline in ms of CLOCK_MONOTONIC, or -1 for none. */
static int64_t send_deadline(struct shmsock_conn *conn)
{
    struct timeval tv = {0};
    socklen_t len = sizeof(tv);
    if (getsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) < 0 ||
        (tv.tv_sec == 0 && tv.tv_usec == 0))
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + (int64_t)tv.tv_sec * 1000 +
           (tv.tv_usec + 999) / 1000;
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = deadline - ((int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    return left > 0 ? (int)left : 0;
}

bool shmsock_conn_peer_read_all(struct shmsock_conn *conn)
{
    if (out_state(conn) != SHMSOCK_OUT_SHM || !conn->producer.releases_by_ring ||
        __atomic_load_n(&conn->producer.send_mode, __ATOMIC_ACQUIRE) != SHMSOCK_SEND_MODE_COALESCED)
        return false;
    const struct shmsock_region_header *header = conn->producer.own.base;
    if (__atomic_load_n(&header->counters.events_sent, __ATOMIC_RELAXED) == 0)
        return false; /* plain bytes sent before the switch may still lie in its queue */
    pthread_mutex_lock(&conn->producer_lock);
    shmsock_coalesced_reclaim(conn);
    bool all = conn->producer.tokens.sent_tokens == 0;
    pthread_mutex_unlock(&conn->producer_lock);
    return all;
}

int shmsock_conn_kernel_reset(struct shmsock_conn *conn, int err)
{
    if (err == -ECONNRESET && shmsock_conn_peer_read_all(conn))
        return 0;
    return err;
}

int shmsock_conn_socket_error(struct shmsock_conn *conn)
{
    int pending = 0;
    socklen_t len = sizeof(pending);
    if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &pending, &len) < 0 || pending == 0)
        return 0;
    return shmsock_conn_kernel_reset(conn, -pending);
}

/* Whether the peer has shut down reading (its region says so): our sends fail with EPIPE. */
static bool peer_reader_shut(struct shmsock_conn *conn)
{
    const struct shmsock_region_header *peer = conn->consumer.peer.base;
    return __atomic_load_n(&peer->reader_shut, __ATOMIC_ACQUIRE) != 0;
}

/*
 * Wait until releases arrive (0), the deadline passes (-EAGAIN, as SO_SNDTIMEO does), a
 * signal arrives (-EINTR) or the peer is gone (-EPIPE).
 */
static int wait_for_release(struct shmsock_conn *conn, int64_t deadline)
{
    if (shmsock_flag(&conn->producer.release_closed))
        return -EPIPE;
    if (conn->producer.releases_by_ring) {
        /* Arm, then look once more: the consumer either sees the arm or we see its release. */
        pthread_mutex_lock(&conn->producer_lock);
        shmsock_release_channel_drain(conn); /* old doorbells; notes a peer that is gone */
        shmsock_coalesced_arm_for_releases(conn);
        shmsock_coalesced_reclaim(conn);
        bool space = shmsock_producer_can_reserve(&conn->producer.tokens, conn->producer.want_blocks);
        pthread_mutex_unlock(&conn->producer_lock);
        if (space)
            return 0;
    }
    struct pollfd fds[2] = {
        {.fd = conn->producer.release_rx, .events = POLLIN},
        /* POLLHUP/POLLERR: the peer closed; POLLOUT: room for a doorbell we owe. */
        {.fd = conn->fd, .events = shmsock_flag(&conn->wakeup.doorbell_owed) ? POLLOUT : 0},
    };
    int timeout = remaining_ms(deadline);
    set_producer_active(conn, 0); /* the reader must not wait for us while we sleep */
    int n = poll(fds, 2, timeout);
    set_producer_active(conn, 1);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EAGAIN;
    if (fds[1].revents & (POLLHUP | POLLERR))
        return -EPIPE;
    if ((fds[1].revents & POLLOUT) && shmsock_flag(&conn->wakeup.doorbell_owed)) {
        int err = shmsock_coalesced_ring_if_armed(conn); /* send_lock held */
        if (err < 0)
            return err;
    }
    return 0;
}

/* Reserve a run of blocks, waiting for releases as a blocking send waits for buffer space. */
int64_t shmsock_reserve_blocks(struct shmsock_conn *conn, uint32_t blocks, int flags)
{
    int64_t deadline = -2;
    for (;;) {
        int err = __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
        if (err != 0)
            return err;
        int64_t token = try_reserve(conn, blocks);
        err = __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
        if (err != 0) { /* the releases just read broke the protocol */
            if (token >= 0)
                shmsock_cancel_reservation(conn, (uint32_t)token, blocks);
            return err;
        }
        if (token >= 0)
            return token;
        if (shmsock_flag(&conn->producer.release_closed))
            return -EPIPE; /* the peer is gone: its blocks will never come back */
        if (peer_reader_shut(conn))
            return -EPIPE; /* the peer reads no more: its blocks will never come back */
        if (would_block(conn, flags))
            return -EAGAIN;
        if (deadline == -2)
            deadline = send_deadline(conn);
        err = wait_for_release(conn, deadline);
        if (err < 0)
            return err;
    }
}

/* ---- shm sends ---- */

/* Publish one DATA event for a run, with the application's ancillary data if any. */
static int publish_data(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                        const struct msghdr *msg, bool with_control, int flags)
{
    struct shmsock_event event = shmsock_event_data(&conn->producer.own.geometry, token, blocks, length);
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr out = {.msg_iov = &iov, .msg_iovlen = 1};
    if (with_control) {
        out.msg_control = msg->msg_control;
        out.msg_controllen = msg->msg_controllen;
    }
    if (sendmsg(conn->fd, &out, MSG_NOSIGNAL | (flags & MSG_DONTWAIT)) < 0)
        return -errno;
    return 0;
}

/* Whether the peer's reader asks for kernel events (it wants credentials with each). */
static bool peer_wants_kernel_events(struct shmsock_conn *conn)
{
    const struct shmsock_region_header *peer = conn->consumer.peer.base;
    return __atomic_load_n(&peer->wants_kernel_events, __ATOMIC_ACQUIRE) != 0;
}

/*
 * Publish a DATA event: through the ring in coalesced mode, else as a kernel message. A
 * message with ancillary data needs the kernel socket: the ring then says TO_KERNEL once
 * and this direction stays in event mode.
 */
static int publish(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                   const struct msghdr *msg, bool with_control, int flags, bool *in_ring)
{
    *in_ring = false;
    if (conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED) {
        if (!with_control && !peer_wants_kernel_events(conn)) {
            struct shmsock_event event =
                shmsock_event_data(&conn->producer.own.geometry, token, blocks, length);
            *in_ring = true;
            int err = shmsock_coalesced_publish(conn, &event, flags);
            if (err == -EPIPE)
                __atomic_store_n(&conn->producer.shut_wr, 1, __ATOMIC_RELEASE);
            return err;
        }
        struct shmsock_event marker = {.type = SHMSOCK_EVENT_TO_KERNEL};
        (void)shmsock_coalesced_publish(conn, &marker, 0); /* the kernel send reports */
        /* Atomic: a reader asks whether the peer read all we sent (shmsock_conn_peer_read_all). */
        __atomic_store_n(&conn->producer.send_mode, SHMSOCK_SEND_MODE_EVENTS, __ATOMIC_RELEASE);
    }
    return publish_data(conn, token, blocks, length, msg, with_control, flags);
}

/* Publish a reserved run, give it back if that failed (unless the ring holds it: then its
 * blocks are the peer's until it is gone), count it if it went. send_lock held. */
static int publish_run(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                       const struct msghdr *msg, bool with_control, int flags)
{
    bool in_ring;
    int err = publish(conn, token, blocks, length, msg, with_control, flags, &in_ring);
    if (err < 0) {
        if (!in_ring)
            shmsock_cancel_reservation(conn, token, blocks);
        return err;
    }
    struct shmsock_region_header *header = conn->producer.own.base;
    shmsock_counter_add(&header->counters.events_sent, 1);
    shmsock_counter_add(&header->counters.bytes_sent, length);
    return 0;
}

/* Copy bytes [skip, skip+length) of the message into a fresh run and publish it. */
static ssize_t send_one_run(struct shmsock_conn *conn, const struct msghdr *msg, size_t skip,
                            size_t length, bool with_control, int flags)
{
    uint32_t blocks = shmsock_blocks_for_length(length, conn->producer.own.geometry.block_size);
    int64_t token = shmsock_reserve_blocks(conn, blocks, flags);
    if (token < 0)
        return token;
    shmsock_iov_gather(shmsock_region_block(&conn->producer.own, (uint32_t)token), msg->msg_iov,
                       msg->msg_iovlen, skip, length);
    int err = publish_run(conn, (uint32_t)token, blocks, length, msg, with_control, flags);
    return err < 0 ? err : (ssize_t)length;
}

static size_t seqpacket_limit(struct shmsock_conn *conn)
{
    int sndbuf = __atomic_load_n(&conn->producer.sndbuf, __ATOMIC_ACQUIRE);
    size_t limit = sndbuf > 32 ? (size_t)sndbuf - 32 : 0;
    size_t capacity = (size_t)conn->producer.own.geometry.block_count * conn->producer.own.geometry.block_size;
    return limit < capacity ? limit : capacity;
}

/* A zero-length SOCK_STREAM send on the kernel socket: it carries nothing and fails exactly as
 * a real one would (EPIPE after a shutdown or the peer's close). 0 or a negative errno. */
static int zero_length_send(struct shmsock_conn *conn, int flags)
{
    struct msghdr empty = {0};
    return sendmsg(conn->fd, &empty, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* How often (at most) a coalesced sender asks the kernel whether the peer is still there (a
 * peer that sleeps is rung anyway, and a failed doorbell says EPIPE at once). */
#define PEER_PROBE_INTERVAL_US 50

/*
 * Coalesced sends do not touch the kernel socket, so they ask it whether the connection
 * still stands: at once when the peer's region says it shut down reading (EPIPE) or closed
 * its socket since we last asked, otherwise now and then. So a send after the peer closes or
 * shuts down reading (or we shut down writing) fails with EPIPE as on a kernel socket: at
 * once when the peer did it through shmsock, within PEER_PROBE_INTERVAL_US when it died.
 */
static int probe_connection(struct shmsock_conn *conn, int flags)
{
    if (__atomic_load_n(&conn->producer.shut_wr, __ATOMIC_ACQUIRE) || peer_reader_shut(conn)) {
        __atomic_store_n(&conn->producer.shut_wr, 1, __ATOMIC_RELEASE); /* for good, as the kernel's */
        /* A SOCK_SEQPACKET send reports a pending reset (and clears it) before EPIPE. */
        int err = conn->type == SOCK_SEQPACKET ? shmsock_conn_socket_error(conn) : 0;
        return err < 0 ? err : -EPIPE;
    }
    /* The peer closed its socket since we last asked (a hint, copied once): ask now. */
    const struct shmsock_region_header *peer = conn->consumer.peer.base;
    uint32_t closes = __atomic_load_n(&peer->socket_closes, __ATOMIC_ACQUIRE);
    /* A consumer that sleeps is rung by this send: the doorbell asks the kernel itself (and
     * fails with EPIPE if the peer is gone), so a check now would only add a system call. */
    if (closes == conn->producer.peer_closes_seen && !(flags & MSG_MORE) &&
        shmsock_coalesced_doorbell_due(conn))
        return 0;
    int64_t us = shmsock_now_us();
    if (closes == conn->producer.peer_closes_seen && us - conn->producer.last_probe_us < PEER_PROBE_INTERVAL_US)
        return 0;
    conn->producer.peer_closes_seen = closes;
    conn->producer.last_probe_us = us;
    int err = 0;
    if (conn->type == SOCK_STREAM) {
        err = zero_length_send(conn, MSG_DONTWAIT);
        if (err == -EAGAIN)
            err = 0;
    } else {
        /* A zero-length SEQPACKET send would be a message: look instead. The kernel's send
         * reports (and clears) a reset first (the peer closed with messages unread), then
         * EPIPE; SO_ERROR does the same. */
        struct pollfd p = {.fd = conn->fd, .events = POLLOUT};
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
            err = shmsock_conn_socket_error(conn);
            if (err == 0)
                err = -EPIPE; /* no reset (or one only doorbells caused): the peer is gone */
        }
    }
    if (err == -EPIPE || err == -ECONNRESET)
        __atomic_store_n(&conn->producer.shut_wr, 1, __ATOMIC_RELEASE); /* for good, as the kernel's */
    return err;
}

static ssize_t send_shm(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    if (conn->type == SOCK_STREAM && msg->msg_namelen != 0)
        return -EISCONN; /* as unix_stream_sendmsg on a connected socket */
    size_t length = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    if (conn->type == SOCK_SEQPACKET && length > seqpacket_limit(conn))
        return -EMSGSIZE; /* the kernel checks the size before anything else */
    if (conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED) {
        int err = probe_connection(conn, flags);
        if (err == 0 && shmsock_flag(&conn->wakeup.doorbell_owed))
            err = shmsock_coalesced_ring_if_armed(conn);
        if (err < 0)
            return err;
    }
    bool control = shmsock_ancillary_present(msg);
    if (conn->type == SOCK_SEQPACKET)
        return send_one_run(conn, msg, 0, length, control, flags);
    if (length == 0)
        return zero_length_send(conn, flags); /* nothing to carry, but the kernel's answer */
    /* STREAM: split into runs of a quarter of the region, so both sides work in parallel. */
    size_t chunk = (size_t)(conn->producer.own.geometry.block_count / 4) * conn->producer.own.geometry.block_size;
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

/* While our offer waits for an answer: look for it on our release channel. */
static void look_for_answer(struct shmsock_conn *conn)
{
    pthread_mutex_lock(&conn->producer_lock);
    shmsock_release_channel_drain(conn);
    pthread_mutex_unlock(&conn->producer_lock);
}

/* Offer blindly on this payload. If no read is in progress, our reads are careful from now
 * on (they take the recv_lock first), so say so in the region at once. */
static ssize_t send_with_blind_offer(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    bool reader_idle = pthread_mutex_trylock(&conn->recv_lock) == 0;
    ssize_t n = send_plain(conn, msg, flags, true);
    if (reader_idle) {
        if (n >= 0)
            shmsock_conn_mark_reader_careful(conn);
        pthread_mutex_unlock(&conn->recv_lock);
    }
    return n;
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
    return ioctl(conn->fd, SIOCOUTQ, &queued) < 0 || sndbuf - queued >= DOORBELL_ROOM;
}

ssize_t shmsock_send_locked(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    if (!conn->options.negotiate)
        return send_plain(conn, msg, flags, false);
    int state = out_state(conn);
    if (state == SHMSOCK_OUT_OFFERED && !shmsock_flag(&conn->producer.release_closed) &&
        !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        look_for_answer(conn);

    if (state == SHMSOCK_OUT_PLAIN) {
        if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
            /* The peer offered first: answer on its release channel. */
            int err = shmsock_conn_send_offer_event(conn, flags);
            if (err < 0)
                return err;
            state = SHMSOCK_OUT_OFFERED;
        } else if (shmsock_ancillary_present(msg)) {
            /* Never offer on a message that carries the application's own ancillary data. */
            return send_plain(conn, msg, flags, false);
        } else {
            return send_with_blind_offer(conn, msg, flags);
        }
    }
    if (state == SHMSOCK_OUT_OFFERED && ready_to_switch(conn)) {
        /* Choose how our events travel, tell the peer after how many plain units they
         * start, then switch. */
        struct shmsock_region_header *header = conn->producer.own.base;
        conn->producer.send_mode = conn->options.coalesce && !peer_wants_kernel_events(conn)
                              ? SHMSOCK_SEND_MODE_COALESCED
                              : SHMSOCK_SEND_MODE_EVENTS;
        conn->producer.releases_by_ring = conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED;
        __atomic_store_n(&header->send_mode, conn->producer.send_mode, __ATOMIC_RELEASE);
        shmsock_region_publish_switch(&conn->producer.own, conn->nego.plain_sent);
        __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_SHM, __ATOMIC_RELEASE);
        state = SHMSOCK_OUT_SHM;
    }
    if (state == SHMSOCK_OUT_SHM)
        return send_shm(conn, msg, flags);
    return send_plain(conn, msg, flags, false);
}

ssize_t shmsock_conn_send(struct shmsock_conn *conn, const struct msghdr *msg, int flags)
{
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    int err = __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
    if (err != 0)
        return err;
    pthread_mutex_lock(&conn->send_lock);
    set_producer_active(conn, 1);
    ssize_t n = shmsock_send_locked(conn, msg, flags);
    set_producer_active(conn, 0);
    pthread_mutex_unlock(&conn->send_lock);
    return shmsock_conn_result(conn, n);
}

int shmsock_conn_space_fd(struct shmsock_conn *conn)
{
    if (out_state(conn) != SHMSOCK_OUT_SHM || shmsock_conn_has_space(conn))
        return -1;
    /* A doorbell we owe waits for room in the kernel queue: the kernel's POLLOUT says when,
     * and the next send rings it. */
    if (shmsock_flag(&conn->wakeup.doorbell_owed))
        return -1;
    if (conn->producer.releases_by_ring) {
        /* Ask for a release doorbell, then look once more. */
        pthread_mutex_lock(&conn->producer_lock);
        shmsock_coalesced_arm_for_releases(conn);
        pthread_mutex_unlock(&conn->producer_lock);
        if (shmsock_conn_has_space(conn))
            return -1;
    }
    return conn->producer.release_rx;
}

bool shmsock_conn_has_space(struct shmsock_conn *conn)
{
    if (out_state(conn) != SHMSOCK_OUT_SHM)
        return true;
    pthread_mutex_lock(&conn->producer_lock);
    reclaim(conn);
    uint32_t want = conn->producer.want_blocks > 0 ? conn->producer.want_blocks : 1;
    bool space = shmsock_flag(&conn->producer.release_closed) ||
                 (conn->producer.tokens.sent_tokens < SHMSOCK_MAX_TOKENS_IN_FLIGHT &&
                  shmsock_producer_can_reserve(&conn->producer.tokens, want));
    pthread_mutex_unlock(&conn->producer_lock);
    return space;
}

int shmsock_publish_run(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                        int flags)
{
    if (conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED) {
        int err = probe_connection(conn, flags);
        if (err < 0) {
            shmsock_cancel_reservation(conn, token, blocks);
            return err;
        }
    }
    struct msghdr none = {0};
    return publish_run(conn, token, blocks, length, &none, false, flags);
}

size_t shmsock_message_limit(struct shmsock_conn *conn)
{
    if (conn->type == SOCK_SEQPACKET)
        return seqpacket_limit(conn);
    return (size_t)conn->producer.own.geometry.block_count * conn->producer.own.geometry.block_size;
}

void shmsock_conn_flush_doorbell(struct shmsock_conn *conn)
{
    pthread_mutex_lock(&conn->send_lock);
    if (conn->wakeup.doorbell_deferred && conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED)
        (void)shmsock_coalesced_ring_if_armed(conn);
    pthread_mutex_unlock(&conn->send_lock);
}
