/*
 * consumer.h - the peer's direction: its region (mapped read-only), our list of the tokens
 * of it we hold (the specification's token_consumer_list), and the releases we owe it.
 *
 * Take and release are the core operations: an event source (event_source.h) takes the next
 * DATA event and records its token here; once its payload has been copied out (or a view of
 * it is released), the run is released: into our release ring when the peer is coalesced,
 * else as RELEASE events on its release channel.
 */
#ifndef SHMSOCK_IMPL_CONSUMER_H
#define SHMSOCK_IMPL_CONSUMER_H

#include "conn.h"

/* Attach the peer's region (fd, as recognised into candidate; fd is not taken) and make our
 * list of its tokens. 0, -EPROTO for a region that is not valid, or another negative errno. */
int shmsock_consumer_attach(struct shmsock_conn *conn, int fd,
                            const struct shmsock_region_candidate *candidate);

/* Check a DATA event against the peer's region. 0 or -EPROTO. */
int shmsock_consumer_check_data(struct shmsock_conn *conn, const struct shmsock_event *event);

/* Where a checked DATA event's payload lies in our mapping of the peer's region. */
const unsigned char *shmsock_consumer_payload(struct shmsock_conn *conn,
                                              const struct shmsock_event *event);

/* Collect the release of a run we are done with; sent with the next flush (recv_lock). */
void shmsock_consumer_queue_release(struct shmsock_conn *conn, const struct shmsock_event *data);

/* Return the collected runs to the peer in one go (recv_lock). */
void shmsock_consumer_flush_releases(struct shmsock_conn *conn);

/* Write one release into our release ring, to be signalled after the next fence
 * (shmsock_wakeup_signal_releases; recv_lock). */
void shmsock_consumer_push_release(struct shmsock_conn *conn, const struct shmsock_event *data);

/* Give a run of the peer's region back at once (recv_lock). */
void shmsock_consumer_release_run(struct shmsock_conn *conn, const struct shmsock_event *data);

#endif
