/*
 * queues.c - what a shm socket's queues hold, counted as the kernel counts a plain socket's.
 *
 * The kernel socket underneath holds the peer's plain payload (before its switch point), then
 * 32-byte event records and doorbells, which are never payload: what a read would find is
 * the plain payload plus the payload of the DATA events waiting in the peer's ring or as
 * records in the kernel socket, less what was already read of the head event. Our own
 * direction's unread data is the blocks the peer has not given back.
 */
#define _GNU_SOURCE
#include "libc.h"
#include "queues.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include "ancillary.h"
#include "consumer.h"
#include "event.h"
#include "liveness.h"
#include "locks.h"
#include "negotiation.h"
#include "producer.h"
#include "ring.h"
#include "scratch.h"

static int kernel_count(int fd, unsigned long request, int *value)
{
    return shmsock_libc.ioctl(fd, request, value) < 0 ? -errno : 0;
}

/* Peek from `offset` on (bytes; for SEQPACKET, the bytes of the messages passed over), or
 * from the head again with -1. Under recv_lock: the read paths set it back the same way. */
static int peek_from(int fd, int offset)
{
    return shmsock_libc.setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset)) < 0
               ? -errno
               : 0;
}

/*
 * A peek of the kernel socket (flags: MSG_PEEK and more). The kernel hands the socket's error
 * (the peer closed with our data unread: ECONNRESET) to a SEQPACKET peek before any message,
 * and takes it: keep it for the next read, which reports it first as the kernel's would, and
 * peek again. Bytes, or a negative errno.
 */
static ssize_t peek(struct shmsock_conn *conn, struct msghdr *m, int flags)
{
    for (int kept = 0;; kept++) {
        ssize_t n = shmsock_libc.recvmsg(conn->fd, m, flags);
        if (n >= 0)
            return n;
        int err = -errno;
        if (err == -EAGAIN || err == -EINTR || kept > 0)
            return err;
        err = shmsock_producer_filter_reset(conn, err); /* (one only doorbells caused is none) */
        if (err < 0)
            shmsock_defer_error(conn, err);
    }
}

/* SEQPACKET: whether the socket holds an error (a reset) that any peek would take. */
static bool error_pending(struct shmsock_conn *conn)
{
    struct pollfd p = {.fd = conn->fd, .events = 0};
    return conn->type == SOCK_SEQPACKET && shmsock_libc.poll(&p, 1, 0) == 1 &&
           (p.revents & POLLERR);
}

/* A DATA event's payload, once checked against the peer's region (anything else: none). */
static uint64_t payload_of(struct shmsock_conn *conn, const unsigned char *record)
{
    struct shmsock_event event;
    if (shmsock_event_decode(record, &event) < 0 || event.type != SHMSOCK_EVENT_DATA ||
        shmsock_consumer_check_data(conn, &event) < 0)
        return 0;
    return event.length;
}

/* The payload of the DATA events in the peer's ring, up to its TO_KERNEL marker if any
 * (*to_kernel: the marker is there, and DATA records may follow on the kernel socket). */
static uint64_t ring_payload(struct shmsock_conn *conn, bool *to_kernel)
{
    int64_t available = shmsock_ring_available(&conn->consumer.peer, SHMSOCK_RING_EVENTS,
                                               conn->consumer.event_tail);
    uint64_t sum = 0;
    for (int64_t i = 0; i < available; i++) {
        struct shmsock_event event;
        if (shmsock_ring_read(&conn->consumer.peer, SHMSOCK_RING_EVENTS,
                              conn->consumer.event_tail + (uint64_t)i, &event) < 0)
            break;
        if (event.type == SHMSOCK_EVENT_TO_KERNEL) {
            *to_kernel = true;
            break;
        }
        if (shmsock_consumer_check_data(conn, &event) == 0)
            sum += event.length;
    }
    return sum;
}

/* STREAM: the payload of the DATA records among the `bytes` bytes of the kernel socket from
 * byte `from` on (a peek with an offset moves on by itself). */
