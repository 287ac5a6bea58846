/*
 * liveness.h - errors and the kernel's word on the connection, for both directions.
 *
 * Three kinds of trouble end or interrupt a connection: the peer broke the protocol (a sticky
 * error: EPROTO for every later call, and the kernel socket is shut down so that the peer
 * learns of it too), the kernel reports the connection gone (EPIPE, ECONNRESET), or a read
 * met the kernel's error after it had taken data (the error waits for the next read, as the
 * kernel hands it out). Whether a reset is one at all is the producer's call
 * (shmsock_producer_filter_reset): it alone knows whether the peer read all we sent.
 */
#ifndef SHMSOCK_IMPL_LIVENESS_H
#define SHMSOCK_IMPL_LIVENESS_H

#include <sys/types.h>

#include "conn.h"

/* Record a protocol violation: the connection ends with err for this side and the peer.
 * Returns the connection's error (the first one recorded). */
int shmsock_conn_fail(struct shmsock_conn *conn, int err);

/* The result of a call that failed after the peer broke the protocol is the violation (EPROTO),
 * not what the shut-down socket said (EPIPE, which would also raise SIGPIPE). */
static inline ssize_t shmsock_conn_result(struct shmsock_conn *conn, ssize_t r)
{
    int err = shmsock_conn_error(conn);
    return r < 0 && err != 0 ? err : r;
}

/* The kernel's pending error for the socket, taken (SO_ERROR clears it, as the call that
 * reports it would): 0 or a negative errno. */
int shmsock_kernel_error(struct shmsock_conn *conn);

/* A zero-length SOCK_STREAM send on the kernel socket: it carries nothing and fails exactly as
 * a real one would (EPIPE after a shutdown or the peer's close). 0 or a negative errno. */
int shmsock_kernel_empty_send(struct shmsock_conn *conn, int flags);

/* Keep err (negative errno) for the next read, unless one is kept already (recv_lock). */
void shmsock_defer_error(struct shmsock_conn *conn, int err);

/* The error an earlier read kept, taken (0 if none; recv_lock). */
int shmsock_take_deferred_error(struct shmsock_conn *conn);

#endif
