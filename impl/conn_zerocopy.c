/*
 * conn_zerocopy.c - zero-copy calls: the application writes a message straight into blocks of
 * our region and commits it; it reads a message where it lies in the peer's region and
 * releases it when done. While a view is held, its token stays in our consumer list (the
 * specification's token_consumer_list), so one thread can receive and others process.
 *
 * A connection that does not (yet) run over shared memory still works: the reservation is a
 * heap buffer sent by a copying send, the view a copy into one buffer of ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libc.h"
#include "conn.h"
#include "consumer.h"
#include "event_source.h"
#include "liveness.h"
#include "locks.h"
#include "negotiation.h"
#include "producer.h"

#define BOUNCE_VIEW_SIZE (64u * 1024u)

/* The view of an empty message: holds nothing; releasing it is a harmless no-op. */
static const char empty_view[1];

/* ---- sending ---- */

/* Move our direction to shared memory if both offers are out (what a send would do). */
static bool on_shared_memory(struct shmsock_conn *conn)
{
    if (conn->options.negotiate && shmsock_out_state(conn) == SHMSOCK_OUT_OFFERED) {
        shmsock_negotiation_take_answer(conn);
        shmsock_negotiation_try_switch(conn);
    }
    return shmsock_out_state(conn) == SHMSOCK_OUT_SHM;
}

void *shmsock_conn_send_alloc(struct shmsock_conn *conn, size_t len, int flags, int *err)
{
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    void *buf = NULL;
    *err = 0;
    if (conn->producer.zc_buf != NULL) {
        *err = -EALREADY;
    } else if (!on_shared_memory(conn)) {
        int sndbuf = 0;
        socklen_t optlen = sizeof(sndbuf);
        if (conn->type == SOCK_SEQPACKET &&
            shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen) == 0 &&
            len + 32 > (size_t)sndbuf) {
            *err = -EMSGSIZE; /* as the kernel will say at commit */
            shmsock_negotiation_unlock_send(conn);
            return NULL;
        }
        buf = malloc(len > 0 ? len : 1); /* sent by a copying send at commit */
        if (buf == NULL)
            *err = -ENOMEM;
        conn->producer.zc_bounce = true;
    } else if (len > shmsock_producer_message_limit(conn)) {
        *err = -EMSGSIZE;
    } else {
        uint32_t blocks = shmsock_blocks_for_length(len, conn->producer.own.geometry.block_size);
        int64_t token = shmsock_producer_reserve_blocks(conn, blocks, flags);
        if (token < 0) {
            *err = (int)token;
        } else {
            buf = shmsock_region_block(&conn->producer.own, (uint32_t)token);
            conn->producer.zc_token = (uint32_t)token;
            conn->producer.zc_blocks = blocks;
            conn->producer.zc_bounce = false;
        }
    }
    if (buf != NULL) {
        conn->producer.zc_buf = buf;
        conn->producer.zc_len = len;
    }
    shmsock_negotiation_unlock_send(conn);
    return buf;
}

/* Forget the reservation; give its blocks back unless they were published. */
static void drop_reservation(struct shmsock_conn *conn, bool published)
{
    if (conn->producer.zc_bounce)
        free(conn->producer.zc_buf);
    else if (!published)
        shmsock_producer_cancel(conn, conn->producer.zc_token, conn->producer.zc_blocks);
    conn->producer.zc_buf = NULL;
    conn->producer.zc_bounce = false;
}

ssize_t shmsock_conn_send_commit(struct shmsock_conn *conn, void *buf, size_t len, int flags)
{
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    ssize_t r;
    if (conn->producer.zc_buf == NULL) {
        r = -EINVAL;
    } else if (buf != conn->producer.zc_buf || len > conn->producer.zc_len) {
        drop_reservation(conn, false); /* given up, as documented */
        r = -EINVAL;
    } else if (conn->producer.zc_bounce) {
        struct iovec iov = {.iov_base = buf, .iov_len = len};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        r = 0;
        /* A stream send may be partial: commit means the whole message. A zero-length
         * SEQPACKET message is still one send. */
        while (r >= 0 && ((size_t)r < len || (len == 0 && conn->type == SOCK_SEQPACKET))) {
            iov.iov_base = (char *)buf + r;
            iov.iov_len = len - (size_t)r;
            ssize_t n = shmsock_send_locked(conn, &msg, flags & ~MSG_DONTWAIT);
            if (n < 0) {
                r = r > 0 ? r : n;
                break;
            }
            r += n;
            if (conn->type == SOCK_SEQPACKET)
                break;
        }
        drop_reservation(conn, false);
    } else {
        uint32_t blocks = shmsock_blocks_for_length(len, conn->producer.own.geometry.block_size);
        shmsock_producer_shrink(&conn->producer.tokens, conn->producer.zc_token, blocks);
        conn->producer.zc_blocks = blocks;
        int err = conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED
                      ? shmsock_producer_probe(conn, flags)
                      : 0;
        struct msghdr none = {0};
        if (err < 0)
            shmsock_producer_cancel(conn, conn->producer.zc_token, blocks);
        else
            err = shmsock_producer_commit(conn, conn->producer.zc_token, blocks, len, &none, false,
                                          flags);
        conn->producer.zc_buf = NULL; /* published, or cancelled by shmsock_producer_commit */
        r = err < 0 ? err : (ssize_t)len;
    }
    shmsock_negotiation_unlock_send(conn);
    return shmsock_conn_result(conn, r);
}

