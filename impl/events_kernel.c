/*
 * events_kernel.c - the event source of event mode: each DATA event is a record on the kernel
 * socket, with the application's ancillary data beside it. DATA events stay in the kernel
 * socket until their payload has been read (STREAM peeks them), so the descriptor is readable
 * exactly when a message is waiting. See event_source.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "ancillary.h"
#include "consumer.h"
#include "event_source.h"
#include "iov.h"
#include "liveness.h"

#define PASSED_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)

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
        return shmsock_read_again(target);
    }
    if (event.type != SHMSOCK_EVENT_DATA || shmsock_consumer_check_data(conn, &event) < 0 ||
        (!peek &&
         shmsock_consumer_receive(&conn->consumer.tokens, event.token, event.block_count) < 0)) {
        shmsock_ancillary_close_fds(&m);
        return shmsock_conn_fail(conn, -EPROTO);
    }
    conn->consumer.seen_event = true;
    struct msghdr *user = target->msg;
    ssize_t scattered = shmsock_iov_scatter(user->msg_iov, user->msg_iovlen, target->skip,
                                            shmsock_consumer_payload(conn, &event), event.length);
    if (scattered < 0) {
        /* The application's buffer faults: EFAULT, and the message is gone (as the kernel's
         * SEQPACKET read drops it), its descriptors with it. */
        shmsock_ancillary_close_fds(&m);
        if (!peek) {
            shmsock_consumer_queue_release(conn, &event);
            shmsock_consumer_flush_releases(conn);
        }
        return scattered;
    }
    size_t copied = (size_t)scattered;
    user->msg_flags = 0;
    if (copied < event.length)
        user->msg_flags |= MSG_TRUNC;
    shmsock_ancillary_deliver(&m, user);
    if (m.msg_flags & MSG_CTRUNC)
        user->msg_flags |= MSG_CTRUNC;
    if (!peek) {
        shmsock_consumer_queue_release(conn, &event);
        shmsock_consumer_flush_releases(conn);
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
        shmsock_consumer_flush_releases(conn);
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
        return shmsock_read_again(target);
    }

    /* Copy payload from as many DATA events as fit; the head one may be partly read. */
    struct msghdr *user = target->msg;
    size_t copied = 0;
    size_t done = 0;         /* records whose payload has been read entirely */
    size_t touched = 0;      /* records this call read from */
    uint64_t head_after = 0; /* bytes read of the first record left in the socket */
    for (size_t i = 0; i < count && copied < target->space; i++) {
        if (events[i].type != SHMSOCK_EVENT_DATA ||
            shmsock_consumer_check_data(conn, &events[i]) < 0) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        uint64_t start = i == 0 ? conn->consumer.head_consumed : 0;
        if (start > events[i].length) {
            shmsock_ancillary_close_fds(&m);
            return shmsock_conn_fail(conn, -EPROTO);
        }
        ssize_t scattered = shmsock_iov_scatter(
            user->msg_iov, user->msg_iovlen, target->skip + copied,
            shmsock_consumer_payload(conn, &events[i]) + start, events[i].length - start);
        if (scattered < 0) {
            /* The application's buffer faults: the bytes stay (EFAULT if none were read). */
            if (copied > 0)
                break;
            shmsock_ancillary_close_fds(&m);
            return scattered;
        }
        size_t n_copy = (size_t)scattered;
        copied += n_copy;
        touched = i + 1;
        if (start + n_copy < events[i].length) {
            head_after = start + n_copy;
            break;
        }
        done = i + 1;
    }
    /* A read of no bytes takes the head record's descriptors, as the kernel's does (its
     * bytes stay for the next read). */
    if (target->space == 0 && count == 1) {
        touched = 1;
        head_after = conn->consumer.head_consumed;
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
    if (copied == 0 && (touched == 0 || already || !had_rights)) {
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
            if (shmsock_consumer_receive(&conn->consumer.tokens, events[i].token,
                                         events[i].block_count) < 0)
                return shmsock_conn_fail(conn, -EPROTO);
        }
        for (size_t i = 0; i < done; i++)
            shmsock_consumer_queue_release(conn, &events[i]);
        /* All we saw is read: the queue may be empty now, and a producer waiting for blocks
         * must not wait for our next read. With records left, the reader comes back. */
        if (done == count)
            shmsock_consumer_flush_releases(conn);
        conn->consumer.seen_event = true;
    }
    /* Every record of the look was read and more may wait behind them: the look was full,
     * or the kernel ended it at a record with descriptors that an earlier read delivered
     * (the kernel's own read stops only after the one whose descriptors it delivers). */
    target->batch_full = done == count && copied < target->space && !control_now &&
                         (count == STREAM_PEEK_RECORDS || had_rights || rights_ambiguous);
    if (touched > done) {
        /* The record we stopped in is now the head. */
        conn->consumer.head_control_delivered =
            (done == 0 && conn->consumer.head_control_delivered) || last_touched;
        conn->consumer.head_consumed = head_after;
    } else {
        conn->consumer.head_consumed = 0;
        conn->consumer.head_control_delivered = false;
    }
    return (ssize_t)copied;
}

static enum shmsock_take kernel_take(struct shmsock_conn *conn, int flags,
                                     struct shmsock_event *event, uint64_t *start, int *err)
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
    if (n < 0) {
        *err = -errno;
        return SHMSOCK_TAKE_FAILED;
    }
    shmsock_ancillary_close_fds(&m);
    if (n == 0)
        return SHMSOCK_TAKE_END;
    if (n != SHMSOCK_EVENT_SIZE || shmsock_event_decode(record, event) < 0) {
        *err = shmsock_conn_fail(conn, -EPROTO);
        return SHMSOCK_TAKE_FAILED;
    }
    if (event->type == SHMSOCK_EVENT_DOORBELL)
        return SHMSOCK_TAKE_AGAIN; /* left from the peer's coalesced period */
    if (event->type != SHMSOCK_EVENT_DATA || shmsock_consumer_check_data(conn, event) < 0 ||
        shmsock_consumer_receive(&conn->consumer.tokens, event->token, event->block_count) < 0) {
        *err = shmsock_conn_fail(conn, -EPROTO);
        return SHMSOCK_TAKE_FAILED;
    }
    *start = conn->consumer.head_consumed;
    conn->consumer.head_consumed = 0;
    conn->consumer.head_control_delivered = false;
    conn->consumer.seen_event = true;
    return SHMSOCK_TAKE_EVENT;
}

static ssize_t kernel_read(struct shmsock_conn *conn, struct shmsock_read_target *target, int flags)
{
    return conn->type == SOCK_STREAM ? recv_events_stream(conn, target, flags)
                                     : recv_events_seqpacket(conn, target, flags);
}

const struct shmsock_event_source shmsock_kernel_events = {
    .read = kernel_read,
    .take = kernel_take,
};
