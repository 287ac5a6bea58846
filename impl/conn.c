/* conn.c - a connection's life (create, destroy), its options and what SHM_INFO shows. */
#define _GNU_SOURCE
#include "libc.h"
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "locks.h"
#include "negotiation.h"
#include "producer.h"
#include "scratch.h"
#include "wakeup.h"

int shmsock_conn_create(int fd, int type, struct shmsock_conn **out)
{
    struct shmsock_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return -ENOMEM;
    conn->fd = fd;
    conn->type = type;
    conn->options.negotiate = 1;
    conn->options.block_size = SHM_DEFAULT_BLOCK_SIZE;
    conn->options.coalesce = 1;
    /* The peer starts out waiting on the kernel socket, not armed: ring for the first event. */
    conn->wakeup.last_event_doorbell = UINT64_MAX;
    conn->producer.own.memfd = -1;
    conn->consumer.peer.memfd = -1;
    conn->producer.release_rx = -1;
    conn->producer.release_offered = -1;
    conn->consumer.peer_release_fd = -1;
    conn->consumer.pending_release =
        calloc(SHMSOCK_RELEASE_BATCH, sizeof(*conn->consumer.pending_release));
    conn->scratch = malloc(sizeof(*conn->scratch));
    if (conn->consumer.pending_release == NULL || conn->scratch == NULL) {
        free(conn->consumer.pending_release);
        free(conn->scratch);
        free(conn);
        return -ENOMEM;
    }
    pthread_mutex_init(&conn->send_lock, NULL);
    pthread_mutex_init(&conn->producer_lock, NULL);
    pthread_mutex_init(&conn->recv_lock, NULL);
    pthread_mutex_init(&conn->region_lock, NULL);
    *out = conn;
    return 0;
}

void shmsock_conn_close_resources(struct shmsock_conn *conn)
{
    if (conn == NULL)
        return;
    shmsock_region_release(&conn->producer.own);
    shmsock_region_release(&conn->consumer.peer);
    shmsock_close_fd(conn->producer.release_rx);
    shmsock_close_fd(conn->producer.release_offered);
    if (conn->nego.answer_waiting) { /* an answer nobody took (a peer that offered twice) */
        shmsock_close_fd(conn->nego.answer_fds[0]);
        shmsock_close_fd(conn->nego.answer_fds[1]);
    }
    if (conn->consumer.peer_release_fd != conn->producer.release_rx)
        shmsock_close_fd(
            conn->consumer.peer_release_fd); /* else one channel serves both directions */
    conn->producer.release_rx = -1;
    conn->producer.release_offered = -1;
    conn->consumer.peer_release_fd = -1;
    conn->nego.answer_waiting = false;
}

void shmsock_conn_destroy(struct shmsock_conn *conn)
{
    if (conn == NULL)
        return;
    shmsock_conn_close_resources(conn);
    shmsock_producer_list_destroy(&conn->producer.tokens);
    shmsock_consumer_list_destroy(&conn->consumer.tokens);
    free(conn->consumer.pending_release);
    free(conn->scratch);
    free(conn->consumer.views);
    free(conn->consumer.bounce_view);
    if (conn->producer.zc_bounce)
        free(conn->producer.zc_buf);
    pthread_mutex_destroy(&conn->send_lock);
    pthread_mutex_destroy(&conn->producer_lock);
    pthread_mutex_destroy(&conn->recv_lock);
    pthread_mutex_destroy(&conn->region_lock);
    free(conn);
}

void shmsock_conn_rename(struct shmsock_conn *conn, int fd)
{
    __atomic_store_n(&conn->fd, fd, __ATOMIC_RELEASE);
}

int shmsock_conn_decline_offers(struct shmsock_conn *conn)
{
    int err = shmsock_conn_set_option(conn, SHM_NEGOTIATE, 0);
    if (err == 0)
        __atomic_store_n(&conn->options.decline_offers, 1, __ATOMIC_RELEASE);
    return err;
}

void shmsock_conn_hold_negotiation(struct shmsock_conn *conn, bool held)
{
    __atomic_store_n(&conn->options.negotiation_held, held ? 1 : 0, __ATOMIC_RELEASE);
}

bool shmsock_conn_negotiation_started(struct shmsock_conn *conn)
{
    return shmsock_negotiation_started(conn);
}

bool shmsock_conn_untouched(struct shmsock_conn *conn)
{
    /* A call in progress (a read blocked in another thread) counts as use. */
    if (!shmsock_trylock(conn, SHMSOCK_SEND_LOCK))
        return false;
    bool untouched = false;
    if (shmsock_trylock(conn, SHMSOCK_RECV_LOCK)) {
        untouched = conn->nego.plain_sent == 0 && conn->nego.plain_received == 0 &&
                    !shmsock_negotiation_started(conn) &&
                    __atomic_load_n(&conn->options.negotiate, __ATOMIC_ACQUIRE) &&
                    !__atomic_load_n(&conn->options.negotiation_held, __ATOMIC_ACQUIRE);
        shmsock_unlock(conn, SHMSOCK_RECV_LOCK);
    }
    shmsock_unlock(conn, SHMSOCK_SEND_LOCK);
    return untouched;
}

