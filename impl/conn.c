/* conn.c - connection lifecycle, options and negotiation state. See conn.h. */
#define _GNU_SOURCE
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ancillary.h"
#include "event.h"
#include "shmsock.h"

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
    conn->consumer.pending_release = calloc(SHMSOCK_RELEASE_BATCH, sizeof(*conn->consumer.pending_release));
    if (conn->consumer.pending_release == NULL) {
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

static void close_if_open(int fd)
{
    if (fd >= 0)
        close(fd);
}

void shmsock_conn_destroy(struct shmsock_conn *conn)
{
    if (conn == NULL)
        return;
    shmsock_region_release(&conn->producer.own);
    shmsock_region_release(&conn->consumer.peer);
    close_if_open(conn->producer.release_rx);
    close_if_open(conn->producer.release_offered);
    if (conn->consumer.peer_release_fd != conn->producer.release_rx)
        close_if_open(conn->consumer.peer_release_fd); /* else one channel serves both directions */
    shmsock_producer_list_destroy(&conn->producer.tokens);
    shmsock_consumer_list_destroy(&conn->consumer.tokens);
    free(conn->consumer.pending_release);
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

void shmsock_conn_inherit_options(struct shmsock_conn *conn, const struct shmsock_conn *from)
{
    conn->options.negotiate = from->options.negotiate;
    conn->options.block_size = from->options.block_size;
    conn->options.coalesce = from->options.coalesce;
    conn->options.busy_poll_us = from->options.busy_poll_us;
    conn->options.region_size = from->options.region_size;
}

static bool negotiation_started(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) != SHMSOCK_OUT_PLAIN ||
           __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
}

void shmsock_conn_prepare_while_waiting(struct shmsock_conn *conn)
{
    /* A send in progress prepares (or offers) by itself. */
    if (pthread_mutex_trylock(&conn->send_lock) != 0)
        return;
    if (conn->options.negotiate && !__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE) &&
        __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN)
        (void)shmsock_conn_prepare_offer(conn); /* on failure the first send tries again */
    pthread_mutex_unlock(&conn->send_lock);
}

/* A region made ahead of need and not offered yet was made for the options of that moment:
 * when they change, drop it; the first send makes it again. */
static void drop_unoffered_region(struct shmsock_conn *conn)
{
    pthread_mutex_lock(&conn->send_lock);
    if (conn->producer.own.base != NULL &&
        __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN) {
        pthread_mutex_lock(&conn->producer_lock);
        pthread_mutex_lock(&conn->region_lock);
        shmsock_region_release(&conn->producer.own);
        __atomic_store_n(&conn->nego.reader_careful, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&conn->region_lock);
        shmsock_producer_list_destroy(&conn->producer.tokens);
        close_if_open(conn->producer.release_rx);
        close_if_open(conn->producer.release_offered);
        conn->producer.release_rx = -1;
        conn->producer.release_offered = -1;
        pthread_mutex_unlock(&conn->producer_lock);
    }
    pthread_mutex_unlock(&conn->send_lock);
}

int shmsock_conn_set_option(struct shmsock_conn *conn, int optname, int value)
{
    switch (optname) {
    case SHM_NEGOTIATE:
        if (negotiation_started(conn))
            return -EISCONN;
        conn->options.negotiate = value != 0;
        if (!conn->options.negotiate)
            drop_unoffered_region(conn);
        return 0;
    case SHM_BLOCK_SIZE:
        if (value < (int)SHMSOCK_MIN_BLOCK_SIZE || value > (int)SHMSOCK_MAX_BLOCK_SIZE ||
            (value & (value - 1)) != 0)
            return -EINVAL;
        if (negotiation_started(conn))
            return -EISCONN;
        conn->options.block_size = (uint32_t)value;
        drop_unoffered_region(conn);
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
        if (value < 0 || (uint64_t)value > (uint64_t)SHMSOCK_MAX_BLOCK_COUNT * conn->options.block_size)
            return -EINVAL;
        if (negotiation_started(conn))
            return -EISCONN;
        conn->options.region_size = value;
        drop_unoffered_region(conn);
        return 0;
    case SHM_STATUS:
    case SHM_INFO:
        return -EINVAL; /* read-only */
    default:
        return -ENOPROTOOPT;
    }
}

static int status(struct shmsock_conn *conn)
{
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(conn->fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        return SHM_STATUS_PASSTHROUGH; /* a listener carries no payload itself */
    int out = __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE);
    int peer = __atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE);
    if (out == SHMSOCK_OUT_SHM && peer)
        return SHM_STATUS_SHM;
    if (out != SHMSOCK_OUT_PLAIN || peer)
        return SHM_STATUS_OFFERED;
    return SHM_STATUS_PLAIN;
}

