/*
 * fd_table.h - which descriptors are shm sockets, and their connection state.
 *
 * Indexed by descriptor number. Lookups take a reference so that a shm_close() in another
 * thread cannot free a connection still in use; the state is freed when the last reference
 * goes. Lookups take no lock (see fd_table.c).
 */
#ifndef SHMSOCK_API_FD_TABLE_H
#define SHMSOCK_API_FD_TABLE_H

#include "../impl/engine.h"

struct shmsock_entry {
    int refs; /* atomic: the table's reference while installed, plus one per lookup */
    struct shmsock_conn *conn;
    struct shmsock_entry *next_free; /* in the free list once refs has reached zero */
};

/* Register a new shm socket (any stale entry for that number is dropped). 0 or -errno. */
int shmsock_fd_install(int fd, struct shmsock_conn *conn);

/* The entry for fd with a reference taken, or NULL if fd is not a shm socket. */
struct shmsock_entry *shmsock_fd_get(int fd);

/* Drop a reference taken by shmsock_fd_get. */
void shmsock_fd_put(struct shmsock_entry *entry);

/* Forget fd (shm_close); its state goes when the last reference does. */
void shmsock_fd_remove(int fd);

#endif
