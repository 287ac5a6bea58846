/*
 * conn.h - one shm connection: the engine behind a connected AF_UNIX STREAM/SEQPACKET socket.
 *
 * The state of a connection, grouped by the unit that owns each part (docs/DESIGN.md, "The
 * engine"): options, negotiation (negotiation.c), our direction (producer.c), the peer's
 * direction (consumer.c; its event source, events_ring.c or events_kernel.c; event_copy.c), the
 * wake-up (wakeup.c) and liveness (liveness.c). api/ sees none of it: it calls engine.h.
 */
#ifndef SHMSOCK_IMPL_CONN_H
#define SHMSOCK_IMPL_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "busy_poll.h"
#include "engine.h"
#include "event.h"
#include "region.h"
#include "shmsock.h"
#include "token_list.h"

/* Most tokens a producer keeps out at once: keeps the kernel queues of events and releases
 * (278 records each on these machines) from ever filling. */
#define SHMSOCK_MAX_TOKENS_IN_FLIGHT 128u

/* Flags of the application's call that we pass to our own kernel calls. */
#define SHMSOCK_PASSED_FLAGS (MSG_DONTWAIT | MSG_CMSG_CLOEXEC)

/* Most releases a STREAM consumer collects before it writes them in one go. */
#define SHMSOCK_RELEASE_BATCH 16u

enum shmsock_out_state {
    SHMSOCK_OUT_PLAIN,   /* payload through the kernel socket, no offer sent yet */
    SHMSOCK_OUT_OFFERED, /* our offer is out; still plain until the peer's offer has come and
                          * its reader is careful */
    SHMSOCK_OUT_SHM,     /* payload through blocks; events on the kernel socket */
};

enum shmsock_in_state {
    SHMSOCK_IN_PLAIN,      /* no offer from the peer: everything read is payload */
    SHMSOCK_IN_TRANSITION, /* the peer's region is known; its switch point not reached */
    SHMSOCK_IN_EVENTS,     /* everything the kernel socket brings is an event record */
};

/* A view the application holds: where it points and which run of the peer it pins. */
struct shmsock_view {
    const void *at;
    struct shmsock_event data;
};

/* Socket options of the connection (SOL_SHMSOCK), fixed once negotiation starts (busy_poll_us
 * and passcred may change). */
struct shmsock_options {
    int negotiate;
    int decline_offers;   /* atomic: negotiation off for good because the socket is shared; the
                             peer's offers are closed unanswered (shmsock_conn_decline_offers) */
    int negotiation_held; /* atomic: other processes hold the socket for now: no offer and no
                             answer leaves (shmsock_conn_hold_negotiation) */
    uint32_t block_size;
    int coalesce;     /* our direction uses coalesced mode (SHM_COALESCE) */
    int busy_poll_us; /* spin at most this long on the ring before sleeping (SHM_BUSY_POLL;
                         adaptive: busy_poll.h) */
    int region_size;  /* bytes of blocks (SHM_REGION_SIZE); 0: follow SO_SNDBUF */
    int passcred;     /* SO_PASSCRED is on: ask the peer for kernel events */
    int inq;          /* atomic: SO_INQ is on (ours: the kernel socket's stays off) */
    int peek_off;     /* atomic: the application set SO_PEEK_OFF: our own reads of the kernel
                         socket keep its offset out of their way (conn_recv.c) */
};

/* Negotiation (negotiation.c): where each direction is on its way to shared memory. */
struct shmsock_negotiation {
    int out_state; /* enum shmsock_out_state; atomic loads/stores */
    uint64_t plain_sent;
    int reader_careful; /* atomic: we set reader_careful in our region header */
    int peer_offered;   /* atomic: the peer's region is attached */
    int in_state;       /* enum shmsock_in_state */
    uint64_t plain_received;
    bool asked_to_prepare; /* a first read that waited asked for our region (recv_lock) */
    bool peer_switch_known;
    uint64_t peer_switch;
    dev_t peer_region_dev;
    ino_t peer_region_ino;
    /* An answer to our offer that the release intake found (producer_lock): its region and
     * what recognising it learned, until negotiation takes it (answer_waiting, atomic). */
    bool answer_waiting;
    bool answer_owed; /* atomic: the peer offered first; our answer is due (send_lock) */
    int answer_fds[2];
    struct shmsock_region_candidate answer;
};