int shmsock_conn_type(const struct shmsock_conn *conn)
{
    return conn->type;
}

void shmsock_conn_inherit_options(struct shmsock_conn *conn, const struct shmsock_conn *from)
{
    conn->options.negotiate = from->options.negotiate;
    conn->options.block_size = from->options.block_size;
    conn->options.coalesce = from->options.coalesce;
    conn->options.busy_poll_us = from->options.busy_poll_us;
    conn->options.region_size = from->options.region_size;
}

int shmsock_conn_set_option(struct shmsock_conn *conn, int optname, int value)
{
    switch (optname) {
    case SHM_NEGOTIATE:
        if (shmsock_negotiation_started(conn))
            return -EISCONN;
        conn->options.negotiate = value != 0;
        if (!conn->options.negotiate)
            shmsock_negotiation_drop_unoffered_region(conn);
        return 0;
    case SHM_BLOCK_SIZE:
        if (value < (int)SHMSOCK_MIN_BLOCK_SIZE || value > (int)SHMSOCK_MAX_BLOCK_SIZE ||
            (value & (value - 1)) != 0)
            return -EINVAL;
        if (shmsock_negotiation_started(conn))
            return -EISCONN;
        conn->options.block_size = (uint32_t)value;
        shmsock_negotiation_drop_unoffered_region(conn);
        return 0;
    case SHM_COALESCE:
        if (__atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_SHM)
            return -EISCONN;
        conn->options.coalesce = value != 0;
        return 0;
    case SHM_BUSY_POLL:
        if (value < 0)
            return -EINVAL;
        conn->options.busy_poll_us = value;
        return 0;
    case SHM_REGION_SIZE:
        if (value < 0 ||
            (uint64_t)value > (uint64_t)SHMSOCK_MAX_BLOCK_COUNT * conn->options.block_size)
            return -EINVAL;
        if (shmsock_negotiation_started(conn))
            return -EISCONN;
        conn->options.region_size = value;
        shmsock_negotiation_drop_unoffered_region(conn);
        return 0;
    case SHM_STATUS:
    case SHM_INFO:
        return -EINVAL; /* read-only */
    default:
        return -ENOPROTOOPT;
    }
}

int shmsock_conn_path(struct shmsock_conn *conn)
{
    int out = __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE);
    int peer = __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
    if (out == SHMSOCK_OUT_SHM && peer)
        return SHM_STATUS_SHM;
    if (out != SHMSOCK_OUT_PLAIN || peer)
        return SHM_STATUS_OFFERED;
    return SHM_STATUS_PLAIN;
}

static int status(struct shmsock_conn *conn)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (shmsock_libc.getsockopt(conn->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 &&
        listening)
        return SHM_STATUS_PASSTHROUGH; /* a listener carries no payload itself */
    return shmsock_conn_path(conn);
}

/* Why the connection does not run over shared memory (SHM_FALLBACK_*). */
static int fallback_reason(struct shmsock_conn *conn)
{
    if (shmsock_conn_error(conn) != 0)
        return SHM_FALLBACK_PROTOCOL_ERROR;
    if (!conn->options.negotiate)
        return SHM_FALLBACK_DISABLED;
    if (shmsock_flag(&conn->producer.release_closed) &&
        !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        return SHM_FALLBACK_PLAIN_PEER;
    if (status(conn) == SHM_STATUS_SHM)
        return SHM_FALLBACK_NONE;
    return SHM_FALLBACK_PENDING;
}

int shmsock_conn_get_info(struct shmsock_conn *conn, struct shm_sock_info *info)
{
    memset(info, 0, sizeof(*info));
    shmsock_conn_has_space(conn); /* takes back what the peer released, for blocks_in_use */
    info->status = status(conn);
    info->fallback = fallback_reason(conn);
    info->coalesced = conn->producer.send_mode == SHMSOCK_SEND_MODE_COALESCED &&
                      __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_SHM;
    info->peer_coalesced = conn->consumer.peer_coalesced;
    shmsock_lock(conn, SHMSOCK_REGION_LOCK);
    if (conn->producer.own.base != NULL) {
        const struct shmsock_region_header *own = conn->producer.own.base;
        info->block_size = conn->producer.own.geometry.block_size;
        info->block_count = conn->producer.own.geometry.block_count;
        info->blocks_in_use = __atomic_load_n(&own->counters.blocks_in_use, __ATOMIC_RELAXED);
        info->peer_blocks_held = __atomic_load_n(&own->counters.peer_blocks_held, __ATOMIC_RELAXED);
        info->messages_sent = __atomic_load_n(&own->counters.events_sent, __ATOMIC_RELAXED);
        info->bytes_sent = __atomic_load_n(&own->counters.bytes_sent, __ATOMIC_RELAXED);
        info->messages_received =
            __atomic_load_n(&own->counters.messages_received, __ATOMIC_RELAXED);
        info->bytes_received = __atomic_load_n(&own->counters.bytes_received, __ATOMIC_RELAXED);
        info->doorbells_sent = __atomic_load_n(&own->counters.doorbells_sent, __ATOMIC_RELAXED);
        info->doorbells_received =
            __atomic_load_n(&own->counters.doorbells_received, __ATOMIC_RELAXED);
    }
    shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
    if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
        info->peer_block_size = conn->consumer.peer.geometry.block_size;
        info->peer_block_count = conn->consumer.peer.geometry.block_count;
    }
    return 0;
}

