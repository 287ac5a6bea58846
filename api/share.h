/*
 * share.h - which processes hold a socket, and which of them may run it over shared memory.
 *
 * After fork(), parent and child both hold every socket, each with its own copy of the
 * connection's state. The kernel lets both use it; two copies of our state cannot both drive
 * one connection over shared memory (each would hand out the same blocks and read the same
 * ring). Until a connection can be moved back to the kernel path with the peer's agreement,
 * the rule is:
 *
 *   - a socket that has not begun to negotiate is claimed by the first process that calls
 *     on it after a fork: our count of the plain bytes sent and received (which places the
 *     switch) is exact only while one process alone has used it. A call from a second
 *     process puts it on the kernel path for good, in every process (forked writers on one
 *     end, taking turns or at once);
 *   - while other processes still hold it, nothing leaves that would let the peer switch (no
 *     offer, no answer); the peer's offer may still be read, by the claimant, which answers
 *     once it holds the socket alone (socketpair, fork, each side closes the end it does not
 *     use; a server whose child reads before the parent has closed its copy);
 *   - a socket that has begun (or may now begin, because one process alone holds it) is used
 *     by the first process that touches it after each fork; a call from another process fails
 *     with EOPNOTSUPP (and is logged), never with data misread.
 *
 * The record of a socket lives in shared memory made before the fork, so every holder sees
 * it: a count of holders (one more at each fork, one less when a holder closes the socket or
 * exits), the holders' process ids (a holder that ended without either, by _exit or a crash,
 * or that exec'd a program which has ended since, is found by a holder that still waits for the
 * count to fall: at most every 20 ms, one kill(pid, 0) per holder), two flags, and the user since
 * the last fork. A socket is given one at its first fork; a process that never forks never has one
 * and pays nothing.
 */
#ifndef SHMSOCK_API_SHARE_H
#define SHMSOCK_API_SHARE_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "fd_table.h"

/* A new record for a socket this process holds alone, or NULL (out of memory). */
struct shmsock_share *shmsock_share_create(void);

/* fork() is about to run (fd table locked): one more process will hold socket. */
void shmsock_share_before_fork(struct shmsock_socket *socket);

/* In the child after fork(): this process's id, and records are made in pages of its own. */
void shmsock_share_after_fork_child(void);

/* In a child after fork() (table locked): this process holds the socket of `share` now;
 * noted by its process id, so that the others find out when it ends without closing it. */
void shmsock_share_joined(struct shmsock_share *share);

/* This process no longer holds the socket (its last descriptor closed, or the process ends).
 * share may be NULL. */
void shmsock_share_leave(struct shmsock_share *share);

/* Before a call on socket: 0 if this process may go on (on shared memory or on the kernel
 * path, as the record says), -EOPNOTSUPP if another process has been using its shared-memory
 * state since the last fork. */
int shmsock_share_use(struct shmsock_socket *socket);

/* After a read on socket: if it took the peer's offer, this process is the socket's user
 * (another process's calls then fail with EOPNOTSUPP). */
void shmsock_share_after_read(struct shmsock_socket *socket);

/* The socket's descriptor is about to reach a process that keeps no state of it (passed with
 * SCM_RIGHTS, or kept across execve). 0 if the connection is now on the kernel path for good
 * (it had not begun to negotiate), -EOPNOTSUPP if it has begun: that process would read our
 * event records as payload, so the caller refuses. */
int shmsock_share_hand_over(struct shmsock_socket *socket);

/* execve is about to run: every shm socket with a descriptor that survives it (no FD_CLOEXEC)
 * is handed over to the new program. 0, or -EOPNOTSUPP (logged) if one cannot be: the exec
 * must then not happen. */
int shmsock_share_before_exec(void);

/* For every shm socket among msg's SCM_RIGHTS descriptors: one that this process alone holds
 * and has not used (shmsock_conn_untouched) is given away, marked for the receiver (see
 * shmsock_share_take_given), which then runs it as a fresh connection that may negotiate; any
 * other is handed over (shmsock_share_hand_over). 0, or -EOPNOTSUPP if one cannot be handed
 * over (the message must not be sent). */
int shmsock_share_hand_over_rights(const struct msghdr *msg);

/* After the send of msg (which shmsock_share_hand_over_rights saw): `sent`, the sockets it
 * gives away are given (this process's later calls on them fail with EOPNOTSUPP); not sent,
 * they stay this process's as before. */
void shmsock_share_rights_sent(const struct msghdr *msg, bool sent);

/* A connected socket just received with SCM_RIGHTS: true if its sender gave it away untouched
 * (the mark is taken off): this process may run it as a fresh connection. */
bool shmsock_share_take_given(int fd);

#endif