int shmsock_conn_send_abort(struct shmsock_conn *conn, void *buf)
{
    shmsock_lock(conn, SHMSOCK_SEND_LOCK);
    int r = -EINVAL;
    if (buf != NULL && buf == conn->producer.zc_buf) {
        drop_reservation(conn, false);
        r = 0;
    }
    shmsock_negotiation_unlock_send(conn);
    return r;
}

/* ---- receiving ---- */

static ssize_t bounce_view(struct shmsock_conn *conn, const void **buf, int flags)
{
    if (conn->consumer.bounce_view_held)
        return -EALREADY;
    if (conn->consumer.bounce_view == NULL) {
        conn->consumer.bounce_view = malloc(BOUNCE_VIEW_SIZE);
        if (conn->consumer.bounce_view == NULL)
            return -ENOMEM;
    }
    struct iovec iov = {.iov_base = conn->consumer.bounce_view, .iov_len = BOUNCE_VIEW_SIZE};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = shmsock_conn_result(conn, shmsock_recv_locked(conn, &msg, flags));
    if (n > 0) {
        conn->consumer.bounce_view_held = true;
        *buf = conn->consumer.bounce_view;
    } else if (n == 0) {
        *buf = empty_view; /* an empty view holds nothing */
    }
    return n;
}

ssize_t shmsock_conn_recv_view(struct shmsock_conn *conn, const void **buf, int flags)
{
    int err = shmsock_conn_error(conn);
    if (err != 0)
        return err;
    shmsock_lock(conn, SHMSOCK_RECV_LOCK);
    ssize_t r;
    for (;;) {
        if (conn->nego.in_state != SHMSOCK_IN_EVENTS) {
            r = bounce_view(conn, buf, flags);
            break;
        }
        if (conn->consumer.views == NULL) {
            conn->consumer.views =
                calloc(SHMSOCK_MAX_TOKENS_IN_FLIGHT, sizeof(*conn->consumer.views));
            if (conn->consumer.views == NULL) {
                r = -ENOMEM;
                break;
            }
        }
        if (conn->consumer.view_count == SHMSOCK_MAX_TOKENS_IN_FLIGHT) {
            r = -ENOBUFS; /* the peer cannot have more tokens out: a forged stream */
            break;
        }
        struct shmsock_event event;
        uint64_t start = 0;
        int off = shmsock_recv_peek_off_take(conn); /* its reads are the library's own */
        int got = shmsock_events_take(conn, flags, &event, &start);
        shmsock_recv_peek_off_put(conn, off);
        if (got == SHMSOCK_LOOK_AGAIN)
            continue;
        if (got != SHMSOCK_LOOK_FOUND) {
            r = got; /* 0 (SHMSOCK_LOOK_END): end of stream */
            if (r == 0)
                *buf = empty_view;
            break;
        }
        r = (ssize_t)(event.length - start);
        if (r == 0) {
            /* An empty message: nothing to look at, so nothing held. */
            shmsock_consumer_release_run(conn, &event);
            *buf = empty_view;
            break;
        }
        const unsigned char *at =
            (const unsigned char *)conn->consumer.peer.base + event.offset + start;
        conn->consumer.views[conn->consumer.view_count++] =
            (struct shmsock_view){.at = at, .data = event};
        *buf = at;
        break;
    }
    shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    shmsock_negotiation_answer_owed(conn); /* a copying read accepted the peer's offer */
    return r;
}

int shmsock_conn_recv_release(struct shmsock_conn *conn, const void *buf)
{
    if (buf == empty_view)
        return 0;
    shmsock_lock(conn, SHMSOCK_RECV_LOCK);
    int r = -EINVAL;
    if (conn->consumer.bounce_view_held && buf == conn->consumer.bounce_view) {
        conn->consumer.bounce_view_held = false;
        r = 0;
    }
    for (size_t i = 0; r != 0 && i < conn->consumer.view_count; i++) {
        if (conn->consumer.views[i].at != buf)
            continue;
        struct shmsock_event data = conn->consumer.views[i].data;
        conn->consumer.views[i] = conn->consumer.views[--conn->consumer.view_count];
        shmsock_consumer_release_run(conn, &data);
        r = 0;
    }
    shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    return r;
}
