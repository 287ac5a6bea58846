/*
 * conn_recv.c - the receive path.
 *
 * What the kernel socket brings from the peer is, in order: plain payload (the peer's sends
 * before its switch), then event records. The peer's region header says after how many plain
 * units (bytes or messages) the events start; until we know that, we peek before we read so
 * we never take an event record for payload. DATA events stay in the kernel socket until
 * their payload has been read (STREAM peeks them), so the descriptor is readable exactly when
 * a message is waiting.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ancillary.h"
#include "conn.h"
#include "event.h"
#include "iov.h"
#include "release_channel.h"

#define RETRY SHMSOCK_RETRY

/* Flags of the application's call that we pass to our own kernel calls. */
#define PASSED_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)

static int out_state(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE);
}

/* Learn the peer's switch point if it has published it. */
static void refresh_switch(struct shmsock_conn *conn)
{
    if (!conn->nego.peer_switch_known && __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        conn->nego.peer_switch_known = shmsock_region_read_switch(&conn->consumer.peer, &conn->nego.peer_switch);
}

/*
 * Read plain payload (at most `limit` bytes on STREAM) straight into the application's
 * buffer with the kernel call, and pick our peer's offer out of the ancillary data.
 */
static ssize_t recv_plain(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags,
                          size_t limit, bool watch_offers)
{
    struct msghdr *user = target->msg;
    struct iovec small[16];
    struct iovec *window = small;
    if (user->msg_iovlen > 16) {
        window = malloc(user->msg_iovlen * sizeof(*window));
        if (window == NULL)
            return -ENOMEM;
    }
    size_t want = target->space < limit ? target->space : limit;
    union shmsock_control_buffer control;
    struct msghdr m = {
        .msg_name = user->msg_name,
        .msg_namelen = user->msg_namelen,
        .msg_iov = window,
        .msg_iovlen =
            shmsock_iov_window(user->msg_iov, user->msg_iovlen, target->skip, want, window),
        .msg_control = control.bytes,
        .msg_controllen = sizeof(control),
    };
    int kernel_flags = flags & ~MSG_WAITALL;
    if (conn->type == SOCK_STREAM)
        kernel_flags &= ~MSG_TRUNC;
    ssize_t n = recvmsg(conn->fd, &m, kernel_flags);
    int err = errno;
    if (window != small)
        free(window);
    if (n < 0)
        return -err;
    user->msg_namelen = m.msg_namelen;
    user->msg_flags = m.msg_flags & ~MSG_CTRUNC;
    uint64_t before = conn->nego.plain_received;
    uint64_t units = conn->type == SOCK_STREAM ? (uint64_t)n : 1u;
    if (watch_offers) {
        int fds[2];
        struct shmsock_region_candidate candidate;
        /* A peeked offer is taken as a read one is (the read that follows brings the same
         * offer again, which accept_offer recognises): a peek that goes on past it must know
         * where the peer's plain bytes end. */
        if (shmsock_ancillary_take_offer(&m, fds, &candidate)) {
            target->offer_seen = true;
            if (shmsock_conn_accept_offer(conn, fds, &candidate) < 0)
                return __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
        }
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

/* Pick up an answer to our offer that the peer left on our release channel. */
static void absorb_answer(struct shmsock_conn *conn)
{
    if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&conn->producer_lock);
    shmsock_release_channel_drain(conn);
    pthread_mutex_unlock(&conn->producer_lock);
}

/*
 * Read while the head of the kernel socket may be payload or event records: wait for
 * something, then learn whether and where the peer switched, then read only payload.
 * Returns bytes, 0 at end, a negative errno, or RETRY once the events have started.
 */
static ssize_t recv_careful(struct shmsock_conn *conn, struct shmsock_read_target *target,
                            int flags)
{
    refresh_switch(conn);
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
        ssize_t n = recvmsg(conn->fd, &m, MSG_PEEK | (flags & PASSED_FLAGS));
        if (n < 0)
            return -errno;
        absorb_answer(conn);
        refresh_switch(conn);
        if (!conn->nego.peer_switch_known && conn->type == SOCK_STREAM) {
            int available = 0;
            /* Bytes present now were all sent before the switch if it is still unknown below. */
            if (ioctl(conn->fd, FIONREAD, &available) == 0 && available > 0)
                peeked = (size_t)available;
            absorb_answer(conn); /* an answer sent meanwhile precedes any event counted */
            refresh_switch(conn);
        }
        if (!conn->nego.peer_switch_known)
            return recv_plain(conn, target, flags, peeked, true);
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
        return RETRY;
    }
    uint64_t left = conn->nego.peer_switch - conn->nego.plain_received;
    return recv_plain(conn, target, flags, conn->type == SOCK_STREAM ? (size_t)left : SIZE_MAX,
                      true);
}

/* ---- events ---- */

/* Return the collected runs to the peer: through our release ring (coalesced peer) or as
 * RELEASE events on its release channel, in one write. */
static void flush_releases(struct shmsock_conn *conn)
{
    if (conn->consumer.release_by_ring) {
        for (size_t i = 0; i < conn->consumer.pending_count; i++)
            shmsock_conn_release_run(conn, &conn->consumer.pending_release[i]);
        conn->consumer.pending_count = 0;
        return;
    }
    unsigned char records[SHMSOCK_RELEASE_BATCH * SHMSOCK_EVENT_SIZE];
    size_t used = 0;
    for (size_t i = 0; i < conn->consumer.pending_count; i++) {
        const struct shmsock_event *data = &conn->consumer.pending_release[i];
        shmsock_consumer_release(&conn->consumer.tokens, data->token, data->block_count);
        struct shmsock_event release =
            shmsock_event_release(&conn->consumer.peer.geometry, data->token, data->block_count);
        shmsock_event_encode(&release, records + used);
        used += SHMSOCK_EVENT_SIZE;
    }
    conn->consumer.pending_count = 0;
    /* The peer keeps at most SHMSOCK_MAX_TOKENS_IN_FLIGHT tokens out, so this never fills. A
     * peer that has gone needs no releases: errors are ignored. */
    while (used > 0) {
        ssize_t n = send(conn->consumer.peer_release_fd, records, used, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* We are done with a run of the peer's region: collect its release. */
static void queue_release(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    if (conn->consumer.pending_count == SHMSOCK_RELEASE_BATCH)
        flush_releases(conn);
    conn->consumer.pending_release[conn->consumer.pending_count++] = *data;
}

void shmsock_conn_return_run(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    queue_release(conn, data);
    flush_releases(conn);
}

/* Check a DATA event against the peer's region and our consumer list. */
static int check_data(struct shmsock_conn *conn, const struct shmsock_event *event)
{
    if (shmsock_event_check_data(event, &conn->consumer.peer.geometry) < 0)
        return -EPROTO;
    return 0;
}

static const unsigned char *payload_of(struct shmsock_conn *conn, const struct shmsock_event *event)
{
    return (const unsigned char *)conn->consumer.peer.base + event->offset;
}

/* SEQPACKET: each DATA event is one message; it is read (or peeked) whole. */
static ssize_t recv_events_seqpacket(struct shmsock_conn *conn, struct shmsock_read_target *target,
                                     int flags)
{
    unsigned char record[SHMSOCK_EVENT_SIZE + 1];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    bool peek = (flags & MSG_PEEK) != 0;
    ssize_t n = recvmsg(conn->fd, &m, (flags & (PASSED_FLAGS | MSG_PEEK)));
    if (n < 0)
        return -errno;
    if (n == 0)
        return shmsock_nothing_read(target->msg); /* end of stream: events are never empty */
    struct shmsock_event event;
    if (n != SHMSOCK_EVENT_SIZE || shmsock_event_decode(record, &event) < 0) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    if (event.type == SHMSOCK_EVENT_DOORBELL) {
        /* Left from the peer's coalesced period: take it out and look again. */
        shmsock_ancillary_close_fds(&m);
        if (peek && recv(conn->fd, record, sizeof(record), MSG_DONTWAIT) < 0)
            return -errno;
        return RETRY;
    }
    if (event.type != SHMSOCK_EVENT_DATA || check_data(conn, &event) < 0 ||
        (!peek && shmsock_consumer_receive(&conn->consumer.tokens, event.token, event.block_count) < 0)) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    conn->consumer.seen_event = true;
    struct msghdr *user = target->msg;
    size_t copied = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip,
                                        payload_of(conn, &event), event.length);
    user->msg_flags = 0;
    if (copied < event.length)
        user->msg_flags |= MSG_TRUNC;
    shmsock_ancillary_deliver(&m, user);
    if (m.msg_flags & MSG_CTRUNC)
        user->msg_flags |= MSG_CTRUNC;
    if (!peek) {
        queue_release(conn, &event);
        flush_releases(conn);
    }
    return (flags & MSG_TRUNC) ? (ssize_t)event.length : (ssize_t)copied;
}

#define STREAM_PEEK_RECORDS 16

static ssize_t recv_events_stream(struct shmsock_conn *conn, struct shmsock_read_target *target,
                                  int flags)
{
    unsigned char records[STREAM_PEEK_RECORDS * SHMSOCK_EVENT_SIZE];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = records, .iov_len = sizeof(records)};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    if (conn->consumer.pending_count > 0 && (flags & MSG_PEEK))
        flush_releases(conn);
    ssize_t n = recvmsg(conn->fd, &m, MSG_PEEK | (flags & PASSED_FLAGS));
    if (n < 0)
        return -errno;
    if (n == 0)
        return shmsock_nothing_read(target->msg);
    if (n % SHMSOCK_EVENT_SIZE != 0) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    size_t count = (size_t)n / SHMSOCK_EVENT_SIZE;
    /* A kernel peek that fills its buffer at a record's end steps onto the next record and
     * hands out that one's descriptors too: they may not be the last record's. Leave the last
     * record for the next look (descriptors end a peek, so the others carry none). */
    bool rights_ambiguous = (size_t)n == sizeof(records) && shmsock_ancillary_has_rights(&m);
    if (rights_ambiguous)
        count--;
    struct shmsock_event events[STREAM_PEEK_RECORDS];
    size_t doorbells = 0;
    for (size_t i = 0; i < count; i++) {
        if (shmsock_event_decode(records + i * SHMSOCK_EVENT_SIZE, &events[i]) < 0) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        if (events[i].type == SHMSOCK_EVENT_DOORBELL && doorbells == i)
            doorbells++;
    }
    if (doorbells > 0) {
        /* Left from the peer's coalesced period: take them out and look again. */
        shmsock_ancillary_close_fds(&m);
        size_t take = doorbells * SHMSOCK_EVENT_SIZE;
        if (recv(conn->fd, records, take, MSG_DONTWAIT) != (ssize_t)take)
            return shmsock_conn_fail(conn, -EPROTO);
        return RETRY;
    }

    /* Copy payload from as many DATA events as fit; the head one may be partly read. */
    struct msghdr *user = target->msg;
    size_t copied = 0;
    size_t done = 0;         /* records whose payload has been read entirely */
    size_t touched = 0;      /* records this call read from */
    uint64_t head_after = 0; /* bytes read of the first record left in the socket */
    for (size_t i = 0; i < count && copied < target->space; i++) {
        if (events[i].type != SHMSOCK_EVENT_DATA || check_data(conn, &events[i]) < 0) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        uint64_t start = i == 0 ? conn->consumer.head_consumed : 0;
        if (start > events[i].length) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        size_t n_copy =
            shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip + copied,
                                payload_of(conn, &events[i]) + start, events[i].length - start);
        copied += n_copy;
        touched = i + 1;
        if (start + n_copy < events[i].length) {
            head_after = start + n_copy;
            break;
        }
        done = i + 1;
    }

    /* Ancillary data came with the last record peeked (the kernel stops after one that
     * carries descriptors): hand it over the first time that record's bytes are read. */
    bool last_touched = touched == count;
    bool already = count == 1 && conn->consumer.head_control_delivered;
    bool had_rights = !rights_ambiguous && shmsock_ancillary_has_rights(&m);
    if (target->credentials_given)
        shmsock_ancillary_drop_credentials(&m);
    bool control_now = copied > 0 && last_touched && !already && had_rights;
    target->rights_read = control_now;
    user->msg_flags = 0;
    if (copied == 0) {
        shmsock_ancillary_close_fds(&m);
        user->msg_controllen = 0;
    } else if (last_touched && !already && !rights_ambiguous) {
        shmsock_ancillary_deliver(&m, user);
    } else {
        /* Credentials describe the first record; descriptors are not ours to give yet. */
        shmsock_ancillary_deliver_without_rights(&m, user);
    }
    if (m.msg_flags & MSG_CTRUNC)
        user->msg_flags |= MSG_CTRUNC;
    if (flags & MSG_PEEK)
        return (ssize_t)copied;

    if (done > 0) {
        union shmsock_control_buffer real_control;
        struct iovec real_iov = {.iov_base = records, .iov_len = done * SHMSOCK_EVENT_SIZE};
        struct msghdr real = {.msg_iov = &real_iov,
                              .msg_iovlen = 1,
                              .msg_control = real_control.bytes,
                              .msg_controllen = sizeof(real_control)};
        ssize_t got = recvmsg(conn->fd, &real, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        shmsock_ancillary_close_fds(&real); /* the application got the peeked copies */
        if (got != (ssize_t)(done * SHMSOCK_EVENT_SIZE))
            return shmsock_conn_fail(conn, -EPROTO);
        for (size_t i = 0; i < done; i++) {
            if (shmsock_consumer_receive(&conn->consumer.tokens, events[i].token, events[i].block_count) <
                0)
                return shmsock_conn_fail(conn, -EPROTO);
        }
        for (size_t i = 0; i < done; i++)
            queue_release(conn, &events[i]);
        /* All we saw is read: the queue may be empty now, and a producer waiting for blocks
         * must not wait for our next read. With records left, the reader comes back. */
        if (done == count)
            flush_releases(conn);
        conn->consumer.seen_event = true;
    }
    /* Every record of the look was read and more may wait behind them: the look was full,
     * or the kernel ended it at a record with descriptors that an earlier read delivered
     * (the kernel's own read stops only after the one whose descriptors it delivers). */
    target->batch_full = done == count && copied < target->space && !control_now &&
                         (count == STREAM_PEEK_RECORDS || had_rights || rights_ambiguous);
    if (touched > done) {
        /* The record we stopped in is now the head. */
        conn->consumer.head_control_delivered = (done == 0 && conn->consumer.head_control_delivered) || last_touched;
        conn->consumer.head_consumed = head_after;
    } else {
        conn->consumer.head_consumed = 0;
        conn->consumer.head_control_delivered = false;
    }
    return (ssize_t)copied;
}

/* Whether the peer can never switch: it dropped our offer (a plain program). */
static bool peer_is_plain(struct shmsock_conn *conn)
{
    return shmsock_flag(&conn->producer.release_closed) &&
           !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
}

/*
 * Before the first read of a connection that may still negotiate: if it is going to wait,
 * make our region meanwhile. The peer's offer usually rides on its first message, and our
 * answer needs the region; made now, it costs nothing on the way to the reply.
 */
static void prepare_if_about_to_wait(struct shmsock_conn *conn, int flags)
{
    /* Our region belongs to the send side: it is looked at under send_lock only (in
     * shmsock_conn_prepare_while_waiting); this side remembers that it asked. */
    if (!conn->options.negotiate || conn->nego.asked_to_prepare || conn->nego.plain_received != 0 ||
        (flags & MSG_DONTWAIT))
        return;
    unsigned char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1}; /* no room: peeked descriptors drop */
    if (recvmsg(conn->fd, &m, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN) {
        conn->nego.asked_to_prepare = true;
        shmsock_conn_prepare_while_waiting(conn);
    }
}

/* One read: what a single recvmsg(2) would return. */
static ssize_t recv_once(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags)
{
    for (;;) {
        int err = __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
        if (err != 0)
            return err;
        /* An error an earlier read met after it had taken data (the kernel hands it out once):
         * now. Coalesced reads report it once the ring is empty (shmsock_coalesced_recv). */
        if (conn->live.deferred_error != 0 &&
            !(conn->nego.in_state == SHMSOCK_IN_EVENTS && conn->consumer.peer_coalesced)) {
            err = conn->live.deferred_error;
            conn->live.deferred_error = 0;
            return err;
        }
        bool negotiating = conn->options.negotiate && !peer_is_plain(conn) &&
                           (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) ||
                            out_state(conn) != SHMSOCK_OUT_PLAIN);
        ssize_t n;
        if (conn->nego.in_state == SHMSOCK_IN_EVENTS && conn->consumer.peer_coalesced) {
            n = shmsock_coalesced_recv(conn, target, flags);
        } else if (conn->nego.in_state == SHMSOCK_IN_EVENTS) {
            n = conn->type == SOCK_STREAM ? recv_events_stream(conn, target, flags)
                                          : recv_events_seqpacket(conn, target, flags);
        } else if (!negotiating) {
            /* The peer switches only once our region says we read carefully, which is never
             * set while a read like this one is in progress: all is payload. */
            prepare_if_about_to_wait(conn, flags);
            n = recv_plain(conn, target, flags, SIZE_MAX, conn->options.negotiate);
        } else {
            shmsock_conn_mark_reader_careful(conn);
            n = recv_careful(conn, target, flags);
        }
        if (n != RETRY)
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
    refresh_switch(conn);
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
        int offset = (int)ahead;
        if (setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset)) < 0)
            return 0;
        more = recv_plain(conn, rest, flags | MSG_DONTWAIT, limit, true);
        offset = -1;
        setsockopt(conn->fd, SOL_SOCKET, SO_PEEK_OFF, &offset, sizeof(offset));
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
    ssize_t in_ring = shmsock_coalesced_peek_ahead(conn, &ring);
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
         * the kernel gives it: keep it for the next read. */
        if (more < 0 && more != -EAGAIN && more != -EINTR && conn->live.deferred_error == 0)
            conn->live.deferred_error = (int)more;
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

ssize_t shmsock_conn_recv(struct shmsock_conn *conn, struct msghdr *msg, int flags)
{
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    size_t space = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    struct shmsock_read_target target = {.msg = msg, .skip = 0, .space = space};
    size_t control_room = msg->msg_control != NULL ? msg->msg_controllen : 0;
    pthread_mutex_lock(&conn->recv_lock);
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
        if (conn->live.deferred_error != 0)
            conn->live.deferred_error = 0;
        else
            (void)shmsock_conn_socket_error(conn);
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
    if (conn->options.negotiate && !peer_is_plain(conn) &&
        (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) ||
         out_state(conn) != SHMSOCK_OUT_PLAIN))
        shmsock_conn_mark_reader_careful(conn);
    pthread_mutex_unlock(&conn->recv_lock);
    return shmsock_conn_result(conn, n);
}

