/*
 * epoll.c - shm_epoll_create1, shm_epoll_ctl, shm_epoll_wait, shm_epoll_pwait,
 * shm_epoll_pwait2: epoll(7) where EPOLLOUT on a shm socket means a send would make progress.
 *
 * The kernel socket is writable while every block of the region is in use, so an epoll set
 * left alone would report EPOLLOUT at once, for ever (level-triggered: a spinning writer), or
 * never again (edge-triggered: the kernel socket's queue never filled). So a shm socket that
 * the program watches for EPOLLOUT gets a *watch*:
 *
 *   - its registration in the set carries our own data (a watch id), turned back into the
 *     program's data on the way out, so we always know which socket an event is for;
 *   - while the socket has no free block, its registration leaves EPOLLOUT out and the
 *     socket's release channel (shmsock_conn_space_fd) is registered in the set instead;
 *   - when releases come and a block is free, EPOLLOUT goes back into the socket's
 *     registration (a MOD, which also makes a new edge for EPOLLET), the release channel
 *     leaves, and the kernel reports the socket writable.
 *
 * Sockets watched without EPOLLOUT, and other descriptors, are the kernel's business alone.
 * Each set's watches are kept under one lock; no lock is held while the kernel waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>

#include "epoll_watch.h"
#include "fd_table.h"
#include "poll_wait.h"
#include "result.h"
#include "shmsock.h"

/* Our data in a registration: a prefix no pointer or descriptor number has (not a canonical
 * address), a bit for the release channel's registration, and the watch's id: a sequence
 * number above the socket's descriptor number, so that the watch is found by index and a
 * registration left from an earlier watch of the same number is told apart. */
#define WATCH_PREFIX (UINT64_C(0x5348) << 48)
#define WATCH_PREFIX_MASK (UINT64_C(0xffff) << 48)
#define WATCH_SPACE (UINT64_C(1) << 47)
#define WATCH_ID_MASK (WATCH_SPACE - 1)
#define WATCH_FD_MASK UINT64_C(0xffffffff)

struct watch {
    uint64_t id;       /* sequence << 32 | fd */
    int fd;            /* the shm socket */
    uint32_t events;   /* the program's events, EPOLLOUT among them */
    epoll_data_t data; /* the program's data */
    int space_fd;      /* the release channel, registered while no block is free; else -1 */
    bool disarmed;     /* EPOLLONESHOT and an event delivered: nothing until the program's MOD */
    struct watch *next, *prev;
};

struct epoll_set {
    int epfd;
    pthread_mutex_t lock; /* the watches */
    struct watch *watches;
    /* The same watches by descriptor number (a program that adds and removes EPOLLOUT around
     * every write looks one up several times per request: no walk of a list). */
    struct watch **by_fd;
    size_t by_fd_len;
    struct epoll_set *next;
};

static pthread_mutex_t sets_lock = PTHREAD_MUTEX_INITIALIZER;
static struct epoll_set *sets;      /* under sets_lock; sets are freed only by forget */
static uint64_t next_id;            /* (atomic) */
static struct epoll_set *dead_sets; /* closed sets, freed by the next find_set(create) */

static void free_dead_sets(void);

