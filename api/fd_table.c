/*
 * fd_table.c - see fd_table.h.
 *
 * Lookups take no lock: every call on a shm socket does one, so it costs one atomic
 * increment. That is safe because entries are never given back to malloc: a lookup that
 * races with shm_close() may touch an entry that has just been removed, sees that its
 * reference count is zero or that the slot now holds something else, and lets go. Removed
 * entries wait in a free list for the next shm socket.
 *
 * Closing is async-signal-safe (shm_close may run in a signal handler that interrupted any
 * call of ours, malloc included): removal is an atomic exchange, entries go back to the free
 * list with a compare-and-swap push (pops are serialised by table_lock, so no ABA), and the
 * last reference of a socket unmaps and closes its resources at once but leaves its memory in
 * a graveyard, freed by the next socket made (where malloc is allowed anyway).
 */
#include "fd_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "share.h"

/* Two levels, so the table never moves: 1024 pages of 1024 descriptors. */
#define PAGE_BITS 10
#define PAGE_SIZE_ENTRIES (1u << PAGE_BITS)
#define PAGE_COUNT 1024u

static struct shmsock_entry **pages[PAGE_COUNT];               /* atomic pointers, set once */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER; /* installs, removals, free list */
static struct shmsock_entry *free_entries; /* atomic push; pop under table_lock */
static struct shmsock_socket *graveyard;   /* atomic push; taken whole by bury_the_dead */
static unsigned walks;                     /* under table_lock */

/* The slot of fd, or NULL if fd is out of range or its page does not exist (and !create). */
static struct shmsock_entry **slot(int fd, int create)
{
    if (fd < 0)
        return NULL;
    unsigned page = (unsigned)fd >> PAGE_BITS;
    if (page >= PAGE_COUNT)
        return NULL;
    struct shmsock_entry **entries = __atomic_load_n(&pages[page], __ATOMIC_ACQUIRE);
    if (entries == NULL) {
        if (!create) /* table_lock is held when create is set */
            return NULL;
        entries = calloc(PAGE_SIZE_ENTRIES, sizeof(*entries));
        if (entries == NULL)
            return NULL;
        __atomic_store_n(&pages[page], entries, __ATOMIC_RELEASE);
    }
    return &entries[(unsigned)fd & (PAGE_SIZE_ENTRIES - 1)];
}

/* The last descriptor of a socket has gone: so does its state in this process (its memory
 * at the next socket made, see the top of the file). */
