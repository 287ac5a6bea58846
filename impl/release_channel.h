/*
 * release_channel.h - the producer's end of the release channel.
 *
 * The release channel is a SOCK_STREAM socketpair made by the side that offers first: it
 * keeps one end (release_rx) and offers the other to the peer. The peer writes RELEASE events
 * there for our blocks, and, when it answers our offer, its own OFFER event (with its region
 * attached). The channel is full duplex, so it then serves the other direction too: the
 * answerer reads its end for releases of its own blocks (release_rx == peer_release_fd). A
 * plain peer drops the descriptors of our offer, which closes its end: we then read end of
 * file and know the peer will never offer.
 */
#ifndef SHMSOCK_IMPL_RELEASE_CHANNEL_H
#define SHMSOCK_IMPL_RELEASE_CHANNEL_H

#include "conn.h"

/*
 * Read everything waiting on the release channel without blocking: free released runs, take
 * an answering offer, note end of file. Caller holds producer_lock. A bad record fails the
 * connection (conn->error).
 */
void shmsock_release_channel_drain(struct shmsock_conn *conn);

#endif
