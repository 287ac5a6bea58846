/*
 * producer.c - our direction: our region and its token list, the release intake (ring and
 * release channel), reserving runs of blocks and committing them as DATA events.
 *
 * The copying send is reserve + gather + commit (conn_send.c); a zero-copy send is reserve,
 * the application's writes, then commit (conn_zerocopy.c).
 */
#define _GNU_SOURCE
#include "libc.h"
#include "producer.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "ancillary.h"
#include "event.h"
#include "liveness.h"
#include "locks.h"
#include "ring.h"
#include "scratch.h"
#include "wakeup.h"

/* Say in our header whether we are inside a coalesced send (a hint for the reader). */
void shmsock_producer_set_active(struct shmsock_conn *conn, uint64_t active)
{
    if (conn->producer.send_mode != SHMSOCK_SEND_MODE_COALESCED ||
        shmsock_out_state(conn) != SHMSOCK_OUT_SHM)
        return;
    struct shmsock_region_header *header = conn->producer.own.base;
    __atomic_store_n(&header->producer_active, active, __ATOMIC_RELEASE);
}

void shmsock_producer_read_sndbuf(struct shmsock_conn *conn)
{
    int value = 0;
    socklen_t len = sizeof(value);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_SNDBUF, &value, &len) == 0)
        __atomic_store_n(&conn->producer.sndbuf, value, __ATOMIC_RELEASE);
}

int shmsock_producer_prepare_region(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    if (conn->producer.own.base != NULL)
        return 0;
    shmsock_producer_read_sndbuf(conn);
    uint32_t block_size = conn->options.block_size;
    uint64_t bytes = conn->options.region_size > 0 ? (uint64_t)conn->options.region_size
                     : conn->producer.sndbuf > 0   ? (uint64_t)conn->producer.sndbuf
                                                   : 212992u;
    uint64_t blocks = (bytes + block_size - 1) / block_size;
    if (blocks < 2)
        blocks = 2;
    if (blocks > SHMSOCK_MAX_BLOCK_COUNT)
        blocks = SHMSOCK_MAX_BLOCK_COUNT;

    struct shmsock_region made = {.memfd = -1};
    int err = shmsock_region_create(&made, block_size, (uint32_t)blocks);
    if (err == 0)
        err = shmsock_producer_list_init(&conn->producer.tokens, (uint32_t)blocks);
    if (err < 0) {
        shmsock_region_release(&made);
        return err;
    }
    struct shmsock_region_header *header = made.base;
    struct stat st;
    if (fstat(conn->fd, &st) == 0)
        header->socket_ino = (uint64_t)st.st_ino;
    header->socket_type = (uint32_t)conn->type;
    header->owner_pid = (uint32_t)getpid();
    /* A read in another thread may look for the region now (to mark itself careful). */
    shmsock_lock(conn, SHMSOCK_REGION_LOCK);
    header->wants_kernel_events = (uint32_t)conn->options.passcred;
    header->reader_shut = (uint32_t)__atomic_load_n(&conn->consumer.shut_rd, __ATOMIC_ACQUIRE);
    conn->producer.own = made;
    shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
    return 0;
}

/* Whether a region's file is the one recorded as (dev, ino). */
static bool same_region(const struct shmsock_region_candidate *candidate, dev_t dev, ino_t ino)
{
    return candidate->st.st_dev == dev && candidate->st.st_ino == ino;
}

/*
 * The peer's answer to our offer came on the channel: keep it for negotiation, which attaches
 * it (shmsock_negotiation_take_answer). The same region offered again is no news; another one
 * breaks the protocol. Takes ownership of fds. 0 or -EPROTO.
 */
static int keep_answer(struct shmsock_conn *conn, const int fds[2],
                       const struct shmsock_region_candidate *candidate)
{
    struct shmsock_negotiation *nego = &conn->nego;
    bool again = false;
    if (__atomic_load_n(&nego->peer_offered, __ATOMIC_ACQUIRE))
        again = same_region(candidate, nego->peer_region_dev, nego->peer_region_ino);
    else if (shmsock_flag(&nego->answer_waiting))
        again = same_region(candidate, nego->answer.st.st_dev, nego->answer.st.st_ino);
    else {
        nego->answer_fds[0] = fds[0];
        nego->answer_fds[1] = fds[1];
        nego->answer = *candidate;
        shmsock_set_flag(&nego->answer_waiting, true);
        return 0;
    }
    shmsock_close_fd(fds[0]);
    shmsock_close_fd(fds[1]);
    return again ? 0 : -EPROTO;
}