static uint64_t stream_records(struct shmsock_conn *conn, size_t from, size_t bytes)
{
    if (bytes < SHMSOCK_EVENT_SIZE || from > INT_MAX || peek_from(conn->fd, (int)from) < 0)
        return 0;
    unsigned char *records = conn->scratch->peek; /* (recv_lock) */
    uint64_t sum = 0;
    size_t walked = 0;
    while (bytes - walked >= SHMSOCK_EVENT_SIZE) {
        size_t room = sizeof(conn->scratch->peek);
        size_t want = bytes - walked < room ? bytes - walked : room;
        want -= want % SHMSOCK_EVENT_SIZE;
        struct iovec iov = {.iov_base = records, .iov_len = want};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = peek(conn, &m, MSG_PEEK | MSG_DONTWAIT);
        if (n <= 0)
            break;
        for (size_t at = 0; at + SHMSOCK_EVENT_SIZE <= (size_t)n; at += SHMSOCK_EVENT_SIZE)
            sum += payload_of(conn, records + at);
        walked += (size_t)n;
        if ((size_t)n % SHMSOCK_EVENT_SIZE != 0)
            break; /* not records: nothing more to count */
    }
    (void)peek_from(conn->fd, -1);
    return sum;
}

/* SEQPACKET: the bytes of the first `plain` messages of the kernel socket (the peer's plain
 * payload) and, with `records`, the payload of the DATA records after them, among `bytes`
 * bytes. (A message of no bytes past the head is passed over by the kernel's peek offset: one
 * record too many may then count as plain, only while plain messages and records share the
 * queue.) */
static uint64_t seqpacket_queue(struct shmsock_conn *conn, uint64_t plain, size_t bytes,
                                bool records)
{
    uint64_t sum = 0;
    size_t offset = 0;
    size_t bound = records ? bytes / SHMSOCK_EVENT_SIZE + (size_t)plain + 1 : (size_t)plain;
    for (size_t i = 0; i < bound && offset < bytes && offset <= INT_MAX; i++) {
        unsigned char record[SHMSOCK_EVENT_SIZE];
        if (peek_from(conn->fd, (int)offset) < 0)
            break;
        struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = peek(conn, &m, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            break;
        offset += (size_t)n;
        if (i < plain)
            sum += (uint64_t)n;
        else if (n == SHMSOCK_EVENT_SIZE)
            sum += payload_of(conn, record);
    }
    (void)peek_from(conn->fd, -1);
    return sum;
}

/* The peer's offer, if it lies among the first `bytes` bytes of the kernel socket and is not
 * attached yet: attach it, as a peek that passes over it does (recv_plain). */
static void find_offer(struct shmsock_conn *conn, size_t bytes)
{
    union shmsock_control_buffer *control = &conn->scratch->recv_control; /* (recv_lock) */
    size_t offset = 0;
    while (offset < bytes && offset <= INT_MAX &&
           !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
        struct iovec iov = {.iov_base = conn->scratch->peek,
                            .iov_len = sizeof(conn->scratch->peek)};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control->bytes,
                           .msg_controllen = sizeof(*control)};
        int flags = MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC;
        if (peek_from(conn->fd, (int)offset) < 0)
            break;
        ssize_t n = peek(conn, &m, conn->type == SOCK_STREAM ? flags : flags | MSG_TRUNC);
        if (n <= 0)
            break;
        offset += (size_t)n;
        int fds[2];
        struct shmsock_region_candidate *candidate = &conn->scratch->offer;
        if (shmsock_ancillary_take_offer(&m, fds, candidate))
            (void)shmsock_negotiation_accept_offer(conn, fds, candidate); /* or fails conn */
        shmsock_ancillary_close_fds(&m); /* the application's, peeked: copies */
    }
    (void)peek_from(conn->fd, -1);
}

/* What a read would find (STREAM), or the bytes of every message queued (SEQPACKET), as the
 * kernel's SIOCINQ counts them. recv_lock held. */
