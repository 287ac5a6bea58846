/*
 * fd_table.c - see fd_table.h.
 *
 * Lookups take no lock: every call on a shm socket does one, so it costs one atomic
 * increment. That is safe because entries are never given back to malloc: a lookup that
 * races with shm_close() may touch an entry that has just been removed, sees that its
 * reference count is zero or that the slot now holds something else, and lets go. Removed
 * entries wait in a free list for the next shm socket.
 */
#include "fd_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* Two levels, so the table never moves: 1024 pages of 1024 descriptors. */
#define PAGE_BITS 10
#define PAGE_SIZE_ENTRIES (1u << PAGE_BITS)
#define PAGE_COUNT 1024u

static struct shmsock_entry **pages[PAGE_COUNT];               /* atomic pointers, set once */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER; /* installs, removals, free list */
static struct shmsock_entry *free_entries;                     /* under table_lock */

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

void shmsock_fd_put(struct shmsock_entry *entry)
{
    if (entry == NULL || __atomic_sub_fetch(&entry->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    /* The last reference: nobody can take a new one (lookups only add to a non-zero count). */
    shmsock_conn_destroy(entry->conn);
    entry->conn = NULL;
    pthread_mutex_lock(&table_lock);
    entry->next_free = free_entries;
    free_entries = entry;
    pthread_mutex_unlock(&table_lock);
}

int shmsock_fd_install(int fd, struct shmsock_conn *conn)
{
    pthread_mutex_lock(&table_lock);
    struct shmsock_entry **s = slot(fd, 1);
    struct shmsock_entry *entry = free_entries;
    if (entry != NULL)
        free_entries = entry->next_free;
    else
        entry = malloc(sizeof(*entry));
    if (s == NULL || entry == NULL) {
        if (entry != NULL) {
            entry->next_free = free_entries;
            free_entries = entry;
        }
        pthread_mutex_unlock(&table_lock);
        return -ENOMEM;
    }
    entry->conn = conn;
    entry->next_free = NULL;
    __atomic_store_n(&entry->refs, 1, __ATOMIC_RELEASE); /* the table's reference */
    struct shmsock_entry *stale = *s; /* left by a close() that bypassed shm_close() */
    __atomic_store_n(s, entry, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&table_lock);
    shmsock_fd_put(stale);
    return 0;
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

void shmsock_fd_remove(int fd)
{
    pthread_mutex_lock(&table_lock);
    struct shmsock_entry **s = slot(fd, 0);
    struct shmsock_entry *entry = s != NULL ? *s : NULL;
    if (s != NULL)
        __atomic_store_n(s, NULL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&table_lock);
    shmsock_fd_put(entry);
}