/* Handle one record read from the channel; control holds descriptors that came with it. */
static int handle_record(struct shmsock_conn *conn, const unsigned char *data,
                         struct msghdr *control)
{
    struct shmsock_event event;
    if (shmsock_event_decode(data, &event) < 0)
        return -EPROTO;
    if (event.type == SHMSOCK_EVENT_DOORBELL)
        return 0; /* a wake-up for a sleeping producer; the releases are in the ring */
    if (event.type == SHMSOCK_EVENT_OFFER) {
        int fds[2];
        struct shmsock_region_candidate *candidate = &conn->scratch->answer; /* producer_lock */
        if (!shmsock_ancillary_take_answer(control, fds, candidate))
            return -EPROTO;
        return keep_answer(conn, fds, candidate);
    }
    if (shmsock_event_check_release(&event, &conn->producer.own.geometry) < 0 ||
        shmsock_producer_release(&conn->producer.tokens, event.token, event.block_count) < 0)
        return -EPROTO;
    return 0;
}

void shmsock_producer_drain_channel(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_PRODUCER_LOCK);
    unsigned char *buffer = conn->scratch->channel;
    while (!shmsock_flag(&conn->producer.release_closed) && conn->producer.release_rx >= 0) {
        size_t carried = conn->producer.release_partial_len;
        memcpy(buffer, conn->producer.release_partial, carried);
        union shmsock_control_buffer *control = &conn->scratch->channel_control;
        struct iovec iov = {.iov_base = buffer + carried,
                            .iov_len = SHMSOCK_SCRATCH_CHANNEL - carried};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control->bytes,
                           .msg_controllen = sizeof(*control)};
        ssize_t n =
            shmsock_libc.recvmsg(conn->producer.release_rx, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* EAGAIN: nothing more for now */
        if (n == 0) {
            shmsock_set_flag(&conn->producer.release_closed, true);
            return;
        }
        size_t total = carried + (size_t)n;
        size_t whole = total - total % SHMSOCK_EVENT_SIZE;
        int err = 0;
        for (size_t at = 0; at < whole && err == 0; at += SHMSOCK_EVENT_SIZE) {
            /* Descriptors belong to the last record of a read (the kernel stops after it). */
            bool last = at + SHMSOCK_EVENT_SIZE == whole;
            struct msghdr none = {0};
            err = handle_record(conn, buffer + at, last ? &m : &none);
        }
        shmsock_ancillary_close_fds(&m); /* anything left over that nobody took */
        if (err < 0) {
            shmsock_conn_fail(conn, err);
            return;
        }
        conn->producer.release_partial_len = total - whole;
        memcpy(conn->producer.release_partial, buffer + whole, conn->producer.release_partial_len);
    }
}

static void reclaim_from_ring(struct shmsock_conn *conn)
{
    int64_t available = shmsock_ring_available(&conn->consumer.peer, SHMSOCK_RING_RELEASES,
                                               conn->producer.release_tail);
    if (available < 0) {
        shmsock_conn_fail(conn, -EPROTO);
        return;
    }
    for (int64_t i = 0; i < available; i++) {
        struct shmsock_event event;
        if (shmsock_ring_read(&conn->consumer.peer, SHMSOCK_RING_RELEASES,
                              conn->producer.release_tail, &event) < 0 ||
            shmsock_event_check_release(&event, &conn->producer.own.geometry) < 0 ||
            shmsock_producer_release(&conn->producer.tokens, event.token, event.block_count) < 0) {
            shmsock_conn_fail(conn, -EPROTO);
            return;
        }
        conn->producer.release_tail++;
    }
    __atomic_store_n(&shmsock_own_header(conn)->counters.blocks_in_use,
                     conn->producer.tokens.block_count - conn->producer.tokens.free_blocks,
                     __ATOMIC_RELAXED);
}