int shmsock_events_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                        uint64_t *start)
{
    /* Read the head record for real; its ancillary data has no place in a view. */
    unsigned char record[SHMSOCK_EVENT_SIZE + 1];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = record,
                        .iov_len = conn->type == SOCK_STREAM ? SHMSOCK_EVENT_SIZE : sizeof(record)};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    int kernel_flags = (flags & MSG_DONTWAIT) | MSG_CMSG_CLOEXEC;
    if (conn->type == SOCK_STREAM)
        kernel_flags |= MSG_WAITALL;
    ssize_t n = recvmsg(conn->fd, &m, kernel_flags);
    if (n < 0)
        return -errno;
    shmsock_ancillary_close_fds(&m);
    if (n == 0)
        return 0;
    if (n != SHMSOCK_EVENT_SIZE || shmsock_event_decode(record, event) < 0)
        return shmsock_conn_fail(conn, -EPROTO);
    if (event->type == SHMSOCK_EVENT_DOORBELL)
        return (int)RETRY;
    if (event->type != SHMSOCK_EVENT_DATA || check_data(conn, event) < 0 ||
        shmsock_consumer_receive(&conn->consumer.tokens, event->token, event->block_count) < 0)
        return shmsock_conn_fail(conn, -EPROTO);
    *start = conn->consumer.head_consumed;
    conn->consumer.head_consumed = 0;
    conn->consumer.head_control_delivered = false;
    conn->consumer.seen_event = true;
    return 1;
}
