/*
 * region.h - a region: one sealed memfd per direction, a header, then blocks.
 *
 * The side that sends creates its region (read-write); the side that receives attaches the
 * peer's region read-only after checking it. Sealing (no shrink, no grow, no further seals)
 * means a peer can never make our mapping SIGBUS by truncating the file.
 */
#ifndef SHMSOCK_IMPL_REGION_H
#define SHMSOCK_IMPL_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* "SHMSOCK\0" read as a little-endian 64-bit number: the first 8 bytes of every region. */
#define SHMSOCK_REGION_MAGIC 0x004b434f534d4853ull
#define SHMSOCK_PROTOCOL_VERSION 2u

#define SHMSOCK_MIN_BLOCK_SIZE 1024u
#define SHMSOCK_MAX_BLOCK_SIZE (1024u * 1024u)
#define SHMSOCK_MAX_BLOCK_COUNT 4096u
/* The header: one control page, then the two rings of coalesced mode; block 0 follows. */
#define SHMSOCK_CONTROL_PAGE 4096u
#define SHMSOCK_RING_SLOTS 256u
#define SHMSOCK_RING_SLOT_SIZE 32u
#define SHMSOCK_EVENT_RING_OFFSET SHMSOCK_CONTROL_PAGE
#define SHMSOCK_RELEASE_RING_OFFSET                                                                \
    (SHMSOCK_EVENT_RING_OFFSET + SHMSOCK_RING_SLOTS * SHMSOCK_RING_SLOT_SIZE)
#define SHMSOCK_REGION_HEADER_SIZE                                                                 \
    (SHMSOCK_RELEASE_RING_OFFSET + SHMSOCK_RING_SLOTS * SHMSOCK_RING_SLOT_SIZE)

/* How the owner publishes its events (send_mode). */
#define SHMSOCK_SEND_MODE_EVENTS 0u    /* every event is a kernel message */
#define SHMSOCK_SEND_MODE_COALESCED 1u /* events in the ring, doorbells when the peer sleeps */

/* Counters the owner keeps about its connection (read by tools through /proc, see
 * SHM_INFO); never used for decisions by the peer. */
struct shmsock_counters {
    uint64_t messages_sent;
    uint64_t bytes_sent;
    uint64_t messages_received;
    uint64_t bytes_received;
    uint64_t events_sent;    /* DATA events published (ring or kernel) */
    uint64_t doorbells_sent; /* doorbells rung for the peer (events and releases) */
    uint64_t doorbells_received;
    uint64_t blocks_in_use;    /* of our region, sent and not yet taken back (released
                                  blocks are taken back when room is needed) */
    uint64_t peer_blocks_held; /* of the peer's region, received and not yet released */
};

/* The header as it lies in shared memory. Written only by the region's owner. */
struct shmsock_region_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size; /* offset of block 0 */
    uint32_t block_size;
    uint32_t block_count;
    uint64_t region_size; /* bytes of the whole memfd */
    /*
     * 0 while the owner still sends payload through the kernel socket; once it switches to
     * blocks: 1 + the number of plain units (bytes on STREAM, messages on SEQPACKET) it sent
     * through the kernel before the first event. Set once, before the first event is sent.
     */
    uint64_t switch_point;
    /*
     * Set (to 1) by the owner once every read it makes looks for the peer's switch point:
     * from then on the peer may switch. Until then a read may be in progress that takes
     * everything as payload, so the peer must keep sending plain.
     */
    uint32_t reader_careful;
    uint32_t send_mode; /* SHMSOCK_SEND_MODE_*, set before switch_point */
    uint32_t ring_slots;
    uint32_t event_ring_offset;
    uint32_t release_ring_offset;
    uint32_t wants_kernel_events; /* the owner reads with SO_PASSCRED: send it event mode */
    uint64_t socket_ino;          /* inode of the owner's kernel socket (as `ss -x` shows it) */
    uint32_t socket_type;         /* SOCK_STREAM or SOCK_SEQPACKET */
    uint32_t owner_pid;           /* process that created the region (for inspection tools) */
    /* Set (to 1) by the owner once it has shut down reading (shutdown SHUT_RD): the peer's
     * sends fail with EPIPE, as the kernel's would, without asking the kernel. */
    uint32_t reader_shut;
    /* Bumped by the owner after each close of its socket (by any process holding it): the
     * peer asks the kernel at its next send whether the connection still stands. */
    uint32_t socket_closes;
    /* Hot fields, one cache line each (coalesced mode). */
    uint64_t event_head __attribute__((aligned(64))); /* our DATA events in our event ring */
    /* Hint: 1 while we are inside a coalesced send (not while it waits for blocks). A reader
     * that drains our ring meanwhile waits a moment for that event instead of arming. On the
     * line of event_head: a reader that waits polls one line, and a send writes one. */
    uint64_t producer_active;
    uint64_t event_arm __attribute__((aligned(64)));    /* we sleep for the peer's events */
    uint64_t event_rung __attribute__((aligned(64)));   /* 1 + the peer's event_arm we last
                                                           rang for (written before ringing) */
    uint64_t event_spinning;                            /* 1 while we busy-poll our ring */
    uint64_t release_head __attribute__((aligned(64))); /* our releases in our release ring */
    uint64_t release_arm __attribute__((aligned(64)));  /* we sleep for the peer's releases */
    struct shmsock_counters counters __attribute__((aligned(64)));
};

_Static_assert(sizeof(struct shmsock_region_header) <= SHMSOCK_CONTROL_PAGE,
               "the header fits its control page");

/* The geometry both sides agree on, as checked from a header copy. */
struct shmsock_geometry {
    uint32_t header_size;
    uint32_t block_size;
    uint32_t block_count;
    uint64_t region_size;
};

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

/*
 * Check a header copied out of a peer's memory against the file size: magic, version,
 * geometry. Pure function (fuzzed). Returns 0 and fills *out, or -EPROTO.
 */
int shmsock_region_check_header(const struct shmsock_region_header *copy, uint64_t file_size,
                                struct shmsock_geometry *out);

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
