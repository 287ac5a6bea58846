/*
 * fork.h - fork() and exit() as the sockets of this process see them (fork.c).
 */
#ifndef SHMSOCK_API_FORK_H
#define SHMSOCK_API_FORK_H

/* Make sure fork() counts this process's sockets as held by the child too, and exit() lets
 * them go (share.h). Called for every new shm socket; only the first call does anything. */
void shmsock_fork_watch(void);

#endif
