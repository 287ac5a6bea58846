/* fd_table.c - see fd_table.h. */
#include "fd_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* Two levels, so the table never moves: 1024 pages of 1024 descriptors. */
#define PAGE_BITS 10
#define PAGE_SIZE_ENTRIES (1u << PAGE_BITS)
#define PAGE_COUNT 1024u

static struct shmsock_entry **pages[PAGE_COUNT];
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;

static struct shmsock_entry **slot(int fd, int create)
{
    if (fd < 0)
        return NULL;
    unsigned page = (unsigned)fd >> PAGE_BITS;
    if (page >= PAGE_COUNT)
        return NULL;
    if (pages[page] == NULL) {
        if (!create)
            return NULL;
        pages[page] = calloc(PAGE_SIZE_ENTRIES, sizeof(*pages[page]));
        if (pages[page] == NULL)
            return NULL;
    }
    return &pages[page][(unsigned)fd & (PAGE_SIZE_ENTRIES - 1)];
}

void shmsock_fd_put(struct shmsock_entry *entry)
{
    if (entry != NULL && __atomic_sub_fetch(&entry->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        shmsock_conn_destroy(entry->conn);
        free(entry);
    }
}

int shmsock_fd_install(int fd, struct shmsock_conn *conn)
{
    struct shmsock_entry *entry = malloc(sizeof(*entry));
    if (entry == NULL)
        return -ENOMEM;
    entry->refs = 1;
    entry->conn = conn;
    pthread_rwlock_wrlock(&table_lock);
    struct shmsock_entry **s = slot(fd, 1);
    struct shmsock_entry *stale = NULL;
    if (s != NULL) {
        stale = *s; /* left by a close() that bypassed shm_close() */
        *s = entry;
    }
    pthread_rwlock_unlock(&table_lock);
    if (s == NULL) {
        free(entry);
        return -ENOMEM;
    }
    shmsock_fd_put(stale);
    return 0;
}

struct shmsock_entry *shmsock_fd_get(int fd)
{
    pthread_rwlock_rdlock(&table_lock);
    struct shmsock_entry **s = slot(fd, 0);
    struct shmsock_entry *entry = s != NULL ? *s : NULL;
    if (entry != NULL)
        __atomic_add_fetch(&entry->refs, 1, __ATOMIC_ACQ_REL);
    pthread_rwlock_unlock(&table_lock);
    return entry;
}

void shmsock_fd_remove(int fd)
{
    pthread_rwlock_wrlock(&table_lock);
    struct shmsock_entry **s = slot(fd, 0);
    struct shmsock_entry *entry = s != NULL ? *s : NULL;
    if (s != NULL)
        *s = NULL;
    pthread_rwlock_unlock(&table_lock);
    shmsock_fd_put(entry);
}