/* Our direction (producer.c): our region, its token list, the release intake, reservation. */
struct shmsock_producer {
    struct shmsock_region own;
    struct shmsock_producer_list tokens;
    int release_rx;      /* where the peer's RELEASE events for our blocks arrive (the same
                            descriptor as the consumer's peer_release_fd when one channel
                            serves both) */
    int release_offered; /* the other end of that channel, until it has been offered */
    bool release_closed; /* the peer's end of the release channel is gone */
    unsigned char release_partial[32];
    size_t release_partial_len;
    uint32_t want_blocks;      /* blocks the last starved send needed (for shm_poll) */
    int sndbuf;                /* SO_SNDBUF when the region was made: bounds SEQPACKET messages */
    uint32_t send_mode;        /* SHMSOCK_SEND_MODE_* of our direction once switched */
    bool releases_by_ring;     /* the peer returns our blocks through its release ring */
    uint64_t release_tail;     /* next entry of the peer's release ring to read */
    int shut_wr;               /* atomic: shutdown(SHUT_WR) was called here */
    uint32_t peer_closes_seen; /* the peer's socket_closes when we last asked the kernel */
    int64_t last_probe_us;     /* when coalesced sends last asked the kernel about the peer */
    /* Zero-copy send: the one outstanding reservation. */
    void *zc_buf;
    size_t zc_len;
    uint32_t zc_token;
    uint32_t zc_blocks;
    bool zc_bounce; /* not on shared memory: zc_buf is our heap buffer */
};

/* The peer's direction (consumer.c): its region, our token list of it, views, releases. */
struct shmsock_consumer {
    struct shmsock_region peer;
    struct shmsock_consumer_list tokens;
    int peer_release_fd; /* where we send RELEASE events for the peer's blocks */
    /* STREAM: releases not sent yet (sent in one write once the queue looks drained). */
    struct shmsock_event *pending_release;
    size_t pending_count;
    bool seen_event;             /* an event record was consumed (OFFER only comes first) */
    bool peer_coalesced;         /* the peer's events come through its ring (event source) */
    bool release_by_ring;        /* we return the peer's blocks through our release ring */
    uint64_t event_tail;         /* next entry of the peer's event ring to read */
    uint64_t head_consumed;      /* STREAM: bytes of the head DATA event already read */
    bool head_control_delivered; /* its ancillary data went to the application already */
    uint32_t peer_closes_read;   /* the peer's socket_closes when a read last asked */
    int shut_rd;                 /* atomic: shutdown(SHUT_RD) was called here */
    /* Zero-copy receive: views held by the application (SHMSOCK_MAX_TOKENS_IN_FLIGHT). */
    struct shmsock_view *views;
    size_t view_count;
    unsigned char *bounce_view; /* not on shared memory: one copied view (64 KiB) */
    bool bounce_view_held;
};

/* The wake-up (wakeup.c): arms and doorbells of coalesced mode, both directions. */
struct shmsock_wakeup {
    /* As producer (send_lock): */
    uint64_t last_event_doorbell; /* the peer's event_arm we last rang for */
    bool doorbell_deferred;       /* MSG_MORE held back a doorbell */
    bool doorbell_owed;           /* a doorbell found the kernel queue full: ring again */
    uint64_t release_arm_gen;     /* our arm generation for releases (producer_lock) */
    /* As consumer (recv_lock): */
    uint64_t event_arm_gen;         /* our arm generation for the peer's events */
    uint64_t doorbells_cleared;     /* every doorbell with 1 + generation <= this is consumed */
    uint64_t head_doorbell;         /* 1 + generation of the doorbell a wait saw at the head of
                                       the kernel socket (0: not known) */
    uint64_t last_release_doorbell; /* the peer's release_arm we last rang for */
    bool releases_unsignalled;      /* releases pushed into our ring, release_arm not yet
                                       looked at after a fence */
};

/* Liveness and errors (liveness.c). */
struct shmsock_liveness {
    int error;          /* atomic: sticky protocol error (negative errno), 0 if none */
    int deferred_error; /* a kernel error (ECONNRESET) met by a read after it had taken data:
                           the next read reports it, once the data before it is read
                           (negative errno, 0: none; recv_lock) */
};

struct shmsock_scratch; /* scratch.h */

struct shmsock_conn {
    int fd;
    int type; /* SOCK_STREAM or SOCK_SEQPACKET */
    struct shmsock_options options;

