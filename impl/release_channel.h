/*
 * release_channel.h - the producer's end of the release channel.
 *
 * Each side's release channel is a SOCK_STREAM socketpair: we keep one end (release_rx) and
 * offer the other to the peer. The peer writes RELEASE events there for our blocks, and, when
 * it answers our offer, its own OFFER event (with its region and channel attached). A plain
 * peer drops the descriptors of our offer, which closes its end: we then read end of file and
 * know the peer will never offer.
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