static void socket_put(struct shmsock_socket *socket)
{
    if (__atomic_sub_fetch(&socket->names, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    shmsock_share_leave(socket->share);
    shmsock_conn_close_resources(socket->conn);
    socket->next_dead = __atomic_load_n(&graveyard, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(&graveyard, &socket->next_dead, socket, true,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

/* Free the memory of the sockets that have gone (never from a signal handler). */
static void bury_the_dead(void)
{
    struct shmsock_socket *dead = __atomic_exchange_n(&graveyard, NULL, __ATOMIC_ACQ_REL);
    while (dead != NULL) {
        struct shmsock_socket *next = dead->next_dead;
        shmsock_conn_destroy(dead->conn);
        free(dead);
        dead = next;
    }
}

static void push_free_entry(struct shmsock_entry *entry)
{
    entry->next_free = __atomic_load_n(&free_entries, __ATOMIC_ACQUIRE);
    while (!__atomic_compare_exchange_n(&free_entries, &entry->next_free, entry, true,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}

void shmsock_fd_put(struct shmsock_entry *entry)
{
    if (entry == NULL || __atomic_sub_fetch(&entry->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The last reference: nobody can take a new one (lookups only add to a non-zero count). */
    socket_put(entry->socket);
    entry->socket = NULL;
    entry->conn = NULL;
    push_free_entry(entry);
}

/* Put socket in slot fd (table_lock held); *stale gets what the slot held. 0 or -ENOMEM. */
static int put_in_slot(int fd, struct shmsock_socket *socket, struct shmsock_entry **stale)
{
    struct shmsock_entry **s = slot(fd, 1);
    struct shmsock_entry *entry = __atomic_load_n(&free_entries, __ATOMIC_ACQUIRE);
    while (entry != NULL &&
           !__atomic_compare_exchange_n(&free_entries, &entry, entry->next_free, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    if (entry == NULL)
        entry = malloc(sizeof(*entry));
    if (s == NULL || entry == NULL) {
        if (entry != NULL)
            push_free_entry(entry);
        return -ENOMEM;
    }
    entry->socket = socket;
    entry->conn = socket->conn;
    entry->next_free = NULL;
    __atomic_store_n(&entry->refs, 1, __ATOMIC_RELEASE); /* the table's reference */
    /* What was there: left by a close() that bypassed shm_close(), or a dup over it. */
    *stale = __atomic_exchange_n(s, entry, __ATOMIC_ACQ_REL);
    return 0;
}

int shmsock_fd_install(int fd, struct shmsock_conn *conn)
{
    bury_the_dead();
    struct shmsock_socket *socket = calloc(1, sizeof(*socket));
    if (socket == NULL)
        return -ENOMEM;
    socket->names = 1;
    socket->conn = conn;
    struct shmsock_entry *stale = NULL;
    pthread_mutex_lock(&table_lock);
    int err = put_in_slot(fd, socket, &stale);
    pthread_mutex_unlock(&table_lock);
    if (err < 0)
        free(socket);
    shmsock_fd_put(stale);
    return err;
}

int shmsock_fd_alias(int oldfd, int newfd)
{
    struct shmsock_entry *old = shmsock_fd_get(oldfd);
    if (old == NULL) {
        shmsock_fd_remove(newfd); /* the kernel closed what newfd was */
        return 0;
    }
    struct shmsock_entry *stale = NULL;
    __atomic_add_fetch(&old->socket->names, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&table_lock);
    int err = put_in_slot(newfd, old->socket, &stale);
    pthread_mutex_unlock(&table_lock);
    if (err < 0)
        __atomic_sub_fetch(&old->socket->names, 1, __ATOMIC_ACQ_REL); /* oldfd still names it */
    if (stale != NULL && stale->socket != old->socket)
        shmsock_conn_socket_closed(stale->conn); /* dup2 over a shm socket closed it */
    shmsock_fd_put(stale);
    shmsock_fd_put(old);
    return err < 0 ? err : 1;
}

struct shmsock_entry *shmsock_fd_get(int fd)
{
    struct shmsock_entry **s = slot(fd, 0);
    if (s == NULL)
        return NULL;
    for (;;) {
        struct shmsock_entry *entry = __atomic_load_n(s, __ATOMIC_ACQUIRE);
        if (entry == NULL)
            return NULL;
        /* Take a reference only while the count is not zero: a zero count is an entry
         * being freed, which a lookup must never bring back. */
        int refs = __atomic_load_n(&entry->refs, __ATOMIC_ACQUIRE);
        while (refs > 0 && !__atomic_compare_exchange_n(&entry->refs, &refs, refs + 1, false,
                                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        }
        if (refs > 0) {
            if (__atomic_load_n(s, __ATOMIC_ACQUIRE) == entry)
                return entry;
            shmsock_fd_put(entry); /* removed (and maybe reused) meanwhile */
        }
        /* The slot changed under us: look again (it is NULL or a newer entry by now). */
    }
}

/* Another descriptor naming socket, other than fd, or -1. */
static int other_name(const struct shmsock_socket *socket, int fd)
{
    for (unsigned page = 0; page < PAGE_COUNT; page++) {
        struct shmsock_entry **entries = __atomic_load_n(&pages[page], __ATOMIC_ACQUIRE);
        for (unsigned i = 0; entries != NULL && i < PAGE_SIZE_ENTRIES; i++) {
            int candidate = (int)((page << PAGE_BITS) | i);
            struct shmsock_entry *entry = __atomic_load_n(&entries[i], __ATOMIC_ACQUIRE);
            if (entry != NULL && entry->socket == socket && candidate != fd)
                return candidate;
        }
    }
    return -1;
}

bool shmsock_fd_has_other_names(const struct shmsock_entry *entry)
{
    return __atomic_load_n(&entry->socket->names, __ATOMIC_ACQUIRE) > 1;
}

void shmsock_fd_remove(int fd)
{
    /* No lock (async-signal-safe): the number is still open, so nothing installs on it. */
    struct shmsock_entry **s = slot(fd, 0);
    struct shmsock_entry *entry = s != NULL ? __atomic_exchange_n(s, NULL, __ATOMIC_ACQ_REL) : NULL;
    if (entry != NULL && __atomic_load_n(&entry->socket->names, __ATOMIC_ACQUIRE) > 1) {
        /* Before the kernel closes fd: the connection's own calls must not use a number
         * that may name something else a moment later. */
        int other = other_name(entry->socket, fd);
        if (other >= 0)
            shmsock_conn_rename(entry->conn, other);
    }
    shmsock_fd_put(entry);
}

void shmsock_fd_for_each_socket(void (*visit)(struct shmsock_socket *socket, void *arg), void *arg)
{
    unsigned walk = ++walks;
    for (unsigned page = 0; page < PAGE_COUNT; page++) {
        struct shmsock_entry **entries = __atomic_load_n(&pages[page], __ATOMIC_ACQUIRE);
        for (unsigned i = 0; entries != NULL && i < PAGE_SIZE_ENTRIES; i++) {
            struct shmsock_entry *entry = entries[i];
            if (entry == NULL || entry->socket->visit == walk)
                continue;
            entry->socket->visit = walk;
            visit(entry->socket, arg);
        }
    }
}

void shmsock_fd_for_each_descriptor(void (*visit)(int fd, struct shmsock_socket *socket, void *arg),
                                    void *arg)
{
    for (unsigned page = 0; page < PAGE_COUNT; page++) {
        struct shmsock_entry **entries = __atomic_load_n(&pages[page], __ATOMIC_ACQUIRE);
        for (unsigned i = 0; entries != NULL && i < PAGE_SIZE_ENTRIES; i++) {
            if (entries[i] != NULL)
                visit((int)((page << PAGE_BITS) | i), entries[i]->socket, arg);
        }
    }
}

void shmsock_fd_table_lock(void)
{
    pthread_mutex_lock(&table_lock);
}

void shmsock_fd_table_unlock(void)
{
    pthread_mutex_unlock(&table_lock);
}