int shmsock_conn_get_option(struct shmsock_conn *conn, int optname, int *value)
{
    switch (optname) {
    case SHM_NEGOTIATE:
        *value = conn->options.negotiate;
        return 0;
    case SHM_BLOCK_SIZE:
        *value = (int)conn->options.block_size;
        return 0;
    case SHM_COALESCE:
        *value = conn->options.coalesce;
        return 0;
    case SHM_BUSY_POLL:
        *value = conn->options.busy_poll_us;
        return 0;
    case SHM_REGION_SIZE:
        shmsock_lock(conn, SHMSOCK_REGION_LOCK);
        *value = conn->producer.own.base != NULL ? (int)(conn->producer.own.geometry.block_count *
                                                         conn->producer.own.geometry.block_size)
                                                 : conn->options.region_size;
        shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
        return 0;
    case SHM_STATUS:
        *value = status(conn);
        return 0;
    default:
        return -ENOPROTOOPT;
    }
}

void shmsock_conn_passcred_changed(struct shmsock_conn *conn, int on)
{
    shmsock_lock(conn, SHMSOCK_REGION_LOCK);
    conn->options.passcred = on;
    if (conn->producer.own.base != NULL) {
        struct shmsock_region_header *header = conn->producer.own.base;
        __atomic_store_n(&header->wants_kernel_events, (uint32_t)(on != 0), __ATOMIC_RELEASE);
    }
    shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
}

void shmsock_conn_peek_off_changed(struct shmsock_conn *conn)
{
    __atomic_store_n(&conn->options.peek_off, 1, __ATOMIC_RELAXED);
}

/* A producer sleeping for releases of its blocks wakes on any record on its release
 * channel, then looks at our region again. */
static void wake_peer_producer(struct shmsock_conn *conn)
{
    if (!__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE))
        return;
    /* Nothing to do if it fails: a full channel already wakes the producer, a gone one
     * needs no wake-up. */
    (void)shmsock_doorbell_send(conn->consumer.peer_release_fd, 0);
}

void shmsock_conn_shutdown(struct shmsock_conn *conn, int how)
{
    if (how == SHUT_WR || how == SHUT_RDWR)
        __atomic_store_n(&conn->producer.shut_wr, 1, __ATOMIC_RELEASE);
    if (how == SHUT_RD || how == SHUT_RDWR) {
        shmsock_lock(conn, SHMSOCK_REGION_LOCK);
        __atomic_store_n(&conn->consumer.shut_rd, 1, __ATOMIC_RELEASE);
        if (conn->producer.own.base != NULL) {
            struct shmsock_region_header *header = conn->producer.own.base;
            __atomic_store_n(&header->reader_shut, 1u, __ATOMIC_RELEASE);
        }
        shmsock_unlock(conn, SHMSOCK_REGION_LOCK);
        wake_peer_producer(conn);
    }
}

void shmsock_conn_socket_closed(struct shmsock_conn *conn)
{
    /* A try, on the mutex itself: this runs in shm_close, which may be called from a signal
     * handler that interrupted a holder of the lock (or of another connection's, which the
     * per-thread record of held locks in locks.h would then lose). Without the bump the peer
     * still learns of the close from its periodic check of the kernel socket (liveness.c). */
    if (pthread_mutex_trylock(&conn->region_lock) != 0)
        return;
    if (conn->producer.own.base != NULL) {
        struct shmsock_region_header *header = conn->producer.own.base;
        __atomic_add_fetch(&header->socket_closes, 1u, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&conn->region_lock);
}

void shmsock_conn_sndbuf_changed(struct shmsock_conn *conn)
{
    shmsock_producer_read_sndbuf(conn);
    if (conn->options.region_size == 0) /* the region follows SO_SNDBUF */
        shmsock_negotiation_drop_unoffered_region(conn);
}
