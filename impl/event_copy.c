/*
 * event_copy.c - the copying receive and the take of a view, for both event sources and both
 * socket types: look at the next events, scatter their payload into the application's
 * buffers, take the ones read (event_source.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/socket.h>

#include "ancillary.h"
#include "consumer.h"
#include "event_source.h"
#include "iov.h"
#include "liveness.h"
#include "locks.h"
#include "scratch.h"

/* Look at the next events, waiting for one if there is none yet and nothing is read: a
 * shmsock_look_result or a negative errno. */
static int look_or_wait(struct shmsock_conn *conn, const struct shmsock_event_source *source,
                        struct shmsock_look *look, bool read_some)
{
    for (;;) {
        look->count = 0;
        look->to_kernel = look->more = look->rights_ambiguous = false;
        int r = source->look(conn, look);
        look->first = false;
        if (r != SHMSOCK_LOOK_EMPTY || read_some)
            return r;
        r = source->wait(conn, look->flags); /* (a look that waits is never EMPTY) */
        if (r <= 0)
            return r; /* SHMSOCK_LOOK_END, or an error */
    }
}

/*
 * The ancillary data of the last look goes to the application with the bytes of the record
 * that brought it (the kernel stops a peek after one that carries descriptors): the first time
 * that record's bytes are read. touched: the events the read took bytes from; head_delivered:
 * the head event's ancillary data went to the application already.
 */
static void deliver_control(struct shmsock_look *look, struct shmsock_read_target *target,
                            bool read_any, size_t touched, bool head_delivered)
{
    struct msghdr *user = target->msg;
    bool last_touched = touched == look->count;
    bool already = look->count == 1 && head_delivered;
    bool had_rights = !look->rights_ambiguous && shmsock_ancillary_has_rights(&look->control);
    if (target->credentials_given)
        shmsock_ancillary_drop_credentials(&look->control);
    target->rights_read = read_any && last_touched && !already && had_rights;
    if (!read_any) {
        shmsock_ancillary_close_fds(&look->control);
        user->msg_controllen = 0;
    } else if (last_touched && !already && !look->rights_ambiguous) {
        shmsock_ancillary_deliver(&look->control, user);
    } else {
        /* Credentials describe the first record; descriptors are not ours to give yet. */
        shmsock_ancillary_deliver_without_rights(&look->control, user);
    }
    user->msg_flags |= look->control.msg_flags & MSG_CTRUNC;
}

/* A SEQPACKET read whose buffer faults: the message is gone, its descriptors with it (the
 * kernel's read drops it too), and the read fails with err (EFAULT). */
static ssize_t drop_message(struct shmsock_conn *conn, const struct shmsock_event_source *source,
                            struct shmsock_look *look, bool *took, int err)
{
    if (source->consume(conn, look, 1, true) < 0)
        return shmsock_conn_fail(conn, -EPROTO);
    *took = true;
    conn->consumer.head_consumed = 0;
    conn->consumer.head_control_delivered = false;
    return err;
}