static int count_in(struct shmsock_conn *conn, int *value)
{
    bool stream = conn->type == SOCK_STREAM;
    for (int round = 0;; round++) {
        int kernel = 0;
        int err = kernel_count(conn->fd, SIOCINQ, &kernel);
        if (err < 0)
            return err;
        uint64_t plain = 0; /* bytes (STREAM) or messages (SEQPACKET) before the records */
        bool ring = false;
        if (conn->nego.in_state == SHMSOCK_IN_EVENTS) {
            ring = conn->consumer.peer_coalesced;
        } else {
            /* The peer switches only once our reads are careful. */
            if (!shmsock_negotiation_reads_careful(conn)) {
                *value = kernel;
                return 0;
            }
            shmsock_negotiation_take_answer(conn);
            if (!__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) && kernel > 0 &&
                round == 0 && !error_pending(conn)) {
                find_offer(conn, (size_t)kernel); /* its events can only follow it */
                continue;
            }
            /* The peer publishes its switch point before its first event: unknown now, none
             * of the bytes counted is a record. */
            shmsock_negotiation_refresh_switch(conn);
            if (!conn->nego.peer_switch_known ||
                conn->nego.peer_switch < conn->nego.plain_received) {
                *value = kernel;
                return 0;
            }
            plain = conn->nego.peer_switch - conn->nego.plain_received;
            const struct shmsock_region_header *header = shmsock_peer_header(conn);
            ring = __atomic_load_n(&header->send_mode, __ATOMIC_ACQUIRE) ==
                   SHMSOCK_SEND_MODE_COALESCED;
        }
        /* Coalesced: the kernel socket brings doorbells only, until the ring's marker. */
        bool to_kernel = !ring;
        uint64_t total = ring ? ring_payload(conn, &to_kernel) : 0;
        if (stream) {
            size_t before = plain < (uint64_t)kernel ? (size_t)plain : (size_t)kernel;
            total += before;
            if (to_kernel)
                total += stream_records(conn, before, (size_t)kernel - before);
            uint64_t read = conn->consumer.head_consumed;
            total -= read < total ? read : total;
        } else if (error_pending(conn)) {
            /* Looking would take the reset from the next call: the kernel's count (32 bytes
             * a record) stands for what lies there (README, Behaviour and limits). */
            total += to_kernel || plain > 0 ? (uint64_t)kernel : 0;
        } else if (to_kernel || plain > 0) {
            total += seqpacket_queue(conn, plain, (size_t)kernel, to_kernel);
        }
        *value = total > INT_MAX ? INT_MAX : (int)total;
        return 0;
    }
}

int shmsock_conn_queued(struct shmsock_conn *conn, unsigned long request, int *value)
{
    if (request == SIOCOUTQ) {
        if (shmsock_out_state(conn) != SHMSOCK_OUT_SHM)
            return kernel_count(conn->fd, SIOCOUTQ, value);
        /* The blocks the peer holds: what it has not read (a partly read run stays whole, as
         * the kernel's buffer does). */
        (void)shmsock_conn_has_space(conn); /* takes back what the peer released */
        shmsock_lock(conn, SHMSOCK_PRODUCER_LOCK);
        uint64_t blocks = conn->producer.tokens.block_count - conn->producer.tokens.free_blocks;
        shmsock_unlock(conn, SHMSOCK_PRODUCER_LOCK);
        uint64_t bytes = blocks * conn->producer.own.geometry.block_size;
        *value = bytes > INT_MAX ? INT_MAX : (int)bytes;
        return 0;
    }
    shmsock_lock(conn, SHMSOCK_RECV_LOCK);
    int err = count_in(conn, value);
    shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    shmsock_negotiation_answer_owed(conn); /* an offer found on the way is answered */
    return err;
}

void shmsock_conn_set_inq(struct shmsock_conn *conn, int on)
{
    __atomic_store_n(&conn->options.inq, on != 0, __ATOMIC_RELEASE);
}

void shmsock_queues_put_inq(struct shmsock_conn *conn, struct msghdr *msg, size_t control_room)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    int queued = 0;
    if (count_in(conn, &queued) < 0)
        queued = 0;
    /* As the kernel's put_cmsg: a header that does not fit is left out, data that does not
     * fit is cut; either sets MSG_CTRUNC. */
    size_t used = msg->msg_control != NULL ? msg->msg_controllen : 0;
    size_t room = msg->msg_control != NULL && control_room > used ? control_room - used : 0;
    if (room < sizeof(struct cmsghdr)) {
        msg->msg_flags |= MSG_CTRUNC;
        return;
    }
    size_t length = CMSG_LEN(sizeof(queued));
    if (room < length) {
        msg->msg_flags |= MSG_CTRUNC;
        length = room;
    }
    unsigned char full[CMSG_SPACE(sizeof(int))];
    struct cmsghdr header = {.cmsg_len = length, .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_INQ};
    memcpy(full, &header, sizeof(header));
    memcpy(full + CMSG_LEN(0), &queued, sizeof(queued));
    memcpy((unsigned char *)msg->msg_control + used, full, length);
    size_t space = CMSG_SPACE(sizeof(queued));
    msg->msg_controllen = used + (space < room ? space : room);
}
