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
#include <sys/socket.h>
#include <unistd.h>

#include "ancillary.h"
#include "conn.h"
#include "event.h"
#include "iov.h"

/* recv_once result meaning "the state changed, look again" (no errno is this large). */
#define RETRY ((ssize_t)-100000)

/* Flags of the application's call that we pass to our own kernel calls. */
#define PASSED_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)

struct read_target {
    struct msghdr *msg; /* the application's */
    size_t skip;        /* bytes of msg_iov already filled (MSG_WAITALL loop) */
    size_t space;       /* bytes of msg_iov still free */
};

static int out_state(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->out_state, __ATOMIC_ACQUIRE);
}

/* Learn the peer's switch point if it has published it. */
static void refresh_switch(struct shmsock_conn *conn)
{
    if (!conn->peer_switch_known && __atomic_load_n(&conn->peer_offered, __ATOMIC_ACQUIRE))
        conn->peer_switch_known = shmsock_region_read_switch(&conn->peer, &conn->peer_switch);
}

/*
 * A plain read that raced with the peer's switch may have taken the peer's OFFER event (it
 * carries descriptors, so the kernel ends the read right after it). Take it back out of the
 * payload. `before` is plain_received before the read, n what the read returned.
 */
static ssize_t trim_offer_event(struct shmsock_conn *conn, struct read_target *target,
                                uint64_t before, ssize_t n)
{
    refresh_switch(conn);
    if (!conn->peer_switch_known || conn->plain_received <= conn->peer_switch)
        return n;
    uint64_t excess = conn->plain_received - conn->peer_switch;
    if (before > conn->peer_switch ||
        excess != (conn->type == SOCK_STREAM ? SHMSOCK_EVENT_SIZE : 1u))
        return shmsock_conn_fail(conn, -EPROTO);
    if (conn->type == SOCK_STREAM) {
        struct shmsock_event event;
        unsigned char record[SHMSOCK_EVENT_SIZE];
        shmsock_iov_gather(record, target->msg->msg_iov, target->msg->msg_iovlen,
                           target->skip + (size_t)n - SHMSOCK_EVENT_SIZE, SHMSOCK_EVENT_SIZE);
        if (shmsock_event_decode(record, &event) < 0 || event.type != SHMSOCK_EVENT_OFFER)
            return shmsock_conn_fail(conn, -EPROTO);
        n -= SHMSOCK_EVENT_SIZE;
    }
    conn->plain_received = conn->peer_switch;
    conn->in_state = SHMSOCK_IN_EVENTS;
    conn->seen_event = true;
    target->msg->msg_flags &= ~MSG_TRUNC;
    return n > 0 ? n : RETRY;
}

/* An offer found in received control data: attach it, or check it is the one we have. */
static int take_offer(struct shmsock_conn *conn, struct msghdr *received)
{
    int fds[2];
    if (!shmsock_ancillary_take_offer(received, fds))
        return 0;
    return shmsock_conn_accept_offer(conn, fds);
}

/*
 * Read plain payload (at most `limit` bytes on STREAM) straight into the application's
 * buffer with the kernel call, and pick our peer's offer out of the ancillary data.
 */
static ssize_t recv_plain(struct shmsock_conn *conn, struct read_target *target, int flags,
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
        .msg_iovlen = shmsock_iov_window(user->msg_iov, user->msg_iovlen, target->skip, want,
                                         window),
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
    uint64_t before = conn->plain_received;
    uint64_t units = conn->type == SOCK_STREAM ? (uint64_t)n : 1u;
    if (watch_offers) {
        int fds[2];
        if (flags & MSG_PEEK) {
            if (shmsock_ancillary_take_offer(&m, fds)) {
                close(fds[0]);
                close(fds[1]);
            }
        } else if (take_offer(conn, &m) < 0) {
            return __atomic_load_n(&conn->error, __ATOMIC_ACQUIRE);
        }
    }
    shmsock_ancillary_deliver(&m, user);
    if ((m.msg_flags & MSG_CTRUNC) != 0)
        user->msg_flags |= MSG_CTRUNC;
    if (flags & MSG_PEEK)
        return n;
    conn->plain_received += units;
    if (watch_offers)
        return trim_offer_event(conn, target, before, n);
    return n;
}

