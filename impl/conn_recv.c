/*
 * conn_recv.c - the copying receive.
 *
 * What the kernel socket brings from the peer is, in order: plain payload (the peer's sends
 * before its switch), then event records. The peer's region header says after how many plain
 * units (bytes or messages) the events start; until we know that, we peek before we read so
 * we never take an event record for payload. After the switch, one copy loop (event_copy.c)
 * takes the events from the connection's event source (event_source.h: the ring, or the
 * kernel socket) and copies their payload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "libc.h"
#include "ancillary.h"
#include "conn.h"
#include "event_source.h"
#include "iov.h"
#include "liveness.h"
#include "locks.h"
#include "negotiation.h"
#include "producer.h"
#include "queues.h"
#include "scratch.h"

/*
 * SO_PEEK_OFF belongs to the application's own peeks on the kernel path. The library's reads
 * of the kernel socket (a look before a first read, the careful reads of a connection that is
 * changing over, event records, doorbells) must neither start at it nor move it: they run with
 * the offset taken out and put back after. Nothing is asked of the kernel unless the
 * application has set SO_PEEK_OFF (conn.h).
 */
int shmsock_recv_peek_off_take(struct shmsock_conn *conn)
{
    if (!__atomic_load_n(&conn->options.peek_off, __ATOMIC_RELAXED))
        return -1;
    int off = -1;
    socklen_t len = sizeof(off);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &off, &len) < 0 || off < 0)
        return -1;
    int none = -1;
    if (shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &none, sizeof(none)) < 0)
        return -1;
    return off;
}

void shmsock_recv_peek_off_put(struct shmsock_conn *conn, int off)
{
    if (off >= 0)
        (void)shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off));
}

/* Whether the application's SO_PEEK_OFF is set (>= 0) now. */
static bool peek_off_active(struct shmsock_conn *conn)
{
    if (!__atomic_load_n(&conn->options.peek_off, __ATOMIC_RELAXED))
        return false;
    int off = -1;
    socklen_t len = sizeof(off);
    return shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &off, &len) == 0 && off >= 0;
}

/*
 * Read plain payload (at most `limit` bytes on STREAM) straight into the application's
 * buffer with the kernel call, and pick our peer's offer out of the ancillary data.
 */
