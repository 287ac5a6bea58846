/*
 * locks.h - a connection's four locks, their order, and debug checks of both.
 *
 * The order, outermost first: send_lock, recv_lock, producer_lock, region_lock. A thread
 * waits for a lock only while it holds none later in the order, so no two threads ever wait
 * for each other. Two places need a lock earlier in the order while they hold a later one;
 * both only *try* it, and a failed try has a meaning of its own, never a wait:
 *   - a sender (send_lock) tries recv_lock to learn that no read is in progress, so that
 *     every later read is careful (negotiation.c);
 *   - a reader (recv_lock) tries send_lock to make our region before it sleeps; a send in
 *     progress makes it anyway (negotiation.c).
 * An answer to the peer's offer that a read found is sent after the read has let recv_lock go,
 * with a try of send_lock; if that fails, the holder of send_lock sends it when it lets go
 * (shmsock_negotiation_unlock_send).
 *
 * In debug builds (NDEBUG not defined) every take and release is checked against the order,
 * and shmsock_assert_held() checks that the calling thread holds a lock it needs. The check
 * keeps one bit per lock kind for the calling thread: one thread works on one connection at
 * a time, which every engine call does.
 */
#ifndef SHMSOCK_IMPL_LOCKS_H
#define SHMSOCK_IMPL_LOCKS_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>

#include "conn.h"

enum shmsock_lock_kind {
    SHMSOCK_SEND_LOCK = 1u << 0,
    SHMSOCK_RECV_LOCK = 1u << 1,
    SHMSOCK_PRODUCER_LOCK = 1u << 2,
    SHMSOCK_REGION_LOCK = 1u << 3,
};

#ifndef NDEBUG
/* The locks (enum shmsock_lock_kind bits) the calling thread holds (locks.c). */
extern _Thread_local unsigned shmsock_locks_held;
#endif

static inline pthread_mutex_t *shmsock_mutex(struct shmsock_conn *conn, enum shmsock_lock_kind kind)
{
    switch (kind) {
    case SHMSOCK_SEND_LOCK:
        return &conn->send_lock;
    case SHMSOCK_RECV_LOCK:
        return &conn->recv_lock;
    case SHMSOCK_PRODUCER_LOCK:
        return &conn->producer_lock;
    case SHMSOCK_REGION_LOCK:
    default:
        return &conn->region_lock;
    }
}

/* Take a lock, waiting: only while no lock later in the order (or this one) is held. */
static inline void shmsock_lock(struct shmsock_conn *conn, enum shmsock_lock_kind kind)
{
#ifndef NDEBUG
    /* kind is one bit: every bit from it up is this lock or a later one. */
    assert((shmsock_locks_held & ~(kind - 1u)) == 0 && "lock order: see impl/locks.h");
#endif
    pthread_mutex_lock(shmsock_mutex(conn, kind));
#ifndef NDEBUG
    shmsock_locks_held |= kind;
#endif
}

/* Try a lock without waiting (allowed in any order). Returns whether it was taken. */
static inline bool shmsock_trylock(struct shmsock_conn *conn, enum shmsock_lock_kind kind)
{
    if (pthread_mutex_trylock(shmsock_mutex(conn, kind)) != 0)
        return false;
#ifndef NDEBUG
    shmsock_locks_held |= kind;
#endif
    return true;
}

static inline void shmsock_unlock(struct shmsock_conn *conn, enum shmsock_lock_kind kind)
{
#ifndef NDEBUG
    assert((shmsock_locks_held & kind) != 0 && "unlocking a lock this thread does not hold");
    shmsock_locks_held &= ~(unsigned)kind;
#endif
    pthread_mutex_unlock(shmsock_mutex(conn, kind));
}

/* Debug builds: the calling thread holds the lock `kind` (a function that needs it says so). */
static inline void shmsock_assert_held(enum shmsock_lock_kind kind)
{
#ifndef NDEBUG
    assert((shmsock_locks_held & kind) != 0 && "a lock this function needs is not held");
#else
    (void)kind;
#endif
}

#endif
