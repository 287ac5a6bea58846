/* release_channel.c - see release_channel.h. */
#define _GNU_SOURCE
#include "release_channel.h"

#include <errno.h>
#include <string.h>

#include "ancillary.h"
#include "event.h"

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
        struct shmsock_region_candidate candidate;
        if (!shmsock_ancillary_take_answer(control, fds, &candidate))
            return -EPROTO;
        return shmsock_conn_accept_offer(conn, fds, &candidate);
    }
    if (shmsock_event_check_release(&event, &conn->producer.own.geometry) < 0 ||
        shmsock_producer_release(&conn->producer.tokens, event.token, event.block_count) < 0)
        return -EPROTO;
    return 0;
}

void shmsock_release_channel_drain(struct shmsock_conn *conn)
{
    unsigned char buffer[64 * SHMSOCK_EVENT_SIZE];
    while (!shmsock_flag(&conn->producer.release_closed) && conn->producer.release_rx >= 0) {
        size_t carried = conn->producer.release_partial_len;
        memcpy(buffer, conn->producer.release_partial, carried);
        union shmsock_control_buffer control;
        struct iovec iov = {.iov_base = buffer + carried, .iov_len = sizeof(buffer) - carried};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = control.bytes,
                           .msg_controllen = sizeof(control)};
        ssize_t n = recvmsg(conn->producer.release_rx, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
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
