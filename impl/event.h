/*
 * event.h - the event record's codec and checks: what a DATA or RELEASE event may say about a
 * region of a given geometry.
 *
 * The record itself (struct shmsock_event, its types, SHMSOCK_EVENT_SIZE) is wire format and
 * lies in wire.h. Pure functions (fuzzed); part of //impl:wire with wire_check.h.
 */
#ifndef SHMSOCK_IMPL_EVENT_H
#define SHMSOCK_IMPL_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"
#include "wire_check.h"

/* Serialise / parse one record. decode only checks the type and reserved field (-EPROTO). */
void shmsock_event_encode(const struct shmsock_event *event, unsigned char out[SHMSOCK_EVENT_SIZE]);
int shmsock_event_decode(const unsigned char in[SHMSOCK_EVENT_SIZE], struct shmsock_event *event);

/* Number of blocks a message of `length` bytes occupies (a zero-length message takes one). */
uint32_t shmsock_blocks_for_length(uint64_t length, uint32_t block_size);

/*
 * Check that a DATA event fits the peer's region: token in range, run inside the region,
 * offset at the token's block, length consistent with block_count. Returns 0 or -EPROTO.
 */
int shmsock_event_check_data(const struct shmsock_event *event,
                             const struct shmsock_geometry *geometry);

/* Check a RELEASE event's shape against our own geometry (ownership is the producer list's). */
int shmsock_event_check_release(const struct shmsock_event *event,
                                const struct shmsock_geometry *geometry);

/* Fill a DATA / RELEASE event for a run of our region. */
struct shmsock_event shmsock_event_data(const struct shmsock_geometry *geometry, uint32_t token,
                                        uint32_t block_count, uint64_t length);
struct shmsock_event shmsock_event_release(const struct shmsock_geometry *geometry, uint32_t token,
                                           uint32_t block_count);

#endif