static struct epoll_set *find_set(int epfd, bool create)
{
    pthread_mutex_lock(&sets_lock);
    struct epoll_set *set = sets;
    while (set != NULL && set->epfd != epfd)
        set = set->next;
    if (set == NULL && create) {
        free_dead_sets();
        set = calloc(1, sizeof(*set));
        if (set != NULL) {
            set->epfd = epfd;
            pthread_mutex_init(&set->lock, NULL);
            set->next = sets;
            __atomic_store_n(&sets, set, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&sets_lock);
    return set;
}

static uint64_t new_id(int fd)
{
    uint64_t sequence = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    return ((sequence << 32) | ((uint64_t)fd & WATCH_FD_MASK)) & WATCH_ID_MASK;
}

static struct watch *watch_of_fd(struct epoll_set *set, int fd)
{
    return fd >= 0 && (size_t)fd < set->by_fd_len ? set->by_fd[fd] : NULL;
}

static struct watch *watch_of_id(struct epoll_set *set, uint64_t id)
{
    struct watch *w = watch_of_fd(set, (int)(id & WATCH_FD_MASK));
    return w != NULL && w->id == id ? w : NULL;
}

/* Room in by_fd for `fd`: 0 or -ENOMEM. */
static int make_room(struct epoll_set *set, int fd)
{
    if ((size_t)fd < set->by_fd_len)
        return 0;
    size_t len = set->by_fd_len > 0 ? set->by_fd_len : 64;
    while (len <= (size_t)fd)
        len *= 2;
    struct watch **grown = realloc(set->by_fd, len * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    for (size_t i = set->by_fd_len; i < len; i++)
        grown[i] = NULL;
    set->by_fd = grown;
    set->by_fd_len = len;
    return 0;
}

/* (make_room for w->fd has succeeded) */
static void link_watch(struct epoll_set *set, struct watch *w)
{
    w->prev = NULL;
    w->next = set->watches;
    if (w->next != NULL)
        w->next->prev = w;
    set->watches = w;
    set->by_fd[w->fd] = w;
}

static void unlink_watch(struct epoll_set *set, struct watch *gone)
{
    if (gone->prev != NULL)
        gone->prev->next = gone->next;
    else
        set->watches = gone->next;
    if (gone->next != NULL)
        gone->next->prev = gone->prev;
    if (set->by_fd[gone->fd] == gone)
        set->by_fd[gone->fd] = NULL;
}

/* The socket's registration with `events` and our data (MOD; an EPOLLEXCLUSIVE registration
 * cannot be modified, so it is made again). */
static int register_socket(struct epoll_set *set, struct watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u64 = WATCH_PREFIX | w->id};
    if (shmsock_libc.epoll_ctl(set->epfd, EPOLL_CTL_MOD, w->fd, &ev) == 0)
        return 0;
    if (errno != EINVAL || !(events & EPOLLEXCLUSIVE))
        return -errno;
    (void)shmsock_libc.epoll_ctl(set->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    return shmsock_libc.epoll_ctl(set->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0 ? 0 : -errno;
}

/* No block is free: watch the release channel instead of EPOLLOUT (set->lock held). */
static void wait_for_space(struct epoll_set *set, struct watch *w, int space_fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WATCH_PREFIX | WATCH_SPACE | w->id};
    if (shmsock_libc.epoll_ctl(set->epfd, EPOLL_CTL_ADD, space_fd, &ev) < 0 && errno != EEXIST)
        return; /* keep EPOLLOUT: a wake-up too many, never one too few */
    w->space_fd = space_fd;
    (void)register_socket(set, w, w->events & ~(uint32_t)EPOLLOUT);
}

/* A block is free again, or the watch ends: EPOLLOUT back in (set->lock held). */
static void stop_waiting_for_space(struct epoll_set *set, struct watch *w)
{
    if (w->space_fd < 0)
        return;
    (void)shmsock_libc.epoll_ctl(set->epfd, EPOLL_CTL_DEL, w->space_fd, NULL);
    w->space_fd = -1;
}

/* Before the kernel waits: a watched socket with no free block waits for releases instead
 * (this also catches a sender that met EAGAIN since the last wait, for EPOLLET). */
static void prepare(struct epoll_set *set)
{
    pthread_mutex_lock(&set->lock);
    for (struct watch *w = set->watches; w != NULL; w = w->next) {
        if (w->space_fd >= 0 || w->disarmed)
            continue;
        struct shmsock_entry *entry = shmsock_fd_get(w->fd);
        int space_fd = entry != NULL ? shmsock_conn_space_fd(entry->conn) : -1;
        shmsock_fd_put(entry);
        if (space_fd >= 0)
            wait_for_space(set, w, space_fd);
    }
    pthread_mutex_unlock(&set->lock);
}

/* The kernel's events turned into the program's: our data replaced, release channels
 * answered, EPOLLOUT of a socket with no free block taken out. Returns the count kept. */
static int translate(struct epoll_set *set, struct epoll_event *events, int n)
{
    int kept = 0;
    pthread_mutex_lock(&set->lock);
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = events[i];
        if ((ev.data.u64 & WATCH_PREFIX_MASK) != WATCH_PREFIX) {
            events[kept++] = ev; /* the program's own registration */
            continue;
        }
        struct watch *w = watch_of_id(set, ev.data.u64 & WATCH_ID_MASK);
        if (w == NULL)
            continue; /* its watch ended meanwhile (another thread's EPOLL_CTL_DEL) */
        struct shmsock_entry *entry = shmsock_fd_get(w->fd);
        if (ev.data.u64 & WATCH_SPACE) {
            /* A doorbell on the release channel: space, or still none (then space_fd takes
             * the doorbell out and asks for the next one, so the channel is quiet again). */
            if (entry == NULL || shmsock_conn_space_fd(entry->conn) < 0) {
                stop_waiting_for_space(set, w);
                if (!w->disarmed) /* the kernel says EPOLLOUT now */
                    (void)register_socket(set, w, w->events);
            }
            shmsock_fd_put(entry);
            continue;
        }
        int space_fd = -1;
        if (ev.events & EPOLLOUT) {
            space_fd = entry != NULL ? shmsock_conn_space_fd(entry->conn) : -1;
            if (space_fd >= 0)
                ev.events &= ~(uint32_t)EPOLLOUT;
        }
        shmsock_fd_put(entry);
        if (ev.events != 0) {
            ev.data = w->data;
            events[kept++] = ev;
            /* Delivered: a one-shot registration stays off until the program's MOD. */
            w->disarmed = (w->events & EPOLLONESHOT) != 0;
        }
        /* Nothing delivered: the (one-shot) registration must stay armed for the rest. */
        if (space_fd >= 0 && !w->disarmed)
            wait_for_space(set, w, space_fd);
    }
    pthread_mutex_unlock(&set->lock);
    return kept;
}

/* epoll_pwait2 with watches: wait again while every event was ours, until the deadline. */
static int wait_watched(struct epoll_set *set, struct epoll_event *events, int maxevents,
                        const struct timespec *timeout, const sigset_t *sigmask)
{
    int64_t deadline = shmsock_deadline(timeout);
    for (;;) {
        prepare(set);
        struct timespec left;
        int n = shmsock_libc.epoll_pwait2(set->epfd, events, maxevents,
                                          shmsock_time_left(deadline, &left), sigmask);
        if (n <= 0)
            return n;
        int kept = translate(set, events, n);
        if (kept > 0 || (deadline >= 0 && shmsock_now_ns() >= deadline))
            return kept;
    }
}

int shm_epoll_create1(int flags)
{
    return epoll_create1(flags);
}

int shm_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    struct shmsock_entry *entry = shmsock_fd_get(fd);
    bool wants_out = op != EPOLL_CTL_DEL && event != NULL && (event->events & EPOLLOUT);
    struct epoll_set *set = find_set(epfd, entry != NULL && wants_out);
    if (set == NULL) {
        shmsock_fd_put(entry);
        return shmsock_libc.epoll_ctl(epfd, op, fd, event);
    }
    pthread_mutex_lock(&set->lock);
    struct watch *w = watch_of_fd(set, fd); /* (a stale one: the number now names another) */
    int r;
    if (entry == NULL || !wants_out) {
        /* No watch (any more): the program's own registration. */
        r = shmsock_libc.epoll_ctl(epfd, op, fd, event);
        if (w != NULL && (r == 0 || op == EPOLL_CTL_DEL)) {
            stop_waiting_for_space(set, w);
            unlink_watch(set, w);
            free(w);
        }
    } else if (op == EPOLL_CTL_ADD || w == NULL) {
        struct watch *fresh = make_room(set, fd) == 0 ? calloc(1, sizeof(*fresh)) : NULL;
        if (fresh == NULL) {
            r = (int)shmsock_result(-ENOMEM);
        } else {
            *fresh = (struct watch){.id = new_id(fd),
                                    .fd = fd,
                                    .events = event->events,
                                    .data = event->data,
                                    .space_fd = -1};
            struct epoll_event ev = {.events = event->events, .data.u64 = WATCH_PREFIX | fresh->id};
            r = shmsock_libc.epoll_ctl(epfd, op, fd, &ev);
            if (r == 0) {
                if (w != NULL) { /* ADD after the kernel forgot a closed socket */
                    stop_waiting_for_space(set, w);
                    unlink_watch(set, w);
                    free(w);
                }
                link_watch(set, fresh);
            } else {
                free(fresh);
            }
        }
    } else { /* MOD of a watched socket */
        uint32_t events = event->events;
        if (w->space_fd >= 0)
            events &= ~(uint32_t)EPOLLOUT; /* still no free block */
        struct epoll_event ev = {.events = events, .data.u64 = WATCH_PREFIX | w->id};
        r = shmsock_libc.epoll_ctl(epfd, op, fd, &ev);
        if (r == 0) {
            w->events = event->events;
            w->data = event->data;
            w->disarmed = false;
        }
    }
    pthread_mutex_unlock(&set->lock);
    shmsock_fd_put(entry);
    return r;
}

int shm_epoll_pwait2(int epfd, struct epoll_event *events, int maxevents,
                     const struct timespec *timeout, const sigset_t *sigmask)
{
    struct epoll_set *set = find_set(epfd, false);
    if (set == NULL || maxevents <= 0)
        return shmsock_libc.epoll_pwait2(epfd, events, maxevents, timeout, sigmask);
    return wait_watched(set, events, maxevents, timeout, sigmask);
}

int shm_epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                    const sigset_t *sigmask)
{
    struct epoll_set *set = find_set(epfd, false);
    if (set == NULL || maxevents <= 0)
        return shmsock_libc.epoll_pwait(epfd, events, maxevents, timeout, sigmask);
    struct timespec ts = {.tv_sec = timeout / 1000, .tv_nsec = (long)(timeout % 1000) * 1000000};
    return wait_watched(set, events, maxevents, timeout >= 0 ? &ts : NULL, sigmask);
}

