/*
 * fd_table.h - which descriptors are shm sockets, and their connection state.
 *
 * Indexed by descriptor number. Several descriptors may name one socket (dup, dup2, dup3,
 * F_DUPFD): each has its own entry, and the entries share one struct shmsock_socket, which
 * holds the connection. Lookups take a reference so that a shm_close() in another thread
 * cannot free a connection still in use; the state is freed when the last reference of the
 * last descriptor goes. Lookups take no lock (see fd_table.c).
 */
#ifndef SHMSOCK_API_FD_TABLE_H
#define SHMSOCK_API_FD_TABLE_H

#include "../impl/engine.h"

struct shmsock_share;

/* One socket (one open file description) as this process knows it. */
struct shmsock_socket {
    int names; /* atomic: the entries (descriptors) that point here */
    struct shmsock_conn *conn;
    struct shmsock_share *share; /* which processes hold it; NULL until a fork (sharing.c) */
    int kernel_only_here;        /* atomic: negotiation turned off here because it is shared */
    int listening;               /* atomic: shm_listen succeeded on it */
    int given_away; /* atomic: passed untouched with SCM_RIGHTS (share.c): 1 while the send is
                       under way, 2 once it went (this process's calls then EOPNOTSUPP) */
    unsigned visit; /* a walk of the table that has seen it (under table_lock) */
    struct shmsock_socket *next_dead; /* in the graveyard, once its last descriptor closed */
};

struct shmsock_entry {
    int refs; /* atomic: the table's reference while installed, plus one per lookup */
    struct shmsock_conn *conn; /* socket->conn, for the callers' convenience */
    struct shmsock_socket *socket;
    struct shmsock_entry *next_free; /* in the free list once refs has reached zero */
};

/* Register a new shm socket (any stale entry for that number is dropped). 0 or -errno. */
int shmsock_fd_install(int fd, struct shmsock_conn *conn);

/* newfd now names the same socket as oldfd (after a successful dup of oldfd to newfd); any
 * entry newfd had is dropped (the kernel closed that descriptor). Returns 1 if oldfd is a shm
 * socket, 0 if not (newfd is then forgotten too), or -ENOMEM. */
int shmsock_fd_alias(int oldfd, int newfd);

/* The entry for fd with a reference taken, or NULL if fd is not a shm socket. */
struct shmsock_entry *shmsock_fd_get(int fd);

/* Drop a reference taken by shmsock_fd_get. */
void shmsock_fd_put(struct shmsock_entry *entry);

/* Forget fd (shm_close). If another descriptor still names its socket, the connection uses that
 * descriptor from now on; the socket's state goes with its last descriptor. */
void shmsock_fd_remove(int fd);

/* Whether another descriptor than entry's names the same socket. */
bool shmsock_fd_has_other_names(const struct shmsock_entry *entry);

/* Call visit(socket, arg) once for every socket in the table. The caller holds the table's
 * lock (shmsock_fd_table_lock), so no descriptor is added or removed meanwhile; visit must not
 * call back into the table. */
void shmsock_fd_for_each_socket(void (*visit)(struct shmsock_socket *socket, void *arg), void *arg);

/* Call visit(fd, socket, arg) for every descriptor in the table (a socket with several
 * descriptors comes once for each). Same rules as shmsock_fd_for_each_socket. */
void shmsock_fd_for_each_descriptor(void (*visit)(int fd, struct shmsock_socket *socket, void *arg),
                                    void *arg);

/* Lock or unlock the table: around a walk, and around fork() (a socket made between the walk
 * and the fork would be missed; the child must not inherit the lock held). */
void shmsock_fd_table_lock(void);
void shmsock_fd_table_unlock(void);

#endif