/* Take back every run the peer has returned (ring and release channel). producer_lock held. */
static void reclaim(struct shmsock_conn *conn)
{
    /* In coalesced mode the channel only carries doorbells (read before sleeping). */
    if (conn->producer.releases_by_ring)
        reclaim_from_ring(conn);
    else
        shmsock_producer_drain_channel(conn);
}

static int64_t try_reserve(struct shmsock_conn *conn, uint32_t blocks)
{
    shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
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
                     conn->producer.tokens.block_count - conn->producer.tokens.free_blocks,
                     __ATOMIC_RELAXED);
    shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
    return token;
}

void shmsock_producer_cancel(struct shmsock_conn *conn, uint32_t token, uint32_t blocks)
{
    shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
    (void)shmsock_producer_release(&conn->producer.tokens, token, blocks);
    shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
}

static bool would_block(struct shmsock_conn *conn, int flags)
{
    if (flags & MSG_DONTWAIT)
        return true;
    int fl = shmsock_libc.fcntl(conn->fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

/* SO_SNDTIMEO as a deadline in ms of CLOCK_MONOTONIC, or -1 for none. */
static int64_t send_deadline(struct shmsock_conn *conn)
{
    struct timeval tv = {0};
    socklen_t len = sizeof(tv);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) < 0 ||
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

bool shmsock_producer_peer_read_all(struct shmsock_conn *conn)
{
    if (shmsock_out_state(conn) != SHMSOCK_OUT_SHM || !conn->producer.releases_by_ring ||
        __atomic_load_n(&conn->producer.send_mode, __ATOMIC_ACQUIRE) != SHMSOCK_SEND_MODE_COALESCED)
        return false;
    const struct shmsock_region_header *header = conn->producer.own.base;
    if (__atomic_load_n(&header->counters.events_sent, __ATOMIC_RELAXED) == 0)
        return false; /* plain bytes sent before the switch may still lie in its queue */
    shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
    reclaim_from_ring(conn);
    bool all = conn->producer.tokens.sent_tokens == 0;
    shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
    return all;
}

int shmsock_producer_filter_reset(struct shmsock_conn *conn, int err)
{
    if (err == -ECONNRESET && shmsock_producer_peer_read_all(conn))
        return 0;
    return err;
}

int shmsock_producer_socket_error(struct shmsock_conn *conn)
{
    return shmsock_producer_filter_reset(conn, shmsock_kernel_error(conn));
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
        shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
        shmsock_producer_drain_channel(conn); /* old doorbells; notes a peer that is gone */
        shmsock_wakeup_arm_for_releases(conn);
        reclaim_from_ring(conn);
        bool space =
            shmsock_producer_can_reserve(&conn->producer.tokens, conn->producer.want_blocks);
        shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
        if (space)
            return 0;
    }
    struct pollfd fds[2] = {
        {.fd = conn->producer.release_rx, .events = POLLIN},
        /* POLLHUP/POLLERR: the peer closed; POLLOUT: room for a doorbell we owe. */
        {.fd = conn->fd, .events = shmsock_flag(&conn->wakeup.doorbell_owed) ? POLLOUT : 0},
    };
    int timeout = remaining_ms(deadline);
    shmsock_producer_set_active(conn, 0); /* the reader must not wait for us while we sleep */
    int n = shmsock_libc.poll(fds, 2, timeout);
    shmsock_producer_set_active(conn, 1);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EAGAIN;
    if (fds[1].revents & (POLLHUP | POLLERR))
        return -EPIPE;
    if ((fds[1].revents & POLLOUT) && shmsock_flag(&conn->wakeup.doorbell_owed)) {
        int err = shmsock_wakeup_ring_if_armed(conn); /* send_lock held */
        if (err < 0)
            return err;
    }
    return 0;
}

/* Reserve a run of blocks, waiting for releases as a blocking send waits for buffer space. */
int64_t shmsock_producer_reserve_blocks(struct shmsock_conn *conn, uint32_t blocks, int flags)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    int64_t deadline = -2;
    for (;;) {
        int err = shmsock_conn_error(conn);
        if (err != 0)
            return err;
        int64_t token = try_reserve(conn, blocks);
        err = shmsock_conn_error(conn);
        if (err != 0) { /* the releases just read broke the protocol */
            if (token >= 0)
                shmsock_producer_cancel(conn, (uint32_t)token, blocks);
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

/* Publish one DATA event for a run, with the application's ancillary data if any. */
static int publish_data(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                        const struct msghdr *msg, bool with_control, int flags)
{
    struct shmsock_event event =
        shmsock_event_data(&conn->producer.own.geometry, token, blocks, length);
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr out = {.msg_iov = &iov, .msg_iovlen = 1};
    if (with_control) {
        out.msg_control = msg->msg_control;
        out.msg_controllen = msg->msg_controllen;
    }
    if (shmsock_libc.sendmsg(conn->fd, &out, MSG_NOSIGNAL | (flags & MSG_DONTWAIT)) < 0)
        return -errno;
    return 0;
}

/* Whether the peer's reader asks for kernel events (it wants credentials with each). */
bool shmsock_producer_peer_wants_kernel_events(struct shmsock_conn *conn)
{
    const struct shmsock_region_header *peer = conn->consumer.peer.base;
    return __atomic_load_n(&peer->wants_kernel_events, __ATOMIC_ACQUIRE) != 0;
}

static int ring_publish(struct shmsock_conn *conn, const struct shmsock_event *event, int flags)
{
    shmsock_ring_push(&conn->producer.own, SHMSOCK_RING_EVENTS, event);
    if (flags & MSG_MORE) {
        conn->wakeup.doorbell_deferred = true; /* rung by the next send without MSG_MORE */
        return 0;
    }
    return shmsock_wakeup_ring_if_armed(conn);
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
        if (!with_control && !shmsock_producer_peer_wants_kernel_events(conn)) {
            struct shmsock_event event =
                shmsock_event_data(&conn->producer.own.geometry, token, blocks, length);
            *in_ring = true;
            int err = ring_publish(conn, &event, flags);
            if (err == -EPIPE)
                __atomic_store_n(&conn->producer.shut_wr, 1, __ATOMIC_RELEASE);
            return err;
        }
        struct shmsock_event marker = {.type = SHMSOCK_EVENT_TO_KERNEL};
        (void)ring_publish(conn, &marker, 0); /* the kernel send reports */
        /* Atomic: a reader asks whether the peer read all we sent (shmsock_producer_peer_read_all).
         */
        __atomic_store_n(&conn->producer.send_mode, SHMSOCK_SEND_MODE_EVENTS, __ATOMIC_RELEASE);
    }
    return publish_data(conn, token, blocks, length, msg, with_control, flags);
}

/* Publish a reserved run, give it back if that failed (unless the ring holds it: then its
 * blocks are the peer's until it is gone), count it if it went. send_lock held. */
int shmsock_producer_commit(struct shmsock_conn *conn, uint32_t token, uint32_t blocks,
                            uint64_t length, const struct msghdr *msg, bool with_control, int flags)
{
    shmsock_assert_held(SHMSOCK_SEND_LOCK);
    bool in_ring;
    int err = publish(conn, token, blocks, length, msg, with_control, flags, &in_ring);
    if (err < 0) {
        if (!in_ring)
            shmsock_producer_cancel(conn, token, blocks);
        return err;
    }
    struct shmsock_region_header *header = conn->producer.own.base;
    shmsock_counter_add(&header->counters.events_sent, 1);
    shmsock_counter_add(&header->counters.bytes_sent, length);
    return 0;
}

static size_t seqpacket_limit(struct shmsock_conn *conn)
{
    int sndbuf = __atomic_load_n(&conn->producer.sndbuf, __ATOMIC_ACQUIRE);
    size_t limit = sndbuf > 32 ? (size_t)sndbuf - 32 : 0;
    size_t capacity =
        (size_t)conn->producer.own.geometry.block_count * conn->producer.own.geometry.block_size;
    return limit < capacity ? limit : capacity;
}

size_t shmsock_producer_message_limit(struct shmsock_conn *conn)
{
    if (conn->type == SOCK_SEQPACKET)
        return seqpacket_limit(conn);
    return (size_t)conn->producer.own.geometry.block_count * conn->producer.own.geometry.block_size;
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
int shmsock_producer_probe(struct shmsock_conn *conn, int flags)
{
    if (__atomic_load_n(&conn->producer.shut_wr, __ATOMIC_ACQUIRE) || peer_reader_shut(conn)) {
        __atomic_store_n(&conn->producer.shut_wr, 1,
                         __ATOMIC_RELEASE); /* for good, as the kernel's */
        /* A SOCK_SEQPACKET send reports a pending reset (and clears it) before EPIPE. */
        int err = conn->type == SOCK_SEQPACKET ? shmsock_producer_socket_error(conn) : 0;
        return err < 0 ? err : -EPIPE;
    }
    /* The peer closed its socket since we last asked (a hint, copied once): ask now. */
    const struct shmsock_region_header *peer = conn->consumer.peer.base;
    uint32_t closes = __atomic_load_n(&peer->socket_closes, __ATOMIC_ACQUIRE);
    /* A consumer that sleeps is rung by this send: the doorbell asks the kernel itself (and
     * fails with EPIPE if the peer is gone), so a check now would only add a system call. */
    if (closes == conn->producer.peer_closes_seen && !(flags & MSG_MORE) &&
        shmsock_wakeup_doorbell_due(conn))
        return 0;
    int64_t us = shmsock_now_us();
    if (closes == conn->producer.peer_closes_seen &&
        us - conn->producer.last_probe_us < PEER_PROBE_INTERVAL_US)
        return 0;
    conn->producer.peer_closes_seen = closes;
    conn->producer.last_probe_us = us;
    int err = 0;
    if (conn->type == SOCK_STREAM) {
        err = shmsock_kernel_empty_send(conn, MSG_DONTWAIT);
        if (err == -EAGAIN)
            err = 0;
    } else {
        /* A zero-length SEQPACKET send would be a message: look instead. The kernel's send
         * reports (and clears) a reset first (the peer closed with messages unread), then
         * EPIPE; SO_ERROR does the same. */
        struct pollfd p = {.fd = conn->fd, .events = POLLOUT};
        if (shmsock_libc.poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR))) {
            err = shmsock_producer_socket_error(conn);
            if (err == 0)
                err = -EPIPE; /* no reset (or one only doorbells caused): the peer is gone */
        }
    }
    if (err == -EPIPE || err == -ECONNRESET)
        __atomic_store_n(&conn->producer.shut_wr, 1,
                         __ATOMIC_RELEASE); /* for good, as the kernel's */
    return err;
}

int shmsock_conn_space_fd(struct shmsock_conn *conn)
{
    if (shmsock_out_state(conn) != SHMSOCK_OUT_SHM || shmsock_conn_has_space(conn))
        return -1;
    /* A doorbell we owe waits for room in the kernel queue: the kernel's POLLOUT says when,
     * and the next send rings it. */
    if (shmsock_flag(&conn->wakeup.doorbell_owed))
        return -1;
    if (conn->producer.releases_by_ring) {
        /* Take out the doorbells already read or owed for (else the channel stays readable
         * and the caller's poll or epoll wakes at once, for ever), ask for a new one, then
         * look once more: as a blocking send does before it sleeps (wait_for_release). */
        shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
        shmsock_producer_drain_channel(conn);
        shmsock_wakeup_arm_for_releases(conn);
        shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
        if (shmsock_conn_has_space(conn))
            return -1;
    }
    return conn->producer.release_rx;
}

bool shmsock_conn_has_space(struct shmsock_conn *conn)
{
    if (shmsock_out_state(conn) != SHMSOCK_OUT_SHM)
        return true;
    shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
    reclaim(conn);
    uint32_t want = conn->producer.want_blocks > 0 ? conn->producer.want_blocks : 1;
    bool space = shmsock_flag(&conn->producer.release_closed) ||
                 (conn->producer.tokens.sent_tokens < SHMSOCK_MAX_TOKENS_IN_FLIGHT &&
                  shmsock_producer_can_reserve(&conn->producer.tokens, want));
    shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
    return space;
}