static ssize_t copy_events(struct shmsock_conn *conn, const struct shmsock_event_source *source,
                           struct shmsock_look *look, struct shmsock_read_target *target,
                           bool *took)
{
    struct msghdr *user = target->msg;
    bool peek = (look->flags & MSG_PEEK) != 0;
    bool stream = conn->type == SOCK_STREAM;
    /* A STREAM read of no bytes waits as the kernel's does, then touches the head event only:
     * it takes that record's descriptors, its bytes stay. */
    bool nothing_asked = stream && target->space == 0;
    size_t copied = 0;
    for (;;) {
        /* A STREAM read takes events while it has room; a SEQPACKET read takes one message. */
        look->want = stream ? target->space - copied : 0;
        int r = look_or_wait(conn, source, look, copied > 0 || look->ahead_only);
        if (r < 0) /* (with bytes read only -EPROTO: nothing is waited for) */
            return r == -EPROTO ? shmsock_conn_fail(conn, -EPROTO) : r;
        if (r == SHMSOCK_LOOK_AGAIN)
            return shmsock_read_again(target);
        if (r == SHMSOCK_LOOK_END)
            return shmsock_nothing_read(user);
        bool head_delivered = conn->consumer.head_control_delivered;
        size_t done = 0;    /* events whose payload has been read entirely */
        size_t touched = 0; /* events this look read from */
        uint64_t head_after = 0;
        bool at_marker = false;
        bool fault = false; /* the application's buffer faults (STREAM, or a peek): stop */
        for (size_t i = 0;
             i < look->count && (!stream || copied < target->space || (nothing_asked && i == 0));
             i++) {
            const struct shmsock_event *event = &look->events[i];
            if (look->to_kernel && i + 1 == look->count) {
                if (copied == 0 && !look->ahead_only) {
                    /* From here on the peer's events come through the kernel socket. */
                    if (source->consume(conn, look, i + 1, true) < 0)
                        return shmsock_conn_fail(conn, -EPROTO);
                    return shmsock_read_again(target); /* the caller reads again */
                }
                /* A read goes on: the peer's next bytes wait as kernel events. A peek stops
                 * here (a shorter peek than the kernel's, README). */
                at_marker = true;
                break;
            }
            uint64_t start = look->ahead + i == 0 ? conn->consumer.head_consumed : 0;
            if (shmsock_consumer_check_data(conn, event) < 0 || start > event->length) {
                shmsock_ancillary_close_fds(&look->control);
                return shmsock_conn_fail(conn, -EPROTO);
            }
            ssize_t scattered = shmsock_iov_scatter(
                user->msg_iov, user->msg_iovlen, target->skip + copied,
                shmsock_consumer_payload(conn, event) + start, event->length - start);
            if (scattered < 0) {
                /* EFAULT, as the kernel's copy: a STREAM read keeps the bytes and returns what
                 * it read before them (EFAULT if nothing), a peek shows what it has, a
                 * SEQPACKET read drops the message and its descriptors. */
                if ((stream || peek) && copied > 0) {
                    fault = true; /* (the faulting event is not touched: no descriptors) */
                    break;
                }
                shmsock_ancillary_close_fds(&look->control);
                if (stream || peek)
                    return scattered;
                return drop_message(conn, source, look, took, (int)scattered);
            }
            size_t n = (size_t)scattered;
            copied += n;
            touched = i + 1;
            if (stream && start + n < event->length) {
                head_after = start + n;
                break;
            }
            done = i + 1;
            if (!stream)
                break;
        }
        look->ahead += peek ? done : 0; /* a peek walks on without taking */
        if (!peek && done > 0) {
            if (source->consume(conn, look, done, true) < 0) {
                shmsock_ancillary_close_fds(&look->control);
                return shmsock_conn_fail(conn, -EPROTO);
            }
            *took = true;
            conn->consumer.head_consumed = 0; /* the head is a new event now */
            conn->consumer.head_control_delivered = false;
        }
        bool read_through = !fault && done == look->count && copied < target->space;
        if (stream && read_through && look->count > 0 && !source->one_look_per_read)
            continue; /* the ring: look further */
        user->msg_flags = !stream && copied < look->events[0].length ? MSG_TRUNC : 0;
        deliver_control(look, target, touched > 0 && (copied > 0 || !stream || nothing_asked),
                        touched, head_delivered);
        if (!stream)
            return (look->flags & MSG_TRUNC) ? (ssize_t)look->events[0].length : (ssize_t)copied;
        /* The read ends where more may wait: at the marker, or after a whole look of records
         * that more may follow (not after the descriptors it delivers). */
        target->batch_full =
            !peek && (at_marker || (read_through && !target->rights_read && look->more));
        if (peek)
            break;
        *took = copied > 0;
        if (touched > done) {
            /* The event we stopped in is now the head. */
            conn->consumer.head_control_delivered =
                (done == 0 && head_delivered) || touched == look->count;
            conn->consumer.head_consumed = head_after;
        }
        break;
    }
    return (ssize_t)copied;
}

ssize_t shmsock_events_read(struct shmsock_conn *conn, struct shmsock_read_target *target,
                            int flags)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    const struct shmsock_event_source *source = shmsock_event_source(conn);
    struct shmsock_look *look = &conn->scratch->look; /* (recv_lock) */
    look->flags = flags;
    look->first = true;
    look->take_head = conn->type == SOCK_SEQPACKET && !(flags & MSG_PEEK);
    look->ahead_only = false;
    look->ahead = 0;
    bool took = false;
    ssize_t n = copy_events(conn, source, look, target, &took);
    if (source->settle != NULL)
        source->settle(conn, took);
    return n;
}

int shmsock_events_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                        uint64_t *start)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    const struct shmsock_event_source *source = shmsock_event_source(conn);
    struct shmsock_look *look = &conn->scratch->look; /* (recv_lock) */
    look->flags = (flags & MSG_DONTWAIT) | MSG_CMSG_CLOEXEC;
    look->first = look->take_head = true;
    look->ahead_only = false;
    look->ahead = look->want = 0;
    int r = look_or_wait(conn, source, look, false);
    if (r != SHMSOCK_LOOK_FOUND)
        return r == -EPROTO ? shmsock_conn_fail(conn, -EPROTO) : r;
    shmsock_ancillary_close_fds(&look->control); /* no place for it in a view */
    *event = look->events[0];
    *start = conn->consumer.head_consumed;
    if ((!look->to_kernel &&
         (shmsock_consumer_check_data(conn, event) < 0 || *start > event->length)) ||
        source->consume(conn, look, 1, false) < 0)
        return shmsock_conn_fail(conn, -EPROTO);
    if (look->to_kernel)
        return SHMSOCK_LOOK_AGAIN; /* from here on the kernel socket brings the events */
    conn->consumer.head_consumed = 0;
    conn->consumer.head_control_delivered = false;
    if (source->settle != NULL)
        source->settle(conn, true);
    return SHMSOCK_LOOK_FOUND;
}

ssize_t shmsock_ring_events_peek_ahead(struct shmsock_conn *conn,
                                       struct shmsock_read_target *target)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    struct msghdr shown = *target->msg; /* the flags and control data are the plain bytes' */
    struct shmsock_read_target ring = {.msg = &shown, .skip = target->skip, .space = target->space};
    struct shmsock_look *look = &conn->scratch->look; /* (recv_lock; no other look is open) */
    look->flags = MSG_PEEK;
    look->first = look->ahead_only = true;
    look->take_head = false;
    look->ahead = 0;
    bool took = false;
    ssize_t n = copy_events(conn, &shmsock_ring_events, look, &ring, &took);
    return n == -EFAULT ? 0 : n; /* the buffer faults in the ring's part: the peek shows what
                                    it has (the bytes before) */
}
