/*
 * wakeup.h - the wake-up of coalesced mode (see wakeup.c): a side that sleeps arms (a new
 * generation in its region's header), fences, and looks once more; the other side, after
 * publishing, fences and rings a doorbell (a DOORBELL record on a kernel socket) once per
 * generation. Both directions: events (doorbell on the application's socket) and releases
 * (doorbell on the release channel).
 */
#ifndef SHMSOCK_IMPL_WAKEUP_H
#define SHMSOCK_IMPL_WAKEUP_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"

/* Send one doorbell record for generation `gen` on `fd` (the kernel socket, or a release
 * channel). 0 if it went, -EAGAIN if the queue is full, -EPIPE/-ECONNRESET if the peer is
 * gone. */
int shmsock_doorbell_send(int fd, uint64_t gen);

/* ---- as producer (send_lock held) ---- */

/* Whether the peer's consumer sleeps (armed, not spinning) and has not been rung for it: the
 * next event published without MSG_MORE rings it. */
bool shmsock_wakeup_doorbell_due(struct shmsock_conn *conn);

/* After a fence: ring the peer if it armed since we last rang. 0 or -EPIPE/-ECONNRESET. */
int shmsock_wakeup_ring_if_armed(struct shmsock_conn *conn);

/* Arm for the peer's releases (we are about to sleep for blocks; producer_lock held). */
void shmsock_wakeup_arm_for_releases(struct shmsock_conn *conn);

/* ---- as consumer (recv_lock held) ---- */

/* Arm for the peer's events: a new generation, then a full fence (which also serves the
 * releases pushed before it: the producer is rung for them if it sleeps). */
void shmsock_wakeup_arm_for_events(struct shmsock_conn *conn);

/* Releases pushed into our ring and not yet signalled: fence, and ring the producer if it
 * sleeps for them. */
void shmsock_wakeup_signal_releases(struct shmsock_conn *conn);

/* Take the doorbells of generations before our current arm out of the kernel socket (all
 * that are there with `force`). Returns 0, or the kernel's error for the socket (ECONNRESET
 * ...), which must reach the application. */
int shmsock_wakeup_take_old_doorbells(struct shmsock_conn *conn, bool force);

#endif