static ssize_t recv_plain(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags,
                          size_t limit, bool watch_offers)
{
    struct msghdr *user = target->msg;
    struct iovec *small = conn->scratch->window; /* (recv_lock) */
    struct iovec *window = small;
    if (user->msg_iovlen > SHMSOCK_SCRATCH_IOVECS) {
        window = malloc(user->msg_iovlen * sizeof(*window));
        if (window == NULL)
            return -ENOMEM;
    }
    size_t want = target->space < limit ? target->space : limit;
    union shmsock_control_buffer *control = &conn->scratch->recv_control;
    struct msghdr m = {
        .msg_name = user->msg_name,
        .msg_namelen = user->msg_namelen,
        .msg_iov = window,
        .msg_iovlen =
            shmsock_iov_window(user->msg_iov, user->msg_iovlen, target->skip, want, window),
        .msg_control = control->bytes,
        .msg_controllen = sizeof(*control),
    };
    int kernel_flags = flags & ~MSG_WAITALL;
    if (conn->type == SOCK_STREAM)
        kernel_flags &= ~MSG_TRUNC;
    /* A SEQPACKET read that faults (EFAULT) drops its message in the kernel, and with it any
     * offer of the peer's on it: while one may come, a buffer that could fault is read
     * through our own, and the copy out says EFAULT (the message is gone, as the kernel's). */
    void *bounce = NULL;
    struct iovec bounce_iov;
    if (conn->type == SOCK_SEQPACKET && watch_offers && !(flags & MSG_PEEK) &&
        !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) &&
        shmsock_iov_check(user->msg_iov, user->msg_iovlen, target->skip, want, true) < 0) {
        bounce = malloc(want > 0 ? want : 1);
        if (bounce == NULL) {
            if (window != small)
                free(window);
            return -ENOMEM;
        }
        bounce_iov = (struct iovec){.iov_base = bounce, .iov_len = want};
        m.msg_iov = &bounce_iov;
        m.msg_iovlen = 1;
    }
    ssize_t n = shmsock_libc.recvmsg(conn->fd, &m, kernel_flags);
    int err = errno;
    ssize_t fault = 0;
    if (bounce != NULL) {
        if (n >= 0)
            fault = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip, bounce,
                                        (size_t)n < want ? (size_t)n : want);
        free(bounce);
    }
    if (window != small)
        free(window);
    if (n < 0) {
        /* A SEQPACKET read that the kernel could not copy out (EFAULT) has dropped its message:
         * one plain unit less to come before the peer's switch point. */
        if (err == EFAULT && conn->type == SOCK_SEQPACKET && !(flags & MSG_PEEK))
            conn->nego.plain_received++;
        return -err;
    }
    user->msg_namelen = m.msg_namelen;
    user->msg_flags = m.msg_flags & ~MSG_CTRUNC;
    uint64_t before = conn->nego.plain_received;
    uint64_t units = conn->type == SOCK_STREAM ? (uint64_t)n : 1u;
    if (watch_offers) {
        int fds[2];
        struct shmsock_region_candidate *candidate = &conn->scratch->offer;
        /* A peeked offer is taken as a read one is (the read that follows brings the same
         * offer again, which accept_offer recognises): a peek that goes on past it must know
         * where the peer's plain bytes end. */
        if (shmsock_ancillary_take_offer(&m, fds, candidate)) {
            target->offer_seen = !target->at_peek_off;
            if (shmsock_negotiation_accept_offer(conn, fds, candidate) < 0)
                return shmsock_conn_error(conn);
        }
    } else if (__atomic_load_n(&conn->options.decline_offers, __ATOMIC_ACQUIRE)) {
        /* The peer may still offer; its offer must not reach the program. Closing it
         * unanswered is what a plain program does: the peer stays on the kernel path. */
        int fds[2];
        if (shmsock_ancillary_take_offer(&m, fds, NULL)) {
            shmsock_close_fd(fds[0]);
            shmsock_close_fd(fds[1]);
        }
    }
    if (fault < 0) {
        shmsock_ancillary_close_fds(&m); /* the application's, dropped with the message */
        conn->nego.plain_received += units;
        return fault;
    }
    target->rights_read = shmsock_ancillary_has_rights(&m);
    if (target->credentials_given)
        shmsock_ancillary_drop_credentials(&m);
    shmsock_ancillary_deliver(&m, user);
    if ((m.msg_flags & MSG_CTRUNC) != 0)
        user->msg_flags |= MSG_CTRUNC;
    if (flags & MSG_PEEK)
        return n;
    conn->nego.plain_received += units;
    if (conn->nego.plain_received < before ||
        (conn->nego.peer_switch_known && conn->nego.plain_received > conn->nego.peer_switch))
        return shmsock_conn_fail(conn, -EPROTO);
    return n;
}

/* Wait, without taking anything, for a byte `at` bytes past the head (a peek at SO_PEEK_OFF
 * `at` waits for one): 1, 0 at end of stream, or a negative errno. */
static ssize_t wait_for_byte_at(struct shmsock_conn *conn, int at, int flags)
{
    unsigned char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &at, sizeof(at)) < 0)
        return -errno;
    ssize_t n = shmsock_libc.recvmsg(conn->fd, &m, MSG_PEEK | (flags & SHMSOCK_PASSED_FLAGS));
    int err = errno;
    int none = -1;
    (void)shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &none, sizeof(none));
    return n < 0 ? -err : n;
}

/*
 * A careful read's kernel read, of which `limit` bytes from the head are known to be plain.
 * With the application's SO_PEEK_OFF (*app_off >= 0, taken out of the kernel socket for our
 * own peeks) the read runs with the offset back in place, so the kernel moves it as it would,
 * and a STREAM peek starts at it, within the bytes known to be plain: if there are none there
 * yet, it waits (or fails with EAGAIN) as the kernel's would. Past the peer's switch point the
 * bytes are in blocks, where SO_PEEK_OFF is not honoured: such a peek, and a SEQPACKET peek
 * (whose offset may skip messages we cannot count), start at the head (README).
 */
