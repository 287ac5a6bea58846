/*
 * ring.h - the two rings of coalesced mode.
 *
 * Each region holds an event ring (its owner's DATA events for the peer) and a release ring
 * (its owner's RELEASE events for the peer's blocks). The owner writes a slot, then advances
 * the ring's head with a release store; the reader keeps its own tail, loads the head, checks
 * it and copies the slot out once before checking the event itself. A ring never overflows:
 * at most SHMSOCK_MAX_TOKENS_IN_FLIGHT events can be outstanding, fewer than the slots.
 * The slots' layout is wire format (wire.h); the check of a loaded head is wire_check.h's.
 */
#ifndef SHMSOCK_IMPL_RING_H
#define SHMSOCK_IMPL_RING_H

#include <stdint.h>

#include "event.h"
#include "region.h"
#include "wire.h"
#include "wire_check.h"

enum shmsock_ring_kind {
    SHMSOCK_RING_EVENTS,
    SHMSOCK_RING_RELEASES,
};

/* Owner: write `event` into the next slot of our ring and publish it. */
void shmsock_ring_push(struct shmsock_region *own, enum shmsock_ring_kind kind,
                       const struct shmsock_event *event);

/*
 * Reader: how many entries of the peer's ring lie between our tail and its head. Returns the
 * count (0 if empty), or -EPROTO if the head is behind the tail or more than a ring ahead.
 */
int64_t shmsock_ring_available(const struct shmsock_region *peer, enum shmsock_ring_kind kind,
                               uint64_t tail);

/* Reader: copy the entry at `tail` out of the peer's ring and decode it (-EPROTO if bad). */
int shmsock_ring_read(const struct shmsock_region *peer, enum shmsock_ring_kind kind, uint64_t tail,
                      struct shmsock_event *out);

#endif
