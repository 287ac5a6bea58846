/*
 * region.h - a region: one sealed memfd per direction, a header, then blocks.
 *
 * The side that sends creates its region (read-write); the side that receives attaches the
 * peer's region read-only after checking it. Sealing (no shrink, no grow, no further seals)
 * means a peer can never make our mapping SIGBUS by truncating the file. The header's layout
 * and constants are wire format (wire.h); checking a peer's header copy is wire_check.h's.
 */
#ifndef SHMSOCK_IMPL_REGION_H
#define SHMSOCK_IMPL_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "wire.h"
#include "wire_check.h"

/* A mapped region, ours (writable) or the peer's (read-only). */
struct shmsock_region {
    void *base; /* NULL when not mapped */
    int memfd;  /* our own region's memfd until it has been offered; -1 otherwise */
    bool writable;
    struct shmsock_geometry geometry;
};

/* Create and map our region: memfd, size, seals. Returns 0 or a negative errno. */
int shmsock_region_create(struct shmsock_region *region, uint32_t block_size, uint32_t block_count);

/* What recognising a peer's memfd learned, kept so that attaching it asks the kernel nothing
 * twice. The header is the one copy read from the peer's memory (checked when attaching). */
struct shmsock_region_candidate {
    struct stat st;
    struct shmsock_region_header header;
    bool whole_header; /* the file was long enough for the whole header copy */
};

/*
 * Check the peer's memfd (sealed shmem file, sane size, header valid) and map it read-only.
 * Does not take ownership of fd. Returns 0, -EPROTO for anything that is not a valid region,
 * or another negative errno for a local failure.
 */
int shmsock_region_attach(struct shmsock_region *region, int fd);

/* The same, for an fd that shmsock_region_recognize() accepted into `candidate`. */
int shmsock_region_attach_candidate(struct shmsock_region *region, int fd,
                                    const struct shmsock_region_candidate *candidate);

/* Unmap and close what the region holds; safe on a zeroed or already released region. */
void shmsock_region_release(struct shmsock_region *region);

/* Whether fd looks like a shmsock region at all (a sealed shmem file starting with the magic). */
bool shmsock_region_fd_has_magic(int fd);

/* The same, keeping what it read (file status, header copy) in *candidate. */
bool shmsock_region_recognize(int fd, struct shmsock_region_candidate *candidate);

/* Add to a counter only one thread of the owner writes (no locked instruction needed). */
static inline void shmsock_counter_add(uint64_t *counter, uint64_t value)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + value, __ATOMIC_RELAXED);
}

/* Address of the first byte of block `block` (caller checked block < block_count). */
static inline unsigned char *shmsock_region_block(const struct shmsock_region *region,
                                                  uint32_t block)
{
    return (unsigned char *)region->base + region->geometry.header_size +
           (size_t)block * region->geometry.block_size;
}

/* Owner: publish the switch to blocks after `plain_units` units went through the kernel. */
void shmsock_region_publish_switch(struct shmsock_region *region, uint64_t plain_units);

/* Owner: say that all our reads from now on watch for the peer's switch. */
void shmsock_region_mark_reader_careful(struct shmsock_region *region);

/* Owner: take the mark back (only while the region has not been offered). */
void shmsock_region_unmark_reader_careful(struct shmsock_region *region);

/* Peer: whether the region's owner reads carefully (so we may switch). */
bool shmsock_region_reader_careful(const struct shmsock_region *region);

/*
 * Reader: load the peer's switch point once. Returns false while the peer has not switched;
 * true with *plain_units set once it has.
 */
bool shmsock_region_read_switch(const struct shmsock_region *region, uint64_t *plain_units);

#endif
