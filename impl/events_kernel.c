/*
 * events_kernel.c - the event source of event mode: each DATA event is a record on the kernel
 * socket, with the application's ancillary data beside it. DATA events stay in the kernel
 * socket until their payload has been read (STREAM peeks them), so the descriptor is readable
 * exactly when a message is waiting. See event_source.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "libc.h"
#include "ancillary.h"
#include "consumer.h"
#include "event_source.h"
#include "liveness.h"
#include "scratch.h"

/*
 * The records at the head of the kernel socket, with their ancillary data: a peek of up to
 * SHMSOCK_LOOK_EVENTS records (STREAM) or of one message (SEQPACKET), waiting as the
 * application's flags say. With take_head, the head record is read for real instead (a
 * SEQPACKET read takes the message whatever it holds; a view takes it without its ancillary
 * data). Doorbells left at the head from the peer's coalesced period are taken out (AGAIN).
 */
static int kernel_look(struct shmsock_conn *conn, struct shmsock_look *look)
{
    bool stream = conn->type == SOCK_STREAM;
    /* SEQPACKET: one message, whole; STREAM: a peek of records, or the head record. */
    look->iov = (struct iovec){.iov_base = look->records, .iov_len = sizeof(look->records)};
    int kernel_flags = (look->flags & SHMSOCK_PASSED_FLAGS) | MSG_PEEK;
    if (look->take_head)
        kernel_flags = (look->flags & SHMSOCK_PASSED_FLAGS) | (stream ? MSG_WAITALL : 0);
    if (!stream || look->take_head)
        look->iov.iov_len = stream ? SHMSOCK_EVENT_SIZE : SHMSOCK_EVENT_SIZE + 1;
    look->control = (struct msghdr){.msg_iov = &look->iov,
                                    .msg_iovlen = 1,
                                    .msg_control = look->buffer.bytes,
                                    .msg_controllen = sizeof(look->buffer)};
    if (look->first && (look->flags & MSG_PEEK) && conn->consumer.pending_count > 0)
        shmsock_consumer_flush_releases(conn);
    ssize_t n = shmsock_libc.recvmsg(conn->fd, &look->control, kernel_flags);
    if (n <= 0) /* 0: end of stream (events are never empty) */
        return n < 0 ? -errno : SHMSOCK_LOOK_END;
    look->count = (size_t)n / SHMSOCK_EVENT_SIZE;
    /* A kernel peek that fills its buffer at a record's end steps onto the next record and
     * hands out that one's descriptors too: they may not be the last record's. Leave the last
     * record for the next look (descriptors end a peek, so the others carry none). */
    look->rights_ambiguous =
        (size_t)n == sizeof(look->records) && shmsock_ancillary_has_rights(&look->control);
    if (look->rights_ambiguous)
        look->count--;
    bool broken = n % SHMSOCK_EVENT_SIZE != 0 || (!stream && n != SHMSOCK_EVENT_SIZE);
    size_t doorbells = 0;
    for (size_t i = 0; i < look->count && !broken; i++) {
        broken = shmsock_event_decode(look->records + i * SHMSOCK_EVENT_SIZE, &look->events[i]) < 0;
        if (!broken && look->events[i].type == SHMSOCK_EVENT_DOORBELL && doorbells == i)
            doorbells++;
    }
    if (broken) {
        shmsock_ancillary_close_fds(&look->control);
        return -EPROTO;
    }
    if (doorbells > 0) {
        /* Left from the peer's coalesced period: take them out and look again. */
        shmsock_ancillary_close_fds(&look->control);
        if (look->take_head)
            return SHMSOCK_LOOK_AGAIN;
        size_t take = stream ? doorbells * SHMSOCK_EVENT_SIZE : sizeof(look->records);
        n = shmsock_libc.recv(conn->fd, look->records, take, MSG_DONTWAIT);
        if (stream && n != (ssize_t)take)
            return -EPROTO;
        return n < 0 ? -errno : SHMSOCK_LOOK_AGAIN;
    }
    /* Records may wait behind these: the look was full, or the kernel ended it at a record
     * with descriptors (its own read stops only after the one whose descriptors it delivers). */
    look->more = stream && (look->count == SHMSOCK_LOOK_EVENTS || look->rights_ambiguous ||
                            shmsock_ancillary_has_rights(&look->control));
    return SHMSOCK_LOOK_FOUND;
}

static int kernel_consume(struct shmsock_conn *conn, struct shmsock_look *look, size_t k,
                          bool release)
{
    if (!look->take_head) { /* STREAM: the records are still in the socket */
        union shmsock_control_buffer *real_control = &conn->scratch->recv_control;
        struct iovec real_iov = {.iov_base = look->records, .iov_len = k * SHMSOCK_EVENT_SIZE};
        struct msghdr real = {.msg_iov = &real_iov,
                              .msg_iovlen = 1,
                              .msg_control = real_control->bytes,
                              .msg_controllen = sizeof(*real_control)};
        ssize_t got = shmsock_libc.recvmsg(conn->fd, &real, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        shmsock_ancillary_close_fds(&real); /* the application got the peeked copies */
        if (got != (ssize_t)(k * SHMSOCK_EVENT_SIZE))
            return -EPROTO;
    }
    for (size_t i = 0; i < k; i++) {
        if (shmsock_consumer_receive(&conn->consumer.tokens, look->events[i].token,
                                     look->events[i].block_count) < 0)
            return -EPROTO;
        if (release)
            shmsock_consumer_queue_release(conn, &look->events[i]);
    }
    /* All we saw is read: the queue may be empty now, and a producer waiting for blocks must
     * not wait for our next read. With records left, the reader comes back. */
    if (release && k == look->count)
        shmsock_consumer_flush_releases(conn);
    conn->consumer.seen_event = true;
    return 0;
}

const struct shmsock_event_source shmsock_kernel_events = {
    .look = kernel_look,
    .consume = kernel_consume, /* its look waits; its releases go with consume */
    .one_look_per_read = true,
};
