/*
 * fork.c - what fork() and the end of the process mean for the sockets this process holds
 * (see share.h for the rule).
 *
 * Registered when the first shm socket is made (not by a constructor: a static link leaves out
 * an object nothing calls), so it serves the shm_ calls and the preload alike.
 * vfork() runs no handlers: its child shares our memory and may only exec or _exit, and
 * execve hands sockets over explicitly (shmsock_share_hand_over).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>

#include "fd_table.h"
#include "fork.h"
#include "share.h"

static void count_fork(struct shmsock_socket *socket, void *arg)
{
    (void)arg;
    shmsock_share_before_fork(socket);
}

/* The table stays locked until the fork is done: a socket made in between would have no
 * record, and both processes would think they hold it alone. */
static void before_fork(void)
{
    shmsock_fd_table_lock();
    shmsock_fd_for_each_socket(count_fork, NULL);
}

static void after_fork_in_parent(void)
{
    shmsock_fd_table_unlock();
}

static void joined(struct shmsock_socket *socket, void *arg)
{
    (void)arg;
    shmsock_share_joined(socket->share);
}

static void after_fork_in_child(void)
{
    shmsock_share_after_fork_child();
    shmsock_fd_for_each_socket(joined, NULL);
    shmsock_fd_table_unlock();
}

static void leave(struct shmsock_socket *socket, void *arg)
{
    (void)arg;
    shmsock_share_leave(socket->share);
    socket->share = NULL; /* left once, even if a later destructor closes the socket */
}

/* exit(): this process holds none of its sockets any more (after an _exit or a crash the
 * others find out later, by its process id: shmsock_share_use). */
static void leave_at_exit(void)
{
    shmsock_fd_table_lock();
    shmsock_fd_for_each_socket(leave, NULL);
    shmsock_fd_table_unlock();
}

static void register_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
    atexit(leave_at_exit);
}

void shmsock_fork_watch(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_handlers);
}