static ssize_t careful_plain(struct shmsock_conn *conn, struct shmsock_read_target *target,
                             int flags, size_t limit, int *app_off)
{
    int at = *app_off;
    if (at < 0 || ((flags & MSG_PEEK) && conn->type != SOCK_STREAM))
        return recv_plain(conn, target, flags, limit, true);
    if (flags & MSG_PEEK) {
        if ((size_t)at >= limit) {
            if (conn->nego.peer_switch_known)
                return recv_plain(conn, target, flags, limit, true);
            if (flags & MSG_DONTWAIT)
                return -EAGAIN;
            ssize_t n = wait_for_byte_at(conn, at, flags);
            if (n <= 0)
                return n < 0 ? n : shmsock_nothing_read(target->msg);
            return shmsock_read_again(target); /* look again: the switch may be known now */
        }
        if (limit != SIZE_MAX)
            limit -= (size_t)at;
        target->at_peek_off = true; /* not continued from the head */
    }
    if (shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &at, sizeof(at)) < 0)
        return -errno;
    ssize_t n = recv_plain(conn, target, flags, limit, true);
    int moved = at;
    socklen_t len = sizeof(moved);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &moved, &len) == 0)
        *app_off = moved;
    int none = -1;
    (void)shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &none, sizeof(none));
    return n;
}

/*
 * Read while the head of the kernel socket may be payload or event records: wait for
 * something, then learn whether and where the peer switched, then read only payload.
 * Returns bytes, 0 at end, a negative errno, or 0 with target->again once the events have
 * started. *app_off: the application's SO_PEEK_OFF, taken out of the kernel socket (-1: none).
 */
static ssize_t recv_careful(struct shmsock_conn *conn, struct shmsock_read_target *target,
                            int flags, int *app_off)
{
    shmsock_negotiation_refresh_switch(conn);
    size_t peeked = SIZE_MAX;
    if (!conn->nego.peer_switch_known) {
        /* Wait for the head, without taking it. The peer publishes its switch point (and
         * sends any answer to our offer) before its first event, so what we learn after this
         * peek is true of what we peeked. */
        unsigned char byte;
        struct iovec iov = {.iov_base = &byte, .iov_len = 1};
        /* No room for control data: a peeked offer's descriptors are not duplicated into our
         * table (the kernel drops the copies; the real read brings them). */
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = shmsock_libc.recvmsg(conn->fd, &m, MSG_PEEK | (flags & SHMSOCK_PASSED_FLAGS));
        if (n < 0)
            return -errno;
        shmsock_negotiation_take_answer(conn);
        shmsock_negotiation_refresh_switch(conn);
        if (!conn->nego.peer_switch_known && conn->type == SOCK_STREAM) {
            int available = 0;
            /* Bytes present now were all sent before the switch if it is still unknown below. */
            if (shmsock_libc.ioctl(conn->fd, FIONREAD, &available) == 0 && available > 0)
                peeked = (size_t)available;
            shmsock_negotiation_take_answer(
                conn); /* an answer sent meanwhile precedes any event counted */
            shmsock_negotiation_refresh_switch(conn);
        }
        if (!conn->nego.peer_switch_known)
            return careful_plain(conn, target, flags, peeked, app_off);
    }
    if (conn->nego.plain_received > conn->nego.peer_switch)
        return shmsock_conn_fail(conn, -EPROTO);
    if (conn->nego.plain_received == conn->nego.peer_switch) {
        /* The peer's send mode was set before its switch point: copy it once. */
        const struct shmsock_region_header *header = conn->consumer.peer.base;
        uint32_t mode = __atomic_load_n(&header->send_mode, __ATOMIC_ACQUIRE);
        if (mode != SHMSOCK_SEND_MODE_EVENTS && mode != SHMSOCK_SEND_MODE_COALESCED)
            return shmsock_conn_fail(conn, -EPROTO);
        conn->consumer.peer_coalesced = mode == SHMSOCK_SEND_MODE_COALESCED;
        conn->consumer.release_by_ring = conn->consumer.peer_coalesced;
        conn->nego.in_state = SHMSOCK_IN_EVENTS;
        return shmsock_read_again(target);
    }
    uint64_t left = conn->nego.peer_switch - conn->nego.plain_received;
    return careful_plain(conn, target, flags, conn->type == SOCK_STREAM ? (size_t)left : SIZE_MAX,
                         app_off);
}

