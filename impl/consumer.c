/*
 * consumer.c - the peer's direction: its region (read-only), our list of its tokens we hold,
 * and the releases we owe it (through our release ring, or as RELEASE events on its release
 * channel).
 */
#define _GNU_SOURCE
#include "libc.h"
#include "consumer.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event.h"
#include "locks.h"
#include "liveness.h"
#include "ring.h"
#include "scratch.h"
#include "wakeup.h"

int shmsock_consumer_attach(struct shmsock_conn *conn, int fd,
                            const struct shmsock_region_candidate *candidate)
{
    int err = shmsock_region_attach_candidate(&conn->consumer.peer, fd, candidate);
    if (err == 0)
        err = shmsock_consumer_list_init(&conn->consumer.tokens,
                                         conn->consumer.peer.geometry.block_count);
    if (err < 0)
        shmsock_region_release(&conn->consumer.peer);
    return err;
}

/* Check a DATA event against the peer's region. */
int shmsock_consumer_check_data(struct shmsock_conn *conn, const struct shmsock_event *event)
{
    if (shmsock_event_check_data(event, &conn->consumer.peer.geometry) < 0)
        return -EPROTO;
    return 0;
}

const unsigned char *shmsock_consumer_payload(struct shmsock_conn *conn,
                                              const struct shmsock_event *event)
{
    return (const unsigned char *)conn->consumer.peer.base + event->offset;
}

/* Write a release into our ring; the producer is looked at later, after a full fence
 * (ring_for_releases), so that one fence serves all the releases and the arm of a read. */
void shmsock_consumer_push_release(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    shmsock_consumer_release(&conn->consumer.tokens, data->token, data->block_count);
    struct shmsock_event release =
        shmsock_event_release(&conn->consumer.peer.geometry, data->token, data->block_count);
    shmsock_ring_push(&conn->producer.own, SHMSOCK_RING_RELEASES, &release);
    conn->wakeup.releases_unsignalled = true;
}

static void release_through_ring(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    shmsock_consumer_push_release(conn, data);
    shmsock_wakeup_signal_releases(conn);
}

/* Return the collected runs to the peer: through our release ring (coalesced peer) or as
 * RELEASE events on its release channel, in one write. */
void shmsock_consumer_flush_releases(struct shmsock_conn *conn)
{
    shmsock_assert_held(SHMSOCK_RECV_LOCK);
    if (conn->consumer.release_by_ring) {
        for (size_t i = 0; i < conn->consumer.pending_count; i++)
            release_through_ring(conn, &conn->consumer.pending_release[i]);
        conn->consumer.pending_count = 0;
        return;
    }
    unsigned char *records = conn->scratch->releases;
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
        ssize_t n = shmsock_libc.send(conn->consumer.peer_release_fd, records, used, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* We are done with a run of the peer's region: collect its release. */
void shmsock_consumer_queue_release(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    if (conn->consumer.pending_count == SHMSOCK_RELEASE_BATCH)
        shmsock_consumer_flush_releases(conn);
    conn->consumer.pending_release[conn->consumer.pending_count++] = *data;
}

void shmsock_consumer_release_run(struct shmsock_conn *conn, const struct shmsock_event *data)
{
    shmsock_consumer_queue_release(conn, data);
    shmsock_consumer_flush_releases(conn);
}