/*
 * Read while the head of the kernel socket may be payload or event records. Returns bytes,
 * 0 at end, a negative errno, or RETRY once the events have started.
 */
static ssize_t recv_careful(struct shmsock_conn *conn, struct read_target *target, int flags)
{
    refresh_switch(conn);
    if (!conn->peer_switch_known) {
        /* Look at the head first: an offer there may tell us where events start. */
        union shmsock_control_buffer control;
        struct iovec small[16];
        struct iovec *window = small;
        unsigned char byte;
        struct msghdr m = {.msg_control = control.bytes, .msg_controllen = sizeof(control)};
        if (conn->type == SOCK_STREAM && target->space > 0) {
            if (target->msg->msg_iovlen > 16) {
                window = malloc(target->msg->msg_iovlen * sizeof(*window));
                if (window == NULL)
                    return -ENOMEM;
            }
            m.msg_iov = window;
            m.msg_iovlen = shmsock_iov_window(target->msg->msg_iov, target->msg->msg_iovlen,
                                              target->skip, target->space, window);
        } else {
            small[0] = (struct iovec){.iov_base = &byte, .iov_len = 1};
            m.msg_iov = small;
            m.msg_iovlen = 1;
        }
        ssize_t n = recvmsg(conn->fd, &m, MSG_PEEK | (flags & PASSED_FLAGS));
        int err = errno;
        if (window != small)
            free(window);
        if (n < 0)
            return -err;
        if (take_offer(conn, &m) < 0)
            return __atomic_load_n(&conn->error, __ATOMIC_ACQUIRE);
        shmsock_ancillary_close_fds(&m); /* copies made by MSG_PEEK; the real read brings them */
        refresh_switch(conn);
        if (!conn->peer_switch_known) {
            /* Everything peeked was sent before any switch: it is payload. */
            if (conn->type == SOCK_STREAM && (flags & MSG_PEEK))
                return n;
            return recv_plain(conn, target, flags,
                              conn->type == SOCK_STREAM ? (size_t)n : SIZE_MAX, true);
        }
    }
    if (conn->plain_received > conn->peer_switch)
        return shmsock_conn_fail(conn, -EPROTO);
    if (conn->plain_received == conn->peer_switch) {
        conn->in_state = SHMSOCK_IN_EVENTS;
        return RETRY;
    }
    uint64_t left = conn->peer_switch - conn->plain_received;
    return recv_plain(conn, target, flags,
                      conn->type == SOCK_STREAM ? (size_t)left : SIZE_MAX, true);
}

/* ---- events ---- */