    /* The lock order (outermost first): send_lock, recv_lock, producer_lock, region_lock.
     * A thread holding a later one never waits for an earlier one; see locks.h. */
    pthread_mutex_t send_lock;     /* one sender at a time: messages never interleave */
    pthread_mutex_t recv_lock;     /* one receiver at a time */
    pthread_mutex_t producer_lock; /* producer token list and release intake */
    /* Our region appearing and going (before it is offered), against the code that looks at
     * it without the send_lock: a read marking itself careful, options, SHM_INFO. Innermost
     * lock, never held over a blocking call. */
    pthread_mutex_t region_lock;

    struct shmsock_negotiation nego;
    struct shmsock_producer producer;
    struct shmsock_consumer consumer;
    struct shmsock_wakeup wakeup;
    struct shmsock_liveness live;
    struct shmsock_busy_poll busy_poll; /* whether our waits' spins pay (recv_lock) */
    struct shmsock_scratch *scratch;    /* large buffers, each part under its lock (scratch.h) */
};

/* ---- small helpers shared by the engine units ---- */

/* Flags read by threads that do not hold the lock their writer holds: atomic accesses. */
static inline bool shmsock_flag(const bool *flag)
{
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

static inline void shmsock_set_flag(bool *flag, bool value)
{
    __atomic_store_n(flag, value, __ATOMIC_RELEASE);
}

/* A monotonic clock in microseconds, cheap enough to read on every send (the TSC where the
 * machine has a usable one, else CLOCK_MONOTONIC). */
int64_t shmsock_now_us(void);

/* One step of a spin-wait: tells the CPU we are waiting (and lets a sibling thread run). */
static inline void shmsock_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A read that returns 0 without a message (end of stream, or nothing asked for) says so in
 * the application's msghdr as the kernel does: no ancillary data, no flags. */
static inline ssize_t shmsock_nothing_read(struct msghdr *user)
{
    user->msg_controllen = 0;
    user->msg_flags = 0;
    return 0;
}

/* Our region's header (writable) and the peer's (read-only): copy what you read of it. */
static inline struct shmsock_region_header *shmsock_own_header(struct shmsock_conn *conn)
{
    return conn->producer.own.base;
}

static inline const struct shmsock_region_header *shmsock_peer_header(struct shmsock_conn *conn)
{
    return conn->consumer.peer.base;
}

/* enum shmsock_out_state of our direction (read by threads that do not hold send_lock). */
static inline int shmsock_out_state(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->nego.out_state, __ATOMIC_ACQUIRE);
}

/* The sticky protocol error of the connection (negative errno), 0 if none. */
static inline int shmsock_conn_error(struct shmsock_conn *conn)
{
    return __atomic_load_n(&conn->live.error, __ATOMIC_ACQUIRE);
}

static inline void shmsock_close_fd(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* Where a read puts its bytes: the application's msghdr, from byte `skip` on. */
struct shmsock_read_target {
    struct msghdr *msg;     /* the application's */
    size_t skip;            /* bytes of msg_iov already filled (MSG_WAITALL loop) */
    size_t space;           /* bytes of msg_iov still free */
    bool offer_seen;        /* the read ended at the peer's offer (the kernel stops there) */
    bool batch_full;        /* the read ended at its own limit of events, not where data ended */
    bool rights_read;       /* the read brought the application's descriptors: it ends there */
    bool credentials_given; /* an earlier part of this read delivered credentials */
    bool at_peek_off;       /* a peek on the kernel path that starts at the application's
                               SO_PEEK_OFF: it is not continued past the peer's offer */
    bool again;             /* nothing read: the connection's state changed, read again (the
                               peer's events started, or moved to another event source) */
};

/* A read path's answer "the state changed, look again": 0 bytes, with target->again set. */
static inline ssize_t shmsock_read_again(struct shmsock_read_target *target)
{
    target->again = true;
    return 0;
}

/* The copying send and receive with their lock already held (conn_send.c, conn_recv.c), for
 * the zero-copy calls' fallback when the connection is not on shared memory. */
ssize_t shmsock_send_locked(struct shmsock_conn *conn, const struct msghdr *msg, int flags);
ssize_t shmsock_recv_locked(struct shmsock_conn *conn, struct msghdr *msg, int flags);

/* The application's SO_PEEK_OFF taken out of the kernel socket for the library's own reads
 * (returns it, or -1: none set, and then no system call if the application never set one),
 * and put back (conn_recv.c; recv_lock). */
int shmsock_recv_peek_off_take(struct shmsock_conn *conn);
void shmsock_recv_peek_off_put(struct shmsock_conn *conn, int off);

#endif