/*
 * Before the first read of a connection that may still negotiate: if it is going to wait,
 * make our region meanwhile. The peer's offer usually rides on its first message, and our
 * answer needs the region; made now, it costs nothing on the way to the reply.
 *
 * Returns 0, or the socket's pending error (ECONNRESET: a listener closed before it accepted
 * us), which our peek took from the kernel only because nothing is queued: the read that
 * asked reports it, as the kernel's read would have.
 */
static int prepare_if_about_to_wait(struct shmsock_conn *conn, int flags)
{
    /* Our region belongs to the send side: it is looked at under send_lock only (in
     * shmsock_negotiation_prepare_while_waiting); this side remembers that it asked. */
    if (!conn->options.negotiate || conn->nego.asked_to_prepare || conn->nego.plain_received != 0 ||
        (flags & MSG_DONTWAIT))
        return 0;
    unsigned char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1}; /* no room: peeked descriptors drop */
    int off = shmsock_recv_peek_off_take(conn);
    ssize_t n = shmsock_libc.recvmsg(conn->fd, &m, MSG_PEEK | MSG_DONTWAIT);
    int err = errno;
    shmsock_recv_peek_off_put(conn, off);
    if (n >= 0 || err == EINTR)
        return 0;
    if (err != EAGAIN)
        return -err;
    conn->nego.asked_to_prepare = true;
    shmsock_negotiation_prepare_while_waiting(conn);
    return 0;
}

/* One read: what a single recvmsg(2) would return. */
static ssize_t recv_once(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags)
{
    for (;;) {
        int err = shmsock_conn_error(conn);
        if (err != 0)
            return err;
        /* An error an earlier read met after it had taken data (the kernel hands it out once):
         * now. Coalesced reads report it once the ring is empty (their wait). */
        if (conn->live.deferred_error != 0 &&
            !(conn->nego.in_state == SHMSOCK_IN_EVENTS && conn->consumer.peer_coalesced))
            return shmsock_take_deferred_error(conn);
        ssize_t n;
        target->again = false;
        target->at_peek_off = false;
        if (conn->nego.in_state == SHMSOCK_IN_EVENTS) {
            int off = shmsock_recv_peek_off_take(conn); /* not honoured on shared memory (README) */
            n = shmsock_events_read(conn, target, flags);
            shmsock_recv_peek_off_put(conn, off);
        } else if (!shmsock_negotiation_reads_careful(conn)) {
            /* The peer switches only once our region says we read carefully, which is never
             * set while a read like this one is in progress: all is payload. */
            target->at_peek_off = (flags & MSG_PEEK) && peek_off_active(conn);
            n = prepare_if_about_to_wait(conn, flags);
            if (n == 0)
                n = recv_plain(conn, target, flags, SIZE_MAX, conn->options.negotiate);
        } else {
            shmsock_negotiation_mark_reader_careful(conn);
            /* Our own peeks start at the head; the application's at its offset. */
            int off = shmsock_recv_peek_off_take(conn);
            n = recv_careful(conn, target, flags, &off);
            shmsock_recv_peek_off_put(conn, off);
        }
        if (!target->again)
            return n;
    }
}

/* Whether a STREAM read that took (or a peek that showed) n bytes stopped at the peer's
 * switch point: its payload goes on in blocks. */
static bool stopped_at_switch(struct shmsock_conn *conn, int flags, ssize_t n)
{
    if (conn->nego.in_state == SHMSOCK_IN_EVENTS || !conn->nego.peer_switch_known)
        return false;
    uint64_t shown = conn->nego.plain_received + ((flags & MSG_PEEK) ? (uint64_t)n : 0);
    return shown == conn->nego.peer_switch;
}

/* Plain bytes of the peer's not yet read, `ahead` bytes past our next read, if its switch
 * point is known; SIZE_MAX if not. */
static size_t plain_left(struct shmsock_conn *conn, size_t ahead)
{
    shmsock_negotiation_refresh_switch(conn);
    if (!conn->nego.peer_switch_known)
        return SIZE_MAX;
    uint64_t left = conn->nego.peer_switch - conn->nego.plain_received;
    return left > ahead ? (size_t)(left - ahead) : 0;
}

