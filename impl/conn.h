/*
 * conn.h - one shm connection: the engine behind a connected AF_UNIX STREAM/SEQPACKET socket.
 *
 * A connection owns our region (producer side), the peer's region mapped read-only (consumer
 * side), both token lists, the release channel, and the negotiation state. The facade in api/
 * calls these functions and turns their negative errno results into -1/errno.
 *
 * Directions. Our sends go through states PLAIN -> OFFERED -> SHM (or PLAIN -> SHM when the
 * peer offered first); the peer's sends, as we read them, through IN_PLAIN -> IN_TRANSITION
 * -> IN_EVENTS. See docs/PROTOCOL.md for the framing.
 */
#ifndef SHMSOCK_IMPL_CONN_H
#define SHMSOCK_IMPL_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "engine.h"
#include "event.h"
#include "region.h"
#include "shmsock.h"
#include "token_list.h"

/* Most tokens a producer keeps out at once: keeps the kernel queues of events and releases
 * (278 records each on these machines) from ever filling. */
#define SHMSOCK_MAX_TOKENS_IN_FLIGHT 128u

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
    uint32_t block_size;
    int coalesce;     /* our direction uses coalesced mode (SHM_COALESCE) */
    int busy_poll_us; /* spin this long on the ring before sleeping (SHM_BUSY_POLL) */
    int region_size;  /* bytes of blocks (SHM_REGION_SIZE); 0: follow SO_SNDBUF */
    int passcred;     /* SO_PASSCRED is on: ask the peer for kernel events */
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
    uint32_t want_blocks;   /* blocks the last starved send needed (for shm_poll) */
    int sndbuf;             /* SO_SNDBUF when the region was made: bounds SEQPACKET messages */
    uint32_t send_mode;     /* SHMSOCK_SEND_MODE_* of our direction once switched */
    bool releases_by_ring;  /* the peer returns our blocks through its release ring */
    uint64_t release_tail;  /* next entry of the peer's release ring to read */
    int shut_wr;            /* atomic: shutdown(SHUT_WR) was called here */
    uint32_t peer_closes_seen; /* the peer's socket_closes when we last asked the kernel */
    int64_t last_probe_us;  /* when coalesced sends last asked the kernel about the peer */
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
    bool seen_event;        /* an event record was consumed (OFFER only comes first) */
    bool peer_coalesced;    /* the peer's events come through its ring (event source) */
    bool release_by_ring;   /* we return the peer's blocks through our release ring */
    uint64_t event_tail;    /* next entry of the peer's event ring to read */
    uint64_t head_consumed; /* STREAM: bytes of the head DATA event already read */
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
};

/*
 * Whether the peer has read everything this side sent: since the switch every event went
 * through our ring, at least one did (so the plain bytes before it were read), and every token
 * has come back. Then a reset the kernel reports at the peer's close can only come from
 * doorbells left in its queue, which carry no data.
 */
bool shmsock_conn_peer_read_all(struct shmsock_conn *conn);

/* The kernel's error `err` for the socket, or 0 where it is a reset (-ECONNRESET) that only
 * doorbells caused (shmsock_conn_peer_read_all): the socket it replaces would report none. */
int shmsock_conn_kernel_reset(struct shmsock_conn *conn, int err);

/* The kernel's pending error for the socket, taken (SO_ERROR clears it, as the send or read
 * that reports it would), through shmsock_conn_kernel_reset: 0 or a negative errno. */
int shmsock_conn_socket_error(struct shmsock_conn *conn);

/* ---- shared between conn*.c only ---- */

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

/* A receive path's answer "the state changed, look again" (no errno is this large). */
#define SHMSOCK_RETRY ((ssize_t)-100000)

/* Where a read puts its bytes: the application's msghdr, from byte `skip` on. */
struct shmsock_read_target {
    struct msghdr *msg;     /* the application's */
    size_t skip;            /* bytes of msg_iov already filled (MSG_WAITALL loop) */
    size_t space;           /* bytes of msg_iov still free */
    bool offer_seen;        /* the read ended at the peer's offer (the kernel stops there) */
    bool batch_full;        /* the read ended at its own limit of events, not where data ended */
    bool rights_read;       /* the read brought the application's descriptors: it ends there */
    bool credentials_given; /* an earlier part of this read delivered credentials */
};

/* Coalesced mode (conn_coalesced.c). */
/* Push an event into our ring and ring the peer if it sleeps. Returns 0, or -EPIPE /
 * -ECONNRESET if the doorbell found the peer gone (the event is published all the same). */
int shmsock_coalesced_publish(struct shmsock_conn *conn, const struct shmsock_event *event,
                              int flags);