/* Why the connection does not run over shared memory (SHM_FALLBACK_*). */
static int fallback_reason(struct shmsock_conn *conn)
{
    if (__atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE) != 0)
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
    pthread_mutex_lock(&conn->region_lock);
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
    pthread_mutex_unlock(&conn->region_lock);
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
        pthread_mutex_lock(&conn->region_lock);
        *value = conn->producer.own.base != NULL
                     ? (int)(conn->producer.own.geometry.block_count * conn->producer.own.geometry.block_size)
                     : conn->options.region_size;
        pthread_mutex_unlock(&conn->region_lock);
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
    pthread_mutex_lock(&conn->region_lock);
    conn->options.passcred = on;
    if (conn->producer.own.base != NULL) {
        struct shmsock_region_header *header = conn->producer.own.base;
        __atomic_store_n(&header->wants_kernel_events, (uint32_t)(on != 0), __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&conn->region_lock);
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
        pthread_mutex_lock(&conn->region_lock);
        __atomic_store_n(&conn->consumer.shut_rd, 1, __ATOMIC_RELEASE);
        if (conn->producer.own.base != NULL) {
            struct shmsock_region_header *header = conn->producer.own.base;
            __atomic_store_n(&header->reader_shut, 1u, __ATOMIC_RELEASE);
        }
        pthread_mutex_unlock(&conn->region_lock);
        wake_peer_producer(conn);
    }
}

void shmsock_conn_socket_closed(struct shmsock_conn *conn)
{
    pthread_mutex_lock(&conn->region_lock);
    if (conn->producer.own.base != NULL) {
        struct shmsock_region_header *header = conn->producer.own.base;
        __atomic_add_fetch(&header->socket_closes, 1u, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&conn->region_lock);
}

static void read_sndbuf(struct shmsock_conn *conn)
{
    int value = 0;
    socklen_t len = sizeof(value);
    if (getsockopt(conn->fd, SOL_SOCKET, SO_SNDBUF, &value, &len) == 0)
        __atomic_store_n(&conn->producer.sndbuf, value, __ATOMIC_RELEASE);
}

void shmsock_conn_sndbuf_changed(struct shmsock_conn *conn)
{
    read_sndbuf(conn);
    if (conn->options.region_size == 0) /* the region follows SO_SNDBUF */
        drop_unoffered_region(conn);
}

int shmsock_conn_fail(struct shmsock_conn *conn, int err)
{
    int expected = 0;
    __atomic_compare_exchange_n(&conn->live.error, &expected, err, false, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
    /* End the connection for the peer too, as a kernel socket reset would. */
    shutdown(conn->fd, SHUT_RDWR);
    return __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
}

ssize_t shmsock_conn_result(struct shmsock_conn *conn, ssize_t r)
{
    int err = __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
    return r < 0 && err != 0 ? err : r;
}

int shmsock_conn_prepare_offer(struct shmsock_conn *conn)
{
    if (conn->producer.own.base != NULL)
        return 0;
    read_sndbuf(conn);
    uint32_t block_size = conn->options.block_size;
    uint64_t bytes = conn->options.region_size > 0 ? (uint64_t)conn->options.region_size
                     : conn->producer.sndbuf > 0    ? (uint64_t)conn->producer.sndbuf
                                           : 212992u;
    uint64_t blocks = (bytes + block_size - 1) / block_size;
    if (blocks < 2)
        blocks = 2;
    if (blocks > SHMSOCK_MAX_BLOCK_COUNT)
        blocks = SHMSOCK_MAX_BLOCK_COUNT;

    struct shmsock_region made = {.memfd = -1};
    int err = shmsock_region_create(&made, block_size, (uint32_t)blocks);
    if (err == 0)
        err = shmsock_producer_list_init(&conn->producer.tokens, (uint32_t)blocks);
    if (err < 0) {
        shmsock_region_release(&made);
        return err;
    }
    struct shmsock_region_header *header = made.base;
    struct stat st;
    if (fstat(conn->fd, &st) == 0)
        header->socket_ino = (uint64_t)st.st_ino;
    header->socket_type = (uint32_t)conn->type;
    header->owner_pid = (uint32_t)getpid();
    /* A read in another thread may look for the region now (to mark itself careful). */
    pthread_mutex_lock(&conn->region_lock);
    header->wants_kernel_events = (uint32_t)conn->options.passcred;
    header->reader_shut = (uint32_t)__atomic_load_n(&conn->consumer.shut_rd, __ATOMIC_ACQUIRE);
    conn->producer.own = made;
    pthread_mutex_unlock(&conn->region_lock);
    return 0;
}

int shmsock_conn_prepare_blind_offer(struct shmsock_conn *conn)
{
    int err = shmsock_conn_prepare_offer(conn);
    if (err < 0 || conn->producer.release_offered >= 0)
        return err;
    int channel[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) < 0)
        return -errno;
    conn->producer.release_rx = channel[0];
    conn->producer.release_offered = channel[1];
    return 0;
}

/* The offer has left: the peer holds its own copy of the channel descriptor. Our region's
 * memfd stays open so that inspection tools (shmsock-ss) find it in /proc/PID/fd. */
static void offer_sent(struct shmsock_conn *conn)
{
    close_if_open(conn->producer.release_offered);
    conn->producer.release_offered = -1;
}

void shmsock_conn_mark_reader_careful(struct shmsock_conn *conn)
{
    if (__atomic_load_n(&conn->nego.reader_careful, __ATOMIC_RELAXED))
        return; /* every read once negotiation began comes here: keep it cheap */
    pthread_mutex_lock(&conn->region_lock);
    if (conn->producer.own.base != NULL && !conn->nego.reader_careful) {
        shmsock_region_mark_reader_careful(&conn->producer.own);
        __atomic_store_n(&conn->nego.reader_careful, 1, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&conn->region_lock);
}

int shmsock_conn_send_offer_event(struct shmsock_conn *conn, int flags)
{
    int err = shmsock_conn_prepare_offer(conn);
    if (err < 0)
        return err;
    /* If no read is in progress, our reads are careful from now on: say so at once. */
    if (pthread_mutex_trylock(&conn->recv_lock) == 0) {
        shmsock_conn_mark_reader_careful(conn);
        pthread_mutex_unlock(&conn->recv_lock);
    }
    /* The answer goes on the peer's release channel, never on the application's socket, so
     * a peer that never reads leaves nothing of ours unread there. That channel then serves
     * both directions (its two ends are full duplex): our answer carries only our region,
     * unless a blind offer of ours made a channel of its own that has not left yet. */
    struct shmsock_event event = {.type = SHMSOCK_EVENT_OFFER};
    unsigned char record[SHMSOCK_EVENT_SIZE];
    shmsock_event_encode(&event, record);
    union shmsock_control_buffer control;
    struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.bytes,
        .msg_controllen =
            shmsock_ancillary_build_offer(&control, conn->producer.own.memfd, conn->producer.release_offered),
    };
    ssize_t n = sendmsg(conn->consumer.peer_release_fd, &msg, MSG_NOSIGNAL | (flags & MSG_DONTWAIT));
    if (n < 0)
        return -errno;
    if (conn->producer.release_rx < 0)
        conn->producer.release_rx = conn->consumer.peer_release_fd; /* the peer's releases come back on it */
    offer_sent(conn);
    __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_OFFERED, __ATOMIC_RELEASE);
    return 0;
}

