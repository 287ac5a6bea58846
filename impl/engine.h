/*
 * engine.h - the engine's narrow interface: everything api/ may call.
 *
 * A connection is the engine behind one connected AF_UNIX SOCK_STREAM or SOCK_SEQPACKET
 * socket. It is opaque here: api/ keeps a pointer per descriptor (fd_table) and calls these
 * functions, which return like the kernel's system calls do inside the kernel: a result >= 0,
 * or a negative errno (the facade turns that into -1/errno in one place, api/result.c).
 *
 * Every function is safe to call from several threads at once on one connection, as the
 * socket calls they serve are.
 */
#ifndef SHMSOCK_IMPL_ENGINE_H
#define SHMSOCK_IMPL_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "libc.h"
#include "shmsock.h"

struct shmsock_conn;

/* Create the engine state for socket fd of the given type. Returns 0 or -ENOMEM. */
int shmsock_conn_create(int fd, int type, struct shmsock_conn **out);

/* Free everything the connection holds in this process. Does not close fd, sends nothing. */
void shmsock_conn_destroy(struct shmsock_conn *conn);

/* The part of shmsock_conn_destroy that is async-signal-safe: unmap the regions and close the
 * connection's own descriptors (munmap, close). shmsock_conn_destroy must still follow, in a
 * context where free() is allowed, to give the memory back. */
void shmsock_conn_close_resources(struct shmsock_conn *conn);

/* The connection's kernel socket is now descriptor fd (the one it used is being closed while a
 * duplicate stays open). */
void shmsock_conn_rename(struct shmsock_conn *conn, int fd);

/* Stay on the kernel path for good, and take the peer's offers out of what we read (closed
 * unanswered, as a plain program's kernel would: the peer stays on the kernel path too), so
 * that the program never sees one. For a socket other processes hold. 0, or -EISCONN if
 * negotiation has begun. */
int shmsock_conn_decline_offers(struct shmsock_conn *conn);

/* While held (other processes hold the socket for now): sends carry no offer and no answer,
 * so the peer cannot switch; a read still takes the peer's offer, whose answer stays owed.
 * Once released, the next send (or the end of the next read) offers or answers. */
void shmsock_conn_hold_negotiation(struct shmsock_conn *conn, bool held);

/* Whether negotiation has begun: we offered or answered, or the peer's offer has come. From
 * then on the connection may run over shared memory, and its state in this process is not
 * a plain socket's. */
bool shmsock_conn_negotiation_started(struct shmsock_conn *conn);

/* Whether nothing has happened on the connection in this process yet: no byte sent or
 * received, negotiation not begun and not turned off, and no call in progress. Such a socket
 * carries no history of ours: another process may take it over as a fresh one (SCM_RIGHTS). */
bool shmsock_conn_untouched(struct shmsock_conn *conn);

/* SOCK_STREAM or SOCK_SEQPACKET: the type the connection was created with. */
int shmsock_conn_type(const struct shmsock_conn *conn);

/* Copy the shm options of a listening socket's connection to an accepted one. */
void shmsock_conn_inherit_options(struct shmsock_conn *conn, const struct shmsock_conn *from);

/* SOL_SHMSOCK options. Return 0 or a negative errno (-EINVAL, -EISCONN, -ENOPROTOOPT). */
int shmsock_conn_set_option(struct shmsock_conn *conn, int optname, int value);
int shmsock_conn_get_option(struct shmsock_conn *conn, int optname, int *value);

/* SHM_STATUS_PLAIN, SHM_STATUS_OFFERED or SHM_STATUS_SHM, from memory alone (SHM_STATUS
 * also asks the kernel whether the socket is listening). */
int shmsock_conn_path(struct shmsock_conn *conn);

/* SHM_INFO: fill the public description of the connection. Returns 0. */
int shmsock_conn_get_info(struct shmsock_conn *conn, struct shm_sock_info *info);

/* SO_PASSCRED set or cleared: a reader that wants credentials asks the peer for kernel
 * events (credentials travel only with kernel messages). */
void shmsock_conn_passcred_changed(struct shmsock_conn *conn, int on);

/* The application set SO_PEEK_OFF on the kernel socket: from now on the library's own reads
 * of it (peeks that look before a read, event records, doorbells) neither use nor move that
 * offset. */
void shmsock_conn_peek_off_changed(struct shmsock_conn *conn);

/* shutdown(2) was called with `how` (the kernel socket is already shut down). After SHUT_RD
 * the peer's sends fail with EPIPE: our region says so, and a peer sleeping for releases is
 * woken to read it. */
void shmsock_conn_shutdown(struct shmsock_conn *conn, int how);

/* This process has closed its descriptor of the socket (close(2) has returned): our region
 * says so, and the peer's next send asks the kernel whether the connection still stands. */
void shmsock_conn_socket_closed(struct shmsock_conn *conn);

/* SO_SNDBUF changed on the kernel socket: refresh the SEQPACKET message limit. */
void shmsock_conn_sndbuf_changed(struct shmsock_conn *conn);

/* FIONREAD/SIOCINQ: the payload a read would find (STREAM), or the bytes of every message
 * queued (SEQPACKET), as the kernel counts a plain socket's; never event records. SIOCOUTQ:
 * what we sent that the peer has not read (the blocks it holds, or the kernel's count before
 * our switch). 0 with *value, or a negative errno (the kernel's). */
int shmsock_conn_queued(struct shmsock_conn *conn, unsigned long request, int *value);

/* SO_INQ set (the kernel accepted it): reads add SCM_INQ themselves. */
void shmsock_conn_set_inq(struct shmsock_conn *conn, int on);

/* The copying send and receive: bytes or a negative errno (-EPIPE without raising SIGPIPE). */
ssize_t shmsock_conn_send(struct shmsock_conn *conn, const struct msghdr *msg, int flags);
ssize_t shmsock_conn_recv(struct shmsock_conn *conn, struct msghdr *msg, int flags);

/* Ring a doorbell that MSG_MORE held back (a batch of sends stopped early). */
void shmsock_conn_flush_doorbell(struct shmsock_conn *conn);

/*
 * For shm_poll: if a send would find no free block right now, return the descriptor whose
 * readability means "blocks came back" (the release channel); otherwise -1.
 */
int shmsock_conn_space_fd(struct shmsock_conn *conn);

/* Whether a send would find a free block now (takes back what the peer released first). */
bool shmsock_conn_has_space(struct shmsock_conn *conn);

/* Zero-copy send: reserve room for a message of len bytes (NULL and *err set on failure),
 * publish it (bytes or a negative errno), or give the reservation up (0 or -EINVAL). */
void *shmsock_conn_send_alloc(struct shmsock_conn *conn, size_t len, int flags, int *err);
ssize_t shmsock_conn_send_commit(struct shmsock_conn *conn, void *buf, size_t len, int flags);
int shmsock_conn_send_abort(struct shmsock_conn *conn, void *buf);

/* Zero-copy receive: a view of the next message where it lies (its length, 0 at end of
 * stream, or a negative errno), and its release (0 or -EINVAL). */
ssize_t shmsock_conn_recv_view(struct shmsock_conn *conn, const void **buf, int flags);
int shmsock_conn_recv_release(struct shmsock_conn *conn, const void *buf);

#endif
