/*
 * ring.h - the two rings of coalesced mode.
 *
 * Each region holds an event ring (its owner's DATA events for the peer) and a release ring
 * (its owner's RELEASE events for the peer's blocks). The owner writes a slot, then advances
 * the ring's head with a release store; the reader keeps its own tail, loads the head, checks
 * it and copies the slot out once before checking the event itself. A ring never overflows:
 * at most SHMSOCK_MAX_TOKENS_IN_FLIGHT events can be outstanding, fewer than the slots.
 */
#ifndef SHMSOCK_IMPL_RING_H
#define SHMSOCK_IMPL_RING_H

#include <stdint.h>

#include "event.h"
#include "region.h"

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

/* Pure check of a head loaded from a peer against our tail (fuzzed). */
int64_t shmsock_ring_check_head(uint64_t head, uint64_t tail, uint32_t slots);

/* Reader: copy the entry at `tail` out of the peer's ring and decode it (-EPROTO if bad). */
int shmsock_ring_read(const struct shmsock_region *peer, enum shmsock_ring_kind kind, uint64_t tail,
                      struct shmsock_event *out);

#endif
