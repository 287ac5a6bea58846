/*
 * producer.h - our direction: our region and its token list (the specification's
 * token_producer_list), the release intake, and the two core operations: reserve a run of
 * blocks, commit it as a DATA event.
 *
 * The release intake reads the peer's releases of our blocks from its release ring
 * (coalesced mode) or as RELEASE events on the release channel. The channel also brings the
 * peer's answer to our offer: the intake keeps it for negotiation (conn->nego.answer), it
 * does not act on it.
 */
#ifndef SHMSOCK_IMPL_PRODUCER_H
#define SHMSOCK_IMPL_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"

/* Make our region and its token list, sized from the options or SO_SNDBUF, if not done yet
 * (send_lock held). 0 or a negative errno. */
int shmsock_producer_prepare_region(struct shmsock_conn *conn);

/* Read SO_SNDBUF (the SEQPACKET message limit follows it). */
void shmsock_producer_read_sndbuf(struct shmsock_conn *conn);

/* Say in our header whether we are inside a coalesced send (a hint for the reader). */
void shmsock_producer_set_active(struct shmsock_conn *conn, uint64_t active);

/* Read everything waiting on the release channel without blocking: free released runs, keep
 * an answer to our offer for negotiation, note end of file (the peer will never offer).
 * producer_lock held. A bad record fails the connection. */
void shmsock_producer_drain_channel(struct shmsock_conn *conn);

/* Reserve a run of `blocks` blocks, waiting for releases as a blocking send waits for buffer
 * space (MSG_DONTWAIT, O_NONBLOCK and SO_SNDTIMEO as the kernel's). The token, or a negative
 * errno. send_lock held. */
int64_t shmsock_producer_reserve_blocks(struct shmsock_conn *conn, uint32_t blocks, int flags);

/* Give a reserved run back unpublished. */
void shmsock_producer_cancel(struct shmsock_conn *conn, uint32_t token, uint32_t blocks);

/* Publish a reserved run of `length` bytes as a DATA event (with the ancillary data of `msg`
 * if with_control), give it back if that failed (unless the ring holds it: then its blocks
 * are the peer's until it is gone), count it if it went. 0 or a negative errno. send_lock. */
int shmsock_producer_commit(struct shmsock_conn *conn, uint32_t token, uint32_t blocks,
                            uint64_t length, const struct msghdr *msg, bool with_control,
                            int flags);

/* Coalesced sends do not touch the kernel socket: ask whether the connection still stands
 * (at once when the peer's region says so, else now and then). 0 or -EPIPE/-ECONNRESET. */
int shmsock_producer_probe(struct shmsock_conn *conn, int flags);

/* The largest message one commit can carry (SEQPACKET: also bounded by SO_SNDBUF). */
size_t shmsock_producer_message_limit(struct shmsock_conn *conn);

/* Whether the peer's reader asks for kernel events (it wants credentials with each). */
bool shmsock_producer_peer_wants_kernel_events(struct shmsock_conn *conn);

/*
 * Whether the peer has read everything this side sent: since the switch every event went
 * through our ring, at least one did (so the plain bytes before it were read), and every token
 * has come back. Then a reset the kernel reports at the peer's close can only come from
 * doorbells left in its queue, which carry no data.
 */
bool shmsock_producer_peer_read_all(struct shmsock_conn *conn);

/* The kernel's error `err` for the socket, or 0 where it is a reset (-ECONNRESET) that only
 * doorbells caused (shmsock_producer_peer_read_all): the socket it replaces would report none. */
int shmsock_producer_filter_reset(struct shmsock_conn *conn, int err);

/* shmsock_kernel_error through shmsock_producer_filter_reset: 0 or a negative errno. */
int shmsock_producer_socket_error(struct shmsock_conn *conn);

#endif
