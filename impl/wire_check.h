/*
 * wire_check.h - checks of the wire format a peer wrote into its region: its header and the
 * heads of its rings.
 *
 * Pure functions on copies (no system calls, no shared state), apart from the engine so that
 * the fuzzers and shmsock-ss can use them with the layout alone (//impl:wire). The event
 * record's own checks are in event.h, which is part of the same target.
 */
#ifndef SHMSOCK_IMPL_WIRE_CHECK_H
#define SHMSOCK_IMPL_WIRE_CHECK_H

#include <stdint.h>

#include "wire.h"

/* The geometry both sides agree on, as checked from a header copy. */
struct shmsock_geometry {
    uint32_t header_size;
    uint32_t block_size;
    uint32_t block_count;
    uint64_t region_size;
};

/*
 * Check a header copied out of a peer's memory against the file size: magic, version,
 * geometry. Pure function (fuzzed). Returns 0 and fills *out, or -EPROTO.
 */
int shmsock_region_check_header(const struct shmsock_region_header *copy, uint64_t file_size,
                                struct shmsock_geometry *out);

/* Pure check of a ring head loaded from a peer against our tail (fuzzed): the count of
 * entries between them, or -EPROTO if the head is behind the tail or more than `slots` ahead. */
int64_t shmsock_ring_check_head(uint64_t head, uint64_t tail, uint32_t slots);

#endif