/*
 * A STREAM peek that already shows `ahead` bytes goes on past them, as the kernel's peek
 * would: plain bytes (SO_PEEK_OFF: a peek always starts at the head) up to the peer's switch
 * point, then the payload of the events in the peer's ring. Event records in the kernel
 * socket are never payload: what a peek saw past the switch point is not counted (the peer
 * publishes its switch point before its first event, so it is known by then).
 */
static ssize_t peek_further(struct shmsock_conn *conn, struct shmsock_read_target *rest, int flags,
                            size_t ahead)
{
    size_t limit = plain_left(conn, ahead);
    ssize_t more = 0;
    if (limit > 0) {
        /* Our offset for this look, then the application's own again (or none). */
        int app = shmsock_recv_peek_off_take(conn);
        int offset = (int)ahead;
        if (shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset)) <
            0) {
            shmsock_recv_peek_off_put(conn, app);
            return 0;
        }
        more = recv_plain(conn, rest, flags | MSG_DONTWAIT, limit, true);
        offset = app;
        shmsock_libc.setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset));
        limit = plain_left(conn, ahead);
        if (more > 0 && (size_t)more > limit)
            more = (ssize_t)limit;
    }
    if (more < 0 || (size_t)more < limit || more == (ssize_t)rest->space || rest->rights_read)
        return more; /* ended before the switch point, or at descriptors (they end a peek) */
    /* The peek reached the switch point: the payload goes on in the peer's ring. */
    const struct shmsock_region_header *header = conn->consumer.peer.base;
    if (__atomic_load_n(&header->send_mode, __ATOMIC_ACQUIRE) != SHMSOCK_SEND_MODE_COALESCED)
        return more; /* event mode: its records are not looked past (a shorter peek) */
    struct shmsock_read_target ring = {
        .msg = rest->msg, .skip = rest->skip + (size_t)more, .space = rest->space - (size_t)more};
    ssize_t in_ring = shmsock_ring_events_peek_ahead(conn, &ring);
    return in_ring > 0 ? more + in_ring : more;
}

/*
 * A STREAM read returns what is waiting, up to its length, as one kernel read does; ours can
 * stop early where the kernel's would not, and then goes on here without waiting: at the
 * peer's offer (the kernel ends a read at a message that carries descriptors; those were
 * invisible to the application), at the peer's switch point (the bytes after it wait in
 * blocks), at the end of one batch of event records, or where the peer's events move to the
 * kernel socket. It stops, as the kernel's read does, after descriptors of the application's.
 */
static ssize_t continue_stream_read(struct shmsock_conn *conn, struct shmsock_read_target *target,
                                    int flags, ssize_t n, size_t control_room)
{
    struct msghdr *user = target->msg;
    while (n > 0 && !target->rights_read &&
           (target->offer_seen || target->batch_full || stopped_at_switch(conn, flags, n)) &&
           conn->type == SOCK_STREAM && (size_t)n < target->space) {
        /* The rest of the read goes after what is already in the buffers. */
        size_t control_used = user->msg_control != NULL ? user->msg_controllen : 0;
        struct msghdr rest_msg = *user;
        rest_msg.msg_control =
            user->msg_control != NULL ? (char *)user->msg_control + control_used : NULL;
        rest_msg.msg_controllen = control_room - control_used;
        struct shmsock_read_target rest = {
            .msg = &rest_msg,
            .skip = target->skip + (size_t)n,
            .space = target->space - (size_t)n,
            /* One set of credentials per read, the first message's, as the kernel's. */
            .credentials_given = control_used > 0 && shmsock_ancillary_has_credentials(user)};
        ssize_t more;
        if (flags & MSG_PEEK) {
            more = peek_further(conn, &rest, flags, (size_t)n);
        } else {
            more = recv_once(conn, &rest, flags | MSG_DONTWAIT);
        }
        /* The kernel's error for the socket (ECONNRESET) comes after the data we have, as
         * the kernel gives it: keep it for the next read. A buffer that faults (EFAULT) is
         * no error of the socket's: the read ends with the bytes it has, as the kernel's. */
        if (more < 0 && more != -EAGAIN && more != -EINTR && more != -EFAULT)
            shmsock_defer_error(conn, (int)more);
        if (more <= 0)
            break;
        n += more;
        user->msg_controllen = control_used + rest_msg.msg_controllen;
        user->msg_flags |= rest_msg.msg_flags;
        target->offer_seen = rest.offer_seen;
        target->batch_full = rest.batch_full;
        target->rights_read = rest.rights_read;
    }
    return n;
}