/* Whether the peer's consumer sleeps (armed, not spinning) and has not been rung for it: the
 * next event published without MSG_MORE rings it (send_lock held). */
bool shmsock_coalesced_doorbell_due(struct shmsock_conn *conn);
/* Ring the peer if it armed since we last rang (send_lock held). 0 or -EPIPE/-ECONNRESET. */
int shmsock_coalesced_ring_if_armed(struct shmsock_conn *conn);

/* Send one doorbell record for generation `gen` on `fd` (the kernel socket, or a release
 * channel). 0 if it went, -EAGAIN if the queue is full, -EPIPE/-ECONNRESET if the peer is
 * gone. */
int shmsock_doorbell_send(int fd, uint64_t gen);
void shmsock_coalesced_reclaim(struct shmsock_conn *conn);
void shmsock_coalesced_arm_for_releases(struct shmsock_conn *conn);
ssize_t shmsock_coalesced_recv(struct shmsock_conn *conn, struct shmsock_read_target *target,
                               int flags);
/* A STREAM peek that reached the peer's switch point before its events were read: copy the
 * payload of the events already in the peer's ring, without waiting or taking any. Returns
 * the bytes copied, or a negative errno (a bad event fails the connection). */
ssize_t shmsock_coalesced_peek_ahead(struct shmsock_conn *conn, struct shmsock_read_target *target);
/* Release a run of the peer's region (consumer side) through our release ring. */
void shmsock_conn_release_run(struct shmsock_conn *conn, const struct shmsock_event *data);

/* Take the next DATA event from the peer's ring for a view, holding its token: 1, 0 at end
 * of stream, SHMSOCK_RETRY if the peer moved to kernel events, or a negative errno. *start
 * is how much of it a copying read had already taken. */
int shmsock_coalesced_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                           uint64_t *start);

/* Give a run of the peer's region back at once, by ring or release channel (recv_lock). */
void shmsock_conn_return_run(struct shmsock_conn *conn, const struct shmsock_event *data);

/* Take the next DATA event from the kernel socket (event mode) for a view, holding its
 * token: 1, 0 at end of stream, SHMSOCK_RETRY, or a negative errno (recv_lock held). */
int shmsock_events_take(struct shmsock_conn *conn, int flags, struct shmsock_event *event,
                        uint64_t *start);

/* Send path pieces shared with zero-copy (conn_send.c; send_lock held). */
ssize_t shmsock_send_locked(struct shmsock_conn *conn, const struct msghdr *msg, int flags);
int64_t shmsock_reserve_blocks(struct shmsock_conn *conn, uint32_t blocks, int flags);
void shmsock_cancel_reservation(struct shmsock_conn *conn, uint32_t token, uint32_t blocks);
int shmsock_publish_run(struct shmsock_conn *conn, uint32_t token, uint32_t blocks, uint64_t length,
                        int flags);
size_t shmsock_message_limit(struct shmsock_conn *conn);

/* The result of a call that failed after the peer broke the protocol is the violation (EPROTO),
 * not what the shut-down socket said (EPIPE, which would also raise SIGPIPE). */
ssize_t shmsock_conn_result(struct shmsock_conn *conn, ssize_t r);

/* Record a protocol violation: the connection ends with err for this side and the peer. */
int shmsock_conn_fail(struct shmsock_conn *conn, int err);

/* The peer's offer arrived (fds[0] region, fds[1] release socket, or -1 for an answer that
 * shares our release channel; candidate what recognising the region learned); takes
 * ownership of fds. */
int shmsock_conn_accept_offer(struct shmsock_conn *conn, const int fds[2],
                              const struct shmsock_region_candidate *candidate);

/* Answer the peer's offer with an OFFER event on its release channel (send_lock held). */
int shmsock_conn_send_offer_event(struct shmsock_conn *conn, int flags);

/* Mark our reads careful (recv_lock held, or no read can be in progress). */
void shmsock_conn_mark_reader_careful(struct shmsock_conn *conn);

/* Our blind offer went out with a payload: we are OFFERED (send_lock held). */
void shmsock_conn_blind_offer_sent(struct shmsock_conn *conn);

/* Create our region if not done yet (send_lock held). */
int shmsock_conn_prepare_offer(struct shmsock_conn *conn);

/* Create our region and a release channel for a blind offer, if not done yet (send_lock
 * held). An answer needs no channel of its own: it shares the offerer's. */
int shmsock_conn_prepare_blind_offer(struct shmsock_conn *conn);

/* A read is about to wait for the peer's first message: make our region now, while the
 * peer works, rather than when its offer needs our answer. Options changed before anything
 * was offered drop it again. */
void shmsock_conn_prepare_while_waiting(struct shmsock_conn *conn);

#endif