/* Mark our blind offer (attached to payload) as sent. Called by the send path. */
void shmsock_conn_blind_offer_sent(struct shmsock_conn *conn)
{
    offer_sent(conn);
    __atomic_store_n(&conn->nego.out_state, SHMSOCK_OUT_OFFERED, __ATOMIC_RELEASE);
}

int shmsock_conn_accept_offer(struct shmsock_conn *conn, const int fds[2],
                              const struct shmsock_region_candidate *candidate)
{
    const struct stat st = candidate->st;
    if (__atomic_load_n(&conn->nego.peer_offered, __ATOMIC_ACQUIRE)) {
        /* The same offer seen again (once peeked, once read) is fine; a second one is not. */
        close(fds[0]);
        close_if_open(fds[1]);
        if (st.st_dev == conn->nego.peer_region_dev && st.st_ino == conn->nego.peer_region_ino)
            return 0;
        return shmsock_conn_fail(conn, -EPROTO);
    }
    int err = shmsock_region_attach_candidate(&conn->consumer.peer, fds[0], candidate);
    close(fds[0]);
    if (err == 0)
        err = shmsock_consumer_list_init(&conn->consumer.tokens, conn->consumer.peer.geometry.block_count);
    if (err < 0) {
        shmsock_region_release(&conn->consumer.peer);
        close_if_open(fds[1]);
        return shmsock_conn_fail(conn, err == -ENOMEM ? err : -EPROTO);
    }
    conn->nego.peer_region_dev = st.st_dev;
    conn->nego.peer_region_ino = st.st_ino;
    /* An answer without a channel shares ours: our releases for the peer go back on it. */
    conn->consumer.peer_release_fd = fds[1] >= 0 ? fds[1] : conn->producer.release_rx;
    __atomic_store_n(&conn->nego.peer_offered, 1, __ATOMIC_RELEASE);

    /* Answer at once, so that a peer which only sends also switches to shared memory. (If a
     * send is in progress, the sender answers instead.) */
    if (conn->options.negotiate &&
        __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN &&
        pthread_mutex_trylock(&conn->send_lock) == 0) {
        if (__atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE) == SHMSOCK_OUT_PLAIN)
            (void)shmsock_conn_send_offer_event(conn, MSG_DONTWAIT);
        pthread_mutex_unlock(&conn->send_lock);
    }
    return 0;
}

int shmsock_conn_type(const struct shmsock_conn *conn)
{
    return conn->type;
}