int shm_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
    return shm_epoll_pwait(epfd, events, maxevents, timeout, NULL);
}

void shmsock_epoll_forget(int epfd)
{
    if (__atomic_load_n(&sets, __ATOMIC_ACQUIRE) == NULL)
        return; /* every close() comes here: no lock while no set has watches */
    /* A try: shm_close is async-signal-safe. A set not forgotten only keeps a few bytes. */
    if (pthread_mutex_trylock(&sets_lock) != 0)
        return;
    struct epoll_set **p = &sets;
    while (*p != NULL && (*p)->epfd != epfd)
        p = &(*p)->next;
    struct epoll_set *set = *p;
    if (set != NULL)
        *p = set->next;
    pthread_mutex_unlock(&sets_lock);
    if (set == NULL)
        return;
    /* The kernel has dropped the set's registrations with it. A thread still waiting on the
     * closed set is the program's bug, as with the kernel's epoll. Its memory is not freed
     * here (free() is not async-signal-safe): it waits for the next set made. */
    set->next = __atomic_load_n(&dead_sets, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(&dead_sets, &set->next, set, true, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
    }
}

/* Free the sets that were closed (from find_set, where malloc is allowed). */
static void free_dead_sets(void)
{
    struct epoll_set *set = __atomic_exchange_n(&dead_sets, NULL, __ATOMIC_ACQ_REL);
    while (set != NULL) {
        struct epoll_set *next = set->next;
        while (set->watches != NULL) {
            struct watch *w = set->watches;
            set->watches = w->next;
            free(w);
        }
        free(set->by_fd);
        pthread_mutex_destroy(&set->lock);
        free(set);
        set = next;
    }
}
