/*
 * event.h - the event records that travel through the kernel sockets, and their checks.
 *
 * An event is a fixed 32-byte record. DATA says "a message lies in blocks token..token+count-1
 * of my region, this long"; RELEASE returns a token to its producer; OFFER announces the
 * sender's region (its descriptors ride with the record as SCM_RIGHTS). Both ends run on one
 * host, so fields are in native byte order.
 */
#ifndef SHMSOCK_IMPL_EVENT_H
#define SHMSOCK_IMPL_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "region.h"

#define SHMSOCK_EVENT_SIZE 32u

enum shmsock_event_type {
    SHMSOCK_EVENT_DATA = 1,
    SHMSOCK_EVENT_RELEASE = 2,
    SHMSOCK_EVENT_OFFER = 3,
    /* Coalesced mode: "there is something in the ring", sent only to a sleeping peer.
     * `offset` carries the peer's arm generation it answers. */
    SHMSOCK_EVENT_DOORBELL = 4,
    /* Coalesced mode, in the event ring: "my next events come as kernel messages" (a message
     * with ancillary data, or a reader that wants credentials, needs the kernel socket). */
    SHMSOCK_EVENT_TO_KERNEL = 5,
};

struct shmsock_event {
    uint32_t type;
    uint32_t token;       /* number of the first block of the run */
    uint64_t offset;      /* byte offset of that block from the start of the region */
    uint64_t length;      /* payload bytes (DATA); 0 otherwise */
    uint32_t block_count; /* blocks in the run */
    uint32_t reserved;    /* 0 */
};

_Static_assert(sizeof(struct shmsock_event) == SHMSOCK_EVENT_SIZE, "event record size");

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