/*
 * Whether a STREAM MSG_WAITALL read that took n bytes ended short of the whole request. The
 * kernel's read takes the socket's pending error (ECONNRESET) when it runs dry short of what
 * it waits for, and returns its bytes: the error is gone, not kept for the next read. (A read
 * that ended at descriptors did not run dry: the caller checks that.)
 */
static bool waitall_cut_short(struct shmsock_conn *conn, int flags, ssize_t n, size_t space)
{
    return conn->type == SOCK_STREAM && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) && n > 0 &&
           (size_t)n < space;
}

ssize_t shmsock_recv_locked(struct shmsock_conn *conn, struct msghdr *msg, int flags)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    size_t space = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    struct shmsock_read_target target = {.msg = msg, .skip = 0, .space = space};
    size_t control_room = msg->msg_control != NULL ? msg->msg_controllen : 0;
    bool error_waiting = conn->live.deferred_error != 0;
    ssize_t n =
        continue_stream_read(conn, &target, flags, recv_once(conn, &target, flags), control_room);
    /* MSG_WAITALL on a stream: keep reading until full, end of stream, error or signal;
     * ancillary data ends a read, as in the kernel. */
    bool wait_all =
        conn->type == SOCK_STREAM && (flags & MSG_WAITALL) && !(flags & (MSG_PEEK | MSG_DONTWAIT));
    /* A non-blocking one that ran dry short of its length: the kernel's read would have taken
     * the pending error and dropped it, so do we, whether this read met it already or it
     * still waits in the kernel socket. (A blocking one waits below: its reads take the
     * error from the kernel themselves.) */
    if (!wait_all && !error_waiting && !target.rights_read &&
        waitall_cut_short(conn, flags, n, space)) {
        if (shmsock_take_deferred_error(conn) == 0)
            (void)shmsock_producer_socket_error(conn);
    }
    while (wait_all && n > 0 && (size_t)n < space && msg->msg_controllen == 0) {
        struct msghdr rest = *msg;
        rest.msg_controllen = control_room;
        target = (struct shmsock_read_target){
            .msg = &rest, .skip = (size_t)n, .space = space - (size_t)n};
        ssize_t more = recv_once(conn, &target, flags);
        /* An error ends the wait with what we have; the kernel's MSG_WAITALL reads do the
         * same and do not report that error later either. */
        if (more <= 0)
            break;
        n += more;
        msg->msg_flags |= rest.msg_flags;
        msg->msg_controllen = rest.msg_controllen;
    }
    if (n > 0 && !(flags & MSG_PEEK) && conn->nego.in_state == SHMSOCK_IN_EVENTS &&
        conn->producer.own.base != NULL) {
        struct shmsock_region_header *header = conn->producer.own.base;
        shmsock_counter_add(&header->counters.messages_received, 1); /* recv_lock held */
        shmsock_counter_add(&header->counters.bytes_received, (uint64_t)n);
        __atomic_store_n(&header->counters.peer_blocks_held, conn->consumer.tokens.held_blocks,
                         __ATOMIC_RELAXED);
    }
    /* Once negotiation has begun, every later read is careful: let the peer switch now. */
    if (!__atomic_load_n(&conn->nego.reader_careful, __ATOMIC_RELAXED) &&
        shmsock_negotiation_reads_careful(conn))
        shmsock_negotiation_mark_reader_careful(conn);
    return n;
}

ssize_t shmsock_conn_recv(struct shmsock_conn *conn, struct msghdr *msg, int flags)
{
    size_t control_room = msg->msg_controllen;
    shmsock_lock(conn, SHMSOCK_RECV_LOCK);
    ssize_t n = shmsock_recv_locked(conn, msg, flags);
    if (n >= 0 && __atomic_load_n(&conn->options.inq, __ATOMIC_ACQUIRE))
        shmsock_queues_put_inq(conn, msg, control_room); /* SO_INQ: as the kernel's read */
    shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    shmsock_negotiation_answer_owed(conn); /* the read accepted the peer's offer */
    return shmsock_conn_result(conn, n);
}