/* Send RELEASE events for runs of the peer's region we are done with. */
static void send_releases(struct shmsock_conn *conn, const struct shmsock_event *data,
                          size_t count)
{
    unsigned char records[16 * SHMSOCK_EVENT_SIZE];
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        shmsock_consumer_release(&conn->consumer, data[i].token, data[i].block_count);
        struct shmsock_event release =
            shmsock_event_release(&conn->peer.geometry, data[i].token, data[i].block_count);
        shmsock_event_encode(&release, records + used);
        used += SHMSOCK_EVENT_SIZE;
    }
    /* The peer keeps at most SHMSOCK_MAX_TOKENS_IN_FLIGHT tokens out, so this never fills. A
     * peer that has gone needs no releases: errors are ignored. */
    while (used > 0) {
        ssize_t n = send(conn->peer_release_fd, records, used, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* Check a DATA event against the peer's region and our consumer list. */
static int check_data(struct shmsock_conn *conn, const struct shmsock_event *event)
{
    if (shmsock_event_check_data(event, &conn->peer.geometry) < 0)
        return -EPROTO;
    return 0;
}

static const unsigned char *payload_of(struct shmsock_conn *conn,
                                       const struct shmsock_event *event)
{
    return (const unsigned char *)conn->peer.base + event->offset;
}

/* An OFFER event (allowed once, as the peer's first event): take its descriptors. */
static ssize_t handle_offer_event(struct shmsock_conn *conn, struct msghdr *received)
{
    int fds[2];
    if (conn->seen_event || !shmsock_ancillary_take_offer(received, fds)) {
        shmsock_ancillary_close_fds(received);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    int err = shmsock_conn_accept_offer(conn, fds);
    if (err < 0)
        return err;
    conn->seen_event = true;
    return RETRY;
}

/* The head record is an OFFER we only peeked at: consume it for real and handle it. */
static ssize_t consume_offer_event(struct shmsock_conn *conn, int flags)
{
    unsigned char record[SHMSOCK_EVENT_SIZE];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    ssize_t n = recvmsg(conn->fd, &m, MSG_DONTWAIT | (flags & MSG_CMSG_CLOEXEC));
    struct shmsock_event event;
    if (n != (ssize_t)sizeof(record) || shmsock_event_decode(record, &event) < 0 ||
        event.type != SHMSOCK_EVENT_OFFER) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    return handle_offer_event(conn, &m);
}

/* SEQPACKET: each DATA event is one message; it is read (or peeked) whole. */
static ssize_t recv_events_seqpacket(struct shmsock_conn *conn, struct read_target *target,
                                     int flags)
{
    unsigned char record[SHMSOCK_EVENT_SIZE + 1];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    bool peek = (flags & MSG_PEEK) != 0;
    ssize_t n = recvmsg(conn->fd, &m, (flags & (PASSED_FLAGS | MSG_PEEK)));
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0; /* end of stream: events are never empty */
    struct shmsock_event event;
    if (n != SHMSOCK_EVENT_SIZE || shmsock_event_decode(record, &event) < 0) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    if (event.type == SHMSOCK_EVENT_OFFER) {
        if (!peek)
            return handle_offer_event(conn, &m);
        shmsock_ancillary_close_fds(&m);
        return consume_offer_event(conn, flags);
    }
    if (event.type != SHMSOCK_EVENT_DATA || check_data(conn, &event) < 0 ||
        (!peek &&
         shmsock_consumer_receive(&conn->consumer, event.token, event.block_count) < 0)) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    conn->seen_event = true;
    struct msghdr *user = target->msg;
    size_t copied = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip,
                                        payload_of(conn, &event), event.length);
    user->msg_flags = 0;
    if (copied < event.length)
        user->msg_flags |= MSG_TRUNC;
    shmsock_ancillary_deliver(&m, user);
    if (m.msg_flags & MSG_CTRUNC)
        user->msg_flags |= MSG_CTRUNC;
    if (!peek)
        send_releases(conn, &event, 1);
    return (flags & MSG_TRUNC) ? (ssize_t)event.length : (ssize_t)copied;
}

#define STREAM_PEEK_RECORDS 16

static ssize_t recv_events_stream(struct shmsock_conn *conn, struct read_target *target,
                                  int flags)
{
    unsigned char records[STREAM_PEEK_RECORDS * SHMSOCK_EVENT_SIZE];
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = records, .iov_len = sizeof(records)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                       .msg_controllen = sizeof(control)};
    ssize_t n = recvmsg(conn->fd, &m, MSG_PEEK | (flags & PASSED_FLAGS));
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    if (n % SHMSOCK_EVENT_SIZE != 0) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    size_t count = (size_t)n / SHMSOCK_EVENT_SIZE;
    struct shmsock_event events[STREAM_PEEK_RECORDS];
    for (size_t i = 0; i < count; i++) {
        if (shmsock_event_decode(records + i * SHMSOCK_EVENT_SIZE, &events[i]) < 0) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
    }
    if (events[0].type == SHMSOCK_EVENT_OFFER) {
        shmsock_ancillary_close_fds(&m);
        return consume_offer_event(conn, flags);
    }

    /* Copy payload from as many DATA events as fit; the head one may be partly read. */
    struct msghdr *user = target->msg;
    size_t copied = 0;
    size_t done = 0;          /* records whose payload has been read entirely */
    size_t touched = 0;       /* records this call read from */
    uint64_t head_after = 0;  /* bytes read of the first record left in the socket */
    for (size_t i = 0; i < count && copied < target->space; i++) {
        if (events[i].type != SHMSOCK_EVENT_DATA || check_data(conn, &events[i]) < 0) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        uint64_t start = i == 0 ? conn->head_consumed : 0;
        if (start > events[i].length) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        size_t n_copy = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen,
                                            target->skip + copied,
                                            payload_of(conn, &events[i]) + start,
                                            events[i].length - start);
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
    bool already = count == 1 && conn->head_control_delivered;
    user->msg_flags = 0;
    if (last_touched && !already && copied > 0) {
        shmsock_ancillary_deliver(&m, user);
        if (m.msg_flags & MSG_CTRUNC)
            user->msg_flags |= MSG_CTRUNC;
    } else {
        shmsock_ancillary_close_fds(&m);
        user->msg_controllen = 0;
    }
    if (flags & MSG_PEEK)
        return (ssize_t)copied;

    if (done > 0) {
        union shmsock_control_buffer real_control;
        struct iovec real_iov = {.iov_base = records, .iov_len = done * SHMSOCK_EVENT_SIZE};
        struct msghdr real = {.msg_iov = &real_iov, .msg_iovlen = 1,
                              .msg_control = real_control.bytes,
                              .msg_controllen = sizeof(real_control)};
        ssize_t got = recvmsg(conn->fd, &real, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        shmsock_ancillary_close_fds(&real); /* the application got the peeked copies */
        if (got != (ssize_t)(done * SHMSOCK_EVENT_SIZE))
            return shmsock_conn_fail(conn, -EPROTO);
        for (size_t i = 0; i < done; i++) {
            if (shmsock_consumer_receive(&conn->consumer, events[i].token,
                                         events[i].block_count) < 0)
                return shmsock_conn_fail(conn, -EPROTO);
        }
        send_releases(conn, events, done);
        conn->seen_event = true;
    }
    if (touched > done) {
        /* The record we stopped in is now the head. */
        conn->head_control_delivered =
            (done == 0 && conn->head_control_delivered) || last_touched;
        conn->head_consumed = head_after;
    } else {
        conn->head_consumed = 0;
        conn->head_control_delivered = false;
    }
    return (ssize_t)copied;
}

/* One read: what a single recvmsg(2) would return. */
static ssize_t recv_once(struct shmsock_conn *conn, struct read_target *target, int flags)
{
    for (;;) {
        int err = __atomic_load_n(&conn->error, __ATOMIC_ACQUIRE);
        if (err != 0)
            return err;
        ssize_t n;
        if (!conn->negotiate) {
            n = recv_plain(conn, target, flags, SIZE_MAX, false);
        } else if (conn->in_state == SHMSOCK_IN_EVENTS) {
            n = conn->type == SOCK_STREAM ? recv_events_stream(conn, target, flags)
                                          : recv_events_seqpacket(conn, target, flags);
        } else if (conn->in_state == SHMSOCK_IN_PLAIN && out_state(conn) == SHMSOCK_OUT_PLAIN) {
            /* We never offered, so the peer cannot have switched: all is payload. */
            n = recv_plain(conn, target, flags, SIZE_MAX, true);
        } else {
            n = recv_careful(conn, target, flags);
        }
        if (n != RETRY)
            return n;
    }
}

ssize_t shmsock_conn_recv(struct shmsock_conn *conn, struct msghdr *msg, int flags)
{
    if (flags & MSG_OOB)
        return -EOPNOTSUPP;
    size_t space = shmsock_iov_length(msg->msg_iov, msg->msg_iovlen);
    struct read_target target = {.msg = msg, .skip = 0, .space = space};
    size_t control_room = msg->msg_control != NULL ? msg->msg_controllen : 0;
    pthread_mutex_lock(&conn->recv_lock);
    ssize_t n = recv_once(conn, &target, flags);
    /* MSG_WAITALL on a stream: keep reading until full, end of stream, error or signal;
     * ancillary data ends a read, as in the kernel. */
    bool wait_all = conn->type == SOCK_STREAM && (flags & MSG_WAITALL) &&
                    !(flags & (MSG_PEEK | MSG_DONTWAIT));
    while (wait_all && n > 0 && (size_t)n < space && msg->msg_controllen == 0) {
        struct msghdr rest = *msg;
        rest.msg_controllen = control_room;
        target = (struct read_target){.msg = &rest, .skip = (size_t)n, .space = space - (size_t)n};
        ssize_t more = recv_once(conn, &target, flags);
        if (more <= 0)
            break;
        n += more;
        msg->msg_flags |= rest.msg_flags;
        msg->msg_controllen = rest.msg_controllen;
    }
    pthread_mutex_unlock(&conn->recv_lock);
    return n;
}
